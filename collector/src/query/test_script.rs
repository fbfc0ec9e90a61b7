//! Runs Prometheus's PromQL test scripts (`promql/testdata/*.test`) against
//! this engine, checking results the way Prometheus's `promql/test.go` does:
//! every `eval` runs as an instant query, then (unless it must fail or is
//! ordered) as a range query from t-1m to t+1m whose middle step must agree.

// Shared with the rule unit tests (`alert::unittest`), which load the same notation.
pub(crate) mod series;

use std::path::Path;
use std::sync::Arc;

use super::{Engine, EngineOptions, InstantSample, Value};
use crate::model::{Labels, Sample, TimeSeries};
use crate::store::Storage;
use crate::store::memory::MemStorage;
use series::{parse_duration, parse_series, scan_number};

/// What a script run found: one pass or failure per `eval` command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScriptReport {
    pub passed: usize,
    pub failed: usize,
    /// One line per failure: `file:line: query: what went wrong`.
    pub failures: Vec<String>,
}

/// Reads, parses and runs one script. `Err` when the file cannot be read or
/// is not a valid script (naming the file and line); query failures are
/// reported in the `ScriptReport`.
pub fn run_file(path: &Path) -> Result<ScriptReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let commands =
        parse_script(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))?;
    let storage = Arc::new(MemStorage::new());
    let engine = Engine::new(storage.clone(), EngineOptions::default());
    let mut report = ScriptReport::default();
    for cmd in commands {
        match cmd {
            Command::Clear => storage.clear(),
            Command::Load { line, series } => {
                storage
                    .append(&series)
                    .map_err(|e| format!("{}:{line}: load failed: {e}", path.display()))?;
            }
            Command::Eval(eval) => match run_eval(&engine, &eval) {
                Ok(()) => report.passed += 1,
                Err(why) => {
                    report.failed += 1;
                    report.failures.push(format!(
                        "{}:{}: {}: {why}",
                        path.display(),
                        eval.line,
                        eval.expr
                    ));
                }
            },
        }
    }
    Ok(report)
}

enum Command {
    Clear,
    Load {
        line: usize,
        series: Vec<TimeSeries>,
    },
    Eval(Eval),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EvalKind {
    Normal,
    Ordered,
    Fail,
}

struct Eval {
    line: usize,
    expr: String,
    at: i64,
    kind: EvalKind,
    /// Expected samples in order; `None` labels for a scalar result.
    expected: Vec<(Option<Labels>, f64)>,
}

fn parse_script(text: &str) -> Result<Vec<Command>, (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        if word == "clear" {
            commands.push(Command::Clear);
            continue;
        }
        // The block of a load/eval: following lines up to a blank line or a
        // comment (test.go blanks out comment lines before parsing).
        let mut block = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].trim().starts_with('#') {
            block.push((i + 1, lines[i].trim()));
            i += 1;
        }
        match word {
            "load" => commands.push(parse_load(line_no, line, &block)?),
            "eval" | "eval_ordered" | "eval_fail" => {
                commands.push(Command::Eval(parse_eval(line_no, line, &block)?))
            }
            _ => return Err((line_no, format!("unknown command {word:?}"))),
        }
    }
    Ok(commands)
}

fn parse_load(
    line_no: usize,
    line: &str,
    block: &[(usize, &str)],
) -> Result<Command, (usize, String)> {
    let interval = line.strip_prefix("load").map(str::trim).unwrap_or("");
    let gap = parse_duration(interval).map_err(|e| (line_no, format!("load: {e}")))?;
    Ok(Command::Load {
        line: line_no,
        series: load_series(gap, block)?,
    })
}

