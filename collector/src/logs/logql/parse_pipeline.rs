//! The pipeline half of the LogQL parser: line filters, parser stages
//! (json, logfmt, regexp, pattern), formatters, drop/keep, label filter
//! expressions and `unwrap`. Same `Parser` as `parser.rs`.

use crate::model::MatchOp;

use super::ast::*;
use super::error::LogQlError;
use super::json;
use super::lexer::{Tok, line_col};
use super::parser::{Parser, binop};
use super::pattern::Pattern;
use super::template::Template;

impl Parser<'_> {
    /// Pipeline stages until something that is not one.
    #[allow(clippy::type_complexity)]
    pub(super) fn pipeline(
        &mut self,
        in_range: bool,
    ) -> Result<(Vec<Stage>, Option<Unwrap>, Vec<LabelFilter>), LogQlError> {
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        let mut post = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::PipeExact => Some(LineOp::Contains),
                Tok::Neq => Some(LineOp::NotContains),
                Tok::PipeMatch => Some(LineOp::Match),
                Tok::Nre => Some(LineOp::NotMatch),
                Tok::PipePattern => Some(LineOp::Pattern),
                Tok::NotPattern => Some(LineOp::NotPattern),
                Tok::Pipe => None,
                _ => return Ok((stages, unwrap, post)),
            };
            let stage_pos = self.pos();
            self.next();
            if let Some(op) = op {
                if unwrap.is_some() {
                    let (l, c) = line_col(self.src, stage_pos);
                    return Err(LogQlError::syntax(
                        l,
                        c,
                        "only label filters may follow unwrap",
                    ));
                }
                stages.push(Stage::LineFilter(self.line_filter(op)?));
                continue;
            }
            if self.is_ident("unwrap") {
                if !in_range {
                    return Err(self.err_here(
                        "unexpected unwrap: unwrap is only allowed in a range aggregation",
                    ));
                }
                if unwrap.is_some() {
                    return Err(self.err_here("unexpected unwrap: only one unwrap is allowed"));
                }
                self.next();
                unwrap = Some(self.unwrap_expr()?);
                continue;
            }
            let stage = self.stage()?;
            match (unwrap.is_some(), stage) {
                (false, s) => stages.push(s),
                (true, Stage::LabelFilter(f)) => post.push(f),
                (true, _) => {
                    let (l, c) = line_col(self.src, stage_pos);
                    return Err(LogQlError::syntax(
                        l,
                        c,
                        "only label filters may follow unwrap",
                    ));
                }
            }
        }
    }

    fn line_filter(&mut self, op: LineOp) -> Result<LineFilter, LogQlError> {
        let mut alts = Vec::new();
        loop {
            let pos = self.pos();
            let s = self.string()?;
            alts.push(match op {
                LineOp::Contains | LineOp::NotContains => LineMatch::Text(s),
                LineOp::Pattern | LineOp::NotPattern => {
                    LineMatch::Pattern(Pattern::parse_filter(&s).map_err(|e| {
                        let (l, c) = line_col(self.src, pos);
                        LogQlError::syntax(l, c, e)
                    })?)
                }
                LineOp::Match | LineOp::NotMatch => {
                    LineMatch::Regex(regex::Regex::new(&s).map_err(|e| {
                        let (l, c) = line_col(self.src, pos);
                        LogQlError::syntax(l, c, format!("invalid regex: {e}"))
                    })?)
                }
            });
            if self.is_ident("or") && matches!(self.peek_at(1), Tok::Str(_)) {
                self.next();
                continue;
            }
            return Ok(LineFilter { op, alts });
        }
    }

    fn unwrap_expr(&mut self) -> Result<Unwrap, LogQlError> {
        let first = self.ident()?;
        let conv = match first.as_str() {
            "duration" | "duration_seconds" if *self.peek() == Tok::LParen => UnwrapConv::Duration,
            "bytes" if *self.peek() == Tok::LParen => UnwrapConv::Bytes,
            _ => {
                return Ok(Unwrap {
                    label: first,
                    conv: UnwrapConv::Number,
                });
            }
        };
        self.next();
        let label = self.ident()?;
        self.expect(Tok::RParen, ")")?;
        Ok(Unwrap { label, conv })
    }

    fn stage(&mut self) -> Result<Stage, LogQlError> {
        let Tok::Ident(word) = self.peek().clone() else {
            if *self.peek() == Tok::LParen {
                return Ok(Stage::LabelFilter(self.label_filter_or()?));
            }
            return Err(self.unexpected(Some("a parser, a formatter or a label filter")));
        };
        // A label filter starts with a name followed by an operator.
        let is_filter = matches!(
            self.peek_at(1),
            Tok::Eq
                | Tok::Neq
                | Tok::Re
                | Tok::Nre
                | Tok::Gt
                | Tok::Gte
                | Tok::Lt
                | Tok::Lte
                | Tok::CmpEq
        );
        if is_filter {
            return Ok(Stage::LabelFilter(self.label_filter_or()?));
        }
        let word_pos = self.pos();
        self.next();
        match word.as_str() {
            "json" => Ok(Stage::Json(self.json_params()?)),
            "logfmt" => {
                let (mut strict, mut keep_empty) = (false, false);
                while *self.peek() == Tok::Sub && *self.peek_at(1) == Tok::Sub {
                    self.next();
                    self.next();
                    let flag = self.ident()?;
                    match flag.as_str() {
                        "strict" => strict = true,
                        "keep"
                            if *self.peek() == Tok::Sub
                                && matches!(self.peek_at(1), Tok::Ident(e) if e == "empty") =>
                        {
                            self.next();
                            self.next();
                            keep_empty = true;
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err_here(format!(
                                "unknown logfmt flag --{flag}; expecting --strict or --keep-empty"
                            )));
                        }
                    }
                }
                let params = self
                    .extraction_params()?
                    .into_iter()
                    .map(|(dst, src, _)| (dst, src))
                    .collect();
                Ok(Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                })
            }
            "regexp" => {
                let pos = self.pos();
                let s = self.string()?;
                let re = regex::Regex::new(&s).map_err(|e| {
                    let (l, c) = line_col(self.src, pos);
                    LogQlError::syntax(l, c, format!("invalid regex: {e}"))
                })?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(LogQlError::parse(
                        "at least one named capture must be supplied",
                    ));
                }
                Ok(Stage::Regexp(re))
            }
            "line_format" => {
                let pos = self.pos();
                let s = self.string()?;
                Ok(Stage::LineFormat(self.template(&s, pos, "line")?))
            }
            "label_format" => {
                let mut items = Vec::new();
                let mut seen: Vec<String> = Vec::new();
                loop {
                    let dst = self.ident()?;
                    self.expect(Tok::Eq, "=")?;
                    let item = match self.peek().clone() {
                        Tok::Ident(src) => {
                            self.next();
                            LabelFmt::Rename {
                                dst: dst.clone(),
                                src,
                            }
                        }
                        Tok::Str(s) => {
                            let pos = self.pos();
                            self.next();
                            LabelFmt::Template {
                                dst: dst.clone(),
                                tmpl: self.template(&s, pos, "label")?,
                            }
                        }
                        _ => return Err(self.unexpected(Some("IDENTIFIER or STRING"))),
                    };
                    if seen.contains(&dst) {
                        return Err(LogQlError::parse(format!(
                            "multiple label name '{dst}' not allowed in a single format operation"
                        )));
                    }
                    seen.push(dst);
                    items.push(item);
                    if *self.peek() == Tok::Comma {
                        self.next();
                    } else {
                        return Ok(Stage::LabelFormat(items));
                    }
                }
            }
            "drop" | "keep" => {
                let mut items = Vec::new();
                loop {
                    let name = self.ident()?;
                    if matches!(self.peek(), Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre) {
                        let op = self.match_op()?;
                        let pos = self.pos();
                        let value = self.string()?;
                        items.push(NameOrMatcher::Matcher(self.matcher(op, name, value, pos)?));
                    } else {
                        items.push(NameOrMatcher::Name(name));
                    }
                    if *self.peek() == Tok::Comma {
                        self.next();
                    } else {
                        break;
                    }
                }
                Ok(if word == "drop" {
                    Stage::Drop(items)
                } else {
                    Stage::Keep(items)
                })
            }
            "decolorize" => Ok(Stage::Decolorize),
            "pattern" => {
                let pos = self.pos();
                let s = self.string()?;
                let p = Pattern::parse(&s).map_err(|e| {
                    let (l, c) = line_col(self.src, pos);
                    LogQlError::syntax(l, c, e)
                })?;
                Ok(Stage::Pattern(p))
            }
            "unpack" => {
                let (l, c) = line_col(self.src, word_pos);
                Err(LogQlError::syntax(
                    l,
                    c,
                    format!(
                        "the {word} parser is not supported yet; use json, logfmt, pattern or regexp"
                    ),
                ))
            }
            _ => {
                self.i -= 1;
                Err(self.unexpected(Some("a parser, a formatter or a label filter")))
            }
        }
    }

    fn template(&self, s: &str, pos: usize, what: &str) -> Result<Template, LogQlError> {
        Template::parse(s).map_err(|e| {
            let (l, c) = line_col(self.src, pos);
            LogQlError::syntax(l, c, format!("invalid {what} template: {}", e.0))
        })
    }

    /// `json` parameters: `a`, `b="x.y[0]"`, comma separated.
    fn json_params(&mut self) -> Result<Vec<(String, JsonPath)>, LogQlError> {
        let mut out = Vec::new();
        for (dst, src, pos) in self.extraction_params()? {
            let path = json::parse_path(&src).map_err(|e| {
                let (l, c) = line_col(self.src, pos);
                LogQlError::syntax(l, c, e)
            })?;
            out.push((dst, path));
        }
        Ok(out)
    }

    /// `name` or `name="expr"` items after json/logfmt; stops at anything else.
    fn extraction_params(&mut self) -> Result<Vec<(String, String, usize)>, LogQlError> {
        let mut out = Vec::new();
        loop {
            // A following label filter (`| json | a="b"`) starts with a pipe,
            // so an identifier here is a parameter.
            let Tok::Ident(name) = self.peek().clone() else {
                return Ok(out);
            };
            if binop(self.peek()).is_some() || name == "offset" {
                return Ok(out);
            }
            let pos = self.pos();
            self.next();
            if *self.peek() == Tok::Eq {
                self.next();
                let pos = self.pos();
                let src = self.string()?;
                out.push((name, src, pos));
            } else {
                out.push((name.clone(), name, pos));
            }
            if *self.peek() == Tok::Comma {
                self.next();
            } else {
                return Ok(out);
            }
        }
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, LogQlError> {
        self.enter()?;
        let mut lhs = self.label_filter_and()?;
        while self.is_ident("or") {
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, LogQlError> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            if self.is_ident("and") || *self.peek() == Tok::Comma {
                self.next();
            } else if !(*self.peek() == Tok::LParen
                || (matches!(self.peek(), Tok::Ident(s) if s != "or" && s != "unless" && s != "offset")
                    && matches!(
                        self.peek_at(1),
                        Tok::Eq
                            | Tok::Neq
                            | Tok::Re
                            | Tok::Nre
                            | Tok::Gt
                            | Tok::Gte
                            | Tok::Lt
                            | Tok::Lte
                            | Tok::CmpEq
                    )))
            {
                return Ok(lhs);
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, LogQlError> {
        if *self.peek() == Tok::LParen {
            self.next();
            let f = self.label_filter_or()?;
            self.expect(Tok::RParen, ")")?;
            return Ok(f);
        }
        let name = self.ident()?;
        let op_tok = self.next();
        let value_pos = self.pos();
        let mut neg = false;
        if *self.peek() == Tok::Sub {
            self.next();
            neg = true;
        }
        let value = self.next();
        let sign = if neg { -1.0 } else { 1.0 };
        let cmp = match op_tok {
            Tok::Eq | Tok::CmpEq => Some(CmpOp::Eq),
            Tok::Neq => Some(CmpOp::Ne),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Gte => Some(CmpOp::Ge),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Lte => Some(CmpOp::Le),
            _ => None,
        };
        match (op_tok, value, cmp) {
            (op @ (Tok::Eq | Tok::CmpEq | Tok::Neq | Tok::Re | Tok::Nre), Tok::Str(s), _)
                if !neg =>
            {
                let mop = match op {
                    Tok::Eq | Tok::CmpEq => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::Re => MatchOp::Regex,
                    _ => MatchOp::NotRegex,
                };
                Ok(LabelFilter::Matcher(self.matcher(mop, name, s, value_pos)?))
            }
            (_, Tok::Number(n), Some(op)) => Ok(LabelFilter::Number {
                name,
                op,
                value: sign * n,
            }),
            (_, Tok::Duration(d), Some(op)) => Ok(LabelFilter::Duration {
                name,
                op,
                value: sign * d as f64 / 1e9,
            }),
            (_, Tok::Bytes(b), Some(op)) => Ok(LabelFilter::Bytes {
                name,
                op,
                value: sign * b,
            }),
            _ => {
                self.i -= 1;
                let (l, c) = line_col(self.src, self.pos());
                Err(LogQlError::syntax(
                    l,
                    c,
                    format!(
                        "unexpected {}, expecting STRING, NUMBER, DURATION or BYTES",
                        self.peek().describe()
                    ),
                ))
            }
        }
    }
}
