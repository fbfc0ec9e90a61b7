//! The subset of Go's text/template that `line_format` and `label_format`
//! use in practice: text, `{{.label}}` / `{{ .label }}`, pipelines
//! (`{{ .a | ToUpper }}`, `{{ replace "x" "y" .a }}`), parentheses, `{{-`/`-}}`
//! trimming, `{{ if .a }}..{{ else }}..{{ end }}`, and the Loki/sprig string
//! functions listed in `call`. Missing labels render as "" (Loki runs templates
//! with `missingkey=zero`). Hand-written: no Rust crate implements Go templates.

use std::fmt;

use super::template_funcs::{FUNCTIONS, Value, call};

/// What a template reads: labels, and the current line and timestamp.
pub(crate) trait TemplateCtx {
    fn label(&self, name: &str) -> Option<&str>;
    fn line(&self) -> &str;
    fn ts_ns(&self) -> i64;
}

#[derive(Clone)]
pub(crate) struct Template {
    nodes: Vec<Node>,
    source: String,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

type Pipeline = Vec<Cmd>;

#[derive(Clone, Debug)]
struct Cmd {
    /// A function name, or `None` when the command is a single operand.
    func: Option<String>,
    args: Vec<Operand>,
}

#[derive(Clone, Debug)]
enum Operand {
    Field(String),
    Str(String),
    Num(String),
    Sub(Pipeline),
}

/// A template error: the message says what is wrong in which template.
#[derive(Debug)]
pub(crate) struct TemplateError(pub String);

impl Template {
    pub(crate) fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut p = TParser {
            src,
            pos: 0,
            depth: 0,
        };
        let (nodes, end) = p.parse_list()?;
        if let Some(e) = end {
            return Err(TemplateError(format!("unexpected {{{{{e}}}}}")));
        }
        Ok(Template {
            nodes,
            source: src.to_string(),
        })
    }

    pub(crate) fn render(&self, ctx: &dyn TemplateCtx) -> Result<String, TemplateError> {
        let mut out = String::new();
        render_nodes(&self.nodes, ctx, &mut out)?;
        Ok(out)
    }
}

fn render_nodes(
    nodes: &[Node],
    ctx: &dyn TemplateCtx,
    out: &mut String,
) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&eval_pipeline(p, ctx)?.into_string()),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let truthy = match eval_pipeline(cond, ctx)? {
                    Value::Str(s) => !s.is_empty() && s != "false",
                    Value::Time(_) => true,
                };
                render_nodes(if truthy { then } else { otherwise }, ctx, out)?;
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, ctx: &dyn TemplateCtx) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        let mut args = Vec::with_capacity(cmd.args.len() + 1);
        for a in &cmd.args {
            args.push(match a {
                Operand::Field(name) => Value::Str(ctx.label(name).unwrap_or("").to_string()),
                Operand::Str(s) | Operand::Num(s) => Value::Str(s.clone()),
                Operand::Sub(p) => eval_pipeline(p, ctx)?,
            });
        }
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &cmd.func {
            None => {
                if args.len() != 1 {
                    return Err(TemplateError("can't give argument to non-function".into()));
                }
                args.remove(0)
            }
            Some(f) => call(f, args, ctx)?,
        });
    }
    prev.ok_or_else(|| TemplateError("missing value for command".into()))
}

struct TParser<'a> {
    src: &'a str,
    pos: usize,
    /// Open `{{if}}` blocks.
    depth: usize,
}

/// Nesting bound for parentheses and `{{if}}` (keeps hostile templates off the stack).
const MAX_DEPTH: usize = 32;
/// Largest string one function may build (`repeat`).
pub(super) const MAX_OUTPUT: usize = 1 << 20;

