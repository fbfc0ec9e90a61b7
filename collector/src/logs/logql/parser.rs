//! A recursive-descent LogQL parser. Hand-written: Loki's grammar is Go yacc,
//! and the one Rust crate that parses LogQL (`logql-parser`, 0.1.x, a young
//! single-maintainer extraction from SignalDB) neither matches Loki's error
//! messages (`parse error at line 1, col 5: syntax error: unexpected ...`,
//! which Grafana shows users) nor covers the pipeline stages we execute, so
//! we would translate its AST and still own the semantics. Never panics on
//! any input; nesting depth is bounded.

use crate::model::{MatchOp, Matcher};

use super::ast::*;
use super::error::LogQlError;
use super::lexer::{Tok, Token, line_col, tokenize};

/// Deeper nesting than this is refused (keeps hostile input off the stack).
const MAX_DEPTH: usize = 64;

pub(crate) fn parse(src: &str) -> Result<Expr, LogQlError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected(None));
    }
    Ok(e)
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    toks: Vec<Token>,
    pub(super) i: usize,
    pub(super) depth: usize,
}

pub(super) fn binop(t: &Tok) -> Option<(BinOp, u8)> {
    Some(match t {
        Tok::Ident(s) if s == "or" => (BinOp::Or, 1),
        Tok::Ident(s) if s == "and" => (BinOp::And, 2),
        Tok::Ident(s) if s == "unless" => (BinOp::Unless, 2),
        Tok::CmpEq => (BinOp::Eq, 3),
        Tok::Neq => (BinOp::Ne, 3),
        Tok::Gt => (BinOp::Gt, 3),
        Tok::Gte => (BinOp::Ge, 3),
        Tok::Lt => (BinOp::Lt, 3),
        Tok::Lte => (BinOp::Le, 3),
        Tok::Add => (BinOp::Add, 4),
        Tok::Sub => (BinOp::Sub, 4),
        Tok::Mul => (BinOp::Mul, 5),
        Tok::Div => (BinOp::Div, 5),
        Tok::Mod => (BinOp::Mod, 5),
        Tok::Pow => (BinOp::Pow, 6),
        _ => return None,
    })
}

fn is_scalar(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::Literal(_) => true,
        MetricExpr::Binary { lhs, rhs, .. } => is_scalar(lhs) && is_scalar(rhs),
        _ => false,
    }
}

