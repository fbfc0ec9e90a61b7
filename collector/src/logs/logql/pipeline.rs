//! Runs a log pipeline (line filters, parsers, label filters, formatters) on
//! one entry: returns the line to keep (possibly rewritten), with the labels
//! left in the `LabelState`, or `None` when a stage drops it.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::ast::{LabelFmt, LineFilter, LineMatch, LineOp, NameOrMatcher, Stage};
use super::json;
use super::label_filter;
use super::label_state::{ERROR_DETAILS_LABEL, ERROR_LABEL, LabelState};
use super::logfmt;

pub(crate) const JSON_PARSER_ERR: &str = "JSONParserErr";
pub(crate) const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";
pub(crate) const TEMPLATE_FORMAT_ERR: &str = "TemplateFormatErr";

static ANSI: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").expect("static ANSI escape regex is valid")
});

/// Whether a line passes a line filter.
pub(crate) fn line_matches(f: &LineFilter, line: &str) -> bool {
    let any = f.alts.iter().any(|m| match m {
        LineMatch::Text(t) => line.contains(t.as_str()),
        LineMatch::Regex(r) => r.is_match(line),
        LineMatch::Pattern(p) => p.test(line),
    });
    match f.op {
        LineOp::Contains | LineOp::Match | LineOp::Pattern => any,
        LineOp::NotContains | LineOp::NotMatch | LineOp::NotPattern => !any,
    }
}

/// Whether every stage is a line filter (then labels cannot change and a
/// filter-only fast path applies).
pub(crate) fn only_line_filters(stages: &[Stage]) -> bool {
    stages.iter().all(|s| matches!(s, Stage::LineFilter(_)))
}

/// Runs `stages` over `line`; `st` must have been built for this entry.
pub(crate) fn run<'l>(
    stages: &[Stage],
    line: &'l str,
    st: &mut LabelState<'_>,
) -> Option<Cow<'l, str>> {
    let mut line: Cow<'l, str> = Cow::Borrowed(line);
    let mut parsed = Vec::new();
    for stage in stages {
        match stage {
            Stage::LineFilter(f) => {
                if !line_matches(f, &line) {
                    return None;
                }
            }
            Stage::Json(params) => {
                parsed.clear();
                let r = if params.is_empty() {
                    json::extract_all(&line, &mut parsed)
                } else {
                    json::extract_paths(&line, params, &mut parsed)
                };
                for (k, v) in parsed.drain(..) {
                    st.set_extracted(&k, v);
                }
                if let Err(e) = r {
                    st.set_err(JSON_PARSER_ERR, e);
                }
            }
            Stage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                parsed.clear();
                let r = logfmt::parse(&line, *strict, *keep_empty, &mut parsed);
                if params.is_empty() {
                    for (k, v) in parsed.drain(..) {
                        st.set_extracted(&sanitize(&k), v);
                    }
                } else {
                    for (dst, src) in params {
                        if let Some((_, v)) = parsed.iter().rev().find(|(k, _)| k == src) {
                            st.set_extracted(dst, v.clone());
                        }
                    }
                }
                if let Err(e) = r {
                    st.set_err(LOGFMT_PARSER_ERR, e);
                }
            }
            Stage::Regexp(re) => {
                if let Some(caps) = re.captures(&line) {
                    for name in re.capture_names().flatten() {
                        if let Some(m) = caps.name(name) {
                            st.set_extracted(name, m.as_str().to_string());
                        }
                    }
                }
            }
            Stage::Pattern(p) => {
                for (name, value) in p.matches(&line) {
                    st.set_extracted(name, value.to_string());
                }
            }
            Stage::LabelFilter(f) => {
                if !label_filter::eval(f, st) {
                    return None;
                }
            }
            Stage::LineFormat(t) => {
                st.line = line.to_string();
                match t.render(st) {
                    Ok(s) => line = Cow::Owned(s),
                    Err(e) => st.set_err(TEMPLATE_FORMAT_ERR, e.0),
                }
            }
            Stage::LabelFormat(items) => label_format(items, &line, st),
            Stage::Drop(items) => st.retain(|k, v| !items.iter().any(|i| names(i, k, v))),
            // Error labels survive `keep` (as in Loki): only a filter or `drop` removes them.
            Stage::Keep(items) => st.retain(|k, v| {
                k == ERROR_LABEL || k == ERROR_DETAILS_LABEL || items.iter().any(|i| names(i, k, v))
            }),
            Stage::Decolorize => {
                if line.contains('\x1b') {
                    line = Cow::Owned(ANSI.replace_all(&line, "").into_owned());
                }
            }
        }
    }
    Some(line)
}

fn names(item: &NameOrMatcher, k: &str, v: &str) -> bool {
    match item {
        NameOrMatcher::Name(n) => n == k,
        NameOrMatcher::Matcher(m) => m.name == k && m.matches(v),
    }
}

