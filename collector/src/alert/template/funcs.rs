//! The function table: Go's builtins and Prometheus 2.42's template
//! functions, with the Go parameter types the executor checks arguments against.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::builtins as b;
use super::format::{quote, sprint, sprintf, sprintln};
use super::humanize as h;
use super::value::Value;
use super::{QueryFn, Sample};

/// A Go parameter type, as far as argument checking needs it.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum P {
    /// interface{} or reflect.Value: anything.
    Any,
    Str,
    /// *template.sample
    Sample,
    /// template.queryResult
    Samples,
}

impl P {
    pub fn go_name(self) -> &'static str {
        match self {
            P::Any => "interface {}",
            P::Str => "string",
            P::Sample => "*template.sample",
            P::Samples => "template.queryResult",
        }
    }
}

/// Fixed parameters and the variadic element type, if any.
pub fn spec(name: &str) -> Option<(&'static [P], Option<P>)> {
    use P::*;
    Some(match name {
        "and" | "or" | "eq" => (&[Any], Some(Any)),
        "not" | "len" => (&[Any], None),
        "ne" | "lt" | "le" | "gt" | "ge" => (&[Any, Any], None),
        "index" | "slice" => (&[Any], Some(Any)),
        "print" | "println" | "html" | "js" | "urlquery" | "args" => (&[], Some(Any)),
        "printf" => (&[Str], Some(Any)),
        "query" | "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink"
        | "stripPort" | "stripDomain" | "parseDuration" => (&[Str], None),
        "first" => (&[Samples], None),
        "label" => (&[Str, Sample], None),
        "value" | "strvalue" => (&[Sample], None),
        "reReplaceAll" => (&[Str, Str, Str], None),
        "match" => (&[Str, Str], None),
        "sortByLabel" => (&[Str, Samples], None),
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
        | "humanizeTimestamp" | "toTime" => (&[Any], None),
        "pathPrefix" | "externalURL" => (&[], None),
        _ => return None,
    })
}

pub fn exists(name: &str) -> bool {
    spec(name).is_some()
}

/// What functions may reach: the query callback and the external URL.
pub struct Ctx<'a> {
    pub query: &'a dyn QueryFn,
    pub external_url: &'a str,
}

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

