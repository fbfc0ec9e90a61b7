//! Go text/template, the subset Prometheus alert annotations use.
//!
//! Hand-written: no Rust crate implements Go's text/template together with
//! Prometheus's template functions faithfully (Go's truthiness, `<no value>`,
//! fmt's float printing, humanize*, ...), and alert texts must render
//! byte-for-byte as Prometheus 2.42 renders them. The integration test
//! `tests/alert_templates_promtool.rs` checks that against the real promtool.
//!
//! Semantics: `template.NewTemplateExpander(...).Expand()` as rules/alerting.go
//! uses it — text mode, `missingkey=zero`, the `$labels`/`$externalLabels`/
//! `$externalURL`/`$value` prefix ([`expand`]).
//!
//! Supported: text, actions with `{{-`/`-}}` trimming, comments, pipelines,
//! `:=`/`=` variables, fields and map keys, `if`/`else if`/`else`, `range`
//! (with `$i, $x :=`, `break`, `continue`, `else`), `with`; literals; Go
//! builtins `and or not eq ne lt le gt ge len index slice print printf
//! println html js urlquery`; Prometheus's `query first label value strvalue args
//! sortByLabel reReplaceAll match title toUpper toLower safeHtml graphLink
//! tableLink stripPort stripDomain humanize humanize1024 humanizeDuration
//! humanizePercentage humanizeTimestamp toTime parseDuration externalURL
//! pathPrefix`.
//! Left out: `define`/`template`/`block` (and so `tmpl`), `call`,
//! methods on values (e.g. `(toTime 1).Unix`), printf `%x` of floats and `*`
//! widths, complex numbers. Printing a whole query result shows sample values,
//! where Go shows pointer addresses.
//!
//! Errors: parse errors read `template: NAME:LINE: msg`; render errors read
//! like Go's `template: NAME:LINE:COL: executing "NAME" at <node>: msg`, and
//! [`expand`] prefixes `error executing template NAME: ` as Prometheus does.
//! Prometheus then uses `<error expanding template: {err}>` as the annotation
//! (or label) value instead of failing the rule: callers should do the same.

mod ast;
mod builtins;
mod exec;
mod format;
mod funcs;
mod humanize;
mod lexer;
mod parse;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::rc::Rc;

/// One sample of a `query` result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Runs the PromQL of `{{ query "..." }}` (an instant query at the rule's
/// evaluation time). The error text becomes "error calling query: ...".
pub trait QueryFn {
    fn query(&self, q: &str) -> Result<Vec<Sample>, String>;
}

impl<F: Fn(&str) -> Result<Vec<Sample>, String>> QueryFn for F {
    fn query(&self, q: &str) -> Result<Vec<Sample>, String> {
        self(q)
    }
}

/// A [`QueryFn`] for contexts without a query engine.
pub struct NoQuery;

impl QueryFn for NoQuery {
    fn query(&self, _: &str) -> Result<Vec<Sample>, String> {
        Err("queries are not available here".into())
    }
}

/// The template's `.`: Prometheus's AlertTemplateData.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

/// What Prometheus puts before every alert label and annotation template.
pub const ALERT_PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    text: String,
    nodes: Vec<ast::Node>,
}

impl Template {
    /// Parses `text`; `name` appears in error messages. Undefined functions
    /// and variables are parse errors, as in Go.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let nodes = parse::parse(name, text)?;
        Ok(Template {
            name: name.into(),
            text: text.into(),
            nodes,
        })
    }

    /// Executes the template with `data` as `.` (and `$`).
    pub fn render(&self, data: &Data, query: &dyn QueryFn) -> Result<String, String> {
        let dot = value::Value::Data(Rc::new(data.clone()));
        let mut st = exec::State {
            name: &self.name,
            text: &self.text,
            ctx: funcs::Ctx {
                query,
                external_url: &data.external_url,
            },
            vars: vec![("$".into(), dot.clone())],
            out: String::new(),
        };
        st.walk(&dot, &self.nodes)?;
        Ok(st.out)
    }
}

/// Checks that an alert template parses (with [`ALERT_PREFIX`], so `$labels`
/// etc. are defined), as Prometheus does when loading rules. The error is
/// `line N: message`, N counted in `text`.
pub fn check(text: &str) -> Result<(), String> {
    parse::parse_lines(&format!("{ALERT_PREFIX}{text}"))
        .map(|_| ())
        .map_err(|(line, msg)| format!("line {line}: {msg}"))
}

/// Parses and renders an alert template the way Prometheus does: with
/// [`ALERT_PREFIX`], and errors worded as Prometheus words them (the caller
/// shows `<error expanding template: {err}>`).
pub fn expand(name: &str, text: &str, data: &Data, query: &dyn QueryFn) -> Result<String, String> {
    let full = format!("{ALERT_PREFIX}{text}");
    let t =
        Template::parse(name, &full).map_err(|e| format!("error parsing template {name}: {e}"))?;
    t.render(data, query)
        .map_err(|e| format!("error executing template {name}: {e}"))
}