/// `label_format`: templates all see the labels as they were before the stage
/// (as in Loki); renames move the value and delete the source.
fn label_format(items: &[LabelFmt], line: &str, st: &mut LabelState<'_>) {
    let needs_snapshot = items.iter().any(|i| matches!(i, LabelFmt::Template { .. }));
    let mut rendered = Vec::new();
    if needs_snapshot {
        st.line = line.to_string();
        for item in items {
            if let LabelFmt::Template { dst, tmpl } = item {
                rendered.push((dst.clone(), tmpl.render(st)));
            }
        }
    }
    for item in items {
        if let LabelFmt::Rename { dst, src } = item
            && let Some(v) = st.get(src).map(str::to_string)
        {
            st.del(src);
            st.set(dst, v);
        }
    }
    for (dst, r) in rendered {
        match r {
            Ok(v) => st.set(&dst, v),
            Err(e) => st.set_err(TEMPLATE_FORMAT_ERR, e.0),
        }
    }
}

/// A logfmt key as a label name: characters outside `[a-zA-Z0-9_]` become
/// `_`, a leading digit gets a `_` prefix.
pub(crate) fn sanitize(key: &str) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse_log_expr_for_test;
    use super::*;
    use crate::model::Labels;

    fn go(query: &str, line: &str, md: &[(&str, &str)]) -> Option<(String, Labels)> {
        let expr = parse_log_expr_for_test(query);
        let base = Labels::from_pairs([("app", "api"), ("level", "stream")]);
        let md: Vec<(String, String)> = md
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut st = LabelState::new(&base, &md, 1_000);
        let out = run(&expr.stages, line, &mut st)?;
        Some((out.into_owned(), st.labels()))
    }

    #[test]
    fn line_filters_chain_and_or() {
        let q = r#"{app="api"} |= "err" != "timeout" |~ "(?i)DISK|net""#;
        assert!(go(q, "err: disk full", &[]).is_some());
        assert!(go(q, "err: timeout on disk", &[]).is_none());
        assert!(go(q, "warn: disk", &[]).is_none());
        let q = r#"{app="api"} |> "<_> disk <_>" !> "<_>timeout<_>""#;
        assert!(go(q, "err: disk full", &[]).is_some());
        assert!(go(q, "disk full", &[]).is_none());
        assert!(go(q, "err: disk timeout now", &[]).is_none());
        // A trailing capture must not be empty, so this line does not match `!>`.
        assert!(go(q, "err: disk timeout", &[]).is_some());
        let q = r#"{app="api"} |= "a" or "b" != "x" or "y""#;
        assert!(go(q, "b", &[]).is_some());
        assert!(go(q, "c", &[]).is_none());
        assert!(go(q, "by", &[]).is_none());
    }

    #[test]
    fn json_with_clash_and_error() {
        let (_, l) = go(
            r#"{app="api"} | json"#,
            r#"{"level":"error","code":500}"#,
            &[],
        )
        .unwrap();
        assert_eq!(l.get("level"), Some("stream"));
        assert_eq!(l.get("level_extracted"), Some("error"));
        assert_eq!(l.get("code"), Some("500"));
        let (_, l) = go(r#"{app="api"} | json"#, "not json", &[]).unwrap();
        assert_eq!(l.get("__error__"), Some(JSON_PARSER_ERR));
        assert!(go(r#"{app="api"} | json | __error__="""#, "not json", &[]).is_none());
    }

    #[test]
    fn logfmt_then_formats() {
        let q = r#"{app="api"} | logfmt | status >= 500 | line_format "{{.method}} {{ .status }} {{.trace_id}}" | label_format m=method, s="{{.status}}!""#;
        let (line, l) = go(q, "method=GET status=503", &[("trace_id", "t1")]).unwrap();
        assert_eq!(line, "GET 503 t1");
        assert_eq!(l.get("m"), Some("GET"));
        assert_eq!(l.get("method"), None);
        assert_eq!(l.get("s"), Some("503!"));
        assert!(go(q, "method=GET status=200", &[]).is_none());
    }

    #[test]
    fn drop_keep_decolorize_regexp() {
        let (_, l) = go(
            r#"{app="api"} | logfmt | drop a, b="2""#,
            "a=1 b=2 c=3",
            &[],
        )
        .unwrap();
        assert_eq!(
            l,
            Labels::from_pairs([("app", "api"), ("c", "3"), ("level", "stream")])
        );
        let (_, l) = go(r#"{app="api"} | logfmt | keep app, c"#, "a=1 b=2 c=3", &[]).unwrap();
        assert_eq!(l, Labels::from_pairs([("app", "api"), ("c", "3")]));
        let (_, l) = go(r#"{app="api"} | json | keep app"#, "oops", &[]).unwrap();
        assert_eq!(l.get("__error__"), Some(JSON_PARSER_ERR));
        let (_, l) = go(
            r#"{app="api"} | logfmt | keep app, c | c == "3""#,
            "a=1 b=2 c=3",
            &[],
        )
        .unwrap();
        assert_eq!(l, Labels::from_pairs([("app", "api"), ("c", "3")]));
        let (line, _) = go(r#"{app="api"} | decolorize"#, "\x1b[31mred\x1b[0m", &[]).unwrap();
        assert_eq!(line, "red");
        let (_, l) = go(
            r#"{app="api"} | regexp "(?P<verb>[A-Z]+) (?P<path>/\\S*)""#,
            "GET /x 200",
            &[],
        )
        .unwrap();
        assert_eq!(l.get("verb"), Some("GET"));
        assert_eq!(l.get("path"), Some("/x"));
    }
}