impl TParser<'_> {
    /// Parses nodes until the end or an `{{else}}`/`{{end}}`, which it returns.
    fn parse_list(&mut self) -> Result<(Vec<Node>, Option<&'static str>), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    nodes.push(Node::Text(rest.to_string()));
                }
                self.pos = self.src.len();
                return Ok((nodes, None));
            };
            let mut text = &rest[..open];
            self.pos += open + 2;
            if self.src[self.pos..].starts_with("- ") || self.src[self.pos..].starts_with("-\t") {
                text = text.trim_end();
                self.pos += 1;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_string()));
            }
            let toks = self.action_tokens()?;
            match toks.first() {
                Some(ATok::Ident(k)) if k == "end" || k == "else" => {
                    if toks.len() != 1 {
                        return Err(TemplateError(format!("unexpected arguments after {k}")));
                    }
                    return Ok((nodes, Some(if k == "end" { "end" } else { "else" })));
                }
                Some(ATok::Ident(k)) if k == "if" => {
                    let cond = parse_pipeline(&toks[1..], 0)?;
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(TemplateError(format!(
                            "{{{{if}}}} nested deeper than {MAX_DEPTH} levels"
                        )));
                    }
                    let (then, end) = self.parse_list()?;
                    let otherwise = match end {
                        Some("else") => match self.parse_list()? {
                            (n, Some("end")) => n,
                            _ => {
                                return Err(TemplateError("missing {{end}} after {{else}}".into()));
                            }
                        },
                        Some(_) => Vec::new(),
                        None => {
                            return Err(TemplateError("unexpected EOF: missing {{end}}".into()));
                        }
                    };
                    self.depth -= 1;
                    nodes.push(Node::If {
                        cond,
                        then,
                        otherwise,
                    });
                }
                Some(ATok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "range" | "with" | "define" | "template" | "block"
                    ) =>
                {
                    return Err(TemplateError(format!("{{{{{k}}}}} is not supported")));
                }
                _ => nodes.push(Node::Action(parse_pipeline(&toks, 0)?)),
            }
        }
    }

    /// Tokens of one action up to and including `}}` (or `-}}`, which trims
    /// the whitespace after it).
    fn action_tokens(&mut self) -> Result<Vec<ATok>, TemplateError> {
        let mut toks = Vec::new();
        let b = self.src.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                // ` -}}` trims what follows.
                if self.src[self.pos..].starts_with(" -}}")
                    || self.src[self.pos..].starts_with("\t-}}")
                {
                    self.pos += 4;
                    let rest = &self.src[self.pos..];
                    self.pos += rest.len() - rest.trim_start().len();
                    return Ok(toks);
                }
                self.pos += 1;
            }
            let rest = &self.src[self.pos..];
            if rest.is_empty() {
                return Err(TemplateError("unclosed action".into()));
            }
            if rest.starts_with("}}") {
                self.pos += 2;
                return Ok(toks);
            }
            let c = rest.chars().next().unwrap_or(' ');
            let (tok, len) = match c {
                '|' => (ATok::Pipe, 1),
                '(' => (ATok::LParen, 1),
                ')' => (ATok::RParen, 1),
                '"' => {
                    let (s, len) = quoted(rest)?;
                    (ATok::Str(s), len)
                }
                '`' => match rest[1..].find('`') {
                    Some(e) => (ATok::Str(rest[1..1 + e].to_string()), e + 2),
                    None => return Err(TemplateError("unterminated raw quoted string".into())),
                },
                '.' => {
                    let len = 1 + rest[1..]
                        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                        .unwrap_or(rest.len() - 1);
                    if len == 1 {
                        return Err(TemplateError(
                            "{{.}} (the whole label map) is not supported".into(),
                        ));
                    }
                    (ATok::Field(rest[1..len].to_string()), len)
                }
                c if c.is_ascii_digit() || c == '-' => {
                    let len = rest[1..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.'))
                        .map_or(rest.len(), |l| l + 1);
                    (ATok::Num(rest[..len].to_string()), len)
                }
                c if c.is_alphabetic() || c == '_' => {
                    let len = rest
                        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                        .unwrap_or(rest.len());
                    (ATok::Ident(rest[..len].to_string()), len)
                }
                c => return Err(TemplateError(format!("unexpected {c:?} in command"))),
            };
            toks.push(tok);
            self.pos += len;
        }
    }
}

fn quoted(s: &str) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, e @ ('\\' | '"' | '\''))) => out.push(e),
                Some((_, e)) => return Err(TemplateError(format!("unknown escape \\{e}"))),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(TemplateError("unterminated quoted string".into()))
}

#[derive(Clone, Debug, PartialEq)]
enum ATok {
    Pipe,
    LParen,
    RParen,
    Str(String),
    Num(String),
    Field(String),
    Ident(String),
}

