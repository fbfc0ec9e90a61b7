//! Prometheus rule files: parsing and validation.
//!
//! Accepts what Prometheus 2.42 accepts (`promtool check rules`, checked
//! against the real tool in `tests/alert_rules_promtool.rs`), including
//! `keep_firing_for` on alerting rules. Errors are one line naming the file
//! and, where the fault is in one, the group and the rule.
//!
//! Template checking: Prometheus also parses alerting rules' label values
//! and annotations as Go templates. That is not done by [`parse`]; pass a
//! checker to [`parse_with`] (e.g. the `alert::template` parser) to do it.

mod duration;
mod file;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promql_parser::parser::Expr;

/// The language of a file's `expr`s: Prometheus rule files hold PromQL; log
/// rule files (`--log-rule-files`, as Loki's ruler reads them) hold LogQL
/// metric queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    PromQL,
    LogQL,
}

/// One loaded rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    pub path: PathBuf,
    pub groups: Vec<Group>,
}

/// A rule group: its rules are evaluated in order, every `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The file it came from (groups are unique per file, not globally).
    pub file: PathBuf,
    /// `None`: use the global evaluation interval (also for `interval: 0`).
    pub interval: Option<Duration>,
    /// Most alerts / series a rule may produce; 0 is no limit (as are
    /// negative values, which Prometheus accepts).
    pub limit: usize,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingRule {
    /// The `alert` name; any string (Prometheus does not restrict it).
    pub name: String,
    /// `expr` as written.
    pub expr: String,
    /// `expr` parsed (PromQL files; `None` for LogQL).
    pub query: Option<Expr>,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRule {
    /// The `record` name: a valid metric name.
    pub name: String,
    pub expr: String,
    /// `expr` parsed (PromQL files; `None` for LogQL).
    pub query: Option<Expr>,
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.name,
            Rule::Recording(r) => &r.name,
        }
    }

    pub fn query(&self) -> Option<&Expr> {
        match self {
            Rule::Alerting(r) => r.query.as_ref(),
            Rule::Recording(r) => r.query.as_ref(),
        }
    }
}

/// Checks one template (an alerting rule's label value or annotation) and
/// says what is wrong with it. Prometheus prefixes each with definitions of
/// `$labels`, `$externalLabels`, `$externalURL` and `$value`, so a checker
/// must treat those variables as defined.
pub type TemplateCheck<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// Parses one rule file's text; `path` is only used to name it in errors
/// and in [`Group::file`]. Templates are not checked (see [`parse_with`]).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Group>, String> {
    parse_with(path, text, &|_| Ok(()))
}

/// [`parse`], also running `check_template` on every label value and
/// annotation of alerting rules, as Prometheus does.
pub fn parse_with(
    path: &Path,
    text: &str,
    check_template: TemplateCheck<'_>,
) -> Result<Vec<Group>, String> {
    parse_lang(path, text, Lang::PromQL, check_template)
}

/// [`parse_with`] for a file whose `expr`s are in `lang`.
pub fn parse_lang(
    path: &Path,
    text: &str,
    lang: Lang,
    check_template: TemplateCheck<'_>,
) -> Result<Vec<Group>, String> {
    let shapes = match file::read(text) {
        Ok(shapes) => shapes,
        Err(e) => match file::read_merged(text) {
            Some(Ok(shapes)) => shapes,
            // The strict error has a position; prefer it unless it is only
            // about the merge key itself.
            Some(Err(merged)) if e.to_string().contains("field `<<`") => {
                return Err(format!("{}: {merged}", path.display()));
            }
            _ => return Err(validate::yaml_error(path, text, &e)),
        },
    };
    validate::groups(path, shapes, lang, check_template)
}

/// Reads and parses one file.
pub fn load_file(path: &Path) -> Result<RuleFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(RuleFile {
        path: path.to_owned(),
        groups: parse(path, &text)?,
    })
}

/// Reads and parses every file, stopping at the first bad one. Group names
/// may repeat across files, as in Prometheus.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for path in paths {
        groups.extend(load_file(path)?.groups);
    }
    Ok(groups)
}
