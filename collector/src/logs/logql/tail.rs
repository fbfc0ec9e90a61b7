//! Live tailing: a log query compiled once and applied to each new entry as
//! the store broadcasts it.

use crate::logs::model::LogEntry;
use crate::model::{Labels, Matcher, matches_all};

use super::ast::{Expr, Stage};
use super::error::LogQlError;
use super::label_state::LabelState;
use super::parser;
use super::pipeline;

/// A log query (not a metric query) ready to filter live entries.
pub struct TailQuery {
    pub matchers: Vec<Matcher>,
    pub(crate) stages: Vec<Stage>,
}

/// Parses a log query for tailing; a metric query is a 400.
pub fn compile_tail(query: &str) -> Result<TailQuery, LogQlError> {
    match parser::parse(query)? {
        Expr::Log(l) => Ok(TailQuery {
            matchers: l.matchers,
            stages: l.stages,
        }),
        Expr::Metric(_) => Err(LogQlError::bad(
            "tail needs a log query (a stream selector and pipeline), not a metric query",
        )),
    }
}

impl TailQuery {
    /// The entry's labels and (possibly rewritten) line if it matches.
    pub fn process(&self, labels: &Labels, entry: &LogEntry) -> Option<(Labels, LogEntry)> {
        if !matches_all(&self.matchers, labels) {
            return None;
        }
        let mut st = LabelState::new(labels, &entry.metadata, entry.ts_ns);
        let line = pipeline::run(&self.stages, &entry.line, &mut st)?.into_owned();
        let out_labels = st.labels();
        let metadata = entry
            .metadata
            .iter()
            .filter(|(k, v)| out_labels.get(k) == Some(v.as_str()))
            .cloned()
            .collect();
        Some((
            out_labels,
            LogEntry {
                ts_ns: entry.ts_ns,
                line,
                metadata,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_filters_and_formats() {
        let q = compile_tail(r#"{app="api"} |= "err" | logfmt | line_format "{{.msg}}""#).unwrap();
        let labels = Labels::from_pairs([("app", "api")]);
        let e = LogEntry {
            ts_ns: 5,
            line: "level=err msg=boom".into(),
            metadata: vec![("trace_id".into(), "t".into())],
        };
        let (l, out) = q.process(&labels, &e).unwrap();
        assert_eq!(out.line, "boom");
        assert_eq!(
            out.metadata,
            vec![("trace_id".to_string(), "t".to_string())]
        );
        assert_eq!(l.get("level"), Some("err"));
        assert_eq!(l.get("trace_id"), Some("t"));
        let other = Labels::from_pairs([("app", "web")]);
        assert!(q.process(&other, &e).is_none());
        let quiet = LogEntry {
            line: "level=info".into(),
            ..e
        };
        assert!(q.process(&labels, &quiet).is_none());
        assert!(compile_tail(r#"count_over_time({app="api"}[1m])"#).is_err());
        assert!(compile_tail("{").is_err());
    }
}