impl Parser<'_> {
    pub(super) fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    pub(super) fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].tok
    }

    pub(super) fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }

    /// Consumes a token; past the end it keeps returning `Eof` but still
    /// counts, so `self.i -= 1` always undoes one `next`.
    pub(super) fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.i += 1;
        t
    }

    pub(super) fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == word)
    }

    pub(super) fn err_here(&self, what: impl std::fmt::Display) -> LogQlError {
        let (l, c) = line_col(self.src, self.pos());
        LogQlError::syntax(l, c, what)
    }

    pub(super) fn unexpected(&self, expecting: Option<&str>) -> LogQlError {
        let what = format!("unexpected {}", self.peek().describe());
        match expecting {
            Some(e) => self.err_here(format!("{what}, expecting {e}")),
            None => self.err_here(what),
        }
    }

    pub(super) fn expect(&mut self, t: Tok, name: &str) -> Result<(), LogQlError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(Some(name)))
        }
    }

    pub(super) fn ident(&mut self) -> Result<String, LogQlError> {
        match self.peek() {
            Tok::Ident(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(Some("IDENTIFIER"))),
        }
    }

    pub(super) fn string(&mut self) -> Result<String, LogQlError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(Some("STRING"))),
        }
    }

    pub(super) fn enter(&mut self) -> Result<(), LogQlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// A full expression: binary operators by precedence over unary terms.
    fn expr(&mut self, min_prec: u8) -> Result<Expr, LogQlError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = binop(self.peek()) {
            if prec < min_prec {
                break;
            }
            let Expr::Metric(l) = lhs else {
                return Err(self.unexpected(None));
            };
            self.next();
            let mut return_bool = false;
            if op.is_comparison() && self.is_ident("bool") {
                self.next();
                return_bool = true;
            }
            let matching = self.vector_matching(op)?;
            // `^` is right-associative, the rest left.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs_pos = self.pos();
            let r = match self.expr(next_min)? {
                Expr::Metric(r) => r,
                Expr::Log(_) => {
                    let (l, c) = line_col(self.src, rhs_pos);
                    return Err(LogQlError::syntax(
                        l,
                        c,
                        "unexpected log query, expecting a metric expression",
                    ));
                }
            };
            if op.is_set() && (is_scalar(&l) || is_scalar(&r)) {
                return Err(LogQlError::parse(
                    format!("set operator {op:?} not allowed in binary scalar expression")
                        .to_lowercase(),
                ));
            }
            if op.is_comparison() && !return_bool && is_scalar(&l) && is_scalar(&r) {
                return Err(LogQlError::parse(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            lhs = Expr::Metric(MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
        self.depth -= 1;
        Ok(lhs)
    }

    /// `on(...)`/`ignoring(...)` then `group_left(...)`/`group_right(...)`.
    fn vector_matching(&mut self, op: BinOp) -> Result<VectorMatching, LogQlError> {
        let mut m = VectorMatching::default();
        if !(self.is_ident("on") || self.is_ident("ignoring")) {
            return Ok(m);
        }
        m.on = self.is_ident("on");
        self.next();
        m.labels = self.label_list()?;
        if self.is_ident("group_left") || self.is_ident("group_right") {
            if op.is_set() {
                return Err(self.err_here("no grouping allowed for and, or, unless operations"));
            }
            let left = self.is_ident("group_left");
            self.next();
            let include = if *self.peek() == Tok::LParen {
                self.label_list()?
            } else {
                Vec::new()
            };
            m.group = Some(Group { left, include });
        }
        Ok(m)
    }

    fn label_list(&mut self) -> Result<Vec<String>, LogQlError> {
        self.expect(Tok::LParen, "(")?;
        let mut labels = Vec::new();
        while *self.peek() != Tok::RParen {
            labels.push(self.ident()?);
            if *self.peek() == Tok::Comma {
                self.next();
            } else if *self.peek() != Tok::RParen {
                return Err(self.unexpected(Some(", or )")));
            }
        }
        self.next();
        Ok(labels)
    }

    fn unary(&mut self) -> Result<Expr, LogQlError> {
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(Expr::Metric(MetricExpr::Literal(n)))
            }
            Tok::Sub | Tok::Add => {
                let neg = *self.peek() == Tok::Sub;
                self.next();
                match self.peek().clone() {
                    Tok::Number(n) => {
                        self.next();
                        Ok(Expr::Metric(MetricExpr::Literal(if neg { -n } else { n })))
                    }
                    _ => Err(self.unexpected(Some("NUMBER"))),
                }
            }
            Tok::LBrace => Ok(Expr::Log(self.log_expr(false)?.0)),
            Tok::LParen => {
                self.next();
                let e = self.expr(0)?;
                self.expect(Tok::RParen, ")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if let Some(op) = RangeOp::from_name(&name) {
                    self.next();
                    return Ok(Expr::Metric(self.range_agg(op, &name)?));
                }
                if name == "vector" && *self.peek_at(1) == Tok::LParen {
                    self.next();
                    self.next();
                    let v = match self.next() {
                        Tok::Number(v) => v,
                        Tok::Sub => match self.next() {
                            Tok::Number(v) => -v,
                            _ => {
                                self.i -= 1;
                                return Err(self.unexpected(Some("NUMBER")));
                            }
                        },
                        _ => {
                            self.i -= 1;
                            return Err(self.unexpected(Some("NUMBER")));
                        }
                    };
                    self.expect(Tok::RParen, ")")?;
                    return Ok(Expr::Metric(MetricExpr::VectorLit(v)));
                }
                if name == "label_replace" && *self.peek_at(1) == Tok::LParen {
                    self.next();
                    self.next();
                    return Ok(Expr::Metric(self.label_replace()?));
                }
                if let Some(op) = VecOp::from_name(&name) {
                    self.next();
                    return Ok(Expr::Metric(self.vector_agg(op, &name)?));
                }
                Err(self.unexpected(None))
            }
            _ => Err(self.unexpected(None)),
        }
    }

    /// The arguments of `label_replace(` up to and including `)`.
    fn label_replace(&mut self) -> Result<MetricExpr, LogQlError> {
        self.enter()?;
        let inner_pos = self.pos();
        let inner = match self.expr(0)? {
            Expr::Metric(m) => m,
            Expr::Log(_) => {
                let (l, c) = line_col(self.src, inner_pos);
                return Err(LogQlError::syntax(
                    l,
                    c,
                    "unexpected log query in label_replace, expecting a metric expression",
                ));
            }
        };
        let mut args = Vec::new();
        for _ in 0..4 {
            self.expect(Tok::Comma, ",")?;
            let pos = self.pos();
            args.push((self.string()?, pos));
        }
        self.expect(Tok::RParen, ")")?;
        let (re_src, re_pos) = args.pop().unwrap_or_default();
        let regex = regex::Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| {
            let (l, c) = line_col(self.src, re_pos);
            LogQlError::syntax(l, c, format!("invalid regex in label_replace: {e}"))
        })?;
        let mut it = args.into_iter().map(|a| a.0);
        let (dst, replacement, src) = (
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
        );
        let valid = |n: &str| {
            n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !valid(&dst) {
            return Err(LogQlError::parse(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        self.depth -= 1;
        Ok(MetricExpr::LabelReplace {
            inner: Box::new(inner),
            dst,
            replacement,
            src,
            regex,
        })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, LogQlError> {
        let without = if self.is_ident("by") {
            false
        } else if self.is_ident("without") {
            true
        } else {
            return Ok(None);
        };
        self.next();
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn vector_agg(&mut self, op: VecOp, name: &str) -> Result<MetricExpr, LogQlError> {
        self.enter()?;
        let before = self.grouping()?;
        self.expect(Tok::LParen, "(")?;
        let mut param = None;
        if matches!(op, VecOp::Topk | VecOp::Bottomk) {
            let k = match self.next() {
                Tok::Number(k) => k,
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected(Some("NUMBER")));
                }
            };
            if k < 1.0 || k.fract() != 0.0 || k > i32::MAX as f64 {
                return Err(LogQlError::parse(format!(
                    "invalid parameter for {name}: {k} (must be a positive integer)"
                )));
            }
            param = Some(k);
            self.expect(Tok::Comma, ",")?;
        }
        let inner_pos = self.pos();
        let inner = match self.expr(0)? {
            Expr::Metric(m) => m,
            Expr::Log(_) => {
                let (l, c) = line_col(self.src, inner_pos);
                return Err(LogQlError::syntax(
                    l,
                    c,
                    format!(
                        "unexpected log query in {name}, expecting a range aggregation such as count_over_time(...[5m])"
                    ),
                ));
            }
        };
        self.expect(Tok::RParen, ")")?;
        let after = self.grouping()?;
        if before.is_some() && after.is_some() {
            return Err(LogQlError::parse(format!(
                "{name} has two grouping clauses"
            )));
        }
        self.depth -= 1;
        Ok(MetricExpr::Vector {
            op,
            param,
            grouping: before.or(after),
            inner: Box::new(inner),
        })
    }

    fn range_agg(&mut self, op: RangeOp, name: &str) -> Result<MetricExpr, LogQlError> {
        self.expect(Tok::LParen, "(")?;
        let mut param = None;
        if op == RangeOp::QuantileOverTime {
            match self.next() {
                Tok::Number(q) => param = Some(q),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected(Some("NUMBER")));
                }
            }
            self.expect(Tok::Comma, ",")?;
        }
        // `(selector | pipeline)[5m]` or `selector | pipeline [5m]`.
        let (mut log, mut unwrap, mut post) = if *self.peek() == Tok::LParen {
            self.next();
            let r = self.log_expr(true)?;
            self.expect(Tok::RParen, ")")?;
            r
        } else if *self.peek() == Tok::LBrace {
            self.log_expr(true)?
        } else {
            return Err(self.unexpected(Some("{")));
        };
        self.expect(Tok::LBracket, "[")?;
        let range_ns = match self.next() {
            Tok::Duration(d) if d > 0 => d,
            _ => {
                self.i -= 1;
                return Err(self.unexpected(Some("DURATION")));
            }
        };
        self.expect(Tok::RBracket, "]")?;
        // Loki also accepts the pipeline after the range: `{a="b"}[5m] | json`.
        if matches!(
            self.peek(),
            Tok::Pipe
                | Tok::PipeExact
                | Tok::PipeMatch
                | Tok::PipePattern
                | Tok::NotPattern
                | Tok::Neq
                | Tok::Nre
        ) {
            if !log.stages.is_empty() || unwrap.is_some() {
                return Err(self.unexpected(Some(")")));
            }
            let (stages, u, p) = self.pipeline(true)?;
            log.stages = stages;
            unwrap = u;
            post = p;
        }
        let mut offset_ns = 0;
        if self.is_ident("offset") {
            self.next();
            offset_ns = match self.next() {
                Tok::Duration(d) => d,
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected(Some("DURATION")));
                }
            };
        }
        self.expect(Tok::RParen, ")")?;
        let grouping = self.grouping()?;
        if op.needs_unwrap() && unwrap.is_none() {
            return Err(LogQlError::parse(format!(
                "invalid aggregation {name} without unwrap"
            )));
        }
        if unwrap.is_some() && !(op.needs_unwrap() || op == RangeOp::Rate) {
            return Err(LogQlError::parse(format!(
                "invalid aggregation {name} with unwrap"
            )));
        }
        if grouping.is_some() && unwrap.is_none() {
            return Err(LogQlError::parse(format!(
                "grouping not allowed for {name} aggregation"
            )));
        }
        Ok(MetricExpr::Range {
            op,
            param,
            range: Box::new(LogRange {
                log,
                range_ns,
                offset_ns,
                unwrap,
                post_filters: post,
            }),
            grouping,
        })
    }

    /// A selector and its pipeline. `unwrap` is accepted only in a range.
    #[allow(clippy::type_complexity)]
    fn log_expr(
        &mut self,
        in_range: bool,
    ) -> Result<(LogExpr, Option<Unwrap>, Vec<LabelFilter>), LogQlError> {
        let matchers = self.selector()?;
        if matchers.iter().all(|m| m.matches_empty()) {
            return Err(LogQlError::parse(
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will",
            ));
        }
        let (stages, unwrap, post) = self.pipeline(in_range)?;
        Ok((LogExpr { matchers, stages }, unwrap, post))
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, LogQlError> {
        self.expect(Tok::LBrace, "{")?;
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            let op = self.match_op()?;
            let value_pos = self.pos();
            let value = self.string()?;
            out.push(self.matcher(op, name, value, value_pos)?);
            match self.next() {
                Tok::Comma => continue,
                Tok::RBrace => return Ok(out),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected(Some(", or }")));
                }
            }
        }
    }

    pub(super) fn match_op(&mut self) -> Result<MatchOp, LogQlError> {
        let op = match self.peek() {
            Tok::Eq => MatchOp::Equal,
            Tok::Neq => MatchOp::NotEqual,
            Tok::Re => MatchOp::Regex,
            Tok::Nre => MatchOp::NotRegex,
            _ => return Err(self.unexpected(Some("=, !=, =~ or !~"))),
        };
        self.next();
        Ok(op)
    }

    pub(super) fn matcher(
        &self,
        op: MatchOp,
        name: String,
        value: String,
        pos: usize,
    ) -> Result<Matcher, LogQlError> {
        Matcher::new(op, name, value).map_err(|e| {
            let (l, c) = line_col(self.src, pos);
            LogQlError::syntax(l, c, format!("invalid regex: {e}"))
        })
    }
}

