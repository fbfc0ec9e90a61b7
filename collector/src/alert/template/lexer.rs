//! Tokens of Go's text/template: text outside `{{ }}`, words inside.
//! Trim markers and comments are resolved here, as Go's lexer does.

/// What a token is; `pos` on [`Token`] is its byte offset in the source.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Keyword(&'static str),
    Bool(bool),
    Nil,
    Number(String),
    /// Unquoted value and the source text (for error messages).
    Str(String, String),
    /// A character constant `'a'`: its code point and source text.
    Char(i64, String),
    /// Punctuation with no meaning here, for the parser to reject.
    Other(String),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens; the error is `(byte offset, message)`.
pub fn lex(src: &str) -> Result<Vec<Token>, (usize, String)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut trim_next_text = false;
    while i < b.len() {
        // Text up to the next "{{".
        let start = i;
        let end = src[i..].find("{{").map_or(b.len(), |k| i + k);
        let mut text = &src[start..end];
        if trim_next_text {
            text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        }
        trim_next_text = false;
        if end == b.len() {
            if !text.is_empty() {
                out.push(Token {
                    tok: Tok::Text(text.into()),
                    pos: start,
                });
            }
            break;
        }
        // "{{- " trims the text before it.
        let mut j = end + 2;
        if b.len() > j + 1 && b[j] == b'-' && is_space(b[j + 1]) {
            text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
            j += 2;
        }
        if !text.is_empty() {
            out.push(Token {
                tok: Tok::Text(text.into()),
                pos: start,
            });
        }
        // Comments: "{{/*" or "{{- /*" up to "*/}}" or "*/ -}}", nothing else.
        if src[j..].starts_with("/*") {
            let Some(k) = src[j + 2..].find("*/") else {
                return Err((j, "unclosed comment".into()));
            };
            let k = j + 2 + k + 2;
            if b.get(k).is_some_and(|&c| is_space(c)) && src[k + 1..].starts_with("-}}") {
                trim_next_text = true;
                i = k + 4;
            } else if src[k..].starts_with("}}") {
                i = k + 2;
            } else {
                return Err((j, "comment ends before closing delimiter".into()));
            }
            continue;
        }
        out.push(Token {
            tok: Tok::Left,
            pos: end,
        });
        i = inside(src, j, &mut out, &mut trim_next_text)?;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: b.len(),
    });
    Ok(out)
}

/// Lexes one action from `i` (just after `{{`); returns the offset after `}}`.
fn inside(
    src: &str,
    mut i: usize,
    out: &mut Vec<Token>,
    trim: &mut bool,
) -> Result<usize, (usize, String)> {
    let b = src.as_bytes();
    let mut depth = 0usize;
    loop {
        let rest = &src[i..];
        if rest.is_empty() {
            return Err((i, "unclosed action".into()));
        }
        let c = b[i];
        let push = |out: &mut Vec<Token>, tok: Tok| out.push(Token { tok, pos: i });
        if is_space(c) {
            let s = i;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            // " -}}" closes and trims what follows.
            if src[i..].starts_with("-}}") {
                if depth > 0 {
                    return Err((i, "unclosed left paren".into()));
                }
                out.push(Token {
                    tok: Tok::Right,
                    pos: i,
                });
                *trim = true;
                return Ok(i + 3);
            }
            out.push(Token {
                tok: Tok::Space,
                pos: s,
            });
            continue;
        }
        if rest.starts_with("}}") {
            if depth > 0 {
                return Err((i, "unclosed left paren".into()));
            }
            push(out, Tok::Right);
            return Ok(i + 2);
        }
        match c {
            b'|' => {
                push(out, Tok::Pipe);
                i += 1;
            }
            b'(' => {
                push(out, Tok::LParen);
                depth += 1;
                i += 1;
            }
            b')' => {
                // A stray ")" is the parser's to report, with its context.
                depth = depth.saturating_sub(1);
                push(out, Tok::RParen);
                i += 1;
            }
            b',' => {
                push(out, Tok::Comma);
                i += 1;
            }
            b'=' => {
                push(out, Tok::Assign);
                i += 1;
            }
            b':' => {
                if b.get(i + 1) != Some(&b'=') {
                    return Err((i, "expected :=".into()));
                }
                push(out, Tok::Declare);
                i += 2;
            }
            b'"' => {
                let (val, n) = quoted(&src[i..]).map_err(|e| (i, e))?;
                push(out, Tok::Str(val, src[i..i + n].into()));
                i += n;
            }
            b'`' => {
                let Some(k) = src[i + 1..].find('`') else {
                    return Err((i, "unterminated raw quoted string".into()));
                };
                let val = src[i + 1..i + 1 + k].to_string();
                push(out, Tok::Str(val, src[i..i + k + 2].into()));
                i += k + 2;
            }
            b'\'' => {
                let (val, n) = char_const(&src[i..]).map_err(|e| (i, e))?;
                push(out, Tok::Char(val, src[i..i + n].into()));
                i += n;
            }
            b'$' => {
                let n = word_len(&src[i + 1..]);
                push(out, Tok::Var(src[i..i + 1 + n].into()));
                i += 1 + n;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let n = number_len(rest);
                push(out, Tok::Number(rest[..n].into()));
                i += n;
            }
            b'.' => {
                let n = word_len(&src[i + 1..]);
                if n == 0 {
                    push(out, Tok::Dot);
                } else {
                    push(out, Tok::Field(src[i + 1..i + 1 + n].into()));
                }
                i += 1 + n;
            }
            b'+' | b'-' | b'0'..=b'9' => {
                let n = number_len(rest);
                if n == 0 || rest[n..].chars().next().is_some_and(is_alnum) {
                    return Err((i, format!("bad number syntax: {:?}", &rest[..n.max(1)])));
                }
                push(out, Tok::Number(rest[..n].into()));
                i += n;
            }
            _ => {
                let ch = rest.chars().next().unwrap_or('\0');
                if !is_alnum(ch) {
                    // Go hands printable ASCII to the parser, which names its context.
                    if ch.is_ascii_graphic() {
                        push(out, Tok::Other(ch.to_string()));
                        i += 1;
                        continue;
                    }
                    return Err((
                        i,
                        format!(
                            "unrecognized character in action: U+{:04X} {ch:?}",
                            ch as u32
                        ),
                    ));
                }
                let n = word_len(rest);
                let w = &rest[..n];
                let tok = match w {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => match KEYWORDS.iter().find(|k| **k == w) {
                        Some(k) => Tok::Keyword(k),
                        None => Tok::Ident(w.into()),
                    },
                };
                push(out, tok);
                i += n;
            }
        }
    }
}

