//! Functions of how a series moves inside its window: rate, increase and
//! delta (with Prometheus 2.x's extrapolation), irate, idelta, resets,
//! changes, deriv, predict_linear and holt_winters.

use super::FunctionCall;
use super::args::{self, kahan_inc};
use crate::model::Sample;
use crate::query::{InstantSample, QueryError, Value};

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    let out = match c.name {
        "rate" | "increase" | "delta" => {
            args::arity(c, 1, 1)?;
            let (start, end) = args::range(c)?;
            let (counter, per_second) = (c.name != "delta", c.name == "rate");
            per_series(c, |s| extrapolated_rate(s, start, end, counter, per_second))?
        }
        "irate" => one_arg(c, |s| instant_value(s, true))?,
        "idelta" => one_arg(c, |s| instant_value(s, false))?,
        "resets" => one_arg(c, |s| Some(resets(s)))?,
        "changes" => one_arg(c, |s| Some(changes(s)))?,
        "deriv" => one_arg(c, |s| {
            // Relative to the first sample's time, to keep x values small
            // (prometheus/prometheus#2674).
            (s.len() >= 2).then(|| linear_regression(s, s[0].t).0)
        })?,
        "predict_linear" => {
            args::arity(c, 2, 2)?;
            let secs = args::scalar(c, 1)?;
            // 2.42 fits the line relative to the evaluation time, even with @.
            per_series(c, |s| {
                (s.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(s, c.t);
                    slope * secs + intercept
                })
            })?
        }
        "holt_winters" => {
            args::arity(c, 3, 3)?;
            let (sf, tf) = (args::scalar(c, 1)?, args::scalar(c, 2)?);
            // Prometheus validates only when it calls the function, that is
            // for a series with samples.
            if args::matrix(c, 0)?.iter().any(|s| !s.samples.is_empty()) {
                if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                    return Err(QueryError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                    return Err(QueryError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
            }
            per_series(c, |s| holt_winters(s, sf, tf))?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn one_arg(
    c: &FunctionCall<'_>,
    f: impl Fn(&[Sample]) -> Option<f64>,
) -> Result<Value, QueryError> {
    args::arity(c, 1, 1)?;
    per_series(c, f)
}

/// Applies `f` to every series of the first (range-vector) argument that has
/// samples; the output drops the metric name.
fn per_series(
    c: &FunctionCall<'_>,
    f: impl Fn(&[Sample]) -> Option<f64>,
) -> Result<Value, QueryError> {
    let out = args::matrix(c, 0)?
        .iter()
        .filter(|s| !s.samples.is_empty())
        .filter_map(|s| {
            f(&s.samples).map(|v| InstantSample {
                labels: args::drop_name(&s.labels),
                t: c.t,
                v,
            })
        })
        .collect();
    Ok(Value::Vector(out))
}

/// rate/increase/delta as Prometheus 2.x computes them: the change between
/// the first and last sample (counter resets added back), extrapolated to
/// the window's edges when the samples reach close enough to them, and
/// never extrapolated below zero for counters.
pub(super) fn extrapolated_rate(
    s: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.v - first.v;
    if counter {
        for w in s.windows(2) {
            if w[1].v < w[0].v {
                result += w[0].v;
            }
        }
    }
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg_step = sampled / (s.len() - 1) as f64;

    if counter && result > 0.0 && first.v >= 0.0 {
        // Where a straight line through the samples would cross zero.
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_step * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_step / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_step / 2.0
    };

    let mut factor = interval / sampled;
    if per_second {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// irate/idelta: from the last two samples only.
pub(super) fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let mut v = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = last.t - prev.t;
    if dt == 0 {
        return None;
    }
    if is_rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

pub(super) fn resets(s: &[Sample]) -> f64 {
    s.windows(2).filter(|w| w[1].v < w[0].v).count() as f64
}

/// NaN to NaN is no change.
pub(super) fn changes(s: &[Sample]) -> f64 {
    s.windows(2)
        .filter(|w| w[1].v != w[0].v && !(w[1].v.is_nan() && w[0].v.is_nan()))
        .count() as f64
}

/// Least-squares fit of value over seconds relative to `intercept_ms`:
/// (slope per second, value at `intercept_ms`).
pub(super) fn linear_regression(s: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        // A flat line, exactly; infinities cannot make a line at all.
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Double exponential smoothing; the result is the last smoothed value.
fn holt_winters(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        // The first step keeps the initial trend.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn pts(step_s: i64, vals: &[f64]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                t: i as i64 * step_s * 1000,
                v,
            })
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_both_edges() {
        // Samples 0..=3000s every 300s rising 80 each; window [0, 3000]:
        // no extrapolation needed, 800 / 3000s.
        let s = pts(300, &(0..=10).map(|i| i as f64 * 80.0).collect::<Vec<_>>());
        assert_close(
            extrapolated_rate(&s, 0, 3_000_000, true, true).unwrap(),
            0.26666666666666666,
        );
        // Window [-10m, 10m] over samples at 0, 4m, 8m (0, 240, 480): start
        // cut at the zero crossing (0s), end extrapolated 120s:
        // 480 * (600 / 480) / 1200 = 0.5.
        let s = pts(240, &[0.0, 240.0, 480.0]);
        assert_close(
            extrapolated_rate(&s, -600_000, 600_000, true, true).unwrap(),
            0.5,
        );
        // Same with a start value of 300 (zero crossing 300s before): that
        // is over 1.1 * 240, so only half a step is added: 480 *
        // (480 + 120 + 120) / 480 / 1200 = 0.6.
        let s = pts(240, &[300.0, 540.0, 780.0]);
        assert_close(
            extrapolated_rate(&s, -600_000, 600_000, true, true).unwrap(),
            0.6,
        );
    }

    #[test]
    fn increase_adds_back_counter_resets() {
        // 0 1 2 3 2 3 4 every 5m over [0, 30m]: 4 - 0 + 3 = 7.
        let s = pts(300, &[0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        assert_close(
            extrapolated_rate(&s, 0, 1_800_000, true, false).unwrap(),
            7.0,
        );
        // A reset at the very end: 90 then 0 over [45m, 50m] is no increase.
        let s = vec![
            Sample {
                t: 2_700_000,
                v: 90.0,
            },
            Sample {
                t: 3_000_000,
                v: 0.0,
            },
        ];
        assert_eq!(
            extrapolated_rate(&s, 2_700_000, 3_000_000, true, true).unwrap(),
            0.0
        );
    }

    #[test]
    fn delta_goes_negative_and_needs_two_samples() {
        let s = pts(300, &[200.0, 150.0, 100.0, 50.0, 0.0]);
        assert_close(
            extrapolated_rate(&s, 0, 1_200_000, false, false).unwrap(),
            -200.0,
        );
        assert!(extrapolated_rate(&s[..1], 0, 1_200_000, false, false).is_none());
    }

    #[test]
    fn irate_and_idelta_use_last_two_samples() {
        let s = pts(300, &[0.0, 50.0, 100.0, 50.0]);
        assert_eq!(instant_value(&s, false), Some(-50.0));
        // A reset: the last value counts as the increase.
        assert_close(instant_value(&s, true).unwrap(), 50.0 / 300.0);
    }

    #[test]
    fn resets_and_changes_count() {
        let s = pts(300, &[1.0, 2.0, 3.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0]);
        assert_eq!(resets(&s), 3.0);
        assert_eq!(changes(&s), 8.0);
        assert_eq!(changes(&pts(300, &[f64::NAN, f64::NAN, f64::NAN])), 0.0);
        assert_eq!(changes(&pts(300, &[0.0, f64::NAN, 0.0])), 2.0);
    }

    #[test]
    fn deriv_and_predict_linear_least_squares() {
        // Y = 0 10 20 30 40 0 10 20 30 40 50 at X = 0..3000s: slope
        // 105000 / 9900000; intercept at 3000s 38.636...; +3600s -> 76.818...
        let s = pts(
            300,
            &[
                0.0, 10.0, 20.0, 30.0, 40.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0,
            ],
        );
        let (slope, _) = linear_regression(&s, 0);
        assert_close(slope, 0.010606060606060607);
        let (slope, intercept) = linear_regression(&s, 3_000_000);
        assert_close(slope * 3600.0 + intercept, 76.81818181818181);
        let (slope, intercept) = linear_regression(&s, 600_000);
        assert_close(slope * 3600.0 + intercept, 51.36363636363637);
        // A constant series is flat, an infinite one has no line.
        assert_eq!(linear_regression(&pts(10, &[3.0, 3.0]), 0), (0.0, 3.0));
        assert!(
            linear_regression(&pts(10, &[f64::INFINITY, f64::INFINITY]), 0)
                .0
                .is_nan()
        );
    }

    #[test]
    fn holt_winters_follows_a_linear_trend() {
        // A perfectly linear series is predicted exactly.
        let s = pts(
            10,
            &[7000.0, 7010.0, 7020.0, 7030.0, 7040.0, 7050.0, 7060.0],
        );
        assert_close(holt_winters(&s, 0.01, 0.1).unwrap(), 7060.0);
        // By hand: s1=1, b=1; i=1: s1 = .5*2 + .5*(1+1) = 2;
        // i=2: b = .5*(2-1) + .5*1 = 1, s1 = .5*5 + .5*(2+1) = 4.
        assert_close(
            holt_winters(&pts(10, &[1.0, 2.0, 5.0]), 0.5, 0.5).unwrap(),
            4.0,
        );
    }

    #[test]
    fn holt_winters_rejects_bad_factors() {
        let m = matrix(&[(&[("__name__", "m")], &[(0.0, 1.0), (10.0, 2.0)])]);
        let e = run(
            "holt_winters",
            vec![m.clone(), scalar(1.0), scalar(0.1)],
            10.0,
            Some(60.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("smoothing factor"), "{e}");
        let e = run(
            "holt_winters",
            vec![m, scalar(0.5), scalar(0.0)],
            10.0,
            Some(60.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("trend factor"), "{e}");
    }

    #[test]
    fn rate_call_drops_name_and_skips_short_series() {
        let m = matrix(&[
            (
                &[("__name__", "c"), ("x", "a")],
                &[(0.0, 0.0), (300.0, 10.0), (600.0, 20.0)],
            ),
            (&[("__name__", "c"), ("x", "b")], &[(600.0, 20.0)]),
        ]);
        let out = vec_of(run("rate", vec![m], 600.0, Some(600.0)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, lbl(&[("x", "a")]));
        assert_close(out[0].1, 20.0 / 600.0);
    }
}
