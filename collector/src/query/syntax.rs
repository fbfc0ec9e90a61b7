//! Bridges from promql-parser's AST to the engine: parsing, string
//! unescaping, matcher conversion and time modifiers in milliseconds.

use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::QueryError;
use crate::model::{METRIC_NAME, MatchOp, Matcher};

/// Parses a query; a parse error is `bad_data`, as in Prometheus.
pub(crate) fn parse(query: &str) -> Result<Expr, QueryError> {
    promql_parser::parser::parse(query)
        .map_err(|e| QueryError::BadData(format!("invalid parameter \"query\": {e}")))
}

/// Strips any number of parentheses around an expression.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// The fixed evaluation time an `@` modifier asks for, if any. `start()` and
/// `end()` always mean the outermost query's bounds, also inside subqueries.
pub(crate) fn at_ms(at: &Option<AtModifier>, query_start: i64, query_end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(query_start),
        Some(AtModifier::End) => Some(query_end),
        Some(AtModifier::At(t)) => Some(system_time_ms(t)),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// The matcher sets of a selector: one set normally, several when the
/// selector uses `or` between matcher groups (series matching any set).
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, QueryError> {
    let name = vs
        .name
        .as_ref()
        .map(|n| Matcher::equal(METRIC_NAME, n.clone()));
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, QueryError> {
        let mut out: Vec<Matcher> = name.iter().cloned().collect();
        for m in ms {
            out.push(convert_matcher(m)?);
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![convert(&vs.matchers.matchers)?]);
    }
    let mut sets = Vec::new();
    if !vs.matchers.matchers.is_empty() {
        sets.push(convert(&vs.matchers.matchers)?);
    }
    for group in &vs.matchers.or_matchers {
        sets.push(convert(group)?);
    }
    Ok(sets)
}

fn convert_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, QueryError> {
    let value = unescape(&m.value).map_err(QueryError::BadData)?;
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::Regex,
        PMatchOp::NotRe(_) => MatchOp::NotRegex,
    };
    Matcher::new(op, m.name.clone(), value).map_err(|e| {
        QueryError::BadData(format!(
            "invalid regular expression in matcher {}: {e}",
            m.name
        ))
    })
}

/// The equality matchers of a selector as labels, Prometheus's rule for what
/// `absent()` and `absent_over_time()` report: a name matched more than once,
/// or by anything but `=`, is left out.
pub(crate) fn absent_labels(arg: &Expr) -> crate::model::Labels {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return crate::model::Labels::default(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
    {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, PMatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            pairs.push((
                m.name.clone(),
                unescape(&m.value).unwrap_or_else(|_| m.value.clone()),
            ));
            seen.push(&m.name);
        } else {
            pairs.retain(|(n, _)| n != &m.name);
        }
    }
    crate::model::Labels::new(pairs)
}

/// Undoes Go string-literal escapes. promql-parser 0.6 keeps the escapes of
/// quoted strings as written (it only strips the quotes), and nothing in the
/// crate exposes its unescaping, so this follows Go's `strconv.Unquote` rules.
pub(crate) fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let esc = chars
            .next()
            .ok_or_else(|| format!("string {s:?} ends in a lone backslash"))?;
        let simple = match esc {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '`' => Some(esc),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            continue;
        }
        let (digits, radix) = match esc {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("invalid escape sequence \\{esc} in {s:?}")),
        };
        let mut code = if radix == 8 {
            esc.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..digits {
            let d = chars
                .next()
                .and_then(|d| d.to_digit(radix))
                .ok_or_else(|| format!("invalid escape sequence \\{esc} in {s:?}"))?;
            code = code * radix + d;
        }
        out.push(
            char::from_u32(code)
                .ok_or_else(|| format!("invalid character code {code} in {s:?}"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_go() {
        assert_eq!(unescape(r#"a\\b\"c\n"#).unwrap(), "a\\b\"c\n");
        assert_eq!(unescape(r"\x41\u00e9\101").unwrap(), "AéA");
        assert!(unescape(r"\q").is_err());
        assert!(unescape("x\\").is_err());
    }

    #[test]
    fn selector_matchers_include_name_and_unescape() {
        let Expr::VectorSelector(vs) = parse(r#"up{job="a\\b", x=~"a\\.b"}"#).unwrap() else {
            panic!("not a selector")
        };
        let sets = selector_matchers(&vs).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0][0].name, METRIC_NAME);
        assert_eq!(sets[0][1].value, "a\\b");
        assert!(sets[0][2].matches("a.b"));
        assert!(!sets[0][2].matches("axb"));
    }

    #[test]
    fn absent_labels_drop_repeated_names() {
        let e = parse(r#"x{job="a", job="b", foo="bar", m=~"x"}"#).unwrap();
        assert_eq!(absent_labels(&e).to_string(), r#"{foo="bar"}"#);
    }
}
