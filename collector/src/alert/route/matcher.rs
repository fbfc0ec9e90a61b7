//! Alertmanager's matcher strings (`name="value"`, `=`, `!=`, `=~`, `!~`), as
//! routes, inhibit rules and silences in the config file write them. Parsed into
//! the crate's `Matcher`, whose regexes are already fully anchored like
//! Alertmanager's. Hand-written: the grammar is one line and no crate in the
//! lockfile parses it.

use crate::model::{MatchOp, Matcher};

/// Parses one matcher: `severity="critical"`, `team=~"db|web"`, or an
/// unquoted value (`env=prod`), which Alertmanager's classic parser accepts too.
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let s = s.trim();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| format!("matcher {s:?}: no operator (write name=\"value\")"))?;
    let name = &s[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("matcher {s:?}: invalid label name {name:?}"));
    }
    let rest = s[name_end..].trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(format!(
            "matcher {s:?}: expected one of =, !=, =~, !~ after {name:?}"
        ));
    };
    let value = unquote(rest.trim()).map_err(|e| format!("matcher {s:?}: {e}"))?;
    Matcher::new(op, name, value).map_err(|e| {
        let first = e
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string();
        format!("matcher {s:?}: invalid regex: {first}")
    })
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.contains(['"', ',', '{', '}']) {
            return Err(format!("unquoted value {v:?} has a quote, comma or brace"));
        }
        return Ok(v.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(out)
                } else {
                    Err(format!(
                        "text after the closing quote: {:?}",
                        chars.as_str()
                    ))
                };
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c @ ('"' | '\\')) => out.push(c),
                // Regexes keep their own escapes (`\.`), as in Go's strconv.Unquote
                // they would be an error; Alertmanager's parser keeps them.
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("unterminated escape".into()),
            },
            c => out.push(c),
        }
    }
    Err("missing closing quote".into())
}

/// The matcher as Alertmanager prints it (`name="value"`), for route keys.
pub fn show(m: &Matcher) -> String {
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    };
    format!("{}{op}{:?}", m.name, m.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn parses_all_operators_and_anchors_regexes() {
        let l = Labels::from_pairs([("severity", "critical"), ("team", "dbx")]);
        assert!(
            parse_matcher(r#"severity="critical""#)
                .unwrap()
                .matches_labels(&l)
        );
        assert!(
            !parse_matcher(r#"severity!="critical""#)
                .unwrap()
                .matches_labels(&l)
        );
        // Anchored: "db|web" must not match "dbx".
        assert!(
            !parse_matcher(r#"team=~"db|web""#)
                .unwrap()
                .matches_labels(&l)
        );
        assert!(
            parse_matcher(r#"team!~"db|web""#)
                .unwrap()
                .matches_labels(&l)
        );
        assert!(
            parse_matcher("severity = critical")
                .unwrap()
                .matches_labels(&l)
        );
        assert_eq!(parse_matcher(r#"a="x\"y""#).unwrap().value, "x\"y");
    }

    #[test]
    fn rejects_bad_matchers_with_a_reason() {
        assert!(
            parse_matcher("severity")
                .unwrap_err()
                .contains("no operator")
        );
        assert!(
            parse_matcher(r#"a=~"(""#)
                .unwrap_err()
                .contains("invalid regex")
        );
        assert!(
            parse_matcher(r#"a="x"#)
                .unwrap_err()
                .contains("missing closing quote")
        );
        assert!(
            parse_matcher(r#"1a="x""#)
                .unwrap_err()
                .contains("invalid label name")
        );
    }
}