fn s(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

fn sample(v: &Value) -> Result<&Rc<Sample>, String> {
    match v {
        Value::Sample(s) => Ok(s),
        _ => Err(NIL_DEREF.into()),
    }
}

/// Calls `name` with arguments already checked against [`spec`]
/// (except `and`/`or`, which the executor short-circuits).
pub fn call(name: &str, a: &[Value], ctx: &Ctx) -> Result<Value, String> {
    let str_ = |x: String| Ok(Value::Str(x));
    match name {
        "not" => Ok(Value::Bool(!a[0].truth())),
        "eq" => b::eq(&a[0], &a[1..]).map(Value::Bool),
        "ne" => b::eq(&a[0], &a[1..]).map(|x| Value::Bool(!x)),
        "lt" | "le" | "gt" | "ge" => b::ordered(name, &a[0], &a[1]).map(Value::Bool),
        "len" => b::len(&a[0]),
        "index" => b::index(&a[0], &a[1..]),
        "slice" => b::slice(&a[0], &a[1..]),
        "print" => str_(sprint(a)),
        "println" => str_(sprintln(a)),
        "printf" => str_(sprintf(s(&a[0]), &a[1..])),
        "html" => str_(b::html(&b::eval_args(a))),
        "js" => str_(b::js(&b::eval_args(a))),
        "urlquery" => str_(b::urlquery(&b::eval_args(a))),
        "query" => {
            let v = ctx.query.query(s(&a[0]))?;
            Ok(Value::Samples(Rc::new(
                v.into_iter().map(Rc::new).collect(),
            )))
        }
        "first" => match &a[0] {
            Value::Samples(v) if !v.is_empty() => Ok(Value::Sample(v[0].clone())),
            _ => Err("first() called on vector with no elements".into()),
        },
        "label" => str_(
            sample(&a[1])?
                .labels
                .get(s(&a[0]))
                .cloned()
                .unwrap_or_default(),
        ),
        "value" => Ok(Value::Float(sample(&a[0])?.value)),
        "strvalue" => str_(
            sample(&a[0])?
                .labels
                .get("__value__")
                .cloned()
                .unwrap_or_default(),
        ),
        "args" => {
            let m: BTreeMap<String, Value> = a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect();
            Ok(Value::AnyMap(Rc::new(m)))
        }
        "reReplaceAll" => {
            // Go's regexp.MustCompile panics; text/template reports the panic.
            let re = regex(s(&a[0]))
                .map_err(|e| format!("regexp: Compile({}): {e}", backquote(s(&a[0]))))?;
            str_(re.replace_all(s(&a[2]), s(&a[1])).into_owned())
        }
        "match" => Ok(Value::Bool(regex(s(&a[0]))?.is_match(s(&a[1])))),
        "safeHtml" => Ok(Value::Html(s(&a[0]).into())),
        "title" => str_(title(s(&a[0]))),
        "toUpper" => str_(
            s(&a[0])
                .chars()
                .map(|c| single(c.to_uppercase(), c))
                .collect(),
        ),
        "toLower" => str_(
            s(&a[0])
                .chars()
                .map(|c| single(c.to_lowercase(), c))
                .collect(),
        ),
        "graphLink" => str_(format!("/graph?g0.expr={}&g0.tab=0", b::urlquery(s(&a[0])))),
        "tableLink" => str_(format!("/graph?g0.expr={}&g0.tab=1", b::urlquery(s(&a[0])))),
        "sortByLabel" => {
            let mut v: Vec<Rc<Sample>> = match &a[1] {
                Value::Samples(v) => v.as_ref().clone(),
                _ => Vec::new(),
            };
            let l = s(&a[0]);
            // Stable, by the label's value ("" when absent), as sort.Stable.
            v.sort_by(|x, y| {
                x.labels
                    .get(l)
                    .cloned()
                    .unwrap_or_default()
                    .cmp(&y.labels.get(l).cloned().unwrap_or_default())
            });
            Ok(Value::Samples(Rc::new(v)))
        }
        "stripPort" => str_(match split_host_port(s(&a[0])) {
            Some((host, _)) => host,
            None => s(&a[0]).into(),
        }),
        "stripDomain" => str_(strip_domain(s(&a[0]))),
        "humanize" => float(&a[0]).map(|v| Value::Str(h::humanize(v))),
        "humanize1024" => float(&a[0]).map(|v| Value::Str(h::humanize1024(v))),
        "humanizeDuration" => float(&a[0]).map(|v| Value::Str(h::humanize_duration(v))),
        "humanizePercentage" => float(&a[0]).map(|v| Value::Str(h::humanize_percentage(v))),
        "humanizeTimestamp" => h::humanize_timestamp(float(&a[0])?).map(Value::Str),
        "toTime" => {
            let v = float(&a[0])?;
            if !v.is_finite() {
                return Err("value is NaN or Inf".into());
            }
            h::to_time(v).map(Value::Time)
        }
        "parseDuration" => parse_duration(s(&a[0])).map(Value::Float),
        "externalURL" => str_(ctx.external_url.into()),
        "pathPrefix" => str_(url_path(ctx.external_url)),
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Compiles with Go's wording for the common syntax errors (Rust's otherwise).
fn regex(p: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(p).map_err(|e| {
        let msg = e.to_string();
        let go =
            |code: &str, part: &str| format!("error parsing regexp: {code}: {}", backquote(part));
        if msg.contains("unclosed character class") {
            go("missing closing ]", p.rfind('[').map_or(p, |i| &p[i..]))
        } else if msg.contains("unclosed group") {
            go("missing closing )", p)
        } else if msg.contains("unopened group") {
            go("unexpected )", p)
        } else {
            format!(
                "error parsing regexp: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        }
    })
}

/// Go's `quote` in regexp errors: backquoted when strconv.CanBackquote.
fn backquote(s: &str) -> String {
    if s.chars()
        .any(|c| c == '`' || c == '\u{feff}' || (c.is_control() && c != '\t'))
    {
        quote(s)
    } else {
        format!("`{s}`")
    }
}

/// Go's per-rune case mapping: no multi-rune expansions.
fn single(mut it: impl Iterator<Item = char>, orig: char) -> char {
    match (it.next(), it.next()) {
        (Some(c), None) => c,
        _ => orig,
    }
}

/// strings.Title: upper-case letters that follow a separator.
fn title(s: &str) -> String {
    let sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if sep(prev) {
                single(c.to_uppercase(), c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// Prometheus's convertToFloat: float64, string (strconv.ParseFloat) or int.
fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// strconv.ParseFloat, including Go's spellings of the specials and its error text.
fn parse_float(s: &str) -> Result<f64, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let plain = !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'));
    // Go allows '_' between digits.
    let ok_underscores = !body.contains('_')
        || body
            .split('_')
            .all(|p| p.ends_with(|c: char| c.is_ascii_digit()) && !p.is_empty());
    if special || (plain && ok_underscores) {
        match s.replace('_', "").parse::<f64>() {
            Ok(v) if v.is_infinite() && !special => {
                return Err(format!(
                    "strconv.ParseFloat: parsing {}: value out of range",
                    quote(s)
                ));
            }
            Ok(v) => return Ok(v),
            Err(_) => {}
        }
    }
    Err(format!(
        "strconv.ParseFloat: parsing {}: invalid syntax",
        quote(s)
    ))
}

/// net.SplitHostPort; `None` where Go returns an error.
fn split_host_port(hp: &str) -> Option<(String, String)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if let Some(rest) = hp.strip_prefix('[') {
        let end = rest.find(']')? + 1;
        if end + 1 != i {
            return None;
        }
        (hp[1..end].to_string(), 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host.to_string(), 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, hp[i + 1..].to_string()))
}

/// Prometheus's stripDomain: keep the first DNS label (and the port); IPs as they are.
fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or_else(|| (hp.to_string(), String::new()));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let first = host.split('.').next().unwrap_or("");
    match (port.is_empty(), first.contains(':')) {
        (true, _) => first.to_string(),
        (false, true) => format!("[{first}]:{port}"),
        (false, false) => format!("{first}:{port}"),
    }
}

/// model.ParseDuration in seconds: "1h30m", "1d", "500ms"; units in decreasing order.
fn parse_duration(d: &str) -> Result<f64, String> {
    if d.is_empty() {
        return Err("empty duration string".into());
    }
    if d == "0" {
        return Ok(0.0);
    }
    let bad = || format!("not a valid duration string: {}", quote(d));
    let units: [(&str, f64); 7] = [
        ("y", 31_536_000.0),
        ("w", 604_800.0),
        ("d", 86_400.0),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
        ("ms", 0.001),
    ];
    let mut rest = d;
    let mut next_unit = 0;
    let mut ms: u128 = 0;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        let num: u128 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..u];
        rest = &rest[u..];
        let k = units[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(bad)?
            + next_unit;
        next_unit = k + 1;
        ms += num * (units[k].1 * 1000.0) as u128;
    }
    if ms > i64::MAX as u128 / 1_000_000 {
        return Err("duration out of range".into());
    }
    Ok(ms as f64 / 1000.0)
}

/// The path of a URL string ("" without one), as url.URL.Path.
fn url_path(u: &str) -> String {
    let after_scheme = u.split_once("://").map_or(u, |(_, r)| r);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(title("hello wORLD foo_bar x-y"), "Hello WORLD Foo_bar X-Y");
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("::1".into(), "80".into()))
        );
        assert_eq!(split_host_port("a:b:c"), None);
        assert_eq!(strip_domain("node1.example.com:9100"), "node1:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("host.example"), "host");
        assert_eq!(parse_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("1d500ms").unwrap(), 86400.5);
        assert!(parse_duration("30m1h").is_err());
        assert_eq!(parse_float("1e3").unwrap(), 1000.0);
        assert!(
            parse_float("abc")
                .unwrap_err()
                .contains("parsing \"abc\": invalid syntax")
        );
        assert_eq!(url_path("http://x:9090/prom/?a"), "/prom/");
    }
}
