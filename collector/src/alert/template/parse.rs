//! Parser: tokens to [`Node`]s, following Go's text/template/parse, including
//! its checks for undefined functions and variables at parse time.

use super::ast::{Arg, ArgKind, Branch, Cmd, Node, Num, Pipe};
use super::format::quote;
use super::funcs;
use super::lexer::{Tok, Token, lex};

/// Parses `text`; errors read like Go's: `template: NAME:LINE: message`.
pub fn parse(name: &str, text: &str) -> Result<Vec<Node>, String> {
    parse_lines(text).map_err(|(line, msg)| format!("template: {name}:{line}: {msg}"))
}

/// Parses `text`; the error is `(line, message)`.
pub fn parse_lines(text: &str) -> Result<Vec<Node>, (usize, String)> {
    let fail = |pos: usize, msg: String| {
        let line = 1 + text[..pos.min(text.len())].matches('\n').count();
        (line, msg)
    };
    let toks = lex(text).map_err(|(p, m)| fail(p, m))?;
    let mut p = Parser {
        toks,
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
    };
    let (list, end) = p.list().map_err(|(p, m)| fail(p, m))?;
    match end {
        Stop::Eof => Ok(list),
        Stop::End(pos) => Err(fail(pos, "unexpected {{end}}".into())),
        Stop::Else(pos) => Err(fail(pos, "unexpected {{else}}".into())),
    }
}

const MAX_DEPTH: usize = 200;

type PResult<T> = Result<T, (usize, String)>;

