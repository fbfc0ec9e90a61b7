//! Vector and matrix selectors: one storage read per selector for the whole
//! query span, then per-step lookups in memory (lookback and staleness for
//! instant vectors, inclusive windows for range vectors, Prometheus 2.x rules).

use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::eval::{Evaluated, Evaluator, MatrixEval, Steps};
use super::syntax::{duration_ms, offset_ms, selector_matchers};
use super::{InstantSample, QueryError, RangeSeries};
use crate::model::{Labels, Matcher, Sample, is_stale_nan};
use crate::store::SeriesData;

impl Evaluator<'_> {
    /// Reads the series matching any of the matcher sets with samples in
    /// `[mint, maxt]`, sorted by labels, counting the samples held.
    fn select(
        &mut self,
        sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let mut out: Vec<SeriesData> = Vec::new();
        for set in sets {
            out.extend(self.storage.select(set, mint, maxt)?);
        }
        if sets.len() > 1 {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.dedup_by(|a, b| a.labels == b.labels);
        }
        self.track(out.iter().map(|s| s.samples.len()).sum())?;
        Ok(out)
    }

    /// The reference times `[lo, hi]` a selector looks at over `steps`.
    fn ref_span(&self, at: Option<i64>, offset: i64, steps: &Steps) -> (i64, i64) {
        match at {
            Some(a) => (a - offset, a - offset),
            None => (steps.start - offset, steps.end - offset),
        }
    }

    /// An instant vector selector. With `sample_time`, each output sample
    /// carries its own timestamp (for `timestamp()`), otherwise the step's.
    pub(crate) fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        steps: &Steps,
        sample_time: bool,
    ) -> Result<Evaluated, QueryError> {
        let n = steps.len();
        if n == 0 {
            return Ok(Evaluated::Vector(Vec::new()));
        }
        let sets = selector_matchers(vs)?;
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let (lo, hi) = self.ref_span(at, offset, steps);
        let series = self.select(&sets, lo - self.lookback, hi)?;
        let loaded: usize = series.iter().map(|s| s.samples.len()).sum();
        let mut out: Vec<Vec<InstantSample>> = vec![Vec::new(); n];
        for s in &series {
            self.check_deadline()?;
            if let Some(a) = at {
                // Fixed reference time: one lookup serves every step.
                if let Some(found) = lookup(&s.samples, a - offset, self.lookback) {
                    for (i, t) in steps.iter() {
                        out[i].push(sample(&s.labels, found, t, sample_time));
                    }
                }
                continue;
            }
            // Steps ascend, so a cursor walks the samples once.
            let mut cursor = 0;
            for (i, t) in steps.iter() {
                let reference = t - offset;
                while cursor < s.samples.len() && s.samples[cursor].t <= reference {
                    cursor += 1;
                }
                if cursor == 0 {
                    continue;
                }
                let last = s.samples[cursor - 1];
                if last.t >= reference - self.lookback && !is_stale_nan(last.v) {
                    out[i].push(sample(&s.labels, last, t, sample_time));
                }
            }
        }
        self.untrack(loaded);
        Ok(Evaluated::Vector(out))
    }

    pub(crate) fn matrix_selector(
        &mut self,
        ms: &MatrixSelector,
        steps: &Steps,
    ) -> Result<Evaluated, QueryError> {
        let range = duration_ms(&ms.range);
        let offset = offset_ms(&ms.vs.offset);
        let at = self.at_ms(&ms.vs.at);
        if steps.len() == 0 {
            return Ok(Evaluated::Matrix(MatrixEval {
                series: Vec::new(),
                range,
                offset,
                at,
            }));
        }
        let sets = selector_matchers(&ms.vs)?;
        let (lo, hi) = self.ref_span(at, offset, steps);
        let selected = self.select(&sets, lo - range, hi)?;
        let loaded: usize = selected.iter().map(|s| s.samples.len()).sum();
        let series = selected
            .into_iter()
            .map(|mut s| {
                s.samples.retain(|x| !is_stale_nan(x.v));
                RangeSeries {
                    labels: s.labels,
                    samples: s.samples,
                }
            })
            .collect();
        // The matrix's own count is tracked by `eval`.
        self.untrack(loaded);
        Ok(Evaluated::Matrix(MatrixEval {
            series,
            range,
            offset,
            at,
        }))
    }
}

/// The newest sample at or before `reference`, if it is inside the lookback
/// window `[reference - lookback, reference]` and not a staleness marker.
pub(crate) fn lookup(samples: &[Sample], reference: i64, lookback: i64) -> Option<Sample> {
    let idx = samples.partition_point(|x| x.t <= reference);
    let last = *samples.get(idx.checked_sub(1)?)?;
    (last.t >= reference - lookback && !is_stale_nan(last.v)).then_some(last)
}

fn sample(labels: &Labels, s: Sample, step_t: i64, sample_time: bool) -> InstantSample {
    InstantSample {
        labels: labels.clone(),
        t: if sample_time { s.t } else { step_t },
        v: s.v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn lookback_is_inclusive_at_both_ends() {
        let samples = [s(0, 1.0), s(10_000, 2.0)];
        assert_eq!(lookup(&samples, 10_000, 300_000).map(|x| x.v), Some(2.0));
        assert_eq!(lookup(&samples, 310_000, 300_000).map(|x| x.v), Some(2.0));
        assert_eq!(lookup(&samples, 310_001, 300_000), None);
        assert_eq!(lookup(&samples, -1, 300_000), None);
    }

    #[test]
    fn stale_marker_hides_the_series_until_a_new_sample() {
        let samples = [s(0, 1.0), s(10_000, stale_nan()), s(20_000, 3.0)];
        assert_eq!(lookup(&samples, 5_000, 300_000).map(|x| x.v), Some(1.0));
        assert_eq!(lookup(&samples, 15_000, 300_000), None);
        assert_eq!(lookup(&samples, 25_000, 300_000).map(|x| x.v), Some(3.0));
    }
}