#[cfg(test)]
pub(crate) fn parse_log_expr_for_test(q: &str) -> LogExpr {
    match parse(q) {
        Ok(Expr::Log(l)) => l,
        other => panic!("{q}: not a log query: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        match parse(q) {
            Ok(e) => panic!("{q} should fail, got {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn log_queries() {
        let l = parse_log_expr_for_test(
            r#"{app="a", env=~"p.*", x!="", y!~"z"} |= "err" | json | level="error" or status >= 500 | line_format "{{.msg}}""#,
        );
        assert_eq!(l.matchers.len(), 4);
        assert_eq!(l.stages.len(), 4);
        assert!(matches!(
            l.stages[2],
            Stage::LabelFilter(LabelFilter::Or(..))
        ));
        let l = parse_log_expr_for_test(
            r#"{app="a"} | logfmt --strict --keep-empty a, b="c" | x > 10s, y <= 5KB and (z == 1 or w != -2)"#,
        );
        assert!(
            matches!(&l.stages[0], Stage::Logfmt { strict: true, keep_empty: true, params } if params.len() == 2)
        );
        let l = parse_log_expr_for_test(
            r#"{app="a"} | json first="tags[0]", m | drop a, b="x" | keep c | label_format n=m, o="{{.p}}""#,
        );
        assert_eq!(l.stages.len(), 4);
    }

    #[test]
    fn metric_queries() {
        let q = r#"sum by (app) (rate({app="a"} |= "x" [5m] offset 1m)) / 60"#;
        let Expr::Metric(MetricExpr::Binary {
            op: BinOp::Div,
            lhs,
            ..
        }) = parse(q).unwrap()
        else {
            panic!()
        };
        let MetricExpr::Vector {
            op: VecOp::Sum,
            grouping: Some(g),
            inner,
            ..
        } = *lhs
        else {
            panic!()
        };
        assert_eq!(g.labels, vec!["app"]);
        let MetricExpr::Range {
            op: RangeOp::Rate,
            range,
            ..
        } = *inner
        else {
            panic!()
        };
        assert_eq!(range.range_ns, 300_000_000_000);
        assert_eq!(range.offset_ns, 60_000_000_000);
        assert!(parse(r#"topk(3, sum(count_over_time({a="b"}[1m])) without (x))"#).is_ok());
        assert!(parse(r#"sum(count_over_time({a="b"}[1m])) by (x)"#).is_ok());
        assert!(parse(r#"avg_over_time({a="b"} | logfmt | unwrap duration(took) | __error__="" [1m]) by (x)"#).is_ok());
        assert!(parse(r#"quantile_over_time(0.9, {a="b"} | json | unwrap n [1m])"#).is_ok());
        assert!(parse(r#"count_over_time({a="b"}[1m] |= "x")"#).is_ok());
        assert!(parse(r#"count_over_time(({a="b"} |= "x")[1m])"#).is_ok());
        assert!(
            parse(
                r#"count_over_time({a="b"}[1m]) > bool 2 or count_over_time({a="c"}[1m]) * 2 ^ 2"#
            )
            .is_ok()
        );
        assert!(parse("1 + 2 * 3").is_ok());
        assert!(parse(r#"label_replace(rate({a="b"}[1m]), "x", "$1", "a", "(.*)")"#).is_ok());
        assert!(parse(r#"sum(rate({a="b"}[1m])) or vector(0)"#).is_ok());
        assert!(
            parse(r#"sum(rate({a="b"}[1m])) / on(a) group_left(c) sum by (a) (rate({a="b"}[1m]))"#)
                .is_ok()
        );
        assert!(parse(r#"rate({a="b"}[1m]) and ignoring(x) rate({a="c"}[1m])"#).is_ok());
    }

    #[test]
    fn errors_with_positions() {
        assert_eq!(
            err(r#"{app="a"} | foo"#),
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER, expecting a parser, a formatter or a label filter"
        );
        assert_eq!(
            err("{}"),
            "parse error at line 1, col 2: syntax error: unexpected }, expecting IDENTIFIER"
        );
        assert_eq!(
            err(r#"{app="a""#),
            "parse error at line 1, col 9: syntax error: unexpected $end, expecting , or }"
        );
        assert!(err(r#"{app=~".*"}"#).contains("at least one regexp or equality matcher"));
        assert!(err(r#"{app="a"} |~ "(""#).contains("col 14: syntax error: invalid regex"));
        assert!(err(r#"sum_over_time({a="b"}[1m])"#).contains("without unwrap"));
        assert!(err(r#"count_over_time({a="b"}[1m]) by (x)"#).contains("grouping not allowed"));
        assert!(err(r#"sum({a="b"})"#).contains("unexpected log query"));
        assert!(err(r#"{a="b"} | unwrap x"#).contains("only allowed in a range"));
        assert!(err(r#"{a="b"} + 1"#).contains("unexpected +"));
        assert!(err(r#"topk(0, count_over_time({a="b"}[1m]))"#).contains("positive integer"));
        assert!(err(r#"rate({a="b"}[0s])"#).contains("DURATION"));
        assert!(err("1 and 2").contains("set operator"));
        assert!(err("vector(x)").contains("expecting NUMBER"));
        assert!(
            err(r#"label_replace(rate({a="b"}[1m]), "x", "$1", "a", "(")"#)
                .contains("invalid regex")
        );
        assert!(
            err(r#"label_replace(rate({a="b"}[1m]), "1x", "$1", "a", ".*")"#)
                .contains("destination label")
        );
        assert!(
            err(r#"rate({a="b"}[1m]) and on(x) group_left rate({a="c"}[1m])"#)
                .contains("no grouping allowed")
        );
        assert!(err(r#"{a="b"} | line_format "{{.x""#).contains("invalid line template"));
        assert!(err(r#"{a="b"} | label_format x=y, x="z""#).contains("multiple label name"));
        assert!(err("(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))").contains("nested deeper"));
    }
}
