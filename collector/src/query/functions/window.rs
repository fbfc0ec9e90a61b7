//! Range-vector functions as kernels over one series' window, for the
//! engine's per-series path: a range query slides each series' window across
//! the steps instead of building a matrix `Value` per step, so the function
//! itself must be callable on a bare slice. The kernels are the same code the
//! per-step `call` path runs (rate.rs, over_time.rs), so both give equal
//! results.
//!
//! Left out (served by `call` only): holt_winters (its argument checks fail
//! the whole query), absent_over_time (an answer when nothing matched).

use super::{over_time, rate};
use crate::model::Sample;

#[derive(Clone, Copy, Debug)]
enum Kernel {
    Rate { counter: bool, per_second: bool },
    Instant { is_rate: bool },
    Resets,
    Changes,
    Deriv,
    PredictLinear,
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Stddev,
    Stdvar,
    Last,
    Present,
    Quantile,
}

/// A function of one series' samples in one step's window.
#[derive(Clone, Copy, Debug)]
pub struct WindowFn {
    kernel: Kernel,
}

/// The call shape a kernel needs: which argument is the range vector, how
/// many arguments in all (the others are scalars).
impl WindowFn {
    pub fn lookup(name: &str) -> Option<WindowFn> {
        let kernel = match name {
            "rate" => Kernel::Rate {
                counter: true,
                per_second: true,
            },
            "increase" => Kernel::Rate {
                counter: true,
                per_second: false,
            },
            "delta" => Kernel::Rate {
                counter: false,
                per_second: false,
            },
            "irate" => Kernel::Instant { is_rate: true },
            "idelta" => Kernel::Instant { is_rate: false },
            "resets" => Kernel::Resets,
            "changes" => Kernel::Changes,
            "deriv" => Kernel::Deriv,
            "predict_linear" => Kernel::PredictLinear,
            "avg_over_time" => Kernel::Avg,
            "min_over_time" => Kernel::Min,
            "max_over_time" => Kernel::Max,
            "sum_over_time" => Kernel::Sum,
            "count_over_time" => Kernel::Count,
            "stddev_over_time" => Kernel::Stddev,
            "stdvar_over_time" => Kernel::Stdvar,
            "last_over_time" => Kernel::Last,
            "present_over_time" => Kernel::Present,
            "quantile_over_time" => Kernel::Quantile,
            _ => return None,
        };
        Some(WindowFn { kernel })
    }

    /// (position of the range-vector argument, number of arguments).
    pub fn shape(&self) -> (usize, usize) {
        match self.kernel {
            Kernel::PredictLinear => (0, 2),
            Kernel::Quantile => (1, 2),
            _ => (0, 1),
        }
    }

    /// last_over_time acts like an offset and keeps the metric name; every
    /// other function drops it.
    pub fn keeps_name(&self) -> bool {
        matches!(self.kernel, Kernel::Last)
    }

    /// The value for one non-empty window `s` (inclusive bounds `range`) at
    /// evaluation time `t`; `params` are the call's arguments at this step
    /// (the range vector's slot is unused). `None`: no output sample.
    pub fn eval(&self, s: &[Sample], range: (i64, i64), t: i64, params: &[f64]) -> Option<f64> {
        Some(match self.kernel {
            Kernel::Rate {
                counter,
                per_second,
            } => return rate::extrapolated_rate(s, range.0, range.1, counter, per_second),
            Kernel::Instant { is_rate } => return rate::instant_value(s, is_rate),
            Kernel::Resets => rate::resets(s),
            Kernel::Changes => rate::changes(s),
            Kernel::Deriv => return (s.len() >= 2).then(|| rate::linear_regression(s, s[0].t).0),
            Kernel::PredictLinear => {
                let secs = params.get(1).copied().unwrap_or(f64::NAN);
                return (s.len() >= 2).then(|| {
                    let (slope, intercept) = rate::linear_regression(s, t);
                    slope * secs + intercept
                });
            }
            Kernel::Avg => over_time::avg(s),
            Kernel::Min => over_time::extreme(s, |v, best| v < best),
            Kernel::Max => over_time::extreme(s, |v, best| v > best),
            Kernel::Sum => over_time::sum(s),
            Kernel::Count => s.len() as f64,
            Kernel::Stddev => over_time::stdvar(s).sqrt(),
            Kernel::Stdvar => over_time::stdvar(s),
            Kernel::Last => s.last().map_or(f64::NAN, |p| p.v),
            Kernel::Present => 1.0,
            Kernel::Quantile => {
                let q = params.first().copied().unwrap_or(f64::NAN);
                let mut vals: Vec<f64> = s.iter().map(|p| p.v).collect();
                over_time::quantile(q, &mut vals)
            }
        })
    }
}
