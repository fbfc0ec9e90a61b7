//! Differential test: our rule-file loader against the real
//! `promtool check rules` (Prometheus 2.42) on a corpus of small files.
//! Both must accept or both reject; each case also records which verdict
//! promtool gives, so the corpus keeps covering both sides. Our errors must
//! name the file, and the group and rule when the fault is in one.

use std::path::{Path, PathBuf};
use std::process::Command;

use sonde_collector::alert::rules;

const PROMTOOL: &str = "/usr/bin/promtool";

struct Case {
    name: &'static str,
    text: &'static str,
    /// promtool's verdict (checked below, not assumed).
    accepts: bool,
    /// What our error must contain besides the file name.
    names: &'static [&'static str],
}

const fn good(name: &'static str, text: &'static str) -> Case {
    Case {
        name,
        text,
        accepts: true,
        names: &[],
    }
}

const fn bad(name: &'static str, text: &'static str, names: &'static [&'static str]) -> Case {
    Case {
        name,
        text,
        accepts: false,
        names,
    }
}

/// A group "g" whose first rule is good, so a bad second one is "rule 2".
macro_rules! in_rule2 {
    ($rule:literal) => {
        concat!(
            "groups:\n- name: g\n  rules:\n  - record: ok\n    expr: up\n  ",
            $rule,
            "\n"
        )
    };
}

