//! Good and bad rule files. Which ones promtool accepts was checked against
//! promtool 2.42; `tests/alert_rules_promtool.rs` keeps that checked.

use std::path::Path;
use std::time::Duration;

use super::*;

fn ok(text: &str) -> Vec<Group> {
    parse(Path::new("r.yml"), text).unwrap_or_else(|e| panic!("rejected: {e}\n{text}"))
}

fn err(text: &str) -> String {
    match parse(Path::new("r.yml"), text) {
        Ok(g) => panic!("accepted: {g:?}\n{text}"),
        Err(e) => {
            assert!(
                e.starts_with("r.yml: "),
                "error does not name the file: {e}"
            );
            assert!(!e.contains('\n'), "error is not one line: {e}");
            e
        }
    }
}

const GOOD: &str = r#"
groups:
- name: node
  interval: 1m30s
  limit: 10
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
    labels: {team: infra}
  - alert: DiskFull
    expr: node_filesystem_avail_bytes < 1e9
    for: 5m
    keep_firing_for: 10m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is full"
- name: other
  rules: []
"#;

#[test]
fn good_file() {
    let g = ok(GOOD);
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].name, "node");
    assert_eq!(g[0].file, Path::new("r.yml"));
    assert_eq!(g[0].interval, Some(Duration::from_secs(90)));
    assert_eq!(g[0].limit, 10);
    let Rule::Recording(rec) = &g[0].rules[0] else {
        panic!("{:?}", g[0].rules[0])
    };
    assert_eq!(rec.name, "job:up:sum");
    assert_eq!(rec.expr, "sum by (job) (up)");
    assert_eq!(rec.labels["team"], "infra");
    let Rule::Alerting(a) = &g[0].rules[1] else {
        panic!("{:?}", g[0].rules[1])
    };
    assert_eq!(a.name, "DiskFull");
    assert_eq!(a.for_, Duration::from_secs(300));
    assert_eq!(a.keep_firing_for, Duration::from_secs(600));
    assert_eq!(a.annotations["summary"], "{{ $labels.instance }} is full");
    assert!(matches!(
        a.query,
        Some(promql_parser::parser::Expr::Binary(_))
    ));
    assert_eq!(g[1].interval, None);
    assert!(g[1].rules.is_empty());
}

#[test]
fn empty_files_have_no_groups() {
    for text in ["", "# nothing\n", "~", "groups:\n", "groups: []\n"] {
        assert!(ok(text).is_empty(), "{text:?}");
    }
}

#[test]
fn only_the_first_document_is_read() {
    // promtool ignores what follows the first document, even broken YAML.
    assert!(ok("groups: []\n---\n  foo: [bar\n").is_empty());
}

#[test]
fn scalars_read_as_prometheus_does() {
    let g = ok(
        "groups:\n- name: 1\n  interval: 0\n  limit: -1\n  rules:\n  - alert: 2\n    expr: 5\n    labels: {x: 1, y: true, z: ~}\n",
    );
    assert_eq!(g[0].name, "1");
    assert_eq!((g[0].interval, g[0].limit), (None, 0));
    let Rule::Alerting(a) = &g[0].rules[0] else {
        panic!()
    };
    assert_eq!((a.name.as_str(), a.expr.as_str()), ("2", "5"));
    let want = [("x", "1"), ("y", "true"), ("z", "")];
    assert!(
        a.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .eq(want)
    );
}

#[test]
fn recording_rule_may_have_zero_for_and_empty_annotations() {
    ok(
        "groups:\n- name: a\n  rules:\n  - record: a\n    expr: up\n    for: 0s\n    annotations: {}\n",
    );
}

