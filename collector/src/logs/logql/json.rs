//! The `json` parser stage: flattens a JSON object line into labels as Loki
//! does (nested keys joined with `_`, characters outside `[a-zA-Z0-9_]` become
//! `_`, a leading digit gets a `_` prefix, arrays and nulls skipped, numbers
//! kept as written, first duplicate wins) or extracts given paths
//! (`json a="x.y[0]"`). Hand-written rather than serde_json because Loki keeps
//! numbers' original text and returns nested values as their raw JSON, which
//! serde_json's default `Value` does not preserve.

use super::ast::{JsonPath, JsonStep};

/// Nesting deeper than this is treated as malformed (keeps garbage input from
/// exhausting the stack).
const MAX_DEPTH: usize = 128;

enum J<'a> {
    Str(String),
    /// The number's text as written.
    Num(&'a str),
    Bool(bool),
    Null,
    /// Members, and the raw text of the whole object.
    Obj(Vec<(String, J<'a>)>, &'a str),
    Arr(Vec<J<'a>>, &'a str),
}

/// Parses `line` as one JSON value; the error says what is wrong and where.
fn parse(line: &str) -> Result<J<'_>, String> {
    let mut p = P {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("unexpected trailing data at offset {}", p.i));
    }
    Ok(v)
}

struct P<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at offset {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<J<'a>, String> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        match self.b.get(self.i) {
            None => self.err("unexpected end of input"),
            Some(b'{') => {
                let start = self.i;
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(J::Obj(members, &self.s[start..self.i]));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a string key");
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(J::Obj(members, &self.s[start..self.i]));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                let start = self.i;
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(J::Arr(items, &self.s[start..self.i]));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(J::Arr(items, &self.s[start..self.i]));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(J::Str(self.string()?)),
            Some(b't') => self.lit("true", J::Bool(true)),
            Some(b'f') => self.lit("false", J::Bool(false)),
            Some(b'n') => self.lit("null", J::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.i += 1;
                }
                let text = &self.s[start..self.i];
                if text.parse::<f64>().is_err() {
                    return self.err("invalid number");
                }
                Ok(J::Num(text))
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn lit(&mut self, word: &str, v: J<'a>) -> Result<J<'a>, String> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.i..];
            // Bytes, not chars: both stops are ASCII, so any hit is a char boundary.
            let Some(stop) = rest.bytes().position(|c| c == b'"' || c == b'\\') else {
                return self.err("unterminated string");
            };
            out.push_str(&rest[..stop]);
            self.i += stop;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Ok(out);
            }
            self.i += 1;
            let Some(&e) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&hi) && self.s[self.i..].starts_with("\\u")
                    {
                        self.i += 2;
                        let lo = self.hex4()?;
                        let code =
                            0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                        char::from_u32(code)
                    } else {
                        char::from_u32(hi)
                    };
                    // Lone surrogates become a space, as Loki replaces invalid UTF-8.
                    out.push(c.unwrap_or(' '));
                }
                _ => return self.err("invalid escape"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.err("invalid \\u escape"),
        }
    }
}

/// Appends `key` sanitized to a label name part to `to`.
fn push_sanitized(to: &mut String, key: &str) {
    let key = key.trim();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        to.push('_');
    }
    to.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// Flattens a JSON object line into `(name, value)` pairs; an error if the
/// line is not a JSON object. Streams over the line (no tree) since `| json`
/// runs on every line a query reads.
pub(crate) fn extract_all(line: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let mut p = P {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.b.get(p.i) != Some(&b'{') {
        return Err("the line is not a JSON object".into());
    }
    let first = out.len();
    let mut prefix = String::new();
    p.flatten_object(&mut prefix, 0, out, first)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("unexpected trailing data at offset {}", p.i));
    }
    Ok(())
}

impl P<'_> {
    /// Reads the object at `self.i` (a `{`), emitting scalar members under
    /// `prefix`; `first` is where this line's pairs start in `out` (first
    /// duplicate wins; lines have few keys, so a scan beats hashing).
    fn flatten_object(
        &mut self,
        prefix: &mut String,
        depth: usize,
        out: &mut Vec<(String, String)>,
        first: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return self.err("expected a string key");
            }
            let k = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return self.err("expected ':'");
            }
            self.i += 1;
            self.ws();
            let base = prefix.len();
            if !k.trim().is_empty() {
                if !prefix.is_empty() {
                    prefix.push('_');
                }
                push_sanitized(prefix, &k);
            }
            let value = match self.b.get(self.i) {
                Some(b'{') => {
                    self.flatten_object(prefix, depth + 1, out, first)?;
                    None
                }
                _ => match self.value(depth + 1)? {
                    J::Str(s) => Some(s),
                    J::Num(n) => Some(n.to_string()),
                    J::Bool(b) => Some(b.to_string()),
                    J::Null | J::Arr(..) | J::Obj(..) => None,
                },
            };
            if let Some(v) = value
                && !prefix.is_empty()
                && !v.is_empty()
                && !out[first..].iter().any(|(n, _)| n == prefix)
            {
                out.push((prefix.clone(), v));
            }
            prefix.truncate(base);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }
}

