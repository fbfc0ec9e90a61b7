//! The YAML shapes of a rule unit-test file (promtool 2.42's `unitTestFile`),
//! read strictly (promtool uses `yaml.UnmarshalStrict`: unknown fields are
//! errors) and checked into what `run` needs: durations in ms, input series
//! expanded, expected labels parsed. Errors name the file and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::model::{Labels, TimeSeries};
use crate::query::test_script::load_series;
use crate::query::test_script::series::{parse_duration, parse_metric};

/// A checked test file.
pub struct TestFile {
    /// Rule files, resolved against the test file's folder and globbed.
    pub rule_files: Vec<PathBuf>,
    /// How often the rule groups are evaluated, in ms (default 1m).
    pub evaluation_interval: i64,
    /// Group name -> position; groups not named sort as position 0, as in promtool.
    pub group_order: BTreeMap<String, usize>,
    pub groups: Vec<TestGroup>,
}

pub struct TestGroup {
    /// `name`; empty when there is none.
    pub name: String,
    /// Step between input points, and the groups' default interval, in ms.
    pub interval: i64,
    pub series: Vec<TimeSeries>,
    pub alert_tests: Vec<AlertTest>,
    pub expr_tests: Vec<ExprTest>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

pub struct AlertTest {
    pub eval_time: i64,
    /// `eval_time` as written, for messages.
    pub eval_text: String,
    pub alertname: String,
    /// Firing alerts expected: labels (with `alertname`) and annotations.
    pub expected: Vec<ExpectedAlert>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

pub struct ExprTest {
    pub expr: String,
    pub eval_time: i64,
    pub eval_text: String,
    pub expected: Vec<(Labels, f64)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    #[serde(default, deserialize_with = "or_default")]
    rule_files: Vec<String>,
    evaluation_interval: Option<Text>,
    #[serde(default, deserialize_with = "or_default")]
    group_eval_order: Vec<String>,
    #[serde(default, deserialize_with = "or_default")]
    tests: Vec<GroupYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    interval: Option<Text>,
    #[serde(default, deserialize_with = "or_default")]
    input_series: Vec<SeriesYaml>,
    #[serde(default, deserialize_with = "or_default")]
    alert_rule_test: Vec<AlertYaml>,
    #[serde(default, deserialize_with = "or_default")]
    promql_expr_test: Vec<ExprYaml>,
    #[serde(default, deserialize_with = "or_default")]
    external_labels: BTreeMap<String, Text>,
    #[serde(default, deserialize_with = "or_default")]
    external_url: Text,
    #[serde(default, deserialize_with = "or_default")]
    name: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesYaml {
    #[serde(default, deserialize_with = "or_default")]
    series: Text,
    #[serde(default, deserialize_with = "or_default")]
    values: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertYaml {
    eval_time: Option<Text>,
    #[serde(default, deserialize_with = "or_default")]
    alertname: Text,
    #[serde(default, deserialize_with = "or_default")]
    exp_alerts: Vec<ExpAlertYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlertYaml {
    #[serde(default, deserialize_with = "or_default")]
    exp_labels: BTreeMap<String, Text>,
    #[serde(default, deserialize_with = "or_default")]
    exp_annotations: BTreeMap<String, Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprYaml {
    #[serde(default, deserialize_with = "or_default")]
    expr: Text,
    eval_time: Option<Text>,
    #[serde(default, deserialize_with = "or_default")]
    exp_samples: Vec<SampleYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleYaml {
    #[serde(default, deserialize_with = "or_default")]
    labels: Text,
    #[serde(default)]
    value: f64,
}

/// A scalar read as text whatever its YAML type (`eval_time: 0`,
/// `values: 1`, `le: 0.5`), as Go's YAML decoder fills a string field.
#[derive(Default)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        use serde_yaml::Value;
        match Value::deserialize(d)? {
            Value::Null => Ok(Text::default()),
            Value::String(s) => Ok(Text(s)),
            Value::Bool(b) => Ok(Text(b.to_string())),
            Value::Number(n) => Ok(Text(n.to_string())),
            _ => Err(serde::de::Error::custom("expected a scalar")),
        }
    }
}

/// YAML `null` (a key with nothing after it) is the empty value, as in Go.
fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn texts(m: BTreeMap<String, Text>) -> BTreeMap<String, String> {
    m.into_iter().map(|(k, v)| (k, v.0)).collect()
}

const DEFAULT_INTERVAL: i64 = 60_000;

/// Reads and checks one test file. The error is one line naming the file
/// and, where the fault is in one, the field (`tests[0].input_series[2]`).
pub fn read(path: &Path) -> Result<TestFile, String> {
    let at = |field: &str, e: String| format!("{}: {field}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // serde_yaml's message carries the field path and the line.
    let raw: FileYaml = match serde_yaml::Deserializer::from_str(&text).next() {
        Some(doc) => Option::<FileYaml>::deserialize(doc)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .ok_or_else(|| format!("{}: the file is empty", path.display()))?,
        None => return Err(format!("{}: the file is empty", path.display())),
    };
    let evaluation_interval = match raw.evaluation_interval {
        Some(t) => duration(&t.0).map_err(|e| at("evaluation_interval", e))?,
        None => 0,
    };
    let evaluation_interval = if evaluation_interval == 0 {
        DEFAULT_INTERVAL
    } else {
        evaluation_interval
    };
    let mut group_order = BTreeMap::new();
    for (i, name) in raw.group_eval_order.into_iter().enumerate() {
        if group_order.insert(name.clone(), i).is_some() {
            return Err(at(
                "group_eval_order",
                format!("group name repeated in evaluation order: {name}"),
            ));
        }
    }
    let base = path.parent().unwrap_or(Path::new(""));
    let rule_files =
        super::glob::resolve(base, &raw.rule_files).map_err(|e| at("rule_files", e))?;
    let groups = raw
        .tests
        .into_iter()
        .enumerate()
        .map(|(i, g)| group(g, evaluation_interval, &format!("tests[{i}]")))
        .collect::<Result<_, _>>()
        .map_err(|(field, e)| at(&field, e))?;
    Ok(TestFile {
        rule_files,
        evaluation_interval,
        group_order,
        groups,
    })
}

/// Checks one entry of `tests`; errors are (field, message).
fn group(g: GroupYaml, default_interval: i64, field: &str) -> Result<TestGroup, (String, String)> {
    let interval = match g.interval {
        Some(t) => duration(&t.0).map_err(|e| (format!("{field}.interval"), e))?,
        None => 0,
    };
    let interval = if interval == 0 {
        default_interval
    } else {
        interval
    };
    // One `load` block, as promtool builds it from the input series.
    let lines: Vec<String> = g
        .input_series
        .iter()
        .map(|s| format!("{} {}", s.series.0, s.values.0))
        .collect();
    let block: Vec<(usize, &str)> = lines.iter().map(String::as_str).enumerate().collect();
    let series = load_series(interval, &block)
        .map_err(|(n, e)| (format!("{field}.input_series[{n}]"), e))?;
    let alert_tests = g
        .alert_rule_test
        .into_iter()
        .enumerate()
        .map(|(k, a)| alert_test(a, &format!("{field}.alert_rule_test[{k}]")))
        .collect::<Result<_, _>>()?;
    let expr_tests = g
        .promql_expr_test
        .into_iter()
        .enumerate()
        .map(|(k, e)| expr_test(e, &format!("{field}.promql_expr_test[{k}]")))
        .collect::<Result<_, _>>()?;
    Ok(TestGroup {
        name: g.name.0,
        interval,
        series,
        alert_tests,
        expr_tests,
        external_labels: texts(g.external_labels),
        external_url: g.external_url.0,
    })
}

fn alert_test(a: AlertYaml, field: &str) -> Result<AlertTest, (String, String)> {
    let (eval_time, eval_text) = eval_time(a.eval_time, field)?;
    let alertname = a.alertname.0;
    if alertname.is_empty() {
        return Err((field.to_string(), "alertname is missing".into()));
    }
    let expected = a
        .exp_alerts
        .into_iter()
        .map(|e| {
            let mut labels = texts(e.exp_labels);
            // Given without `alertname`, which evaluation adds (as promtool does).
            labels.insert("alertname".into(), alertname.clone());
            ExpectedAlert {
                labels,
                annotations: texts(e.exp_annotations),
            }
        })
        .collect();
    Ok(AlertTest {
        eval_time,
        eval_text,
        alertname,
        expected,
    })
}

fn expr_test(e: ExprYaml, field: &str) -> Result<ExprTest, (String, String)> {
    let (eval_time, eval_text) = eval_time(e.eval_time, field)?;
    if e.expr.0.is_empty() {
        return Err((format!("{field}.expr"), "expr is missing".into()));
    }
    let expected = e
        .exp_samples
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            let labels = match parse_metric(&s.labels.0) {
                Ok((labels, rest)) if rest.trim().is_empty() => Ok(labels),
                Ok((_, rest)) => Err(format!("unexpected {rest:?} after the labels")),
                Err(e) => Err(e),
            };
            labels
                .map(|l| (l, s.value))
                .map_err(|e| (format!("{field}.exp_samples[{k}].labels"), e))
        })
        .collect::<Result<_, _>>()?;
    Ok(ExprTest {
        expr: e.expr.0,
        eval_time,
        eval_text,
        expected,
    })
}

/// `eval_time`, default 0 as in promtool: (ms, text for messages).
fn eval_time(t: Option<Text>, field: &str) -> Result<(i64, String), (String, String)> {
    let text = t.map_or_else(|| "0s".to_string(), |t| t.0);
    let ms = duration(&text).map_err(|e| (format!("{field}.eval_time"), e))?;
    Ok((ms, text))
}

/// Prometheus's `model.Duration` (`1h30m`, `0`); the empty text is 0, as an
/// absent field.
fn duration(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<TestFile, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yml"), "groups: []\n").unwrap();
        let p = dir.path().join("t.test.yml");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn scalars_and_nulls_read_as_go_reads_them() {
        let f = read_text(
            "rule_files: [r.yml]\ntests:\n- input_series:\n  - series: m\n    values: 1\n  \
             alert_rule_test:\n  - eval_time: 0\n    alertname: A\n    exp_alerts:\n  \
             - eval_time: 90s\n    alertname: B\n    exp_alerts:\n    - exp_labels: {n: 2}\n",
        )
        .unwrap();
        assert_eq!(f.evaluation_interval, 60_000);
        let g = &f.groups[0];
        assert_eq!(
            g.interval, 60_000,
            "interval defaults to evaluation_interval"
        );
        assert_eq!(g.series[0].samples.len(), 1);
        assert_eq!(g.alert_tests[0].eval_time, 0);
        assert!(g.alert_tests[0].expected.is_empty());
        let labels = &g.alert_tests[1].expected[0].labels;
        assert_eq!(labels["n"], "2");
        assert_eq!(labels["alertname"], "B");
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = read_text(
            "rule_files: [r.yml]\ntests:\n- input_series:\n  - series: 'm{a=}'\n    values: 1\n",
        )
        .err()
        .unwrap();
        assert!(e.contains("t.test.yml: tests[0].input_series[0]:"), "{e}");
        let e = read_text("rule_files: [r.yml]\ntests:\n- alert_rule_test:\n  - eval_time: 1m\n")
            .err()
            .unwrap();
        assert!(
            e.contains("tests[0].alert_rule_test[0]: alertname is missing"),
            "{e}"
        );
        let e = read_text("rule_files: [r.yml]\ngroup_eval_order: [a, a]\n")
            .err()
            .unwrap();
        assert!(e.contains("group_eval_order: group name repeated"), "{e}");
    }
}
