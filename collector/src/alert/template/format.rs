//! Go's fmt for the values templates print: strconv float formatting
//! ('g' shortest as `%v` uses, `%.4g` as humanize uses, 'e', 'f'), and
//! Sprint / Sprintln / Sprintf with Go's spacing and `%!verb(type=value)` errors.

use super::value::Value;

/// Decimal digits of |f| (no trailing zeros) and the decimal point position:
/// |f| = 0.d1d2d3... × 10^dp. Zero has no digits.
fn digits(f: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if f == 0.0 {
        return (Vec::new(), 0);
    }
    // Rust's `{:e}` is shortest round-trip, `{:.Ne}` correctly rounded: as Go's.
    let s = match sig {
        None => format!("{:e}", f.abs()),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    (d, exp + 1)
}

/// strconv.FormatFloat(f, verb, prec, 64) for verb 'g', 'e' or 'f' (`None` = shortest),
/// with fmt's spelling of the specials.
pub fn fmt_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = match verb {
        'f' => match prec {
            Some(p) => format!("{:.*}", p, f.abs()),
            None => {
                let (d, dp) = digits(f, None);
                fmt_f(&d, dp, (d.len() as i32 - dp).max(0) as usize)
            }
        },
        'e' => {
            let (d, dp) = digits(f, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.len().saturating_sub(1));
            fmt_e(&d, dp, p)
        }
        _ => {
            let shortest = prec.is_none();
            let mut p = prec.map_or(0, |p| p.max(1));
            let (d, dp) = digits(f, if shortest { None } else { Some(p) });
            let nd = d.len() as i32;
            let mut eprec = p as i32;
            if shortest {
                p = d.len();
                eprec = 6;
            } else if eprec > nd && nd >= dp {
                eprec = nd;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                let p = p.min(d.len().max(1));
                fmt_e(&d, dp, p - 1)
            } else {
                let p = if p as i32 > dp { d.len() } else { p };
                fmt_f(&d, dp, (p as i32 - dp).max(0) as usize)
            }
        }
    };
    format!("{sign}{body}")
}

fn digit(d: &[u8], i: i32) -> char {
    if i >= 0 && (i as usize) < d.len() {
        d[i as usize] as char
    } else {
        '0'
    }
}

fn fmt_e(d: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    s.push(digit(d, 0));
    if prec > 0 {
        s.push('.');
        (1..=prec as i32).for_each(|i| s.push(digit(d, i)));
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    let (sign, e) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
    format!("{s}e{sign}{e:02}")
}

fn fmt_f(d: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if dp > 0 {
        (0..dp).for_each(|i| s.push(digit(d, i)));
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        (0..prec as i32).for_each(|i| s.push(digit(d, dp + i)));
    }
    s
}

/// fmt.Sprint: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&a.go_v());
    }
    out
}

/// fmt.Sprintln: always spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(Value::go_v).collect();
    format!("{}\n", parts.join(" "))
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// fmt.Sprintf for the verbs templates use: v s q d f F e E g G x X o b c t %.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut it = format.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut sp = Spec::default();
        while let Some(&f) = it.peek() {
            match f {
                '-' => sp.minus = true,
                '+' => sp.plus = true,
                '#' => sp.sharp = true,
                ' ' => sp.space = true,
                '0' => sp.zero = true,
                _ => break,
            }
            it.next();
        }
        let num = |it: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n = None;
            while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                it.next();
            }
            n
        };
        // Go ignores widths and precisions over 1e6 (fmt's tooLarge).
        sp.width = num(&mut it).filter(|w| *w <= 1_000_000);
        if it.peek() == Some(&'.') {
            it.next();
            sp.prec = Some(num(&mut it).filter(|p| *p <= 1_000_000).unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&one(&sp, verb, arg));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".into(),
                _ => format!("{}={}", a.type_name(), a.go_v()),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn bad(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", arg.type_name(), arg.go_v()),
    }
}

