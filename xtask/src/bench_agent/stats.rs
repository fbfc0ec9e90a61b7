//! One number per round per measurement, summarised as median and min–max over rounds.

use std::collections::BTreeMap;

/// Per-round values by key (such as `sonde/cpu_ms`), in round order so rounds pair up.
#[derive(Default)]
pub struct Samples(BTreeMap<String, Vec<f64>>);

impl Samples {
    pub fn push(&mut self, key: &str, value: f64) {
        self.0.entry(key.to_string()).or_default().push(value);
    }

    pub fn get(&self, key: &str) -> &[f64] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn spread(&self, key: &str) -> Option<Spread> {
        Spread::of(self.get(key))
    }

    /// Round by round `a / b`, summarised: a paired ratio, fairer than a ratio of medians
    /// when the machine's load drifts between rounds.
    pub fn ratio(&self, a: &str, b: &str) -> Option<Spread> {
        let ratios: Vec<f64> = self
            .get(a)
            .iter()
            .zip(self.get(b))
            .map(|(x, y)| x / y)
            .collect();
        Spread::of(&ratios)
    }
}

#[derive(Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            median: median_of_sorted(&v),
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_of_sorted(&v)
}

fn median_of_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_paired_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut s = Samples::default();
        for (a, b) in [(1.0, 4.0), (2.0, 4.0), (3.0, 4.0)] {
            s.push("a", a);
            s.push("b", b);
        }
        let r = s.ratio("a", "b").unwrap();
        assert_eq!((r.min, r.median, r.max), (0.25, 0.5, 0.75));
    }
}
