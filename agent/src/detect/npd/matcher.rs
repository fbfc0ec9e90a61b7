//! NPD's log buffer and rule matching, made cheap for kernel log storms.
//!
//! NPD keeps the last `bufferSize` lines, joins them with `"\n"` (empty slots
//! of a buffer not yet full included) and, for every rule, runs `pattern + \z`
//! over the joined text: a rule matches when its pattern matches a suffix of the
//! buffer. The message is the lines from the one the match starts in to the end.
//!
//! Doing that literally costs one string join and one regex run per rule per
//! line. Instead, each pattern is analysed once (its regex HIR): if it can never
//! match a `'\n'` and does not use the start-of-text anchor (`^` without `(?m)`,
//! `\A`), a match ending at the end of the buffer lies wholly in the last line,
//! and every assertion at that line's start (`\b`, `(?m)^`) sees the same thing
//! after a `'\n'` as at the start of a text. Those patterns (all of NPD's shipped
//! ones) go into one `RegexSet` run once over the new line; the message is that
//! line. The rest ("multi-line" patterns) are run as NPD does, over one joined
//! buffer built at most once per line, and only then are the lines kept at all.

use std::collections::VecDeque;
use std::time::SystemTime;

use regex::{Regex, RegexSet};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Whether `pattern` needs the joined buffer (see the module docs). Errors are
/// the regex parser's, as the config error's text.
pub fn needs_buffer(pattern: &str) -> Result<bool, String> {
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| describe(&e))?;
    Ok(spans_lines(&hir))
}

fn spans_lines(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty => false,
        HirKind::Literal(lit) => lit.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= '\n' && '\n' <= r.end()),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= b'\n' && b'\n' <= r.end()),
        HirKind::Look(look) => matches!(look, Look::Start),
        HirKind::Repetition(rep) => spans_lines(&rep.sub),
        HirKind::Capture(cap) => spans_lines(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(spans_lines),
    }
}

/// Regex errors are multi-line (they draw a caret under the pattern); config
/// errors must be one line.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == '~'))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Compiles NPD's `pattern + \z`. Errors describe the pattern as written
/// (not our wrapper around it), on one line.
pub fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    if let Err(e) = regex_syntax::Parser::new().parse(pattern) {
        return Err(describe(&e));
    }
    Regex::new(&format!("(?:{pattern})\\z")).map_err(|e| one_line(&e.to_string()))
}

fn describe(e: &regex_syntax::Error) -> String {
    match e {
        regex_syntax::Error::Parse(e) => {
            format!("{} at offset {}", e.kind(), e.span().start.offset)
        }
        regex_syntax::Error::Translate(e) => {
            format!("{} at offset {}", e.kind(), e.span().start.offset)
        }
        other => one_line(&other.to_string()),
    }
}

/// A rule that matched the line just pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the pattern as given to [`RuleSet::new`].
    pub rule: usize,
    /// The matched lines joined by `"\n"` (NPD's event/condition message).
    pub message: String,
    /// Time of the first matched line (NPD's status timestamp).
    pub time: SystemTime,
}

/// A log buffer and the patterns matched against it.
pub struct RuleSet {
    single: RegexSet,
    single_rule: Vec<usize>,
    multi: Vec<(usize, Regex)>,
    capacity: usize,
    lines: VecDeque<(SystemTime, String)>,
}

