//! `<aggregation>_over_time`: each series' samples inside the window reduced
//! to one value. All drop the metric name except last_over_time, which acts
//! like an offset and keeps it.

use super::FunctionCall;
use super::args::{self, kahan_inc};
use crate::model::Sample;
use crate::query::{InstantSample, QueryError, Value};

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    let f: fn(&[Sample]) -> f64 = match c.name {
        "avg_over_time" => avg,
        "min_over_time" => |s| extreme(s, |v, best| v < best),
        "max_over_time" => |s| extreme(s, |v, best| v > best),
        "sum_over_time" => sum,
        "count_over_time" => |s| s.len() as f64,
        "stddev_over_time" => |s| stdvar(s).sqrt(),
        "stdvar_over_time" => stdvar,
        "last_over_time" => |s| s.last().map_or(f64::NAN, |p| p.v),
        "present_over_time" => |_| 1.0,
        "quantile_over_time" => {
            args::arity(c, 2, 2)?;
            let q = args::scalar(c, 0)?;
            return Ok(Some(reduce(c, 1, false, |s| {
                let mut vals: Vec<f64> = s.iter().map(|p| p.v).collect();
                quantile(q, &mut vals)
            })?));
        }
        "absent_over_time" => {
            args::arity(c, 1, 1)?;
            let present = args::matrix(c, 0)?.iter().any(|s| !s.samples.is_empty());
            let out = if present {
                Vec::new()
            } else {
                vec![InstantSample {
                    labels: c.absent_labels.clone(),
                    t: c.t,
                    v: 1.0,
                }]
            };
            return Ok(Some(Value::Vector(out)));
        }
        _ => return Ok(None),
    };
    args::arity(c, 1, 1)?;
    Ok(Some(reduce(c, 0, c.name == "last_over_time", f)?))
}

fn reduce(
    c: &FunctionCall<'_>,
    arg: usize,
    keep_name: bool,
    f: impl Fn(&[Sample]) -> f64,
) -> Result<Value, QueryError> {
    let out = args::matrix(c, arg)?
        .iter()
        .filter(|s| !s.samples.is_empty())
        .map(|s| InstantSample {
            labels: if keep_name {
                s.labels.clone()
            } else {
                args::drop_name(&s.labels)
            },
            t: c.t,
            v: f(&s.samples),
        })
        .collect();
    Ok(Value::Vector(out))
}