const CORPUS: &[Case] = &[
    good(
        "full",
        "groups:\n- name: node\n  interval: 1h30m\n  limit: 5\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {team: infra}\n  - alert: DiskFull\n    expr: node_filesystem_avail_bytes < 1e9\n    for: 5m\n    keep_firing_for: 10m\n    labels: {severity: page}\n    annotations:\n      summary: '{{ $labels.instance }} is {{ $value }}'\n- name: other\n  rules: []\n",
    ),
    good("empty", ""),
    good("comment_only", "# no rules yet\n"),
    good("null_document", "~\n"),
    good("groups_null", "groups:\n"),
    good("group_without_rules", "groups:\n- name: g\n"),
    good("second_document_ignored", "groups: []\n---\n  foo: [bar\n"),
    good(
        "scalars_as_text",
        "groups:\n- name: 1\n  interval: 0\n  limit: -1\n  rules:\n  - alert: 2\n    expr: 5\n    labels: {x: 1, y: true, z: ~}\n",
    ),
    good(
        "nulls_are_unset",
        in_rule2!("- alert: A\n    expr: up\n    for: ~\n    labels: ~\n    annotations: ~"),
    ),
    good(
        "recording_zero_for",
        in_rule2!("- record: r\n    expr: up\n    for: 0s\n    annotations: {}"),
    ),
    good(
        "alert_name_is_free_text",
        in_rule2!("- alert: 'Disk is full!'\n    expr: up == 0"),
    ),
    good(
        "anchors_and_aliases",
        "groups:\n- name: g\n  rules:\n  - record: a\n    expr: &e sum(up)\n  - record: b\n    expr: *e\n",
    ),
    // promtool only lints duplicate rules (exit 0), as do we.
    good("duplicate_rules", in_rule2!("- record: ok\n    expr: up")),
    good(
        "subquery_and_offset",
        in_rule2!("- record: r\n    expr: max_over_time(rate(x[5m])[1h:1m] offset 1d)"),
    ),
    good(
        "keep_firing_for",
        in_rule2!("- alert: A\n    expr: up == 0\n    for: 1m\n    keep_firing_for: 15m"),
    ),
    good(
        "keep_firing_for_zero_on_recording",
        in_rule2!("- record: r\n    expr: up\n    keep_firing_for: 0s"),
    ),
    bad(
        "keep_firing_for_on_recording",
        in_rule2!("- record: r\n    expr: up\n    keep_firing_for: 5m"),
        &["group \"g\"", "rule 2", "keep_firing_for"],
    ),
    bad(
        "keep_firing_for_without_unit",
        in_rule2!("- alert: A\n    expr: up\n    keep_firing_for: 15"),
        &["group \"g\"", "rule 2", "keep_firing_for"],
    ),
    good(
        "limit_float_truncates",
        "groups:\n- name: g\n  limit: 5.5\n",
    ),
    good("limit_hex", "groups:\n- name: g\n  limit: 0x10\n"),
    good(
        "merge_key",
        "groups:\n- name: g\n  rules:\n  - &base\n    alert: A\n    expr: up\n    labels: {severity: page}\n  - <<: *base\n    alert: B\n",
    ),
    bad(
        "merge_key_bad_for",
        "groups:\n- name: g\n  rules:\n  - &base\n    alert: A\n    expr: up\n    for: 5\n  - <<: *base\n    alert: B\n",
        &["group \"g\"", "rule 1 (alert \"A\")", "for"],
    ),
    bad("group_name_null", "groups:\n- name: ~\n", &["group 1"]),
    bad("tab_indent", "groups:\n\t- name: g\n", &["line 2"]),
    bad(
        "rules_is_a_map",
        "groups:\n- name: g\n  rules: {}\n",
        &["group \"g\"", "rules"],
    ),
    bad(
        "for_empty_string",
        in_rule2!("- alert: A\n    expr: up\n    for: ''"),
        &["group \"g\"", "rule 2", "for"],
    ),
    bad(
        "limit_bool",
        "groups:\n- name: g\n  limit: true\n",
        &["group \"g\"", "limit"],
    ),
    bad("yaml_syntax", "groups:\n- name: g\n  rules: [\n", &["line"]),
    bad("top_level_list", "- name: g\n", &["line 1"]),
    bad("unknown_top_field", "groupz: []\n", &["groupz"]),
    bad(
        "unknown_group_field",
        "groups:\n- name: g\n  intervall: 1m\n",
        &["group \"g\"", "intervall"],
    ),
    bad(
        "unknown_rule_field",
        in_rule2!("- alert: A\n    expr: up\n    fro: 5m"),
        &["group \"g\"", "rules[1]", "fro"],
    ),
    bad(
        "repeated_key",
        in_rule2!("- alert: A\n    expr: up\n    labels: {a: x, a: y}"),
        &["group \"g\"", "already defined"],
    ),
    bad(
        "group_name_list",
        "groups:\n- name: [g]\n",
        &["groups[0].name"],
    ),
    bad(
        "label_value_list",
        in_rule2!("- alert: A\n    expr: up\n    labels: {a: [1]}"),
        &["group \"g\"", "rules[1]"],
    ),
    bad(
        "limit_not_int",
        "groups:\n- name: g\n  limit: five\n",
        &["group \"g\"", "limit"],
    ),
    bad(
        "missing_expr",
        in_rule2!("- alert: A"),
        &["group \"g\"", "rule 2 (alert \"A\")", "expr"],
    ),
    bad(
        "expr_is_a_list",
        in_rule2!("- alert: A\n    expr: [up]"),
        &["group \"g\"", "rule 2", "expr"],
    ),
    bad(
        "record_and_alert",
        in_rule2!("- record: r\n    alert: A\n    expr: up"),
        &["group \"g\"", "rule 2"],
    ),
    bad(
        "neither_record_nor_alert",
        in_rule2!("- expr: up"),
        &["group \"g\"", "rule 2"],
    ),
    bad(
        "bad_promql",
        in_rule2!("- alert: A\n    expr: sum(rate(x[5m])"),
        &["group \"g\"", "rule 2", "expr"],
    ),
    bad(
        "bad_promql_range",
        in_rule2!("- record: r\n    expr: rate(x)"),
        &["group \"g\"", "rule 2", "expr"],
    ),
    bad(
        "for_without_unit",
        in_rule2!("- alert: A\n    expr: up\n    for: 5"),
        &["group \"g\"", "rule 2", "for"],
    ),
    bad(
        "for_units_out_of_order",
        in_rule2!("- alert: A\n    expr: up\n    for: 30m1h"),
        &["group \"g\"", "rule 2", "for"],
    ),
    bad(
        "interval_float",
        "groups:\n- name: g\n  interval: 1.5\n",
        &["group \"g\"", "interval"],
    ),
    bad(
        "interval_overflow",
        "groups:\n- name: g\n  interval: 300y\n",
        &["group \"g\"", "interval"],
    ),
    bad(
        "label_name",
        in_rule2!("- alert: A\n    expr: up\n    labels: {team-name: x}"),
        &["group \"g\"", "rule 2", "team-name"],
    ),
    bad(
        "label___name__",
        in_rule2!("- record: r\n    expr: up\n    labels: {__name__: x}"),
        &["group \"g\"", "rule 2", "__name__"],
    ),
    bad(
        "annotation_name",
        in_rule2!("- alert: A\n    expr: up\n    annotations: {run.book: x}"),
        &["group \"g\"", "rule 2", "run.book"],
    ),
    bad(
        "duplicate_group",
        "groups:\n- name: g\n- name: g\n",
        &["group \"g\"", "repeated"],
    ),
    bad(
        "empty_group_name",
        "groups:\n- name: g\n- name: ''\n",
        &["group 2"],
    ),
    bad(
        "for_on_recording",
        in_rule2!("- record: r\n    expr: up\n    for: 1m"),
        &["group \"g\"", "rule 2 (record \"r\")", "for"],
    ),
    bad(
        "annotations_on_recording",
        in_rule2!("- record: r\n    expr: up\n    annotations: {a: b}"),
        &["group \"g\"", "rule 2", "annotations"],
    ),
    bad(
        "record_name",
        in_rule2!("- record: job-up\n    expr: up"),
        &["group \"g\"", "rule 2", "job-up"],
    ),
];

