//! The parsed template. `Display` prints nodes the way Go does in
//! "executing ... at <node>" errors.

use std::fmt;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub struct Arg {
    pub pos: usize,
    pub kind: ArgKind,
}

/// A number literal: Go keeps both readings when they are exact.
#[derive(Debug, Clone)]
pub struct Num {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum ArgKind {
    Dot,
    Nil,
    Bool(bool),
    Number(Num),
    /// Value and source text.
    Str(String, String),
    /// `.a.b`
    Field(Vec<String>),
    /// `$x.a.b`: the variable name then fields.
    Var(Vec<String>),
    Ident(String),
    Pipe(Box<Pipe>),
    /// `(pipe).a.b`
    Chain(Box<Arg>, Vec<String>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Number(n) => f.write_str(&n.text),
            ArgKind::Str(_, src) => f.write_str(src),
            ArgKind::Field(names) => names.iter().try_for_each(|n| write!(f, ".{n}")),
            ArgKind::Var(names) => f.write_str(&names.join(".")),
            ArgKind::Ident(n) => f.write_str(n),
            ArgKind::Pipe(p) => write!(f, "({p})"),
            ArgKind::Chain(a, names) => {
                write!(f, "{a}")?;
                names.iter().try_for_each(|n| write!(f, ".{n}"))
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            let op = if self.is_assign { "=" } else { ":=" };
            write!(f, "{} {op} ", self.decl.join(", "))?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