impl RuleSet {
    /// `patterns` must have been validated (load does); an error names the
    /// pattern index.
    pub fn new(patterns: &[&str], capacity: usize) -> Result<RuleSet, (usize, String)> {
        let mut single = Vec::new();
        let mut single_rule = Vec::new();
        let mut multi = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if needs_buffer(p).map_err(|e| (i, e))? {
                multi.push((i, compile_anchored(p).map_err(|e| (i, e))?));
            } else {
                compile_anchored(p).map_err(|e| (i, e))?;
                single.push(format!("(?:{p})\\z"));
                single_rule.push(i);
            }
        }
        let single = RegexSet::new(&single).map_err(|e| (0, one_line(&e.to_string())))?;
        Ok(RuleSet {
            single,
            single_rule,
            multi,
            capacity: capacity.max(1),
            lines: VecDeque::new(),
        })
    }

    /// Pushes a line and returns the rules that now match, in rule order.
    pub fn push(&mut self, time: SystemTime, line: &str) -> Vec<Match> {
        let mut out: Vec<Match> = self
            .single
            .matches(line)
            .iter()
            .map(|k| Match {
                rule: self.single_rule[k],
                message: line.to_string(),
                time,
            })
            .collect();
        if !self.multi.is_empty() {
            if self.lines.len() == self.capacity {
                self.lines.pop_front();
            }
            self.lines.push_back((time, line.to_string()));
            let joined = self.joined();
            for (rule, re) in &self.multi {
                if let Some(m) = re.find(&joined) {
                    let (time, message) = self.matched_lines(joined.len(), m.start());
                    out.push(Match {
                        rule: *rule,
                        message,
                        time,
                    });
                }
            }
            out.sort_by_key(|m| m.rule);
        }
        out
    }

    /// The buffer as NPD joins it: unfilled slots are empty lines before the
    /// real ones.
    fn joined(&self) -> String {
        let mut s = "\n".repeat(self.capacity - self.lines.len());
        for (i, (_, l)) in self.lines.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(l);
        }
        s
    }

    /// NPD's walk back from the newest line until the lines cover the match start.
    fn matched_lines(&self, len: usize, start: usize) -> (SystemTime, String) {
        let s = len as i64 - start as i64 - 1;
        let mut total = 0i64;
        let mut taken = Vec::new();
        for (t, l) in self.lines.iter().rev() {
            taken.push((*t, l.as_str()));
            total += l.len() as i64 + 1;
            if total > s {
                break;
            }
        }
        taken.reverse();
        let time = taken.first().map(|x| x.0).unwrap_or(SystemTime::UNIX_EPOCH);
        let message = taken.iter().map(|x| x.1).collect::<Vec<_>>().join("\n");
        (time, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NPD's algorithm, literally: join, run each `pattern\z`, walk back.
    fn reference(patterns: &[&str], capacity: usize, lines: &[&str]) -> Vec<Vec<(usize, String)>> {
        let res: Vec<Regex> = patterns
            .iter()
            .map(|p| compile_anchored(p).unwrap())
            .collect();
        let mut buf: VecDeque<&str> = VecDeque::new();
        let mut out = Vec::new();
        for line in lines {
            if buf.len() == capacity {
                buf.pop_front();
            }
            buf.push_back(line);
            let mut slots: Vec<&str> = vec![""; capacity - buf.len()];
            slots.extend(buf.iter());
            let joined = slots.join("\n");
            let mut step = Vec::new();
            for (i, re) in res.iter().enumerate() {
                if let Some(m) = re.find(&joined) {
                    let s = joined.len() as i64 - m.start() as i64 - 1;
                    let mut total = 0;
                    let mut taken = Vec::new();
                    for l in buf.iter().rev() {
                        taken.push(*l);
                        total += l.len() as i64 + 1;
                        if total > s {
                            break;
                        }
                    }
                    taken.reverse();
                    step.push((i, taken.join("\n")));
                }
            }
            out.push(step);
        }
        out
    }

    #[test]
    fn fast_path_agrees_with_npd_reference() {
        let patterns = [
            "task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\.",
            "EXT4-fs error .*",
            ".*\\[Hardware Error\\]: event severity: fatal$",
            "^starts at buffer start",
            "first\\nsecond",
            "(?s)x.y",
            "\\bword",
            "(?m)^line start",
            "a\\s+b",
        ];
        let lines = [
            "task docker:1234 blocked for more than 120 seconds.",
            "EXT4-fs error (device sda1): bad",
            "x",
            "y",
            "first",
            "second",
            "starts at buffer start",
            "[Hardware Error]: event severity: fatal",
            "a word",
            "line start",
            "a",
            "b",
            "unrelated",
        ];
        for cap in [1, 2, 3, 10] {
            let mut set = RuleSet::new(&patterns, cap).unwrap();
            let want = reference(&patterns, cap, &lines);
            for (line, want) in lines.iter().zip(want) {
                let got: Vec<(usize, String)> = set
                    .push(SystemTime::UNIX_EPOCH, line)
                    .into_iter()
                    .map(|m| (m.rule, m.message))
                    .collect();
                assert_eq!(got, want, "capacity {cap}, line {line:?}");
            }
        }
    }

    #[test]
    fn classifies_patterns() {
        assert!(!needs_buffer("EXT4-fs error .*").unwrap());
        assert!(!needs_buffer("task [\\S ]+:\\w+").unwrap());
        assert!(!needs_buffer("(?m)^x$").unwrap());
        assert!(needs_buffer("a\\nb").unwrap());
        assert!(needs_buffer("a\\sb").unwrap());
        assert!(needs_buffer("[^x]").unwrap());
        assert!(needs_buffer("^x").unwrap());
        assert!(needs_buffer("\\Ax").unwrap());
        assert!(needs_buffer("(").is_err());
    }

    #[test]
    fn regex_errors_are_one_line() {
        let e = compile_anchored("a(b").unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("unclosed group"), "{e}");
    }
}