/// An incremental mean, so that large finite values do not overflow, with
/// Prometheus's care for infinities (Inf + finite stays Inf, Inf - Inf is NaN).
pub(super) fn avg(s: &[Sample]) -> f64 {
    let (mut mean, mut c, mut count) = (0.0f64, 0.0, 0.0);
    for p in s {
        count += 1.0;
        if mean.is_infinite() {
            if p.v.is_infinite() && (mean > 0.0) == (p.v > 0.0) {
                continue;
            }
            if p.v.is_finite() {
                continue;
            }
        }
        (mean, c) = kahan_inc(p.v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

pub(super) fn sum(s: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0);
    for p in s {
        (sum, c) = kahan_inc(p.v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// min/max where NaN loses to any number (a NaN is kept only if all are NaN).
pub(super) fn extreme(s: &[Sample], better: fn(f64, f64) -> bool) -> f64 {
    let mut best = s.first().map_or(f64::NAN, |p| p.v);
    for p in s {
        if better(p.v, best) || best.is_nan() {
            best = p.v;
        }
    }
    best
}

/// Population variance by Welford's method with compensated sums.
pub(super) fn stdvar(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// The φ-quantile by linear interpolation between the closest ranks, as
/// Prometheus's `quantile`: q < 0 is -Inf, q > 1 is +Inf, NaNs sort first.
pub(super) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.total_cmp(b),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{FunctionCall, call};
    use super::*;

    fn pts(vals: &[f64]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                t: i as i64 * 10_000,
                v,
            })
            .collect()
    }

    #[test]
    fn avg_survives_overflow_and_infinities() {
        assert_eq!(avg(&pts(&[1.0, 2.0, 3.0, 4.0, 5.0])), 3.0);
        assert_eq!(avg(&pts(&[1e308, 1e308])), 1e308);
        assert_eq!(avg(&pts(&[-1e308, 1e308])), 0.0);
        assert_eq!(
            avg(&pts(&[f64::INFINITY, 0.0, f64::INFINITY])),
            f64::INFINITY
        );
        assert_eq!(
            avg(&pts(&[1.0, 2.0, 3.0, f64::NEG_INFINITY, f64::NEG_INFINITY])),
            f64::NEG_INFINITY
        );
        assert!(avg(&pts(&[1.0, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY])).is_nan());
        assert_eq!(sum(&pts(&[1e308, 1e308])), f64::INFINITY);
    }

    #[test]
    fn min_max_skip_nan_unless_all_nan() {
        let min = |s: &[f64]| extreme(&pts(s), |v, b| v < b);
        let max = |s: &[f64]| extreme(&pts(s), |v, b| v > b);
        assert_eq!(min(&[2.0, f64::NAN, 1.0]), 1.0);
        assert_eq!(min(&[f64::NAN, 0.0, 1.0]), 0.0);
        assert_eq!(max(&[2.0, 0.0, f64::NAN]), 2.0);
        assert!(max(&[f64::NAN, f64::NAN]).is_nan());
    }

    #[test]
    fn stdvar_and_stddev() {
        // 0 8 8 2 3: mean 4.2, squared deviations sum 52.8, / 5 = 10.56.
        assert_close(stdvar(&pts(&[0.0, 8.0, 8.0, 2.0, 3.0])), 10.56);
        let c = 1.5990505637277868;
        assert_eq!(stdvar(&pts(&[c, c, c])), 0.0);
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [0.0, 1.0]), 0.5);
        assert_close(quantile(0.8, &mut [4.0, 0.0, 1.0]), 2.8);
        assert_eq!(quantile(1.0, &mut [0.0, 1.0, 4.0]), 4.0);
        assert_eq!(quantile(-1.0, &mut [0.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut [0.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn last_over_time_keeps_the_name_others_drop_it() {
        let m = matrix(&[(&[("__name__", "d"), ("t", "x")], &[(0.0, 2.0), (10.0, 3.0)])]);
        assert_eq!(
            vec_of(run("last_over_time", vec![m.clone()], 20.0, Some(60.0))),
            vec![(lbl(&[("__name__", "d"), ("t", "x")]), 3.0)]
        );
        assert_eq!(
            vec_of(run("max_over_time", vec![m.clone()], 20.0, Some(60.0))),
            vec![(lbl(&[("t", "x")]), 3.0)]
        );
        assert_eq!(
            vec_of(run(
                "quantile_over_time",
                vec![scalar(0.5), m],
                20.0,
                Some(60.0)
            )),
            vec![(lbl(&[("t", "x")]), 2.5)]
        );
    }

    #[test]
    fn absent_and_present_over_time() {
        let empty = matrix(&[(&[("__name__", "d")], &[])]);
        let full = matrix(&[(&[("__name__", "d"), ("job", "j")], &[(0.0, f64::NAN)])]);
        let absent = |m: Value| {
            vec_of(call(FunctionCall {
                name: "absent_over_time",
                args: vec![m],
                t: 0,
                range: Some((-60_000, 0)),
                absent_labels: lbl(&[("job", "j")]),
            }))
        };
        assert_eq!(absent(empty.clone()), vec![(lbl(&[("job", "j")]), 1.0)]);
        assert!(absent(full.clone()).is_empty());
        assert!(vec_of(run("present_over_time", vec![empty], 0.0, Some(60.0))).is_empty());
        assert_eq!(
            vec_of(run("present_over_time", vec![full], 0.0, Some(60.0))),
            vec![(lbl(&[("job", "j")]), 1.0)]
        );
    }
}