fn one(sp: &Spec, verb: char, arg: &Value) -> String {
    let (body, numeric) = match (arg, verb) {
        (Value::Bool(b), 't' | 'v') => (b.to_string(), false),
        (Value::Int(i), 'v' | 'd') => (int_sign(sp, *i, i.unsigned_abs().to_string()), true),
        (Value::Int(i), 'x') => (int_sign(sp, *i, format!("{:x}", i.unsigned_abs())), true),
        (Value::Int(i), 'X') => (int_sign(sp, *i, format!("{:X}", i.unsigned_abs())), true),
        (Value::Int(i), 'o') => (int_sign(sp, *i, format!("{:o}", i.unsigned_abs())), true),
        (Value::Int(i), 'b') => (int_sign(sp, *i, format!("{:b}", i.unsigned_abs())), true),
        (Value::Int(i), 'c') => (
            char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
            false,
        ),
        (Value::Int(i), 'q') => (
            format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{fffd}')),
            false,
        ),
        (Value::Float(f), 'v' | 'g' | 'G' | 'e' | 'E' | 'f' | 'F') => {
            let base = match verb {
                'v' | 'g' | 'G' => 'g',
                'e' | 'E' => 'e',
                _ => 'f',
            };
            let prec = match (base, sp.prec) {
                ('g', p) => p,
                (_, None) => Some(6),
                (_, p) => p,
            };
            let mut s = fmt_float(*f, base, prec);
            if verb.is_ascii_uppercase() {
                s = s.to_uppercase();
            }
            if (sp.plus || sp.space) && !s.starts_with(['-', '+']) {
                s.insert(0, if sp.plus { '+' } else { ' ' });
            }
            (s, !f.is_nan() && !f.is_infinite())
        }
        (Value::Str(s) | Value::Html(s), 's' | 'v') => {
            let s = match sp.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            };
            (s, false)
        }
        (Value::Str(s) | Value::Html(s), 'q') => (quote(s), false),
        (Value::Str(s) | Value::Html(s), 'x') => {
            (s.bytes().map(|b| format!("{b:02x}")).collect(), false)
        }
        (Value::Str(s) | Value::Html(s), 'X') => {
            (s.bytes().map(|b| format!("{b:02X}")).collect(), false)
        }
        (Value::Nil, 'v') => ("<nil>".into(), false),
        // *time.Time is a fmt.Stringer.
        (Value::Time(_), 's' | 'v') => (arg.go_v(), false),
        (Value::Time(_), 'q') => (quote(&arg.go_v()), false),
        (_, 'v') | (Value::StrMap(_) | Value::AnyMap(_), 's') => (arg.go_v(), false),
        _ => return bad(verb, arg),
    };
    pad(sp, body, numeric)
}

fn int_sign(sp: &Spec, i: i64, digits: String) -> String {
    let digits = match sp.prec {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    };
    if i < 0 {
        format!("-{digits}")
    } else if sp.plus {
        format!("+{digits}")
    } else if sp.space {
        format!(" {digits}")
    } else {
        digits
    }
}

fn pad(sp: &Spec, body: String, numeric: bool) -> String {
    let Some(w) = sp.width else { return body };
    let n = body.chars().count();
    if n >= w {
        return body;
    }
    let fill = w - n;
    if sp.minus {
        format!("{body}{}", " ".repeat(fill))
    } else if sp.zero && numeric {
        let (sign, rest) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
            _ => (String::new(), body),
        };
        format!("{sign}{}{rest}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

/// strconv.Quote: Go-escaped, double-quoted.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_strconv() {
        let g = |f| fmt_float(f, 'g', None);
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(123456.0), "123456");
        assert_eq!(g(0.1), "0.1");
        assert_eq!(g(3.0), "3");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(1.5e300), "1.5e+300");
        assert_eq!(g(f64::NAN), "NaN");
        assert_eq!(g(f64::INFINITY), "+Inf");
        assert_eq!(g(-2.5), "-2.5");
        let g4 = |f| fmt_float(f, 'g', Some(4));
        assert_eq!(g4(1234.5), "1234");
        assert_eq!(g4(12345.0), "1.234e+04");
        assert_eq!(g4(1.5), "1.5");
        assert_eq!(g4(100.0), "100");
        assert_eq!(g4(0.000123), "0.000123");
        assert_eq!(g4(0.0), "0");
        assert_eq!(fmt_float(1.0, 'e', Some(2)), "1.00e+00");
        assert_eq!(fmt_float(2.345, 'f', Some(2)), "2.35");
    }

    #[test]
    fn printf_verbs_and_errors() {
        let f = |s: &str, a: &[Value]| sprintf(s, a);
        assert_eq!(
            f(
                "%.2f|%5d|%-4s|%q",
                &[
                    Value::Float(1.23456),
                    Value::Int(42),
                    Value::Str("ab".into()),
                    Value::Str("x\"y".into())
                ]
            ),
            "1.23|   42|ab  |\"x\\\"y\""
        );
        assert_eq!(f("%d", &[Value::Str("x".into())]), "%!d(string=x)");
        assert_eq!(f("%s %s", &[Value::Int(1)]), "%!s(int=1) %!s(MISSING)");
        assert_eq!(f("a", &[Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(
            f(
                "%x %v %05.1f",
                &[Value::Int(255), Value::Float(1e6), Value::Float(-2.25)]
            ),
            "ff 1e+06 -02.2"
        );
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::Str("a".into()),
                Value::Int(3)
            ]),
            "1 2a3"
        );
    }
}