#[test]
fn yaml_errors_carry_position_and_group() {
    let e = err("groups:\n- name: a\n  rules:\n  - record: a\n    expr: up\n    bogus: 1\n");
    assert!(e.contains("unknown field `bogus`"), "{e}");
    assert!(e.contains("group \"a\""), "{e}");
    assert!(e.contains("line 6"), "{e}");
    let e = err("groups:\n- name: a\n  rules: [\n");
    assert!(e.contains("line"), "{e}");
    let e = err("- a\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn repeated_keys_are_errors() {
    err("groups:\n- name: a\n  name: b\n");
    let e = err(
        "groups:\n- name: a\n  rules:\n  - record: a\n    expr: up\n    labels: {x: 1, x: 2}\n",
    );
    assert!(e.contains("\"x\" already defined"), "{e}");
}

/// (file, words the error must contain).
const BAD_RULES: &[(&str, &[&str])] = &[
    (
        "- alert: A\n    record: a\n    expr: up",
        &["rule 1", "only one of"],
    ),
    ("- expr: up", &["rule 1", "one of 'record' or 'alert'"]),
    (
        "- record: [a]\n    expr: up",
        &["one of 'record' or 'alert'"],
    ),
    (
        "- alert: A",
        &["rule 1 (alert \"A\")", "'expr' must be set"],
    ),
    ("- alert: A\n    expr: [up]", &["'expr' must be set"]),
    (
        "- alert: A\n    expr: sum(up",
        &["alert \"A\"", "could not parse expression"],
    ),
    (
        "- alert: A\n    expr: up\n    for: 5",
        &["for: not a valid duration"],
    ),
    (
        "- alert: A\n    expr: up\n    for: 1.5m",
        &["for: not a valid duration"],
    ),
    (
        "- alert: A\n    expr: up\n    keep_firing_for: x",
        &["keep_firing_for:"],
    ),
    (
        "- record: a\n    expr: up\n    for: 1m",
        &["record \"a\"", "'for' in recording rule"],
    ),
    (
        "- record: a\n    expr: up\n    keep_firing_for: 1m",
        &["'keep_firing_for' in recording"],
    ),
    (
        "- record: a\n    expr: up\n    annotations: {x: y}",
        &["'annotations' in recording"],
    ),
    (
        "- record: a-b\n    expr: up",
        &["invalid recording rule name: a-b"],
    ),
    (
        "- record: a\n    expr: up\n    labels: {1x: y}",
        &["invalid label name: 1x"],
    ),
    (
        "- record: a\n    expr: up\n    labels: {__name__: b}",
        &["invalid label name: __name__"],
    ),
    (
        "- alert: A\n    expr: up\n    annotations: {a.b: y}",
        &["invalid annotation name: a.b"],
    ),
];

#[test]
fn bad_rules_name_group_rule_and_fault() {
    for (i, (rules, words)) in BAD_RULES.iter().enumerate() {
        // A good rule first, so the bad one is rule 2 and "rule 1" can't match it.
        let text =
            format!("groups:\n- name: g{i}\n  rules:\n  - record: ok\n    expr: up\n  {rules}\n");
        let e = err(&text);
        assert!(e.contains(&format!("group \"g{i}\"")), "{e}");
        for w in *words {
            let w = w.replace("rule 1", "rule 2");
            assert!(e.contains(&w), "{e:?} lacks {w:?}");
        }
    }
}

#[test]
fn bad_groups() {
    let e = err("groups:\n- name: a\n- name: a\n");
    assert!(e.contains("group \"a\"") && e.contains("repeated"), "{e}");
    let e = err("groups:\n- name: a\n- rules: []\n");
    assert!(
        e.contains("group 2") && e.contains("must not be empty"),
        "{e}"
    );
    let e = err("groups:\n- name: a\n  interval: 1.5\n");
    assert!(
        e.contains("group \"a\": interval: not a valid duration"),
        "{e}"
    );
    let e = err("groups:\n- name: a\n  limit: \"5\"\n");
    assert!(e.contains("limit"), "{e}");
}

#[test]
fn template_hook_sees_alert_labels_and_annotations_only() {
    let text = "groups:\n- name: a\n  rules:\n  - record: r\n    expr: up\n    labels: {x: \"{{\"}\n  - alert: A\n    expr: up\n    annotations: {s: \"{{\"}\n";
    let seen = std::cell::RefCell::new(Vec::new());
    let check = |t: &str| {
        seen.borrow_mut().push(t.to_owned());
        if t.contains("{{") && !t.contains("}}") {
            Err("unclosed action".into())
        } else {
            Ok(())
        }
    };
    let e = parse_with(Path::new("r.yml"), text, &check).unwrap_err();
    assert!(
        e.contains("rule 2 (alert \"A\"): annotations.s: template: unclosed action"),
        "{e}"
    );
    assert_eq!(*seen.borrow(), ["{{"]);
    assert!(parse(Path::new("r.yml"), text).is_ok());
}

#[test]
fn load_files_reads_and_names_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yml"), dir.path().join("b.yml"));
    std::fs::write(&a, "groups:\n- name: g\n  rules: []\n").unwrap();
    std::fs::write(&b, "groups:\n- name: g\n  rules: []\n").unwrap();
    // The same group name in two files is fine.
    let g = load_files(&[a.clone(), b.clone()]).unwrap();
    assert_eq!((g.len(), g[1].file.as_path()), (2, b.as_path()));
    let missing = dir.path().join("nope.yml");
    let e = load_files(&[a, missing]).unwrap_err();
    assert!(e.contains("nope.yml"), "{e}");
}

#[test]
fn limits_read_like_go_ints() {
    let limit = |v: &str| {
        parse(
            Path::new("r.yml"),
            &format!("groups:\n- name: g\n  limit: {v}\n"),
        )
    };
    for (v, want) in [("5", 5), ("5.5", 5), ("0x10", 16), ("-3", 0), ("~", 0)] {
        assert_eq!(limit(v).map(|g| g[0].limit), Ok(want), "{v}");
    }
    for v in ["'5'", "true", ".inf", "9223372036854775808"] {
        assert!(limit(v).is_err(), "{v}");
    }
}

#[test]
fn merge_keys_are_expanded() {
    let g = ok(
        "groups:\n- name: g\n  rules:\n  - &base\n    alert: A\n    expr: up == 0\n    labels: {severity: page}\n  - <<: *base\n    alert: B\n",
    );
    let Rule::Alerting(b) = &g[0].rules[1] else {
        panic!()
    };
    assert_eq!((b.name.as_str(), b.expr.as_str()), ("B", "up == 0"));
    assert_eq!(b.labels["severity"], "page");
    // A fault beside a merge key is still found (its position is lost:
    // it is read from the expanded text).
    let e = err(
        "groups:\n- name: g\n  rules:\n  - &base\n    alert: A\n    expr: up\n  - <<: *base\n    fro: 1m\n",
    );
    assert!(e.contains("rules[1]: unknown field `fro`"), "{e}");
    // A fault inside the merged rule is found after expansion.
    let e = err(
        "groups:\n- name: g\n  rules:\n  - &base\n    alert: A\n    expr: up\n    for: 5\n  - <<: *base\n    alert: B\n",
    );
    assert!(e.contains("not a valid duration"), "{e}");
}