enum Stop {
    Eof,
    End(usize),
    Else(usize),
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn eof_pos(&self) -> usize {
        self.toks.last().map_or(0, |t| t.pos)
    }
    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }
    fn peek_non_space(&mut self) -> &Token {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
        self.peek()
    }
    fn next_non_space(&mut self) -> Token {
        self.peek_non_space();
        self.next()
    }
    fn expect_right(&mut self, ctx: &str) -> PResult<()> {
        let t = self.next_non_space();
        if t.tok != Tok::Right {
            return Err((t.pos, format!("unexpected {} in {ctx}", show(&t.tok))));
        }
        Ok(())
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> PResult<(Vec<Node>, Stop)> {
        let mut out = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Eof => return Ok((out, Stop::Eof)),
                Tok::Text(s) => out.push(Node::Text(s)),
                Tok::Left => {
                    let k = self.peek_non_space().clone();
                    match k.tok {
                        Tok::Keyword("end") => {
                            self.next();
                            self.expect_right("end")?;
                            return Ok((out, Stop::End(k.pos)));
                        }
                        Tok::Keyword("else") => {
                            self.next();
                            // "{{else if" keeps the "if" for the caller.
                            if self.peek_non_space().tok != Tok::Keyword("if") {
                                self.expect_right("else")?;
                            }
                            return Ok((out, Stop::Else(k.pos)));
                        }
                        Tok::Keyword(kw @ ("if" | "range" | "with")) => {
                            self.next();
                            out.push(self.control(kw)?);
                        }
                        Tok::Keyword(kw @ ("break" | "continue")) => {
                            self.next();
                            if self.range_depth == 0 {
                                return Err((k.pos, format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_right(kw)?;
                            out.push(if kw == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        Tok::Keyword(kw) => {
                            return Err((k.pos, format!("{{{{{kw}}}}} is not supported here")));
                        }
                        _ => out.push(Node::Action(self.pipeline("command", false)?)),
                    }
                }
                other => return Err((t.pos, format!("unexpected {}", show(&other)))),
            }
        }
    }

    fn control(&mut self, kw: &'static str) -> PResult<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((self.peek().pos, "template nesting too deep".into()));
        }
        let r = self.control_inner(kw);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kw: &'static str) -> PResult<Node> {
        let mark = self.vars.len();
        let pipe = self.pipeline(kw, false)?;
        if kw == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list()?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            Stop::Eof => return Err((self.eof_pos(), "unexpected EOF".into())),
            Stop::End(_) => None,
            Stop::Else(_) => {
                if kw == "if" && self.peek_non_space().tok == Tok::Keyword("if") {
                    self.next();
                    // "{{else if x}}" is "{{else}}{{if x}}...{{end}}" sharing one {{end}}.
                    Some(vec![self.control("if")?])
                } else {
                    let (l, e) = self.list()?;
                    match e {
                        Stop::End(_) => Some(l),
                        Stop::Else(p) => return Err((p, "expected end; found {{else}}".into())),
                        Stop::Eof => return Err((self.eof_pos(), "unexpected EOF".into())),
                    }
                }
            }
        };
        self.vars.truncate(mark);
        let b = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match kw {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    /// A pipeline ending at `}}` (or `)` when `paren`), with optional declarations.
    fn pipeline(&mut self, ctx: &str, paren: bool) -> PResult<Pipe> {
        // Nesting recurses; a limit keeps hostile input from overflowing the stack.
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((self.peek().pos, "template nesting too deep".into()));
        }
        let r = self.pipeline_inner(ctx, paren);
        self.depth -= 1;
        r
    }

    fn pipeline_inner(&mut self, ctx: &str, paren: bool) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        if let Tok::Var(v) = self.peek_non_space().tok.clone() {
            let save = self.i;
            self.next();
            match self.peek_non_space().tok {
                Tok::Declare | Tok::Assign => {
                    pipe.is_assign = self.next().tok == Tok::Assign;
                    self.declare(&mut pipe, v)?;
                }
                Tok::Comma if ctx == "range" => {
                    self.next();
                    let second = self.next_non_space();
                    let Tok::Var(v2) = second.tok else {
                        return Err((second.pos, "range can only initialize variables".into()));
                    };
                    let op = self.next_non_space();
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return Err((op.pos, format!("unexpected {} in range", show(&op.tok))));
                    }
                    pipe.is_assign = op.tok == Tok::Assign;
                    self.declare(&mut pipe, v)?;
                    self.declare(&mut pipe, v2)?;
                }
                Tok::Comma => return Err((pos, format!("too many declarations in {ctx}"))),
                _ => self.i = save,
            }
        }
        loop {
            let t = self.peek_non_space().clone();
            match t.tok {
                Tok::Right if !paren => break,
                Tok::RParen if paren => break,
                Tok::Bool(_)
                | Tok::Char(..)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(..)
                | Tok::Var(_)
                | Tok::LParen => pipe.cmds.push(self.command()?),
                other => return Err((t.pos, format!("unexpected {} in {ctx}", show(&other)))),
            }
        }
        self.next();
        if pipe.cmds.is_empty() {
            return Err((pos, format!("missing value for {ctx}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0].kind,
                ArgKind::Bool(_)
                    | ArgKind::Dot
                    | ArgKind::Nil
                    | ArgKind::Number(_)
                    | ArgKind::Str(..)
            ) {
                return Err((
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(pipe)
    }

    fn declare(&mut self, pipe: &mut Pipe, v: String) -> PResult<()> {
        // Assigning an undeclared variable is an execution error in Go, not a parse one.
        self.vars.push(v.clone());
        pipe.decl.push(v);
        Ok(())
    }

    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            let t = self.peek().clone();
            match t.tok {
                Tok::Space => {
                    self.next();
                    continue;
                }
                Tok::Right | Tok::RParen => {}
                Tok::Pipe => {
                    self.next();
                }
                other => return Err((t.pos, format!("unexpected {} in operand", show(&other)))),
            }
            break;
        }
        if args.is_empty() {
            return Err((pos, "empty command".into()));
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        // Go positions a chain at its first field, not at the term.
        let chain_pos = self.peek().pos;
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        let pos = chain_pos;
        let kind = match term.kind {
            ArgKind::Field(mut names) => {
                names.extend(fields);
                ArgKind::Field(names)
            }
            ArgKind::Var(mut names) => {
                names.extend(fields);
                ArgKind::Var(names)
            }
            ArgKind::Bool(_)
            | ArgKind::Str(..)
            | ArgKind::Number(_)
            | ArgKind::Nil
            | ArgKind::Dot => {
                return Err((
                    term.pos,
                    format!("unexpected . after term {:?}", term.to_string()),
                ));
            }
            _ => ArgKind::Chain(Box::new(term), fields),
        };
        Ok(Some(Arg { pos, kind }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        let kind = match t.tok {
            Tok::Ident(name) => {
                if !funcs::exists(&name) {
                    return Err((t.pos, format!("function {name:?} not defined")));
                }
                ArgKind::Ident(name)
            }
            Tok::Dot => ArgKind::Dot,
            Tok::Nil => ArgKind::Nil,
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err((t.pos, format!("undefined variable {v:?}")));
                }
                ArgKind::Var(vec![v])
            }
            Tok::Field(f) => ArgKind::Field(vec![f]),
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Char(v, src) => ArgKind::Number(Num {
                text: src,
                int: Some(v),
                float: Some(v as f64),
            }),
            Tok::Number(text) => ArgKind::Number(number(&text).map_err(|m| (t.pos, m))?),
            Tok::Str(v, src) => ArgKind::Str(v, src),
            Tok::LParen => ArgKind::Pipe(Box::new(self.pipeline("parenthesized pipeline", true)?)),
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        };
        Ok(Some(Arg { pos: t.pos, kind }))
    }
}

/// Reads a number literal the way Go's parse.NumberNode does.
fn number(text: &str) -> Result<Num, String> {
    let clean = text.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    }
    .map(|v| if neg { -v } else { v });
    let mut float = int.map(|v| v as f64);
    let mut int = int;
    if int.is_none() {
        let f: f64 = clean
            .parse()
            .map_err(|_| format!("illegal number syntax: {text:?}"))?;
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {text:?}"));
        }
        float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            int = Some(f as i64);
        }
    }
    Ok(Num {
        text: text.into(),
        int,
        float,
    })
}

/// A token as Go's parser names it in errors.
fn show(t: &Tok) -> String {
    let val = match t {
        Tok::Eof => return "EOF".into(),
        Tok::Dot => return "<.>".into(),
        Tok::Nil => return "<nil>".into(),
        Tok::Keyword(k) => return format!("<{k}>"),
        Tok::Right => "}}".into(),
        Tok::Left => "{{".into(),
        Tok::Space => " ".into(),
        Tok::RParen => ")".into(),
        Tok::LParen => "(".into(),
        Tok::Pipe => "|".into(),
        Tok::Comma => ",".into(),
        Tok::Declare => ":=".into(),
        Tok::Assign => "=".into(),
        Tok::Bool(b) => b.to_string(),
        Tok::Field(s) => format!(".{s}"),
        Tok::Text(s) | Tok::Ident(s) | Tok::Var(s) | Tok::Number(s) | Tok::Other(s) => s.clone(),
        Tok::Str(_, s) | Tok::Char(_, s) => s.clone(),
    };
    // Go: %q, or %.10q... for long values.
    if val.chars().count() > 10 {
        format!("{}...", quote(&val.chars().take(10).collect::<String>()))
    } else {
        quote(&val)
    }
}