fn promtool_accepts(file: &Path) -> (bool, String) {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install Prometheus's promtool (Debian: apt-get install prometheus) to run this test"
    );
    let out = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {PROMTOOL}: {e}"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn agrees_with_promtool_check_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in CORPUS {
        let path: PathBuf = dir.path().join(format!("{}.yml", case.name));
        std::fs::write(&path, case.text).unwrap();

        let (promtool_ok, said) = promtool_accepts(&path);
        let ours = rules::load_files(std::slice::from_ref(&path));
        if promtool_ok != case.accepts {
            failures.push(format!(
                "{}: corpus says accepts={}, promtool says:\n{said}",
                case.name, case.accepts
            ));
        }
        match (&ours, promtool_ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                let mut want = vec![format!("{}.yml", case.name)];
                want.extend(case.names.iter().map(|s| s.to_string()));
                for w in want {
                    if !e.contains(&w) {
                        failures.push(format!("{}: our error {e:?} lacks {w:?}", case.name));
                    }
                }
                if e.contains('\n') {
                    failures.push(format!("{}: our error is not one line: {e:?}", case.name));
                }
            }
            (Ok(g), false) => failures.push(format!(
                "{}: we accept ({} groups), promtool rejects:\n{said}",
                case.name,
                g.len()
            )),
            (Err(e), true) => {
                failures.push(format!("{}: promtool accepts, we reject: {e}", case.name))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
    // The corpus must exercise both verdicts, or the comparison proves little.
    assert!(CORPUS.iter().filter(|c| c.accepts).count() >= 10);
    assert!(CORPUS.iter().filter(|c| !c.accepts).count() >= 20);
}

#[test]
fn templates_are_checked_only_through_the_hook() {
    // promtool parses alert annotations as Go templates; `parse` leaves that
    // to the checker given to `parse_with`. If `parse` starts checking
    // templates, move this case into CORPUS.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.yml");
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations: {summary: '{{ $labels.job'}\n";
    std::fs::write(&path, text).unwrap();
    let (promtool_ok, said) = promtool_accepts(&path);
    assert!(
        !promtool_ok,
        "promtool accepted an unclosed template:\n{said}"
    );
    assert!(rules::parse(&path, text).is_ok());
    let e = rules::parse_with(&path, text, &|t| {
        if t.contains("{{") && !t.contains("}}") {
            Err("unclosed action".into())
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(
        e.contains("group \"g\": rule 1 (alert \"A\"): annotations.summary"),
        "{e}"
    );
}