fn parse_pipeline(toks: &[ATok], depth: usize) -> Result<Pipeline, TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError(format!(
            "template nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if toks.is_empty() {
        return Err(TemplateError("missing value for command".into()));
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    loop {
        let mut operands = Vec::new();
        let mut func = None;
        while i < toks.len() && toks[i] != ATok::Pipe {
            match &toks[i] {
                ATok::Ident(name) if operands.is_empty() && func.is_none() => {
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return Err(TemplateError(format!("function {name:?} not defined")));
                    }
                    func = Some(name.clone())
                }
                ATok::Ident(name) if name.starts_with("__") => {
                    // A zero-arg function as an operand: `ToUpper __line__`.
                    operands.push(Operand::Sub(vec![Cmd {
                        func: Some(name.clone()),
                        args: vec![],
                    }]))
                }
                ATok::Ident(name) => {
                    return Err(TemplateError(format!("unexpected {name} in operand")));
                }
                ATok::Str(s) => operands.push(Operand::Str(s.clone())),
                ATok::Num(s) => operands.push(Operand::Num(s.clone())),
                ATok::Field(f) => operands.push(Operand::Field(f.clone())),
                ATok::LParen => {
                    let mut level = 0;
                    let start = i + 1;
                    let mut end = None;
                    for (j, t) in toks.iter().enumerate().skip(i) {
                        match t {
                            ATok::LParen => level += 1,
                            ATok::RParen => {
                                level -= 1;
                                if level == 0 {
                                    end = Some(j);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let end = end.ok_or_else(|| TemplateError("unclosed left paren".into()))?;
                    operands.push(Operand::Sub(parse_pipeline(&toks[start..end], depth + 1)?));
                    i = end;
                }
                ATok::RParen => return Err(TemplateError("unexpected right paren".into())),
                ATok::Pipe => break,
            }
            i += 1;
        }
        if func.is_none() && operands.is_empty() {
            return Err(TemplateError("missing command".into()));
        }
        if func.is_none() && (operands.len() > 1 || !cmds.is_empty()) {
            return Err(TemplateError("can't give argument to non-function".into()));
        }
        cmds.push(Cmd {
            func,
            args: operands,
        });
        if i >= toks.len() {
            return Ok(cmds);
        }
        i += 1; // the pipe
        if i >= toks.len() {
            return Err(TemplateError("missing command after |".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx(Vec<(&'static str, &'static str)>);
    impl TemplateCtx for Ctx {
        fn label(&self, name: &str) -> Option<&str> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        }
        fn line(&self) -> &str {
            "the line"
        }
        fn ts_ns(&self) -> i64 {
            1_700_000_000_500_000_000
        }
    }

    fn render(t: &str) -> String {
        let ctx = Ctx(vec![("level", "error"), ("msg", "Disk Full"), ("n", "")]);
        Template::parse(t).unwrap().render(&ctx).unwrap()
    }

    #[test]
    fn fields_and_text() {
        assert_eq!(render("{{.level}}: {{ .msg }}"), "error: Disk Full");
        assert_eq!(render("[{{.missing}}]"), "[]");
        assert_eq!(render("no actions"), "no actions");
    }

    #[test]
    fn functions_and_pipes() {
        assert_eq!(render("{{ .level | ToUpper }}"), "ERROR");
        assert_eq!(render("{{ ToLower .msg }}"), "disk full");
        assert_eq!(render(r#"{{ .msg | replace " " "_" }}"#), "Disk_Full");
        assert_eq!(render(r#"{{ Replace .msg "k" "K" -1 }}"#), "DisK Full");
        assert_eq!(render(r#"{{ default "none" .n }}"#), "none");
        assert_eq!(render("{{ __line__ | ToUpper }}"), "THE LINE");
        assert_eq!(render("{{ __timestamp__ | unixEpoch }}"), "1700000000");
        assert_eq!(
            render("{{ __timestamp__ }}"),
            "2023-11-14 22:13:20.5 +0000 UTC"
        );
        assert_eq!(
            render(r#"{{ printf "%s-%s" .level .msg }}"#),
            "error-Disk Full"
        );
        assert_eq!(render("{{ ToUpper (ToLower .msg) }}"), "DISK FULL");
    }

    #[test]
    fn trim_markers_and_if() {
        assert_eq!(render("a  {{- .level -}}  b"), "aerrorb");
        assert_eq!(render("{{ if .level }}yes{{ else }}no{{ end }}"), "yes");
        assert_eq!(render("{{ if .n }}yes{{ else }}no{{ end }}"), "no");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let parens = format!("{{{{ {}.a{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Template::parse(&parens).is_err());
        let ifs = format!(
            "{}x{}",
            "{{if .a}}".repeat(10_000),
            "{{end}}".repeat(10_000)
        );
        assert!(Template::parse(&ifs).is_err());
    }

    #[test]
    fn errors() {
        for bad in [
            "{{",
            "{{ .a",
            "{{ nosuch .a }}",
            "{{ \"x }}",
            "{{ if .a }}",
            "{{ end }}",
            "{{ . }}",
            "{{ .a | }}",
            "{{ (.a }}",
            "{{ repeat 100000000 \"xx\" }}",
        ] {
            let r = Template::parse(bad).and_then(|t| t.render(&Ctx(vec![])));
            assert!(r.is_err(), "{bad} should fail");
        }
    }
}
