//! Label filter stages (`| level="error"`, `| status >= 500`,
//! `| latency > 250ms`, `| size < 10KB`, combined with and/or), with Loki's
//! rules: an absent label reads as "" for string matchers and fails numeric
//! ones; a value that does not parse as a number sets `__error__=LabelFilterErr`
//! and keeps the line; lines already in error pass numeric filters (only
//! string matchers can drop them).

use super::ast::LabelFilter;
use super::label_state::LabelState;
use super::units::{parse_bytes, parse_duration_ns};

pub(crate) const LABEL_FILTER_ERR: &str = "LabelFilterErr";

pub(crate) fn eval(f: &LabelFilter, st: &mut LabelState<'_>) -> bool {
    match f {
        LabelFilter::Matcher(m) => m.matches(st.get(&m.name).unwrap_or("")),
        LabelFilter::Number { name, op, value } => numeric(
            st,
            name,
            |s| s.trim().parse::<f64>().map_err(|e| e.to_string()),
            |v| op.apply(v, *value),
        ),
        LabelFilter::Duration { name, op, value } => numeric(
            st,
            name,
            |s| {
                parse_duration_ns(s)
                    .map(|ns| ns as f64 / 1e9)
                    .ok_or_else(|| format!("time: invalid duration {s:?}"))
            },
            |v| op.apply(v, *value),
        ),
        LabelFilter::Bytes { name, op, value } => numeric(
            st,
            name,
            |s| parse_bytes(s).ok_or_else(|| format!("invalid byte size {s:?}")),
            |v| op.apply(v, *value),
        ),
        // Both sides always run (as in Loki): the right side may set an error.
        LabelFilter::And(a, b) => {
            let l = eval(a, st);
            let r = eval(b, st);
            l && r
        }
        LabelFilter::Or(a, b) => eval(a, st) || eval(b, st),
    }
}

fn numeric(
    st: &mut LabelState<'_>,
    name: &str,
    parse: impl Fn(&str) -> Result<f64, String>,
    test: impl Fn(f64) -> bool,
) -> bool {
    if st.has_err() {
        return true;
    }
    let Some(raw) = st.get(name) else {
        return false;
    };
    match parse(raw) {
        Ok(v) => test(v),
        Err(details) => {
            st.set_err(LABEL_FILTER_ERR, details);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::CmpOp;
    use super::*;
    use crate::model::{Labels, MatchOp, Matcher};

    fn num(name: &str, op: CmpOp, value: f64) -> LabelFilter {
        LabelFilter::Number {
            name: name.into(),
            op,
            value,
        }
    }

    #[test]
    fn numeric_duration_bytes_and_errors() {
        let base = Labels::from_pairs([("app", "a")]);
        let md = vec![
            ("status".to_string(), "503".to_string()),
            ("took".to_string(), "1.5s".to_string()),
            ("size".to_string(), "2KB".to_string()),
            ("bad".to_string(), "abc".to_string()),
        ];
        let mut st = LabelState::new(&base, &md, 0);
        assert!(eval(&num("status", CmpOp::Ge, 500.0), &mut st));
        assert!(!eval(&num("status", CmpOp::Lt, 500.0), &mut st));
        assert!(!eval(&num("missing", CmpOp::Ne, 1.0), &mut st));
        let dur = LabelFilter::Duration {
            name: "took".into(),
            op: CmpOp::Gt,
            value: 1.0,
        };
        assert!(eval(&dur, &mut st));
        let bytes = LabelFilter::Bytes {
            name: "size".into(),
            op: CmpOp::Eq,
            value: 2000.0,
        };
        assert!(eval(&bytes, &mut st));
        let m = LabelFilter::Matcher(Matcher::new(MatchOp::Equal, "missing", "").unwrap());
        assert!(eval(&m, &mut st));
        // Unparseable: error set, line kept; later numeric filters pass it.
        assert!(eval(&num("bad", CmpOp::Gt, 1.0), &mut st));
        assert_eq!(st.get("__error__"), Some(LABEL_FILTER_ERR));
        assert!(eval(&num("status", CmpOp::Lt, 0.0), &mut st));
        let noerr = LabelFilter::Matcher(Matcher::equal("__error__", ""));
        assert!(!eval(&noerr, &mut st));
    }
}
