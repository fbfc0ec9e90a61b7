//! histogram_quantile over classic `le` buckets, as Prometheus 2.42's
//! quantile.go computes it; and the native-histogram functions, which see
//! no native histograms here (we store floats only) and so return nothing.

use std::collections::HashMap;

use super::FunctionCall;
use super::args;
use crate::model::{Labels, METRIC_NAME};
use crate::query::{InstantSample, QueryError, Value};

const BUCKET_LABEL: &str = "le";

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    let out = match c.name {
        "histogram_quantile" => {
            args::arity(c, 2, 2)?;
            let q = args::scalar(c, 0)?;
            histogram_quantile(q, args::vector(c, 1)?, c.t)
        }
        "histogram_count" | "histogram_sum" => {
            args::arity(c, 1, 1)?;
            args::vector(c, 0)?;
            Vec::new()
        }
        "histogram_fraction" => {
            args::arity(c, 3, 3)?;
            args::scalar(c, 0)?;
            args::scalar(c, 1)?;
            args::vector(c, 2)?;
            Vec::new()
        }
        _ => return Ok(None),
    };
    Ok(Some(Value::Vector(out)))
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Groups the input by its labels without `le` (the metric name counts, so
/// two histograms differing only by name stay apart and then clash in the
/// output as in Prometheus), and computes one quantile per group.
fn histogram_quantile(q: f64, input: &[InstantSample], t: i64) -> Vec<InstantSample> {
    let mut index: HashMap<WithoutLe<'_>, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    for s in input {
        // No or an unparsable `le`: not a bucket, skipped as Prometheus does.
        let Some(upper) = s.labels.get(BUCKET_LABEL).and_then(parse_go_float) else {
            continue;
        };
        let i = *index.entry(WithoutLe(&s.labels)).or_insert_with(|| {
            groups.push((s.labels.without(&[METRIC_NAME, BUCKET_LABEL]), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(Bucket { upper, count: s.v });
    }
    groups
        .into_iter()
        .map(|(labels, mut buckets)| InstantSample {
            labels,
            t,
            v: bucket_quantile(q, &mut buckets),
        })
        .collect()
}

/// A label set seen without its `le` label, hashed and compared in place:
/// building that label set for every bucket at every step was most of
/// histogram_quantile's time.
struct WithoutLe<'a>(&'a Labels);

impl WithoutLe<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter(|(n, _)| *n != BUCKET_LABEL)
    }
}

impl std::hash::Hash for WithoutLe<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for (n, v) in self.pairs() {
            n.hash(h);
            v.hash(h);
        }
    }
}

impl PartialEq for WithoutLe<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.pairs().eq(other.pairs())
    }
}

impl Eq for WithoutLe<'_> {}

/// Go's strconv.ParseFloat for the forms `le` values take ("+Inf", "1e0",
/// ".2", "inf"); Rust's parser accepts the same spellings of infinity and
/// NaN, case-insensitively.
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// The quantile of one classic histogram: sorted by bound, equal bounds
/// merged, counts forced monotonic, then linear interpolation inside the
/// bucket holding the rank. Needs a +Inf bucket; the lowest bucket starts
/// at 0 unless its bound is not positive.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // The first bucket (excluding +Inf) whose cumulative count reaches the rank.
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return buckets[n - 1].upper;
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return buckets[0].upper;
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    start + (end - start) * (rank / count)
}

