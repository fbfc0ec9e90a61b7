//! Redaction: `--redact FILE` holds rules applied to every line before it is
//! shipped, in file order:
//!
//! ```toml
//! [[rule]]
//! name = "email"                      # the `rule` label of sonde_logs_redactions_total
//! pattern = '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}'   # Rust `regex` syntax
//! replacement = "<email>"             # may use $1, ${name} for capture groups
//! ```
//!
//! Every match is replaced and counted. Compile errors name the file and rule.

use std::{borrow::Cow, path::Path};

use prometheus_client::metrics::counter::Counter;
use regex::{Captures, Regex};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<FileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    name: String,
    pattern: String,
    #[serde(default)]
    replacement: String,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    regex: Regex,
    replacement: String,
}

/// The compiled rules of one file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    /// Reads and compiles `path`; the error is one line naming the file and rule.
    pub fn load(path: &Path) -> Result<Rules, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Rules::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Rules, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, r) in file.rule.into_iter().enumerate() {
            if r.name.is_empty() {
                return Err(format!("rule {}: name is empty", i + 1));
            }
            if rules.iter().any(|x: &Rule| x.name == r.name) {
                return Err(format!("rule {:?}: the name is used twice", r.name));
            }
            let regex = Regex::new(&r.pattern).map_err(|e| {
                let msg = e.to_string().replace('\n', " ");
                format!(
                    "rule {:?}: pattern: {}",
                    r.name,
                    msg.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })?;
            rules.push(Rule {
                name: r.name,
                regex,
                replacement: r.replacement,
            });
        }
        Ok(Rules { rules })
    }
}

/// Rules plus one counter per rule (same order).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    rules: Rules,
    counters: Vec<Counter>,
}

impl Redactor {
    pub fn new(rules: Rules, counters: Vec<Counter>) -> Redactor {
        assert_eq!(rules.rules.len(), counters.len(), "one counter per rule");
        Redactor { rules, counters }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.rules.is_empty()
    }

    /// The line with every rule applied; borrowed when nothing matched.
    pub fn apply<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for (rule, counter) in self.rules.rules.iter().zip(&self.counters) {
            let mut n = 0u64;
            let replaced = rule.regex.replace_all(&out, |caps: &Captures<'_>| {
                n += 1;
                let mut dst = String::new();
                caps.expand(&rule.replacement, &mut dst);
                dst
            });
            if let Cow::Owned(s) = replaced {
                counter.inc_by(n);
                out = Cow::Owned(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(text: &str) -> (Redactor, Vec<Counter>) {
        let rules = Rules::parse(text).unwrap();
        let counters: Vec<Counter> = rules.rules.iter().map(|_| Counter::default()).collect();
        (Redactor::new(rules, counters.clone()), counters)
    }

    #[test]
    fn shipped_rules_redact_emails_and_bearer_tokens() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/redaction.toml"
        ))
        .unwrap();
        let (r, counters) = redactor(&text);
        let out = r.apply("user bob@example.com and alice.x+y@mail.co.uk logged in; Authorization: Bearer eyJhbGciOi.abc-DEF_123");
        assert!(
            !out.contains("bob@example.com") && !out.contains("alice.x+y"),
            "{out}"
        );
        assert!(!out.contains("eyJhbGciOi"), "{out}");
        assert!(out.contains("user ") && out.contains("logged in"), "{out}");
        assert_eq!(counters.iter().map(|c| c.get()).sum::<u64>(), 3);
        assert!(matches!(r.apply("nothing to see"), Cow::Borrowed(_)));
    }

    #[test]
    fn capture_groups_and_order() {
        let (r, c) = redactor(
            "[[rule]]\nname = \"kv\"\npattern = 'password=(\\S+)'\nreplacement = \"password=***\"\n\
             [[rule]]\nname = \"digits\"\npattern = '\\d{4,}'\nreplacement = \"<n:$0>\"\n",
        );
        assert_eq!(
            r.apply("password=hunter2 id 12345 and 99"),
            "password=*** id <n:12345> and 99"
        );
        assert_eq!((c[0].get(), c[1].get()), (1, 1));
    }

    #[test]
    fn errors_name_the_rule() {
        let e = Rules::parse("[[rule]]\nname = \"bad\"\npattern = '(unclosed'\n").unwrap_err();
        assert!(
            e.starts_with("rule \"bad\": pattern:") && !e.contains('\n'),
            "{e}"
        );
        assert!(
            Rules::parse("[[rule]]\npattern = 'x'\n")
                .unwrap_err()
                .contains("name")
        );
        assert!(
            Rules::parse(
                "[[rule]]\nname = \"a\"\npattern = 'x'\n[[rule]]\nname = \"a\"\npattern = 'y'\n"
            )
            .is_err()
        );
        assert!(Rules::parse("[[rule]]\nname = \"a\"\npattern = 'x'\ncolour = 1\n").is_err());
        let e = Rules::load(Path::new("/nonexistent/redact.toml")).unwrap_err();
        assert!(e.starts_with("/nonexistent/redact.toml: "), "{e}");
    }
}
