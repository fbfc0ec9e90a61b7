//! Go text/template's builtin functions (Go 1.19, which Prometheus 2.42 is
//! built with): comparisons, len, index, and the html/js/urlquery escapers.

use std::cmp::Ordering;
use std::rc::Rc;

use super::value::Value;

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

/// `eq a b c...`: a equals any of the others.
pub fn eq(a: &Value, rest: &[Value]) -> Result<bool, String> {
    if matches!(a, Value::StrMap(_) | Value::AnyMap(_) | Value::Samples(_)) {
        return Err(format!("uncomparable type {}: {}", a.type_name(), a.go_v()));
    }
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in rest {
        let same = match (a, b) {
            (Value::Nil, Value::Nil) => true,
            (Value::Nil, _) | (_, Value::Nil) => false,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x == y,
            (Value::Sample(x), Value::Sample(y)) => Rc::ptr_eq(x, y),
            (Value::Time(x), Value::Time(y)) => x == y,
            (Value::StrMap(_) | Value::AnyMap(_) | Value::Samples(_), _) => {
                return Err(format!(
                    "non-comparable type {}: {}",
                    b.go_v(),
                    b.type_name()
                ));
            }
            _ => return Err(BAD_COMPARISON.into()),
        };
        if same {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Ordering for lt/le/gt/ge: basic kinds only, both the same kind.
pub fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    let basic = |v: &Value| {
        matches!(
            v,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Html(_)
        )
    };
    if !basic(a) || !basic(b) {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        // NaN compares as neither less nor equal, as in Go.
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Greater)),
        (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => Ok(x.cmp(y)),
        (Value::Bool(_), Value::Bool(_)) => Err(BAD_COMPARISON_TYPE.into()),
        _ => Err(BAD_COMPARISON.into()),
    }
}

/// lt/le/gt/ge, where a NaN operand makes every answer but `!=` false... as Go:
/// lt is `<`, le is `lt || eq`, gt is `!le`, ge is `!lt`.
pub fn ordered(op: &str, a: &Value, b: &Value) -> Result<bool, String> {
    let ord = compare(a, b)?;
    let nan = matches!((a, b), (Value::Float(x), Value::Float(y)) if x.is_nan() || y.is_nan());
    let lt = !nan && ord == Ordering::Less;
    let le = lt || (!nan && ord == Ordering::Equal);
    Ok(match op {
        "lt" => lt,
        "le" => le,
        "gt" => !le,
        _ => !lt,
    })
}

pub fn len(v: &Value) -> Result<Value, String> {
    let n = match v {
        Value::Str(s) | Value::Html(s) => s.len(),
        Value::StrMap(m) => m.len(),
        Value::AnyMap(m) => m.len(),
        Value::Samples(s) => s.len(),
        Value::Nil => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        other => {
            return Err(format!(
                "len of type {}",
                other.type_name().trim_start_matches('*')
            ));
        }
    };
    Ok(Value::Int(n as i64))
}

pub fn index(item: &Value, keys: &[Value]) -> Result<Value, String> {
    let mut item = item.clone();
    if matches!(item, Value::Nil) {
        return Err("index of untyped nil".into());
    }
    for k in keys {
        item = match (&item, k) {
            (Value::StrMap(m), Value::Str(s)) => Value::Str(m.get(s).cloned().unwrap_or_default()),
            (Value::AnyMap(m), Value::Str(s)) => m.get(s).cloned().unwrap_or(Value::Nil),
            (Value::StrMap(_) | Value::AnyMap(_), Value::Nil) => {
                return Err("value is nil; should be of type string".into());
            }
            (Value::StrMap(_) | Value::AnyMap(_), k) => {
                return Err(format!(
                    "value has type {}; should be string",
                    k.type_name()
                ));
            }
            (Value::Str(_) | Value::Html(_) | Value::Samples(_), Value::Int(i)) => {
                let len = match &item {
                    Value::Str(s) | Value::Html(s) => s.len(),
                    Value::Samples(v) => v.len(),
                    _ => 0,
                };
                if *i < 0 || *i as usize > len {
                    return Err(format!("index out of range: {i}"));
                }
                let i = *i as usize;
                match &item {
                    Value::Str(s) | Value::Html(s) => match s.as_bytes().get(i) {
                        Some(b) => Value::Int(i64::from(*b)),
                        None => return Err("reflect: string index out of range".into()),
                    },
                    Value::Samples(v) => match v.get(i) {
                        Some(s) => Value::Sample(s.clone()),
                        None => return Err("reflect: slice index out of range".into()),
                    },
                    _ => unreachable!("matched above"),
                }
            }
            (Value::Str(_) | Value::Html(_) | Value::Samples(_), Value::Nil) => {
                return Err("cannot index slice/array with nil".into());
            }
            (Value::Str(_) | Value::Html(_) | Value::Samples(_), k) => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    k.type_name()
                ));
            }
            (Value::Sample(_), _) => return Err("can't index item of type template.sample".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

/// `slice x 1 2`: strings (by bytes) and query results.
pub fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let len = match item {
        Value::Nil => return Err("slice of untyped nil".into()),
        _ if idx.len() > 3 => return Err(format!("too many slice indexes: {}", idx.len())),
        Value::Str(_) | Value::Html(_) if idx.len() == 3 => {
            return Err("cannot 3-index slice a string".into());
        }
        Value::Str(s) | Value::Html(s) => s.len(),
        Value::Samples(v) => v.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut at = [0, len, len];
    for (i, x) in idx.iter().enumerate() {
        at[i] = match x {
            Value::Int(n) if *n < 0 || *n as usize > len => {
                return Err(format!("index out of range: {n}"));
            }
            Value::Int(n) => *n as usize,
            Value::Nil => return Err("cannot index slice/array with nil".into()),
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                ));
            }
        };
    }
    if at[0] > at[1] {
        return Err(format!("invalid slice index: {} > {}", at[0], at[1]));
    }
    if idx.len() == 3 && at[1] > at[2] {
        return Err(format!("invalid slice index: {} > {}", at[1], at[2]));
    }
    Ok(match item {
        // Go may cut inside a UTF-8 sequence; Rust strings cannot hold that.
        Value::Str(s) => {
            Value::Str(String::from_utf8_lossy(&s.as_bytes()[at[0]..at[1]]).into_owned())
        }
        Value::Html(s) => {
            Value::Html(String::from_utf8_lossy(&s.as_bytes()[at[0]..at[1]]).into_owned())
        }
        Value::Samples(v) => Value::Samples(Rc::new(v[at[0]..at[1]].to_vec())),
        _ => unreachable!("checked above"),
    })
}

/// The single-string shortcut, else Sprint of the printable forms (nil prints
/// `<no value>`, pointers are followed), as Go's evalArgs.
pub fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.clone();
    }
    let parts: Vec<(String, bool)> = args
        .iter()
        .map(|a| match a {
            Value::Nil => ("<no value>".to_string(), true),
            Value::Sample(_) => (a.printed(), false),
            other => (other.go_v(), other.is_string()),
        })
        .collect();
    let mut out = String::new();
    for (i, (s, is_str)) in parts.iter().enumerate() {
        if i > 0 && !is_str && !parts[i - 1].1 {
            out.push(' ');
        }
        out.push_str(s);
    }
    out
}

pub fn html(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub fn js(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if !c.is_ascii() && !is_print(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Approximates Go's unicode.IsPrint for non-ASCII: not a control, a
/// separator other than ' ', or a common format character.
fn is_print(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

/// url.QueryEscape.
pub fn urlquery(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