fn word_len(s: &str) -> usize {
    s.char_indices()
        .find(|(_, c)| !is_alnum(*c))
        .map_or(s.len(), |(k, _)| k)
}

/// Length of a Go number literal at the start of `s` (sign, hex, fraction, exponent).
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut digits: &dyn Fn(u8) -> bool = &|c: u8| c.is_ascii_digit() || c == b'_';
    let mut exp = [b'e', b'E'];
    if b.len() > i + 1 && b[i] == b'0' && matches!(b[i + 1], b'x' | b'X') {
        i += 2;
        digits = &|c: u8| c.is_ascii_hexdigit() || c == b'_';
        exp = [b'p', b'P'];
    }
    while i < b.len() && digits(b[i]) {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && digits(b[i]) {
            i += 1;
        }
    }
    if i < b.len() && exp.contains(&b[i]) {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

/// Go interpreted string literal at the start of `s`: value and source length.
fn quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((k, c)) = it.next() {
        match c {
            '"' => return Ok((out, k + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = it.next().ok_or("unterminated quoted string")?;
                let mut hex = |n: usize| -> Result<u32, String> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        let (_, d) = it.next().ok_or("unterminated quoted string")?;
                        v = v * 16 + d.to_digit(16).ok_or("invalid syntax")?;
                    }
                    Ok(v)
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' => out.push(e),
                    'x' => out.push(char::from_u32(hex(2)?).ok_or("invalid syntax")?),
                    'u' => out.push(char::from_u32(hex(4)?).ok_or("invalid syntax")?),
                    'U' => out.push(char::from_u32(hex(8)?).ok_or("invalid syntax")?),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, d) = it.next().ok_or("unterminated quoted string")?;
                            v = v * 8 + d.to_digit(8).ok_or("invalid syntax")?;
                        }
                        out.push(char::from_u32(v).ok_or("invalid syntax")?);
                    }
                    _ => return Err("invalid syntax".into()),
                }
            }
            _ => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// Go character constant `'x'` / `'\n'`: code point and source length.
fn char_const(s: &str) -> Result<(i64, usize), String> {
    let Some(end) = s[1..].find('\'').map(|k| k + 1) else {
        return Err("unterminated character constant".into());
    };
    let body = &s[1..end];
    let v = if let Some(esc) = body.strip_prefix('\\') {
        let as_str = format!("\"\\{esc}\"");
        quoted(&as_str)?.0
    } else {
        body.to_string()
    };
    let mut cs = v.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => Ok((c as i64, end + 1)),
        _ => Err(format!("malformed character constant: {}", &s[..=end])),
    }
}