/// The series of a `load` block: `name{labels} values` lines, one point every
/// `gap` ms from time 0. Errors carry the line's number from `block`.
pub(crate) fn load_series(
    gap: i64,
    block: &[(usize, &str)],
) -> Result<Vec<TimeSeries>, (usize, String)> {
    let mut series: Vec<TimeSeries> = Vec::new();
    for &(n, def) in block {
        let (labels, values) = parse_series(def).map_err(|e| (n, e))?;
        let samples = values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| {
                v.map(|v| Sample {
                    t: k as i64 * gap,
                    v,
                })
            })
            .collect();
        // A series repeated within one block replaces the earlier definition.
        series.retain(|s| s.labels != labels);
        series.push(TimeSeries { labels, samples });
    }
    Ok(series)
}

fn parse_eval(
    line_no: usize,
    line: &str,
    block: &[(usize, &str)],
) -> Result<Eval, (usize, String)> {
    let err = |e: String| (line_no, e);
    let mut words = line.splitn(2, char::is_whitespace);
    let kind = match words.next() {
        Some("eval_ordered") => EvalKind::Ordered,
        Some("eval_fail") => EvalKind::Fail,
        _ => EvalKind::Normal,
    };
    let rest = words.next().unwrap_or("").trim_start();
    let rest = rest
        .strip_prefix("instant")
        .ok_or_else(|| err("only `eval instant` is supported".into()))?
        .trim_start();
    let rest = rest
        .strip_prefix("at")
        .ok_or_else(|| err("expected `at <time>`".into()))?
        .trim_start();
    let (at, expr) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| err("expected `at <time> <expr>`".into()))?;
    let at = parse_duration(at).map_err(err)?;
    let mut expected = Vec::new();
    for &(n, def) in block {
        if let Some((v, "")) = scan_number(def).map(|(v, rest)| (v, rest.trim())) {
            expected.push((None, v));
            continue;
        }
        let (labels, values) = parse_series(def).map_err(|e| (n, e))?;
        match values.as_slice() {
            [Some(v)] => expected.push((Some(labels), *v)),
            _ => return Err((n, "an expected sample needs exactly one value".into())),
        }
    }
    Ok(Eval {
        line: line_no,
        expr: expr.trim().to_string(),
        at,
        kind,
        expected,
    })
}

fn run_eval(engine: &Engine, ev: &Eval) -> Result<(), String> {
    let res = engine.instant(&ev.expr, ev.at);
    let value = match (res, ev.kind) {
        (Err(_), EvalKind::Fail) => return Ok(()),
        (Ok(v), EvalKind::Fail) => {
            return Err(format!("expected an error, got {}", show_value(&v)));
        }
        (Err(e), _) => return Err(format!("query failed: {e} ({})", e.error_type())),
        (Ok(v), _) => v,
    };
    compare(ev, &value, ev.kind == EvalKind::Ordered)?;

    // Same query in range mode; its middle step must agree.
    let range = engine
        .range(&ev.expr, ev.at - 60_000, ev.at + 60_000, 60_000)
        .map_err(|e| format!("range mode: query failed: {e}"))?;
    if ev.kind == EvalKind::Ordered {
        return Ok(());
    }
    let Value::Matrix(series) = range else {
        return Err(format!(
            "range mode: expected a matrix, got {}",
            range.type_name()
        ));
    };
    let vec: Vec<InstantSample> = series
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == ev.at)
                .map(|p| InstantSample {
                    labels: s.labels.clone(),
                    t: p.t,
                    v: p.v,
                })
        })
        .collect();
    let middle = match value {
        Value::Scalar { .. } => Value::Scalar {
            t: ev.at,
            v: vec.first().map_or(f64::NAN, |s| s.v),
        },
        _ => Value::Vector(vec),
    };
    compare(ev, &middle, false).map_err(|e| format!("range mode: {e}"))
}

