//! The `logfmt` parser stage, following go-logfmt's decoder as Loki uses it:
//! `key=value`, `key="quoted \"value\""`, bare `key` (kept only with
//! `--keep-empty`). A malformed pair (`=x`, `a"b`, `a=b=c`, an unterminated
//! quote) is skipped, or with `--strict` ends parsing with an error.

/// Parses `line`; pairs go to `out` (keys not yet sanitized). With `strict`,
/// the first malformed pair is an error (pairs before it stay in `out`).
pub(crate) fn parse(
    line: &str,
    strict: bool,
    keep_empty: bool,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            return Ok(());
        }
        match pair(line, i) {
            Ok((key, value, next)) => {
                if !value.is_empty() || keep_empty {
                    out.push((key.to_string(), value));
                }
                i = next;
            }
            Err((msg, at)) => {
                if strict {
                    return Err(format!("logfmt syntax error at pos {}: {msg}", at + 1));
                }
                // Skip the malformed token up to the next space.
                i = at;
                while i < b.len() && b[i] > b' ' {
                    i += 1;
                }
            }
        }
    }
}

type PairResult<'a> = Result<(&'a str, String, usize), (String, usize)>;

/// One pair starting at a non-space byte: the key, the value, and where the
/// next pair may start; or a message and the offending offset.
fn pair(line: &str, start: usize) -> PairResult<'_> {
    let b = line.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'=' => break,
            b'"' => return Err(("unexpected '\"'".into(), i)),
            c if c <= b' ' => return Ok((&line[start..i], String::new(), i)),
            _ => i += 1,
        }
    }
    let key = &line[start..i];
    if i >= b.len() {
        return Ok((key, String::new(), i));
    }
    if key.is_empty() {
        return Err(("unexpected '='".into(), i));
    }
    i += 1; // '='
    if i >= b.len() || b[i] <= b' ' {
        return Ok((key, String::new(), i));
    }
    if b[i] == b'"' {
        let (v, next) = quoted(line, i)?;
        return Ok((key, v, next));
    }
    let vstart = i;
    while i < b.len() && b[i] > b' ' {
        if b[i] == b'=' || b[i] == b'"' {
            return Err((format!("unexpected '{}'", b[i] as char), i));
        }
        i += 1;
    }
    Ok((key, line[vstart..i].to_string(), i))
}

fn quoted(line: &str, start: usize) -> Result<(String, usize), (String, usize)> {
    let mut out = String::new();
    let mut chars = line[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + off + 1)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' | '"' | '/' | '\'' => out.push(e),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                            Some(ch) => out.push(ch),
                            None => return Err(("invalid quoted value".into(), start + 1 + off)),
                        }
                    }
                    _ => return Err(("invalid quoted value".into(), start + 1 + off)),
                }
            }
            c => out.push(c),
        }
    }
    Err(("unterminated quoted value".into(), line.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str, strict: bool, keep_empty: bool) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        parse(line, strict, keep_empty, &mut out).map(|_| out)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn pairs_quotes_and_bare_keys() {
        assert_eq!(
            run(
                r#"level=info msg="disk \"full\"" took=10ms flag a.b=c empty="#,
                false,
                false
            )
            .unwrap(),
            pairs(&[
                ("level", "info"),
                ("msg", "disk \"full\""),
                ("took", "10ms"),
                ("a.b", "c")
            ])
        );
        assert_eq!(
            run("flag x=1", false, true).unwrap(),
            pairs(&[("flag", ""), ("x", "1")])
        );
    }

    #[test]
    fn malformed_pairs_skipped_or_strict_error() {
        assert_eq!(
            run("a=1 =x b=2", false, false).unwrap(),
            pairs(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(
            run("a=1 x=y=z b=2", false, false).unwrap(),
            pairs(&[("a", "1"), ("b", "2")])
        );
        let e = run("a=1 =x b=2", true, false).unwrap_err();
        assert!(e.contains("unexpected '='"), "{e}");
        assert!(run(r#"a="unterminated"#, true, false).is_err());
        assert!(run(r#"k"ey=1"#, true, false).is_err());
        assert_eq!(run("", true, false).unwrap(), vec![]);
    }
}
