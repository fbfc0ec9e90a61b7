//! Splits a LogQL query into tokens, each with its byte offset so the parser
//! can report `line, col` like Loki. Numbers followed by a unit become
//! durations (`5m`) or byte sizes (`10KB`); `#` starts a comment to end of line.

use super::error::LogQlError;
use super::units::{is_bytes_literal, parse_bytes, parse_duration_ns};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|>` (pattern line filter)
    PipePattern,
    /// `!>`
    NotPattern,
    /// `|`
    Pipe,
    Gt,
    Gte,
    Lt,
    Lte,
    /// `==`
    CmpEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Str(String),
    Ident(String),
    Number(f64),
    /// Nanoseconds.
    Duration(i64),
    Bytes(f64),
    Eof,
}

impl Tok {
    /// The name an error message shows, as Loki's grammar names its tokens.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::LBrace => "{".into(),
            Tok::RBrace => "}".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::LBracket => "[".into(),
            Tok::RBracket => "]".into(),
            Tok::Comma => ",".into(),
            Tok::Eq => "=".into(),
            Tok::Neq => "!=".into(),
            Tok::Re => "=~".into(),
            Tok::Nre => "!~".into(),
            Tok::PipeExact => "|=".into(),
            Tok::PipeMatch => "|~".into(),
            Tok::PipePattern => "|>".into(),
            Tok::NotPattern => "!>".into(),
            Tok::Pipe => "|".into(),
            Tok::Gt => ">".into(),
            Tok::Gte => ">=".into(),
            Tok::Lt => "<".into(),
            Tok::Lte => "<=".into(),
            Tok::CmpEq => "==".into(),
            Tok::Add => "+".into(),
            Tok::Sub => "-".into(),
            Tok::Mul => "*".into(),
            Tok::Div => "/".into(),
            Tok::Mod => "%".into(),
            Tok::Pow => "^".into(),
            Tok::Str(_) => "STRING".into(),
            Tok::Ident(_) => "IDENTIFIER".into(),
            Tok::Number(_) => "NUMBER".into(),
            Tok::Duration(_) => "DURATION".into(),
            Tok::Bytes(_) => "BYTES".into(),
            Tok::Eof => "$end".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset in the query.
    pub pos: usize,
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let mut line = 1;
    let mut col = 1;
    for (i, c) in src.char_indices() {
        if i >= pos {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

fn err_at(src: &str, pos: usize, what: impl std::fmt::Display) -> LogQlError {
    let (l, c) = line_col(src, pos);
    LogQlError::syntax(l, c, what)
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, LogQlError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let two = |a: u8, b: u8| c == a && bytes.get(i + 1) == Some(&b);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            _ if two(b'=', b'~') => (Tok::Re, 2),
            _ if two(b'=', b'=') => (Tok::CmpEq, 2),
            b'=' => (Tok::Eq, 1),
            _ if two(b'!', b'=') => (Tok::Neq, 2),
            _ if two(b'!', b'~') => (Tok::Nre, 2),
            _ if two(b'|', b'=') => (Tok::PipeExact, 2),
            _ if two(b'|', b'~') => (Tok::PipeMatch, 2),
            _ if two(b'|', b'>') => (Tok::PipePattern, 2),
            _ if two(b'!', b'>') => (Tok::NotPattern, 2),
            b'|' => (Tok::Pipe, 1),
            _ if two(b'>', b'=') => (Tok::Gte, 2),
            b'>' => (Tok::Gt, 1),
            _ if two(b'<', b'=') => (Tok::Lte, 2),
            b'<' => (Tok::Lt, 1),
            b'+' => (Tok::Add, 1),
            b'-' => (Tok::Sub, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'"' => {
                let (s, len) = lex_quoted(src, i)?;
                (Tok::Str(s), len)
            }
            b'`' => match src[i + 1..].find('`') {
                Some(end) => (Tok::Str(src[i + 1..i + 1 + end].to_string()), end + 2),
                None => return Err(err_at(src, i, "literal not terminated")),
            },
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let len = src[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(src.len() - i);
                (Tok::Ident(src[i..i + len].to_string()), len)
            }
            b'0'..=b'9' | b'.' => {
                let len = number_len(bytes, i);
                let text = &src[i..i + len];
                (classify_number(src, i, text)?, len)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err_at(src, i, format!("unexpected character {ch:?}")));
            }
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

/// Length of a number-like run: digits, dots, an exponent, then unit letters
/// (`1h30m`, `10KiB`, `1.5e3`, `5µs`).
fn number_len(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    // An exponent only directly after a plain number: `1e3`, `2.5E-2`.
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j >= bytes.len() || !bytes[j].is_ascii_alphabetic() {
                return j - start;
            }
        }
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
            i += 1;
        } else if b >= 0x80 {
            // µ (U+00B5) and μ (U+03BC) in `µs`: both are two bytes in UTF-8.
            let s = std::str::from_utf8(&bytes[i..]).ok();
            match s.and_then(|s| s.chars().next()) {
                Some(c @ ('µ' | 'μ')) => i += c.len_utf8(),
                _ => break,
            }
        } else {
            break;
        }
    }
    i - start
}

fn classify_number(src: &str, pos: usize, text: &str) -> Result<Tok, LogQlError> {
    if let Ok(v) = text.parse::<f64>()
        && !text.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return Ok(Tok::Number(v));
    }
    if let Some(ns) = parse_duration_ns(text) {
        return Ok(Tok::Duration(ns));
    }
    if is_bytes_literal(text)
        && let Some(b) = parse_bytes(text)
    {
        return Ok(Tok::Bytes(b));
    }
    Err(err_at(
        src,
        pos,
        format!("unexpected {text:?}: not a number, duration or byte size"),
    ))
}

/// A Go-style double-quoted string starting at `start`; returns the value and
/// the length in bytes including quotes.
fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), LogQlError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, off + 2)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let simple = match e {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    '\'' => Some('\''),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    '0'..='7' => 2,
                    _ => {
                        return Err(err_at(
                            src,
                            start + 1 + off,
                            format!("invalid escape sequence \\{e}"),
                        ));
                    }
                };
                let mut code = String::new();
                if e.is_ascii_digit() {
                    code.push(e);
                }
                for _ in 0..digits {
                    match chars.next() {
                        Some((_, d)) => code.push(d),
                        None => break,
                    }
                }
                let radix = if e.is_ascii_digit() { 8 } else { 16 };
                let ch = u32::from_str_radix(&code, radix)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        err_at(
                            src,
                            start + 1 + off,
                            format!("invalid escape sequence \\{e}{code}"),
                        )
                    })?;
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    Err(err_at(src, start, "literal not terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn selector_and_filters() {
        assert_eq!(
            toks(r#"{app="a", b=~"x.*"} |= "err" != `raw\d` | json"#),
            vec![
                Tok::LBrace,
                Tok::Ident("app".into()),
                Tok::Eq,
                Tok::Str("a".into()),
                Tok::Comma,
                Tok::Ident("b".into()),
                Tok::Re,
                Tok::Str("x.*".into()),
                Tok::RBrace,
                Tok::PipeExact,
                Tok::Str("err".into()),
                Tok::Neq,
                Tok::Str("raw\\d".into()),
                Tok::Pipe,
                Tok::Ident("json".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers_durations_bytes() {
        assert_eq!(
            toks("5m 1h30m 10KB 42 1.5 1e3 250ms"),
            vec![
                Tok::Duration(300_000_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Bytes(10_000.0),
                Tok::Number(42.0),
                Tok::Number(1.5),
                Tok::Number(1000.0),
                Tok::Duration(250_000_000),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn escapes_and_comments() {
        assert_eq!(
            toks("\"a\\\"b\\n\\u00e9\" # comment\n>="),
            vec![Tok::Str("a\"b\né".into()), Tok::Gte, Tok::Eof]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = tokenize("{a=\"b}").unwrap_err().to_string();
        assert_eq!(
            e,
            "parse error at line 1, col 4: syntax error: literal not terminated"
        );
        let e = tokenize("{a=\"b\"}\n  $").unwrap_err().to_string();
        assert!(e.starts_with("parse error at line 2, col 3"), "{e}");
        assert!(tokenize("10zz").is_err());
        assert!(tokenize("\"\\q\"").is_err());
        assert!(tokenize("\"\\").is_err());
    }
}
