//! The functions templates may call (Go's `strings` names as Loki registers
//! them, plus the sprig ones Loki allows), and the values they pass around.

use super::template::{MAX_OUTPUT, TemplateCtx, TemplateError};

#[derive(Clone, Debug)]
pub(super) enum Value {
    Str(String),
    /// A timestamp in ns (what `__timestamp__` returns).
    Time(i64),
}

impl Value {
    pub(super) fn into_string(self) -> String {
        match self {
            Value::Str(s) => s,
            Value::Time(ns) => format_go_time(ns),
        }
    }
}

/// Go's default `time.Time` print form, in UTC.
fn format_go_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => {
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{nanos:09}").trim_end_matches('0').to_string()
            };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => ns.to_string(),
    }
}

pub(super) fn call(
    name: &str,
    args: Vec<Value>,
    ctx: &dyn TemplateCtx,
) -> Result<Value, TemplateError> {
    let n = args.len();
    let want = |k: usize| {
        if n == k {
            Ok(())
        } else {
            Err(TemplateError(format!(
                "wrong number of args for {name}: want {k} got {n}"
            )))
        }
    };
    let time_arg = |v: &Value| match v {
        Value::Time(ns) => Ok(*ns),
        Value::Str(s) => s
            .parse::<i64>()
            .map_err(|_| TemplateError(format!("{name}: expected a timestamp, got {s:?}"))),
    };
    let s: Vec<String> = args.iter().cloned().map(Value::into_string).collect();
    let num = |i: usize| -> Result<i64, TemplateError> {
        s[i].parse::<i64>()
            .map_err(|_| TemplateError(format!("{name}: expected an integer, got {:?}", s[i])))
    };
    let out = match name {
        "__line__" => {
            want(0)?;
            ctx.line().to_string()
        }
        "__timestamp__" => {
            want(0)?;
            return Ok(Value::Time(ctx.ts_ns()));
        }
        "unixEpoch" => {
            want(1)?;
            time_arg(&args[0])?.div_euclid(1_000_000_000).to_string()
        }
        "ToUpper" | "upper" | "toUpper" => {
            want(1)?;
            s[0].to_uppercase()
        }
        "ToLower" | "lower" | "toLower" => {
            want(1)?;
            s[0].to_lowercase()
        }
        "title" | "Title" => {
            want(1)?;
            title(&s[0])
        }
        "TrimSpace" | "trim" => {
            want(1)?;
            s[0].trim().to_string()
        }
        "Trim" => {
            want(2)?;
            s[0].trim_matches(|c| s[1].contains(c)).to_string()
        }
        "TrimLeft" => {
            want(2)?;
            s[0].trim_start_matches(|c| s[1].contains(c)).to_string()
        }
        "TrimRight" => {
            want(2)?;
            s[0].trim_end_matches(|c| s[1].contains(c)).to_string()
        }
        "trimAll" => {
            want(2)?;
            s[1].trim_matches(|c| s[0].contains(c)).to_string()
        }
        "TrimPrefix" => {
            want(2)?;
            s[0].strip_prefix(s[1].as_str())
                .unwrap_or(&s[0])
                .to_string()
        }
        "TrimSuffix" => {
            want(2)?;
            s[0].strip_suffix(s[1].as_str())
                .unwrap_or(&s[0])
                .to_string()
        }
        "trimPrefix" => {
            want(2)?;
            s[1].strip_prefix(s[0].as_str())
                .unwrap_or(&s[1])
                .to_string()
        }
        "trimSuffix" => {
            want(2)?;
            s[1].strip_suffix(s[0].as_str())
                .unwrap_or(&s[1])
                .to_string()
        }
        // Go's strings.Replace(s, old, new, n); n < 0 means all.
        "Replace" => {
            want(4)?;
            let count = num(3)?;
            if count < 0 {
                s[0].replace(&s[1], &s[2])
            } else {
                s[0].replacen(&s[1], &s[2], count as usize)
            }
        }
        // sprig's replace old new src.
        "replace" => {
            want(3)?;
            s[2].replace(&s[0], &s[1])
        }
        "repeat" => {
            want(2)?;
            let count = num(0)?.max(0) as usize;
            if count.saturating_mul(s[1].len()) > MAX_OUTPUT {
                return Err(TemplateError(format!(
                    "repeat: result larger than {MAX_OUTPUT} bytes"
                )));
            }
            s[1].repeat(count)
        }
        "default" => {
            want(2)?;
            if s[1].is_empty() {
                s[0].clone()
            } else {
                s[1].clone()
            }
        }
        "contains" => {
            want(2)?;
            s[1].contains(s[0].as_str()).to_string()
        }
        "hasPrefix" => {
            want(2)?;
            s[1].starts_with(s[0].as_str()).to_string()
        }
        "hasSuffix" => {
            want(2)?;
            s[1].ends_with(s[0].as_str()).to_string()
        }
        "trunc" => {
            want(2)?;
            let k = num(0)?;
            let chars: Vec<char> = s[1].chars().collect();
            let len = chars.len() as i64;
            if k >= 0 {
                chars[..k.min(len) as usize].iter().collect()
            } else {
                chars[(len + k).max(0) as usize..].iter().collect()
            }
        }
        "substr" => {
            want(3)?;
            let chars: Vec<char> = s[2].chars().collect();
            let len = chars.len() as i64;
            let (a, b) = (num(0)?, num(1)?);
            let a = if a < 0 { 0 } else { a.min(len) };
            let b = if b < 0 || b > len { len } else { b };
            if a > b {
                String::new()
            } else {
                chars[a as usize..b as usize].iter().collect()
            }
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want(3)?;
            let re = regex::Regex::new(&s[0])
                .map_err(|e| TemplateError(format!("{name}: invalid regex: {e}")))?;
            if name == "regexReplaceAll" {
                re.replace_all(&s[1], s[2].as_str()).into_owned()
            } else {
                re.replace_all(&s[1], regex::NoExpand(&s[2])).into_owned()
            }
        }
        "printf" => {
            if s.is_empty() {
                return Err(TemplateError("printf: missing format".into()));
            }
            printf(&s[0], &s[1..])
        }
        "len" => {
            want(1)?;
            s[0].len().to_string()
        }
        _ => return Err(TemplateError(format!("function {name:?} not defined"))),
    };
    Ok(Value::Str(out))
}

/// The functions `call` knows; an unknown one is a parse error, as in Go.
pub(super) const FUNCTIONS: &[&str] = &[
    "__line__",
    "__timestamp__",
    "unixEpoch",
    "ToUpper",
    "upper",
    "toUpper",
    "ToLower",
    "lower",
    "toLower",
    "title",
    "Title",
    "TrimSpace",
    "trim",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "trimAll",
    "TrimPrefix",
    "TrimSuffix",
    "trimPrefix",
    "trimSuffix",
    "Replace",
    "replace",
    "repeat",
    "default",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trunc",
    "substr",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "printf",
    "len",
];

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// `%s`, `%v`, `%d` and `%%` only: enough for label formatting.
fn printf(fmt: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(_) => match it.next() {
                Some(a) => out.push_str(a),
                None => out.push_str("%!(MISSING)"),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}
