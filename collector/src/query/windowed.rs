//! The per-series path for range-vector functions (rate, increase,
//! *_over_time, ...): each series' window slides across the steps over the
//! samples selected once, and the function runs on a borrowed slice. The
//! per-step path (cut a matrix `Value` per step, clone every label set, copy
//! every window, drop the name again, intern the result) cost about 10 µs
//! per series and step, most of a range query's time.
//!
//! Output equals the per-step path's: same series order within a step (the
//! matrix's, sorted by labels), one label set per series shared by all its
//! steps. Calls this path cannot serve exactly (unusual argument shapes,
//! label sets that clash once the name is dropped) return `None` and take
//! the per-step path, which reports errors as before.

use std::collections::HashSet;

use super::eval::{Evaluated, Evaluator, MatrixEval, Steps};
use super::functions::WindowFn;
use super::{InstantSample, QueryError};
use crate::model::{Labels, METRIC_NAME};

/// A function's output kept by series: each series' output label set once,
/// and per step `(series index, value)` in series order. An aggregation over
/// the call reads this directly (one grouping lookup per series, not per
/// series and step).
pub(crate) struct Columns {
    pub labels: Vec<Labels>,
    pub steps: Vec<Vec<(u32, f64)>>,
}

impl Columns {
    pub fn sample_count(&self) -> usize {
        self.steps.iter().map(Vec::len).sum()
    }

    /// The instant vectors the per-step path would have produced.
    pub fn into_vectors(self, steps: &Steps) -> Vec<Vec<InstantSample>> {
        let labels = self.labels;
        self.steps
            .into_iter()
            .enumerate()
            .map(|(i, col)| {
                let t = steps.at(i);
                col.into_iter()
                    .map(|(k, v)| InstantSample {
                        labels: labels[k as usize].clone(),
                        t,
                        v,
                    })
                    .collect()
            })
            .collect()
    }
}

impl Evaluator<'_> {
    pub(crate) fn windowed_call(
        &mut self,
        name: &str,
        args: &[Evaluated],
        steps: &Steps,
    ) -> Result<Option<Evaluated>, QueryError> {
        Ok(self
            .windowed_columns(name, args, steps)?
            .map(|c| Evaluated::Vector(c.into_vectors(steps))))
    }

    pub(crate) fn windowed_columns(
        &mut self,
        name: &str,
        args: &[Evaluated],
        steps: &Steps,
    ) -> Result<Option<Columns>, QueryError> {
        let Some(f) = WindowFn::lookup(name) else {
            return Ok(None);
        };
        let (matrix_at, arity) = f.shape();
        if args.len() != arity {
            return Ok(None);
        }
        let mut matrix: Option<&MatrixEval> = None;
        let mut scalars: Vec<Option<&[f64]>> = Vec::with_capacity(arity);
        for (i, a) in args.iter().enumerate() {
            match a {
                Evaluated::Matrix(m) if i == matrix_at => {
                    matrix = Some(m);
                    scalars.push(None);
                }
                Evaluated::Scalar(v) if i != matrix_at && v.len() == steps.len() => {
                    scalars.push(Some(v))
                }
                _ => return Ok(None),
            }
        }
        let Some(m) = matrix else {
            return Ok(None);
        };
        let Some(labels) = output_labels(m, f.keeps_name()) else {
            return Ok(None);
        };

        let mut out: Vec<Vec<(u32, f64)>> = (0..steps.len()).map(|_| Vec::new()).collect();
        let mut params = vec![f64::NAN; arity];
        for (k, s) in m.series.iter().enumerate() {
            self.check_deadline()?;
            let samples = &s.samples;
            // Windows only move forward as steps ascend (or stay put with
            // `@`), so two cursors walk each series once.
            let (mut lo, mut hi) = (0, 0);
            for (i, t) in steps.iter() {
                let (mint, maxt) = m.window(t);
                while lo < samples.len() && samples[lo].t < mint {
                    lo += 1;
                }
                hi = hi.max(lo);
                while hi < samples.len() && samples[hi].t <= maxt {
                    hi += 1;
                }
                if lo == hi {
                    continue;
                }
                for (p, col) in params.iter_mut().zip(&scalars) {
                    if let Some(col) = col {
                        *p = col[i];
                    }
                }
                if let Some(v) = f.eval(&samples[lo..hi], (mint, maxt), t, &params) {
                    out[i].push((k as u32, v));
                }
            }
        }
        Ok(Some(Columns { labels, steps: out }))
    }
}

/// Each series' output label set, or `None` when two series would clash
/// (the per-step path then fails exactly at the steps where both appear).
fn output_labels(m: &MatrixEval, keep_name: bool) -> Option<Vec<Labels>> {
    let labels: Vec<Labels> = m
        .series
        .iter()
        .map(|s| {
            if keep_name || s.labels.metric_name().is_none() {
                s.labels.clone()
            } else {
                s.labels.without(&[METRIC_NAME])
            }
        })
        .collect();
    // Input series are unique, so only dropping the name can make a clash.
    if !keep_name {
        let mut seen = HashSet::with_capacity(labels.len());
        if !labels.iter().all(|l| seen.insert(l)) {
            return None;
        }
    }
    Some(labels)
}
