//! A stream's label set as Loki's protobuf push writes it: `{a="b", c="d"}`.
//!
//! Hand-written: the grammar is a sliver of PromQL (names, `=`, quoted
//! values), and a strict parser with positioned errors is shorter than
//! adapting a PromQL parser that accepts much more (`!=`, `=~`, a metric name).

/// Parses `{name="value", ...}`: names `[a-zA-Z_][a-zA-Z0-9_]*`, values in
/// double quotes (Go escapes: `\"`, `\\`, `\n`, `\t`, `\r`, `\uXXXX`, ...) or
/// backticks (raw), a trailing comma allowed, each name at most once. Errors
/// say what was expected and at which byte offset.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = Parser { src: s, pos: 0 };
    p.skip_ws();
    p.expect('{')?;
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let name = p.name()?;
        p.skip_ws();
        match p.peek() {
            Some('=') if !p.rest().starts_with("=~") => p.pos += 1,
            Some('=' | '!') => {
                return Err(p.error(&format!(
                    "only = is allowed in a stream's labels (label {name:?})"
                )));
            }
            _ => return Err(p.error(&format!("expected = after label name {name:?}"))),
        }
        p.skip_ws();
        let value = p.value()?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        out.push((name, value));
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        return Err(p.error("expected , or } after a label value"));
    }
    p.skip_ws();
    if p.pos != s.len() {
        return Err(p.error("unexpected text after }"));
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {c:?}")))
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn error(&self, what: &str) -> String {
        match self.peek() {
            Some(c) => format!("{what} at offset {} (found {c:?})", self.pos),
            None => format!("{what} at offset {} (found end of text)", self.pos),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
        }
        let name = rest[..len].to_string();
        self.pos += len;
        Ok(name)
    }

    fn value(&mut self) -> Result<String, String> {
        if self.eat('`') {
            let rest = self.rest();
            let end = rest
                .find('`')
                .ok_or_else(|| self.error("unterminated `-quoted label value"))?;
            let v = rest[..end].to_string();
            self.pos += end + 1;
            return Ok(v);
        }
        let start = self.pos;
        self.expect('"')?;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        '"' | '\\' | '\'' => out.push(e),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'a' => out.push('\u{7}'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'v' => out.push('\u{b}'),
                        'u' | 'U' => {
                            let n = if e == 'u' { 4 } else { 8 };
                            let hex: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                            let ch = (hex.len() == n)
                                .then(|| u32::from_str_radix(&hex, 16).ok())
                                .flatten()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    format!(
                                        "invalid \\{e} escape {hex:?} in the label value at offset {start}"
                                    )
                                })?;
                            out.push(ch);
                        }
                        other => {
                            return Err(format!(
                                "unknown escape \\{other} in the label value at offset {start}"
                            ));
                        }
                    }
                }
                '\n' => {
                    return Err(format!(
                        "newline in the label value at offset {start} (write \\n)"
                    ));
                }
                c => out.push(c),
            }
        }
        Err(format!(
            "unterminated label value starting at offset {start}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_loki_label_strings() {
        assert_eq!(
            parse_labels(r#"{a="b", c="d"}"#).unwrap(),
            pairs(&[("a", "b"), ("c", "d")])
        );
        assert_eq!(
            parse_labels(r#" { job = "x\"y\\z\n" , _n2=`raw\n`, } "#).unwrap(),
            pairs(&[("job", "x\"y\\z\n"), ("_n2", "raw\\n")])
        );
        assert_eq!(
            parse_labels(r#"{a="\u00e9é"}"#).unwrap(),
            pairs(&[("a", "éé")])
        );
        assert_eq!(parse_labels("{}").unwrap(), pairs(&[]));
    }

    #[test]
    fn survives_garbage() {
        // Every prefix of valid inputs, and pseudo-random strings over the
        // grammar's characters plus multi-byte ones: errors, never panics.
        let valid = r#"{a="b\u00e9\"", c=`d`, e="é\n"}"#;
        for (i, _) in valid.char_indices() {
            let _ = parse_labels(&valid[..i]);
        }
        let alphabet: Vec<char> = "{}=,\"`\\ ua0_é😀!~\n".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse_labels(&s);
        }
    }

    #[test]
    fn refuses_everything_else_with_a_position() {
        for (bad, want) in [
            (r#"a="b""#, "expected '{' at offset 0"),
            (r#"{a="b""#, "expected , or }"),
            (r#"{a="b}"#, "unterminated label value"),
            (r#"{a!="b"}"#, "only = is allowed"),
            (r#"{a=~"b"}"#, "only = is allowed"),
            (r#"{1a="b"}"#, "expected a label name"),
            (r#"{a-b="c"}"#, "expected = after label name \"a\""),
            (r#"{a=b}"#, "expected '\"'"),
            (r#"{a="b", a="c"}"#, "duplicate label name \"a\""),
            (r#"{a="\q"}"#, "unknown escape \\q"),
            (r#"{a="\u12"}"#, "invalid \\u escape"),
            (r#"{a="b"} x"#, "unexpected text after }"),
            ("", "expected '{'"),
        ] {
            let e = parse_labels(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