/// Extracts the given paths; a path that is absent yields no label. Objects
/// and arrays are returned as their raw JSON text.
pub(crate) fn extract_paths(
    line: &str,
    paths: &[(String, JsonPath)],
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let root = parse(line)?;
    for (name, path) in paths {
        let mut cur = &root;
        let mut found = true;
        for step in path {
            let next = match (step, cur) {
                (JsonStep::Key(k), J::Obj(members, _)) => {
                    members.iter().find(|(mk, _)| mk == k).map(|(_, v)| v)
                }
                (JsonStep::Index(i), J::Arr(items, _)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let value = match cur {
            J::Str(s) => s.clone(),
            J::Num(n) => n.to_string(),
            J::Bool(b) => b.to_string(),
            J::Null => String::new(),
            J::Obj(_, raw) | J::Arr(_, raw) => raw.to_string(),
        };
        out.push((name.clone(), value));
    }
    Ok(())
}

/// Parses a path expression: `a.b`, `a[0].b`, `["key with.dot"]`.
pub(crate) fn parse_path(expr: &str) -> Result<JsonPath, String> {
    let mut steps = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut expect_key = true;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                expect_key = true;
            }
            b'[' => {
                let close = expr[i..]
                    .find(']')
                    .map(|c| c + i)
                    .ok_or_else(|| format!("unclosed [ in JSON path {expr:?}"))?;
                let inner = expr[i + 1..close].trim();
                if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(JsonStep::Key(q.to_string()));
                } else {
                    let idx = inner
                        .parse::<usize>()
                        .map_err(|_| format!("invalid index {inner:?} in JSON path {expr:?}"))?;
                    steps.push(JsonStep::Index(idx));
                }
                i = close + 1;
                expect_key = false;
            }
            _ => {
                if !expect_key {
                    return Err(format!("unexpected character at {i} in JSON path {expr:?}"));
                }
                let end = expr[i..].find(['.', '[']).map_or(expr.len(), |e| e + i);
                steps.push(JsonStep::Key(expr[i..end].to_string()));
                i = end;
                expect_key = false;
            }
        }
    }
    if steps.is_empty() {
        return Err(format!("empty JSON path {expr:?}"));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(line: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        extract_all(line, &mut out).map(|_| out)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn flattens_like_loki() {
        let got = all(r#"{"level":"info","req":{"method":"GET","status":200,"dur":1.50},"tags":["a"],"n":null,"ok":true,"a.b-c":"x","1st":"y","s":"q\"\u00e9"}"#).unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("level", "info"),
                ("req_method", "GET"),
                ("req_status", "200"),
                ("req_dur", "1.50"),
                ("ok", "true"),
                ("a_b_c", "x"),
                ("_1st", "y"),
                ("s", "q\"é"),
            ])
        );
    }

    #[test]
    fn first_duplicate_wins() {
        assert_eq!(all(r#"{"a":"1","a":"2"}"#).unwrap(), pairs(&[("a", "1")]));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "",
            "not json",
            "{",
            r#"{"a":}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            "[1,2]",
            "\"str\"",
            r#"{"a":"\q"}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\ud800"}x"#,
        ] {
            assert!(all(bad).is_err(), "{bad:?} should fail");
        }
        let deep = "[".repeat(10_000);
        assert!(all(&format!("{{\"a\":{deep}}}")).is_err());
    }

    #[test]
    fn paths() {
        let mut out = Vec::new();
        let paths = vec![
            ("m".to_string(), parse_path("req.method").unwrap()),
            ("first".to_string(), parse_path("tags[0]").unwrap()),
            ("obj".to_string(), parse_path("req").unwrap()),
            ("dotted".to_string(), parse_path(r#"["a.b"]"#).unwrap()),
            ("none".to_string(), parse_path("nope.x").unwrap()),
        ];
        extract_paths(
            r#"{"req":{"method":"GET"},"tags":["t1","t2"],"a.b":5}"#,
            &paths,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            pairs(&[
                ("m", "GET"),
                ("first", "t1"),
                ("obj", r#"{"method":"GET"}"#),
                ("dotted", "5")
            ])
        );
        assert!(parse_path("a[x]").is_err());
        assert!(parse_path("").is_err());
        assert!(parse_path("a[1").is_err());
    }
}
