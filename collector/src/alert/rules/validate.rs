//! From the YAML shapes to checked [`Group`]s, with Prometheus 2.42's rules
//! (`rulefmt.RuleNode.Validate`), and the one-line error messages.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::file::{FileYaml, GroupYaml, RuleYaml};
use super::{AlertingRule, Group, Lang, RecordingRule, Rule, TemplateCheck, duration};
use crate::ingest::batch::{is_valid_label_name, is_valid_metric_name};

pub fn groups(
    path: &Path,
    shapes: FileYaml,
    lang: Lang,
    check_template: TemplateCheck<'_>,
) -> Result<Vec<Group>, String> {
    let file = path.display();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, g) in shapes.groups.unwrap_or_default().into_iter().enumerate() {
        let name = g.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(format!(
                "{file}: group {}: group name must not be empty",
                i + 1
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(format!(
                "{file}: group {name:?}: group name is repeated in the same file"
            ));
        }
        out.push(
            group(path, g, lang, check_template)
                .map_err(|e| format!("{file}: group {name:?}: {e}"))?,
        );
    }
    Ok(out)
}

fn group(
    path: &Path,
    g: GroupYaml,
    lang: Lang,
    check_template: TemplateCheck<'_>,
) -> Result<Group, String> {
    let interval = match g.interval.as_deref() {
        None => None,
        Some(s) => Some(duration::parse(s).map_err(|e| format!("interval: {e}"))?),
    };
    let mut rules = Vec::new();
    for (i, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
        let what = describe(i, &r);
        rules.push(rule(r, lang, check_template).map_err(|e| format!("{what}: {e}"))?);
    }
    Ok(Group {
        name: g.name.unwrap_or_default(),
        file: path.to_owned(),
        interval: interval.filter(|d| !d.is_zero()),
        limit: usize::try_from(g.limit.map_or(0, |l| l.0)).unwrap_or(0),
        rules,
    })
}

/// `rule 3 (alert "DiskFull")`: the 1-based position, as promtool counts.
fn describe(i: usize, r: &RuleYaml) -> String {
    let n = i + 1;
    match (r.alert.0.as_str(), r.record.0.as_str()) {
        ("", "") => format!("rule {n}"),
        (a, "") => format!("rule {n} (alert {a:?})"),
        (_, rec) => format!("rule {n} (record {rec:?})"),
    }
}

fn rule(r: RuleYaml, lang: Lang, check_template: TemplateCheck<'_>) -> Result<Rule, String> {
    let (record, alert) = (r.record.0, r.alert.0);
    match (record.is_empty(), alert.is_empty()) {
        (false, false) => return Err("only one of 'record' and 'alert' may be set".into()),
        (true, true) => return Err("one of 'record' or 'alert' must be set".into()),
        _ => {}
    }
    let expr = r.expr.0;
    if expr.is_empty() {
        return Err("field 'expr' must be set in rule".into());
    }
    let query = match lang {
        Lang::PromQL => Some(
            promql_parser::parser::parse(&expr)
                .map_err(|e| format!("expr: could not parse expression: {}", one_line(&e)))?,
        ),
        Lang::LogQL => {
            crate::logs::logql::check_metric_query(&expr)
                .map_err(|e| format!("expr: could not parse LogQL: {}", one_line(&e)))?;
            None
        }
    };
    let for_ = opt_duration("for", r.for_.as_deref())?;
    let keep_firing_for = opt_duration("keep_firing_for", r.keep_firing_for.as_deref())?;
    let labels = r.labels.map(|m| m.0).unwrap_or_default();
    let annotations = r.annotations.map(|m| m.0).unwrap_or_default();
    // The order of checks is Prometheus's, so the first error matches its.
    if !record.is_empty() {
        if !annotations.is_empty() {
            return Err("invalid field 'annotations' in recording rule".into());
        }
        if !for_.is_zero() {
            return Err("invalid field 'for' in recording rule".into());
        }
        if !keep_firing_for.is_zero() {
            return Err("invalid field 'keep_firing_for' in recording rule".into());
        }
        if !is_valid_metric_name(&record) {
            return Err(format!("invalid recording rule name: {record}"));
        }
    }
    for k in labels.keys() {
        if !is_valid_label_name(k) || k == "__name__" {
            return Err(format!("invalid label name: {k}"));
        }
    }
    for k in annotations.keys() {
        if !is_valid_label_name(k) {
            return Err(format!("invalid annotation name: {k}"));
        }
    }
    if !record.is_empty() {
        return Ok(Rule::Recording(RecordingRule {
            name: record,
            expr,
            query,
            labels,
        }));
    }
    check_templates("labels", &labels, check_template)?;
    check_templates("annotations", &annotations, check_template)?;
    Ok(Rule::Alerting(AlertingRule {
        name: alert,
        expr,
        query,
        for_,
        keep_firing_for,
        labels,
        annotations,
    }))
}

fn opt_duration(field: &str, s: Option<&str>) -> Result<Duration, String> {
    s.map_or(Ok(Duration::ZERO), duration::parse)
        .map_err(|e| format!("{field}: {e}"))
}

fn check_templates(
    field: &str,
    map: &BTreeMap<String, String>,
    check: TemplateCheck<'_>,
) -> Result<(), String> {
    for (k, v) in map {
        check(v).map_err(|e| format!("{field}.{k}: template: {}", one_line(&e)))?;
    }
    Ok(())
}

/// A YAML error: serde_yaml's message (path such as `groups[1].rules[0]`,
/// then "at line L column C"), with the group's name when it can be found.
pub fn yaml_error(path: &Path, text: &str, e: &serde_yaml::Error) -> String {
    let mut msg = one_line(&e.to_string());
    // serde_yaml leaves out the position when it is the very start.
    if let Some(at) = e.location().filter(|_| !msg.contains(" at line ")) {
        msg += &format!(" at line {} column {}", at.line(), at.column());
    }
    match group_index(&msg).and_then(|i| group_name(text, i)) {
        Some(name) => format!("{}: group {name:?}: {msg}", path.display()),
        None => format!("{}: {msg}", path.display()),
    }
}

/// `groups[3].rules[0]: ...` -> 3.
fn group_index(msg: &str) -> Option<usize> {
    let rest = msg.strip_prefix("groups[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// The name of group `i`, read leniently (the strict read just failed):
/// only `groups[].name`, everything else skipped unchecked.
fn group_name(text: &str, i: usize) -> Option<String> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    struct Names {
        groups: Vec<Name>,
    }
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    let doc = serde_yaml::Deserializer::from_str(text).next()?;
    let mut names = Names::deserialize(doc).ok()?;
    (i < names.groups.len()).then(|| names.groups.swap_remove(i).name)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
