//! Reading a call's evaluated arguments, and small helpers every family
//! shares (name dropping, Go's NaN-propagating min/max).

use super::FunctionCall;
use crate::model::{Labels, METRIC_NAME};
use crate::query::{InstantSample, QueryError, RangeSeries, Value};

/// Fails unless the call has between `min` and `max` arguments.
pub(super) fn arity(c: &FunctionCall<'_>, min: usize, max: usize) -> Result<(), QueryError> {
    let n = c.args.len();
    if n < min || n > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(QueryError::BadData(format!(
            "expected {want} argument(s) in call to {:?}, got {n}",
            c.name
        )));
    }
    Ok(())
}

fn arg<'c>(c: &'c FunctionCall<'_>, i: usize) -> Result<&'c Value, QueryError> {
    c.args.get(i).ok_or_else(|| {
        QueryError::BadData(format!(
            "missing argument {} in call to {:?}",
            i + 1,
            c.name
        ))
    })
}

fn wrong_type(c: &FunctionCall<'_>, i: usize, want: &str, got: &Value) -> QueryError {
    QueryError::BadData(format!(
        "expected type {want} in call to function {:?} (argument {}), got {}",
        c.name,
        i + 1,
        got.type_name()
    ))
}

pub(super) fn vector<'c>(
    c: &'c FunctionCall<'_>,
    i: usize,
) -> Result<&'c [InstantSample], QueryError> {
    match arg(c, i)? {
        Value::Vector(v) => Ok(v),
        other => Err(wrong_type(c, i, "instant vector", other)),
    }
}

pub(super) fn matrix<'c>(
    c: &'c FunctionCall<'_>,
    i: usize,
) -> Result<&'c [RangeSeries], QueryError> {
    match arg(c, i)? {
        Value::Matrix(m) => Ok(m),
        other => Err(wrong_type(c, i, "range vector", other)),
    }
}

pub(super) fn scalar(c: &FunctionCall<'_>, i: usize) -> Result<f64, QueryError> {
    match arg(c, i)? {
        Value::Scalar { v, .. } => Ok(*v),
        other => Err(wrong_type(c, i, "scalar", other)),
    }
}

pub(super) fn string<'c>(c: &'c FunctionCall<'_>, i: usize) -> Result<&'c str, QueryError> {
    match arg(c, i)? {
        Value::String { v, .. } => Ok(v),
        other => Err(wrong_type(c, i, "string", other)),
    }
}

/// The window of a range-vector argument, which rate-like functions need.
pub(super) fn range(c: &FunctionCall<'_>) -> Result<(i64, i64), QueryError> {
    c.range.ok_or_else(|| {
        QueryError::Execution(format!(
            "{}(): the engine passed no range for the range-vector argument",
            c.name
        ))
    })
}

pub(super) fn drop_name(l: &Labels) -> Labels {
    if l.metric_name().is_some() {
        l.without(&[METRIC_NAME])
    } else {
        l.clone()
    }
}

/// Go's `math.Max`: +Inf wins, then NaN wins, and +0 beats -0 (Rust's
/// `f64::max` ignores NaN, which would change clamp()'s results).
pub(super) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`: -Inf wins, then NaN wins, and -0 beats +0.
pub(super) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// Neumaier's compensated summation step, as Prometheus's `kahanSumInc`.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_min_max_propagate_nan_and_infinities() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NAN, f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
        assert_eq!(go_max(2.0, 3.0), 3.0);
        assert_eq!(go_min(2.0, 3.0), 2.0);
    }

    #[test]
    fn kahan_keeps_small_terms() {
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(x, s, c);
        }
        assert_eq!(s + c, 1.0);
    }
}
