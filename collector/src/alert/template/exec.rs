//! The executor, after Go's text/template exec.go with `missingkey=zero`
//! (as Prometheus sets it): variables, pipelines, fields, calls, control flow.

use std::fmt::Display;
use std::rc::Rc;

use super::ast::{Arg, ArgKind, Branch, Cmd, Node, Num, Pipe};
use super::funcs::{self, Ctx, P};
use super::value::Value;

pub struct State<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub ctx: Ctx<'a>,
    pub vars: Vec<(String, Value)>,
    pub out: String,
}

type R<T> = Result<T, String>;

/// What a walked list asks of the enclosing range.
#[derive(PartialEq)]
pub enum Flow {
    Normal,
    Break,
    Continue,
}

impl State<'_> {
    /// Go's "template: NAME:LINE:COL: executing "NAME" at <node>: msg".
    fn err(&self, pos: usize, node: &dyn Display, msg: impl Display) -> String {
        let before = &self.text[..pos.min(self.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = before.rfind('\n').map_or(pos, |i| pos - i - 1);
        format!(
            "template: {}:{line}:{col}: executing {:?} at <{node}>: {msg}",
            self.name, self.name
        )
    }

    pub fn walk(&mut self, dot: &Value, list: &[Node]) -> R<Flow> {
        for n in list {
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.printed());
                    }
                    Flow::Normal
                }
                Node::If(b) => self.if_with(dot, b, false)?,
                Node::With(b) => self.if_with(dot, b, true)?,
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn if_with(&mut self, dot: &Value, b: &Branch, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let flow = if v.truth() {
            self.walk(if with { &v } else { dot }, &b.list)?
        } else if let Some(e) = &b.else_list {
            self.walk(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Samples(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), Value::Sample(x.clone())))
                .collect(),
            Value::StrMap(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), Value::Str(x.clone())))
                .collect(),
            Value::AnyMap(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                let node = last_node(&b.pipe);
                return Err(self.err(
                    node.pos,
                    node,
                    format!("range can't iterate over {}", other.go_v()),
                ));
            }
        };
        let inner = self.vars.len();
        for (k, x) in &items {
            // The last declared variable gets the element, the one before it the key.
            let n = self.vars.len();
            if !b.pipe.decl.is_empty() {
                self.vars[n - 1].1 = x.clone();
            }
            if b.pipe.decl.len() > 1 {
                self.vars[n - 2].1 = k.clone();
            }
            let flow = self.walk(x, &b.list)?;
            self.vars.truncate(inner);
            if flow == Flow::Break {
                break;
            }
        }
        if let (true, Some(e)) = (items.is_empty(), &b.else_list) {
            self.walk(dot, e)?;
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    pub fn pipeline(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let mut val = None;
        for c in &p.cmds {
            val = Some(self.command(dot, c, val)?);
        }
        let val = val.unwrap_or(Value::Nil);
        for d in &p.decl {
            if p.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == d) {
                    Some(slot) => slot.1 = val.clone(),
                    None => {
                        let node = last_node(p);
                        return Err(self.err(node.pos, node, format!("undefined variable: {d}")));
                    }
                }
            } else {
                self.vars.push((d.clone(), val.clone()));
            }
        }
        Ok(val)
    }

    fn var(&self, name: &str) -> Value {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Value::Nil, |(_, v)| v.clone())
    }

    fn not_a_function(&self, c: &Cmd, fin: &Option<Value>) -> R<()> {
        if c.args.len() > 1 || fin.is_some() {
            let a = &c.args[0];
            return Err(self.err(a.pos, a, format!("can't give argument to non-function {a}")));
        }
        Ok(())
    }

    fn command(&mut self, dot: &Value, c: &Cmd, fin: Option<Value>) -> R<Value> {
        let first = &c.args[0];
        let has_args = c.args.len() > 1 || fin.is_some();
        match &first.kind {
            ArgKind::Field(names) => return self.fields(first, dot.clone(), names, has_args),
            ArgKind::Chain(inner, names) => {
                if matches!(inner.kind, ArgKind::Nil) {
                    return Err(self.err(
                        first.pos,
                        first,
                        format!("indirection through explicit nil in {first}"),
                    ));
                }
                let recv = self.arg(dot, P::Any, inner)?;
                // Go reports chain errors at the last node it evaluated inside.
                let at = match &inner.kind {
                    ArgKind::Pipe(p) => last_node(p),
                    _ => inner,
                };
                return self.fields(at, recv, names, has_args);
            }
            ArgKind::Ident(name) => return self.call(dot, name, c.pos, c, &c.args[1..], fin),
            ArgKind::Var(names) => {
                let v = self.var(&names[0]);
                if names.len() == 1 {
                    self.not_a_function(c, &fin)?;
                    return Ok(v);
                }
                return self.fields(first, v, &names[1..], has_args);
            }
            _ => {}
        }
        self.not_a_function(c, &fin)?;
        match &first.kind {
            ArgKind::Pipe(p) => self.pipeline(dot, p),
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Number(n) => self.constant(first, n),
            ArgKind::Str(s, _) => Ok(Value::Str(s.clone())),
            _ => Err(self.err(first.pos, first, "nil is not a command")),
        }
    }

    /// Go's idealConstant: floats when written like one, else int.
    fn constant(&self, a: &Arg, n: &Num) -> R<Value> {
        let t = &n.text;
        let hex = t
            .trim_start_matches(['+', '-'])
            .to_ascii_lowercase()
            .starts_with("0x");
        if n.float.is_some()
            && !hex
            && !t.starts_with('\'')
            && t.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(n.float.unwrap_or_default()));
        }
        match n.int {
            Some(i) => Ok(Value::Int(i)),
            None => Err(self.err(a.pos, a, format!("{t} overflows int"))),
        }
    }

    /// Field chain `.a.b` on `recv`: struct fields, then map keys (zero when missing).
    fn fields(&self, node: &Arg, mut recv: Value, names: &[String], has_args: bool) -> R<Value> {
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let args_here = last && has_args;
            recv = match &recv {
                Value::Nil => Value::Nil,
                Value::Data(d) => {
                    let v = match name.as_str() {
                        "Labels" => Value::StrMap(Rc::new(d.labels.clone())),
                        "ExternalLabels" => Value::StrMap(Rc::new(d.external_labels.clone())),
                        "ExternalURL" => Value::Str(d.external_url.clone()),
                        "Value" => Value::Float(d.value),
                        _ => {
                            return Err(self.err(
                                node.pos,
                                node,
                                format!("can't evaluate field {name} in type {}", recv.type_name()),
                            ));
                        }
                    };
                    if args_here {
                        return Err(self.err(
                            node.pos,
                            node,
                            format!("{name} has arguments but cannot be invoked as function"),
                        ));
                    }
                    v
                }
                Value::Sample(s) => {
                    let v = match name.as_str() {
                        "Labels" => Value::StrMap(Rc::new(s.labels.clone())),
                        "Value" => Value::Float(s.value),
                        _ => {
                            return Err(self.err(
                                node.pos,
                                node,
                                format!("can't evaluate field {name} in type *template.sample"),
                            ));
                        }
                    };
                    if args_here {
                        return Err(self.err(
                            node.pos,
                            node,
                            format!("{name} has arguments but cannot be invoked as function"),
                        ));
                    }
                    v
                }
                Value::StrMap(_) | Value::AnyMap(_) if args_here => {
                    return Err(self.err(
                        node.pos,
                        node,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                Value::StrMap(m) => Value::Str(m.get(name).cloned().unwrap_or_default()),
                Value::AnyMap(m) => m.get(name).cloned().unwrap_or(Value::Nil),
                other => {
                    return Err(self.err(
                        node.pos,
                        node,
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    ));
                }
            };
        }
        Ok(recv)
    }

    /// Evaluates an argument for a parameter of type `p`, with Go's checks.
    fn arg(&mut self, dot: &Value, p: P, a: &Arg) -> R<Value> {
        let v = match &a.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil if p == P::Str => {
                return Err(self.err(a.pos, a, "cannot assign nil to string"));
            }
            ArgKind::Nil => return Ok(Value::Nil),
            ArgKind::Field(names) => self.fields(a, dot.clone(), names, false)?,
            ArgKind::Var(names) => {
                let v = self.var(&names[0]);
                self.fields(a, v, &names[1..], false)?
            }
            ArgKind::Pipe(pipe) => self.pipeline(dot, pipe)?,
            ArgKind::Ident(name) => self.call(dot, name, a.pos, a, &[], None)?,
            ArgKind::Chain(..) => {
                let cmd = Cmd {
                    pos: a.pos,
                    args: vec![a.clone()],
                };
                self.command(dot, &cmd, None)?
            }
            ArgKind::Str(s, _) if matches!(p, P::Any | P::Str) => return Ok(Value::Str(s.clone())),
            ArgKind::Number(n) if p == P::Any => return self.constant(a, n),
            ArgKind::Bool(b) if p == P::Any => return Ok(Value::Bool(*b)),
            _ if p == P::Str => {
                return Err(self.err(a.pos, a, format!("expected string; found {a}")));
            }
            _ => {
                return Err(self.err(
                    a.pos,
                    a,
                    format!("can't handle {a} for arg of type {}", p.go_name()),
                ));
            }
        };
        self.check(a.pos, a, p, v)
    }

    /// Go's validateType for values computed at run time.
    fn check(&self, pos: usize, a: &dyn Display, p: P, v: Value) -> R<Value> {
        let ok = match (p, &v) {
            (P::Any, _) => true,
            (P::Str, Value::Str(_)) => true,
            (P::Str, Value::Nil) => {
                return Err(self.err(pos, a, "invalid value; expected string"));
            }
            (P::Sample, Value::Sample(_) | Value::Nil) => true,
            (P::Samples, Value::Samples(_) | Value::Nil) => true,
            _ => false,
        };
        if ok {
            return Ok(v);
        }
        Err(self.err(
            pos,
            a,
            format!(
                "wrong type for value; expected {}; got {}",
                p.go_name(),
                v.type_name()
            ),
        ))
    }

    /// Calls a function; `node` is what errors point at (the command, or the
    /// identifier when the call is itself an argument).
    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        pos: usize,
        node: &dyn Display,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let Some((fixed, variadic)) = funcs::spec(name) else {
            return Err(self.err(pos, &name, format!("{name:?} is not a defined function")));
        };
        let n = args.len() + usize::from(fin.is_some());
        match variadic {
            Some(_) if n < fixed.len() => {
                return Err(self.err(
                    pos,
                    &name,
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        fixed.len(),
                        args.len()
                    ),
                ));
            }
            None if n != fixed.len() => {
                return Err(self.err(
                    pos,
                    &name,
                    format!(
                        "wrong number of args for {name}: want {} got {n}",
                        fixed.len()
                    ),
                ));
            }
            _ => {}
        }
        let ptype = |i: usize| fixed.get(i).copied().or(variadic).unwrap_or(P::Any);
        if name == "and" || name == "or" {
            // Short-circuit: the first falsy (and) / truthy (or) value, else the last.
            let mut v = Value::Nil;
            for a in args {
                v = self.arg(dot, P::Any, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(fin.unwrap_or(v));
        }
        let mut vals = Vec::with_capacity(n);
        for (i, a) in args.iter().enumerate() {
            vals.push(self.arg(dot, ptype(i), a)?);
        }
        if let Some(f) = fin {
            vals.push(self.check(pos, node, ptype(args.len()), f)?);
        }
        funcs::call(name, &vals, &self.ctx)
            .map_err(|e| self.err(pos, node, format!("error calling {name}: {e}")))
    }
}

/// The node Go's executor last visited in a pipeline (where its range errors point).
fn last_node(p: &Pipe) -> &Arg {
    let cmd = &p.cmds[p.cmds.len() - 1];
    let arg = &cmd.args[cmd.args.len() - 1];
    match &arg.kind {
        ArgKind::Pipe(inner) => last_node(inner),
        _ => arg,
    }
}