fn compare(ev: &Eval, got: &Value, ordered: bool) -> Result<(), String> {
    let mismatch = |why: String| {
        format!(
            "{why}; expected {}; got {}",
            show_expected(&ev.expected),
            show_value(got)
        )
    };
    match got {
        Value::Scalar { v, .. } => match ev.expected.as_slice() {
            [(None, want)] if almost_equal(*want, *v) => Ok(()),
            _ => Err(mismatch("scalar mismatch".into())),
        },
        Value::Vector(samples) => {
            let mut seen = vec![false; ev.expected.len()];
            for (pos, s) in samples.iter().enumerate() {
                let Some(idx) = ev
                    .expected
                    .iter()
                    .position(|(l, _)| l.as_ref() == Some(&s.labels))
                else {
                    return Err(mismatch(format!(
                        "unexpected metric {} in result",
                        s.labels
                    )));
                };
                if ordered && idx != pos {
                    return Err(mismatch(format!(
                        "expected {} at position {} but was at {}",
                        s.labels,
                        idx + 1,
                        pos + 1
                    )));
                }
                let want = ev.expected[idx].1;
                if !almost_equal(want, s.v) {
                    return Err(mismatch(format!(
                        "expected {want} for {} but got {}",
                        s.labels, s.v
                    )));
                }
                seen[idx] = true;
            }
            match seen.iter().position(|s| !s) {
                Some(i) => Err(mismatch(format!(
                    "expected {} not found",
                    show_labels(&ev.expected[i].0)
                ))),
                None => Ok(()),
            }
        }
        Value::Matrix(_) => Err(mismatch(
            "received range result on instant evaluation".into(),
        )),
        Value::String { .. } => Err(mismatch("received a string result".into())),
    }
}

/// Prometheus's test tolerance: relative error 1e-6, NaN equals NaN.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < min_normal {
        return diff < EPSILON * min_normal;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

fn show_labels(l: &Option<Labels>) -> String {
    l.as_ref()
        .map_or_else(|| "scalar".to_string(), Labels::to_string)
}

fn show_expected(e: &[(Option<Labels>, f64)]) -> String {
    let items: Vec<String> = e
        .iter()
        .map(|(l, v)| format!("{} {v}", show_labels(l)))
        .collect();
    format!("[{}]", items.join(", "))
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {v}"),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(s) => {
            let items: Vec<String> = s.iter().map(|s| format!("{} {}", s.labels, s.v)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Matrix(m) => format!("matrix of {} series", m.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> ScriptReport {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.test");
        std::fs::write(&p, text).unwrap();
        run_file(&p).unwrap()
    }

    #[test]
    fn passes_and_fails_like_prometheus() {
        let r = run("load 1m\n  m{a=\"1\"} 0+1x10\n  m{a=\"2\"} 5x10\n\n\
                     eval instant at 5m m\n  m{a=\"1\"} 5\n  m{a=\"2\"} 5\n\n\
                     eval instant at 5m m{a=\"1\"}\n  m{a=\"1\"} 6\n\n\
                     eval_ordered instant at 5m m\n  m{a=\"2\"} 5\n  m{a=\"1\"} 5\n\n\
                     eval_fail instant at 5m m +\n\n\
                     eval instant at 5m 1 + 1\n  2\n\n\
                     clear\n\neval instant at 5m m\n");
        assert_eq!(r.passed, 4, "{:?}", r.failures);
        assert_eq!(r.failed, 2);
        assert!(
            r.failures[0].contains("t.test:9: m{a=\"1\"}"),
            "{}",
            r.failures[0]
        );
        assert!(r.failures[0].contains("expected 6"), "{}", r.failures[0]);
        assert!(r.failures[1].contains("position"), "{}", r.failures[1]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.test");
        std::fs::write(&p, "load 1m\n  m{a=} 1\n").unwrap();
        let e = run_file(&p).unwrap_err();
        assert!(e.contains("bad.test:2"), "{e}");
        assert!(run_file(&dir.path().join("missing.test")).is_err());
    }

    #[test]
    fn tolerance() {
        assert!(almost_equal(1.0, 1.0000001));
        assert!(!almost_equal(1.0, 1.001));
        assert!(almost_equal(f64::NAN, f64::NAN));
        assert!(!almost_equal(0.0, 1e-300));
    }
}
