//! `rule_files` as promtool resolves them: relative to the test file's
//! folder, then globbed (Go's `filepath.Glob`: `*`, `?`, `[a-z]`, `[^x]` in
//! any path element; matches sorted).

use std::path::{Component, Path, PathBuf};

/// Every file the patterns match, in pattern order. Unlike promtool, which
/// warns and goes on, a pattern that matches nothing is an error: the tests
/// would run without the rules they are about.
pub fn resolve(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns.iter().filter(|p| !p.is_empty()) {
        let full = base.join(p);
        let found = glob(&full);
        if found.is_empty() {
            return Err(format!("no file matches {:?}", full.display().to_string()));
        }
        out.extend(found);
    }
    Ok(out)
}

fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let wild = matches!(comp, Component::Normal(_)) && part.contains(['*', '?', '[']);
        found = if wild {
            let mut next = Vec::new();
            for dir in &found {
                let listed = std::fs::read_dir(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                });
                let mut names: Vec<String> = listed
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| matches(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
            next
        } else {
            found.into_iter().map(|d| d.join(&*part)).collect()
        };
    }
    found.retain(|p| p.symlink_metadata().is_ok());
    found
}

/// Go's `filepath.Match` for one path element.
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| match_from(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return false;
            };
            let Some(&c) = n.first() else {
                return false;
            };
            let class = &p[1..end];
            let (negated, class) = match class.first() {
                Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && match_from(&p[end + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_from(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go() {
        assert!(matches("*.rules.yml", "a.rules.yml"));
        assert!(!matches("*.rules.yml", "a.rules.test.yml"));
        assert!(matches("r?.yml", "r1.yml"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[^a-c]x", "bx"));
        assert!(matches("\\*", "*"));
    }

    #[test]
    fn resolves_relative_to_the_base_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let got = resolve(dir.path(), &["*.yml".into(), "c.txt".into()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.yml", "b.yml", "c.txt"]);
        let e = resolve(dir.path(), &["none*.yml".into()]).unwrap_err();
        assert!(e.contains("none*.yml"), "{e}");
    }
}