/// Merges buckets with the same bound (`0.2` and `2e-1`), adding counts.
fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Raises any count lower than a previous one to that maximum: racing
/// scrapes or recording rules can make cumulative counts dip.
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let mut max = f64::NEG_INFINITY;
    for b in buckets {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn hist(name: &str, extra: &[(&str, &str)], buckets: &[(&str, f64)]) -> Vec<InstantSample> {
        buckets
            .iter()
            .map(|(le, v)| {
                let mut l = vec![("__name__", name), ("le", *le)];
                l.extend_from_slice(extra);
                inst(&l, *v)
            })
            .collect()
    }

    fn q(phi: f64, buckets: &[(&str, f64)]) -> f64 {
        one(run(
            "histogram_quantile",
            vec![scalar(phi), Value::Vector(hist("h_bucket", &[], buckets))],
            0.0,
            None,
        ))
    }

    #[test]
    fn interpolates_inside_the_bucket() {
        // 0.1:50, 0.2:70, 1:110, +Inf:120. q=0.5: rank 60 in (0.1, 0.2],
        // 10 of 20 -> 0.15. q=0.2: rank 24 in [0, 0.1] -> 0.048.
        let b = [("0.1", 50.0), (".2", 70.0), ("1e0", 110.0), ("+Inf", 120.0)];
        assert_close(q(0.5, &b), 0.15);
        assert_close(q(0.2, &b), 0.048);
        assert_close(q(0.8, &b), 0.72);
        // Rank in the +Inf bucket: the highest finite bound.
        assert_eq!(q(1.0, &b), 1.0);
        assert_eq!(q(0.0, &b), 0.0);
    }

    #[test]
    fn out_of_range_quantiles_and_negative_lowest_bucket() {
        let b = [("-.2", 10.0), ("-0.1", 20.0), ("0.3", 20.0), ("+Inf", 30.0)];
        assert_eq!(q(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(q(1.01, &b), f64::INFINITY);
        assert!(q(f64::NAN, &b).is_nan());
        assert_eq!(q(0.0, &b), -0.2);
        assert_close(q(0.5, &b), -0.15);
        assert_eq!(q(0.8, &b), 0.3);
    }

    #[test]
    fn needs_inf_bucket_and_observations() {
        assert!(q(0.5, &[("0.1", 1.0), ("1", 2.0)]).is_nan());
        assert!(q(0.5, &[("0.1", 0.0), ("+Inf", 0.0)]).is_nan());
        assert!(q(0.5, &[("+Inf", 3.0)]).is_nan());
    }

    #[test]
    fn nonmonotonic_buckets_are_fixed() {
        let b = [
            ("0.1", 20.0),
            ("1", 10.0),
            ("10", 50.0),
            ("100", 40.0),
            ("1000", 90.0),
            ("+Inf", 80.0),
        ];
        // Counts become 20 20 50 50 90 90.
        assert_close(q(0.01, &b), 0.0045);
        assert_close(q(0.5, &b), 8.5);
        assert_close(q(0.99, &b), 979.75);
    }

    #[test]
    fn equal_bounds_merge() {
        let b = [
            ("0.1", 1.0),
            ("0.2", 1.0),
            ("2e-1", 1.0),
            ("2.0e-1", 1.0),
            ("+Inf", 4.0),
        ];
        assert_close(q(0.5, &b), 0.15);
        assert_close(q(0.75, &b), 0.2);
        // Only +Inf buckets (merged) leave a single bucket: NaN.
        assert!(q(0.5, &[("+inf", 0.0), ("+Inf", 0.0)]).is_nan());
    }

    #[test]
    fn groups_by_labels_and_clashes_across_names() {
        let mut input = hist("a_bucket", &[("job", "1")], &[("1", 1.0), ("+Inf", 2.0)]);
        input.extend(hist(
            "a_bucket",
            &[("job", "2")],
            &[("1", 2.0), ("+Inf", 2.0)],
        ));
        input.push(inst(&[("__name__", "a_bucket"), ("job", "3")], 1.0)); // no le: skipped
        let out = vec_of(run(
            "histogram_quantile",
            vec![scalar(0.5), Value::Vector(input.clone())],
            0.0,
            None,
        ));
        assert_eq!(
            out,
            vec![(lbl(&[("job", "1")]), 1.0), (lbl(&[("job", "2")]), 0.5)]
        );
        input.extend(hist(
            "b_bucket",
            &[("job", "1")],
            &[("1", 1.0), ("+Inf", 2.0)],
        ));
        assert!(
            run(
                "histogram_quantile",
                vec![scalar(0.5), Value::Vector(input)],
                0.0,
                None
            )
            .is_err()
        );
    }
}
