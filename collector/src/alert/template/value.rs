//! Runtime values, standing in for the Go types a Prometheus template sees.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::format::fmt_float;
use super::{Data, Sample};

#[derive(Debug, Clone)]
pub enum Value {
    /// Go's invalid value / nil interface: prints `<no value>` as an action,
    /// `<nil>` through fmt.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// html/template.HTML from `safeHtml`.
    Html(String),
    StrMap(Rc<BTreeMap<String, String>>),
    /// `args` result: map[string]interface{}.
    AnyMap(Rc<BTreeMap<String, Value>>),
    Sample(Rc<Sample>),
    Samples(Rc<Vec<Rc<Sample>>>),
    /// `toTime` result (*time.Time): nanoseconds since the epoch.
    Time(i128),
    Data(Rc<Data>),
}

pub const DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

impl Value {
    /// The Go type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Sample(_) => "*template.sample",
            Value::Samples(_) => "template.queryResult",
            Value::Time(_) => "*time.Time",
            Value::Data(_) => DATA_TYPE,
        }
    }

    /// Go's truth for if/with/and/or/not: non-zero, non-empty, non-nil.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::AnyMap(m) => !m.is_empty(),
            Value::Samples(v) => !v.is_empty(),
            Value::Sample(_) | Value::Time(_) | Value::Data(_) => true,
        }
    }

    /// Whether Go's fmt treats it as a string operand (for `print` spacing).
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Html(_))
    }

    /// fmt's `%v` of the value.
    pub fn go_v(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Sample(s) => format!("&{}", sample_v(s)),
            Value::Time(ns) => time_string(*ns),
            _ => self.printed(),
        }
    }

    /// How an action `{{ x }}` prints it: pointers are followed first.
    pub fn printed(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => fmt_float(*f, 'g', None),
            Value::Str(s) | Value::Html(s) => s.clone(),
            Value::StrMap(m) => map_v(m.iter().map(|(k, v)| (k, v.clone()))),
            Value::AnyMap(m) => map_v(m.iter().map(|(k, v)| (k, v.go_v()))),
            Value::Sample(s) => sample_v(s),
            // Go prints the element pointers' addresses; nothing stable to match.
            Value::Samples(v) => {
                let parts: Vec<String> = v.iter().map(|s| format!("&{}", sample_v(s))).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Time(ns) => time_string(*ns),
            Value::Data(d) => format!(
                "{{{} {} {} {}}}",
                map_v(d.labels.iter().map(|(k, v)| (k, v.clone()))),
                map_v(d.external_labels.iter().map(|(k, v)| (k, v.clone()))),
                d.external_url,
                fmt_float(d.value, 'g', None)
            ),
        }
    }
}

fn map_v<'a>(it: impl Iterator<Item = (&'a String, String)>) -> String {
    let parts: Vec<String> = it.map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", parts.join(" "))
}

fn sample_v(s: &Sample) -> String {
    format!(
        "{{{} {}}}",
        map_v(s.labels.iter().map(|(k, v)| (k, v.clone()))),
        fmt_float(s.value, 'g', None)
    )
}

/// Go's time.Time.String() in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC".
pub fn time_string(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000) as u32;
    let Some(t) = chrono::DateTime::from_timestamp(secs, frac) else {
        return format!("<time out of range: {ns}ns>");
    };
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac > 0 {
        let f = format!(".{frac:09}");
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}
