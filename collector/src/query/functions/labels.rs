//! label_replace and label_join: rewrite one label of every sample, keeping
//! the metric name. Invalid label names and regexes fail the query.

use regex::Regex;

use super::FunctionCall;
use super::args;
use crate::query::{InstantSample, QueryError, Value};

/// Prometheus's `model.LabelNameRE`: `^[a-zA-Z_][a-zA-Z0-9_]*$`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    let out = match c.name {
        "label_replace" => label_replace(c)?,
        "label_join" => label_join(c)?,
        _ => return Ok(None),
    };
    Ok(Some(Value::Vector(out)))
}

fn label_replace(c: &FunctionCall<'_>) -> Result<Vec<InstantSample>, QueryError> {
    args::arity(c, 5, 5)?;
    let input = args::vector(c, 0)?;
    let (dst, repl, src, re) = (
        args::string(c, 1)?,
        args::string(c, 2)?,
        args::string(c, 3)?,
        args::string(c, 4)?,
    );
    // Fully anchored, as Prometheus does.
    let re = Regex::new(&format!("^(?:{re})$")).map_err(|_| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {re}"
        ))
    })?;
    if !valid_label_name(dst) {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = input
        .iter()
        .map(|s| {
            let src_val = s.labels.get(src).unwrap_or("");
            let labels = match re.captures(src_val) {
                // No match: the sample passes unchanged.
                None => s.labels.clone(),
                Some(caps) => {
                    // `$1`, `${name}` and `$$` expand as in Go's regexp.
                    let mut value = String::new();
                    caps.expand(repl, &mut value);
                    // An empty result removes the label.
                    s.labels.with(dst, &value)
                }
            };
            InstantSample {
                labels,
                t: c.t,
                v: s.v,
            }
        })
        .collect();
    Ok(out)
}

fn label_join(c: &FunctionCall<'_>) -> Result<Vec<InstantSample>, QueryError> {
    if c.args.len() < 3 {
        return Err(QueryError::BadData(format!(
            "expected at least 3 argument(s) in call to \"label_join\", got {}",
            c.args.len()
        )));
    }
    let input = args::vector(c, 0)?;
    let (dst, sep) = (args::string(c, 1)?, args::string(c, 2)?);
    let srcs = (3..c.args.len())
        .map(|i| args::string(c, i))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = srcs.iter().find(|s| !valid_label_name(s)) {
        return Err(QueryError::Execution(format!(
            "invalid source label name in label_join(): {bad}"
        )));
    }
    if !valid_label_name(dst) {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = input
        .iter()
        .map(|s| {
            let joined = srcs
                .iter()
                .map(|l| s.labels.get(l).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(sep);
            // Always overwrites dst; an empty join removes it.
            InstantSample {
                labels: s.labels.with(dst, &joined),
                t: c.t,
                v: s.v,
            }
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::query::Value;

    fn input() -> Value {
        Value::Vector(vec![
            inst(
                &[
                    ("__name__", "m"),
                    ("src", "source-value-10"),
                    ("dst", "orig"),
                ],
                0.0,
            ),
            inst(
                &[
                    ("__name__", "m"),
                    ("src", "source-value-20"),
                    ("dst", "orig"),
                ],
                1.0,
            ),
        ])
    }

    fn replace(
        dst: &str,
        repl: &str,
        src: &str,
        re: &str,
    ) -> Result<Value, crate::query::QueryError> {
        run(
            "label_replace",
            vec![input(), string(dst), string(repl), string(src), string(re)],
            0.0,
            None,
        )
    }

    #[test]
    fn replace_full_match_with_groups() {
        let out = vec_of(replace(
            "dst",
            "destination-value-$1",
            "src",
            "source-value-(.*)",
        ));
        assert_eq!(
            out[0].0,
            lbl(&[
                ("__name__", "m"),
                ("src", "source-value-10"),
                ("dst", "destination-value-10")
            ])
        );
        let out = vec_of(replace("dst", "$1-value-${2}", "src", "(.*)-value-(.*)"));
        assert_eq!(out[1].0.get("dst"), Some("source-value-20"));
    }

    #[test]
    fn replace_no_match_leaves_sample_alone() {
        // Substring matches do not count: the regex is anchored.
        let out = vec_of(replace("dst", "x-$1", "src", "value-(.*)"));
        assert_eq!(out[0].0.get("dst"), Some("orig"));
        let out = vec_of(replace("dst", "x-$1", "nonexistent", "source-value-(.*)"));
        assert_eq!(out[0].0.get("dst"), Some("orig"));
        // An absent source label matches `(.*)` as "".
        let out = vec_of(replace("dst", "value-$1", "nonexistent", "(.*)"));
        assert_eq!(out[0].0.get("dst"), Some("value-"));
        // An empty result drops the label.
        let out = vec_of(replace("dst", "", "dst", ".*"));
        assert_eq!(out[0].0.get("dst"), None);
    }

    #[test]
    fn replace_errors() {
        assert!(
            replace("dst", "v-$1", "src", "(.*")
                .unwrap_err()
                .to_string()
                .contains("regular expression")
        );
        assert!(
            replace("invalid-label-name", "", "src", "(.*)")
                .unwrap_err()
                .to_string()
                .contains("destination label")
        );
        // Both samples lose src and become identical.
        assert!(
            replace("src", "", "", "")
                .unwrap_err()
                .to_string()
                .contains("same labelset")
        );
    }

    #[test]
    fn join_in_order_with_missing_as_empty() {
        let v = Value::Vector(vec![inst(
            &[("__name__", "m"), ("a", "x"), ("b", "y"), ("dst", "old")],
            1.0,
        )]);
        let join = |extra: &[&str]| {
            let mut a = vec![v.clone(), string("dst"), string("-")];
            a.extend(extra.iter().map(|s| string(s)));
            vec_of(run("label_join", a, 0.0, None))
        };
        assert_eq!(join(&["a", "b"])[0].0.get("dst"), Some("x-y"));
        assert_eq!(join(&["a", "zz", "b"])[0].0.get("dst"), Some("x--y"));
        assert_eq!(
            join(&[])[0].0,
            lbl(&[("__name__", "m"), ("a", "x"), ("b", "y")])
        );
        let e = run(
            "label_join",
            vec![v.clone(), string("dst"), string("-"), string("bad-name")],
            0.0,
            None,
        );
        assert!(e.is_err());
        let e = run(
            "label_join",
            vec![v, string("1dst"), string("-"), string("a")],
            0.0,
            None,
        );
        assert!(e.is_err());
    }
}
