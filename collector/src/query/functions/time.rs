//! Time functions: time(), timestamp(), and the UTC calendar functions
//! (minute, hour, day_of_month, day_of_week, day_of_year, days_in_month,
//! month, year). Without an argument the calendar functions read
//! `vector(time())`.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::FunctionCall;
use super::args;
use crate::model::Labels;
use crate::query::{InstantSample, QueryError, Value};

fn calendar(name: &str) -> Option<fn(&DateTime<Utc>) -> f64> {
    Some(match name {
        "minute" => |d| d.minute() as f64,
        "hour" => |d| d.hour() as f64,
        "day_of_month" => |d| d.day() as f64,
        // Sunday is 0, as Go's time.Weekday.
        "day_of_week" => |d| d.weekday().num_days_from_sunday() as f64,
        "day_of_year" => |d| d.ordinal() as f64,
        "days_in_month" => |d| days_in_month(d.year(), d.month()) as f64,
        "month" => |d| d.month() as f64,
        "year" => |d| d.year() as f64,
        _ => return None,
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Seconds since the epoch (a sample value) to a UTC time, truncating the
/// fraction as Go's `time.Unix(int64(v), 0)` does. Values chrono cannot
/// represent (NaN, ±Inf, far-off years) give None; the caller answers NaN.
fn to_time(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs.abs() >= 9.2e18 {
        return None;
    }
    DateTime::from_timestamp(secs.trunc() as i64, 0)
}

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    if let Some(f) = calendar(c.name) {
        args::arity(c, 0, 1)?;
        let apply = |secs: f64| to_time(secs).map_or(f64::NAN, |d| f(&d));
        let out = if c.args.is_empty() {
            // Integer seconds of the evaluation time, truncated toward zero like Go's enh.Ts/1000.
            let secs = (c.t / 1000) as f64;
            vec![InstantSample {
                labels: Labels::default(),
                t: c.t,
                v: apply(secs),
            }]
        } else {
            args::vector(c, 0)?
                .iter()
                .map(|s| InstantSample {
                    labels: args::drop_name(&s.labels),
                    t: c.t,
                    v: apply(s.v),
                })
                .collect()
        };
        return Ok(Some(Value::Vector(out)));
    }
    let out = match c.name {
        "time" => {
            args::arity(c, 0, 0)?;
            Value::Scalar {
                t: c.t,
                v: c.t as f64 / 1000.0,
            }
        }
        "timestamp" => {
            args::arity(c, 1, 1)?;
            // The engine hands timestamp() each sample with its own time.
            let out = args::vector(c, 0)?
                .iter()
                .map(|s| InstantSample {
                    labels: args::drop_name(&s.labels),
                    t: c.t,
                    v: s.t as f64 / 1000.0,
                })
                .collect();
            Value::Vector(out)
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::model::Labels;
    use crate::query::{InstantSample, Value};

    fn at(v: f64) -> Value {
        Value::Vector(vec![inst(&[("__name__", "m")], v)])
    }

    #[test]
    fn calendar_functions_of_a_value() {
        // 2006-01-02 22:04:05 UTC, a Monday.
        let t = 1136239445.0;
        assert_eq!(one(run("year", vec![at(t)], 0.0, None)), 2006.0);
        assert_eq!(one(run("month", vec![at(t)], 0.0, None)), 1.0);
        assert_eq!(one(run("day_of_month", vec![at(t)], 0.0, None)), 2.0);
        assert_eq!(one(run("day_of_year", vec![at(t)], 0.0, None)), 2.0);
        assert_eq!(one(run("day_of_week", vec![at(t)], 0.0, None)), 1.0);
        assert_eq!(one(run("hour", vec![at(t)], 0.0, None)), 22.0);
        assert_eq!(one(run("minute", vec![at(t)], 0.0, None)), 4.0);
        assert_eq!(
            vec_of(run("year", vec![at(t)], 0.0, None))[0].0,
            Labels::default()
        );
    }

    #[test]
    fn leap_years_and_month_lengths() {
        assert_eq!(
            one(run("days_in_month", vec![at(1454284800.0)], 0.0, None)),
            29.0
        ); // Feb 2016
        assert_eq!(
            one(run("days_in_month", vec![at(1485907200.0)], 0.0, None)),
            28.0
        ); // Feb 2017
        assert_eq!(
            one(run("day_of_year", vec![at(1483191420.0)], 0.0, None)),
            366.0
        );
        assert_eq!(one(run("year", vec![at(1230767999.0)], 0.0, None)), 2008.0);
        assert_eq!(one(run("year", vec![at(1230768000.0)], 0.0, None)), 2009.0);
    }

    #[test]
    fn no_argument_uses_evaluation_time() {
        assert_eq!(one(run("year", vec![], 0.0, None)), 1970.0);
        assert_eq!(one(run("day_of_week", vec![], 0.0, None)), 4.0); // Thursday
        assert_eq!(one(run("hour", vec![], 7200.0, None)), 2.0);
    }

    #[test]
    fn time_and_timestamp() {
        match run("time", vec![], 0.001, None) {
            Ok(Value::Scalar { v, .. }) => assert_eq!(v, 0.001),
            other => panic!("{other:?}"),
        }
        let v = Value::Vector(vec![InstantSample {
            labels: lbl(&[("__name__", "m"), ("a", "b")]),
            t: 10_000,
            v: 7.0,
        }]);
        assert_eq!(
            vec_of(run("timestamp", vec![v], 15.0, None)),
            vec![(lbl(&[("a", "b")]), 10.0)]
        );
    }

    #[test]
    fn unrepresentable_times_are_nan() {
        assert!(one(run("year", vec![at(f64::NAN)], 0.0, None)).is_nan());
        assert!(one(run("year", vec![at(f64::INFINITY)], 0.0, None)).is_nan());
    }
}
