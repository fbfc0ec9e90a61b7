//! The `pattern` parser stage (`| pattern "<ip> - - [<_>] \"<method> <uri> <_>\""`),
//! matching as Loki does: a leading literal must start the line; each capture
//! takes the text up to the next occurrence of the literal after it; a
//! trailing capture takes the rest; if a literal is missing the capture takes
//! the rest and matching stops. `<_>` skips without a label.

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Literal(String),
    /// `None` for `<_>`.
    Capture(Option<String>),
}

#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    nodes: Vec<Node>,
}

impl Pattern {
    /// A pattern for the `|>`/`!>` line filters: captures are wildcards, so
    /// none need a name.
    pub(crate) fn parse_filter(src: &str) -> Result<Pattern, String> {
        Self::parse_nodes(src)
    }

    pub(crate) fn parse(src: &str) -> Result<Pattern, String> {
        let p = Self::parse_nodes(src)?;
        if !p.nodes.iter().any(|n| matches!(n, Node::Capture(Some(_)))) {
            return Err(format!(
                "at least one named capture is required in pattern {src:?}"
            ));
        }
        Ok(p)
    }

    fn parse_nodes(src: &str) -> Result<Pattern, String> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<')
                && let Some(end) = after.find('>')
                && is_capture_name(&after[..end])
            {
                let name = &after[..end];
                if !lit.is_empty() {
                    nodes.push(Node::Literal(std::mem::take(&mut lit)));
                }
                if matches!(nodes.last(), Some(Node::Capture(_))) {
                    return Err(format!(
                        "consecutive captures are not allowed in pattern {src:?}"
                    ));
                }
                let cap = (name != "_").then(|| name.to_string());
                if let Some(n) = &cap
                    && nodes
                        .iter()
                        .any(|x| matches!(x, Node::Capture(Some(m)) if m == n))
                {
                    return Err(format!("duplicate capture <{n}> in pattern {src:?}"));
                }
                nodes.push(Node::Capture(cap));
                rest = &after[end + 1..];
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            nodes.push(Node::Literal(lit));
        }
        Ok(Pattern { nodes })
    }

    /// Whether `line` matches as a whole (Loki's pattern line filter): the
    /// literals occur in order, no capture is empty, and the line ends where
    /// the pattern does (with text left only if it ends on a capture).
    pub(crate) fn test(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let mut off = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            let Node::Literal(lit) = node else { continue };
            let Some(j) = line[off..].find(lit.as_str()) else {
                return false;
            };
            if i != 0 && j == 0 {
                return false;
            }
            off += j + lit.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_on_capture == (off != line.len())
    }

    /// Named captures found in `line`, in pattern order.
    pub(crate) fn matches<'l>(&self, line: &'l str) -> Vec<(&str, &'l str)> {
        let mut out = Vec::new();
        if line.is_empty() {
            return out;
        }
        let mut input = line;
        let mut nodes = self.nodes.as_slice();
        if let Some(Node::Literal(l)) = nodes.first() {
            match input.strip_prefix(l.as_str()) {
                Some(r) => input = r,
                None => return out,
            }
            nodes = &nodes[1..];
        }
        while let Some(Node::Capture(cap)) = nodes.first() {
            let Some(Node::Literal(lit)) = nodes.get(1) else {
                // A trailing capture takes the rest of the line.
                if let Some(n) = cap {
                    out.push((n.as_str(), input));
                }
                return out;
            };
            nodes = &nodes[2..];
            match input.find(lit.as_str()) {
                None => {
                    if let Some(n) = cap {
                        out.push((n.as_str(), input));
                    }
                    return out;
                }
                Some(i) => {
                    if let Some(n) = cap {
                        out.push((n.as_str(), &input[..i]));
                    }
                    input = &input[i + lit.len()..];
                }
            }
        }
        out
    }
}

fn is_capture_name(s: &str) -> bool {
    s == "_"
        || (s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_like_line() {
        let p = Pattern::parse(r#"<ip> - - [<_>] "<method> <uri> <_>" <status> <size>"#).unwrap();
        let line =
            r#"10.0.0.1 - - [22/Nov/2026:03:00:00 +0000] "GET /index.html HTTP/1.1" 200 512"#;
        assert_eq!(
            p.matches(line),
            vec![
                ("ip", "10.0.0.1"),
                ("method", "GET"),
                ("uri", "/index.html"),
                ("status", "200"),
                ("size", "512")
            ]
        );
    }

    #[test]
    fn leading_literal_and_missing_literal() {
        let p = Pattern::parse("level=<lvl> took=<t>ms").unwrap();
        assert_eq!(
            p.matches("level=info took=12ms"),
            vec![("lvl", "info"), ("t", "12")]
        );
        assert_eq!(p.matches("lvl=info"), vec![]);
        assert_eq!(p.matches("level=warn only"), vec![("lvl", "warn only")]);
        assert!(p.matches("").is_empty());
    }

    #[test]
    fn line_filter_test() {
        let p = Pattern::parse_filter("<_> bar <_>").unwrap();
        assert!(p.test("foo bar baz"));
        assert!(!p.test(" bar "));
        assert!(!p.test("foo baz"));
        assert!(
            Pattern::parse_filter("<_> baz")
                .unwrap()
                .test("foo bar baz")
        );
        assert!(
            !Pattern::parse_filter("<_> bar")
                .unwrap()
                .test("foo bar baz")
        );
        assert!(
            Pattern::parse_filter("foo <_>")
                .unwrap()
                .test("foo bar baz")
        );
        assert!(!Pattern::parse_filter("<_>").unwrap().test(""));
    }

    #[test]
    fn invalid_patterns() {
        assert!(Pattern::parse("<a><b>").is_err());
        assert!(Pattern::parse("no captures <_>").is_err());
        assert!(Pattern::parse("<a> <a>").is_err());
        // `<1x>` is not a capture, so it is literal text.
        assert_eq!(
            Pattern::parse("<1x> <a>").unwrap().matches("<1x> v"),
            vec![("a", "v")]
        );
    }
}
