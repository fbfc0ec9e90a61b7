//! The default rule pack's unit tests (deploy/rules/*.rules.test.yml) under
//! the real `promtool test rules` (Prometheus 2.42) and under
//! `sonde-collector test-rules`: both must pass them, and both must fail
//! copies with one wrong expectation, so neither can pass by checking nothing.
//! Also that every alert of the pack has a firing case and a silent one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";
const SONDE: &str = env!("CARGO_BIN_EXE_sonde-collector");

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rules")
}

/// Each `X.rules.yml` with its `X.rules.test.yml`; a rule file without tests fails.
fn rule_pack() -> Vec<(PathBuf, PathBuf)> {
    let mut pairs: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(rules_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .map(|rules| {
            let test = rules.with_extension("test.yml");
            assert!(
                test.exists(),
                "{} has no {}",
                rules.display(),
                test.display()
            );
            (rules, test)
        })
        .collect();
    pairs.sort();
    assert!(
        !pairs.is_empty(),
        "no rule files in {}",
        rules_dir().display()
    );
    pairs
}

/// (passed, everything printed) of `promtool test rules FILE` or `sonde-collector test-rules FILE`.
fn run(tool: &str, file: &Path) -> (bool, String) {
    let mut cmd = if tool == "promtool" {
        assert!(
            Path::new(PROMTOOL).exists(),
            "{PROMTOOL} is missing: run `cargo xtask setup`, which installs Prometheus's promtool"
        );
        let mut c = Command::new(PROMTOOL);
        c.args(["test", "rules"]);
        c
    } else {
        let mut c = Command::new(SONDE);
        c.arg("test-rules");
        c
    };
    let out = cmd
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn promtool_and_sonde_pass_the_rule_pack_tests() {
    let mut failures = Vec::new();
    for (_, test) in rule_pack() {
        for tool in ["promtool", "sonde"] {
            let (ok, said) = run(tool, &test);
            if !ok {
                failures.push(format!("{tool} fails {}:\n{said}", test.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The issue's bar: every alert is tested firing (with labels and
/// annotations) and not firing.
#[test]
fn every_alert_has_a_firing_and_a_silent_case() {
    let yaml = |p: &Path| -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let mut missing = Vec::new();
    for (rules, test) in rule_pack() {
        let alerts: BTreeSet<String> = yaml(&rules)["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap())
            .filter_map(|r| r["alert"].as_str().map(str::to_string))
            .collect();
        let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
        for group in yaml(&test)["tests"].as_sequence().unwrap() {
            for case in group["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_string();
                match case["exp_alerts"].as_sequence() {
                    Some(exp) if !exp.is_empty() => {
                        let full = exp.iter().all(|a| {
                            a["exp_labels"].as_mapping().is_some_and(|m| !m.is_empty())
                                && a["exp_annotations"]["summary"].is_string()
                                && a["exp_annotations"]["description"].is_string()
                        });
                        assert!(
                            full,
                            "{}: {name}: an expected alert without labels, summary or description",
                            test.display()
                        );
                        firing.insert(name)
                    }
                    _ => silent.insert(name),
                };
            }
        }
        for a in &alerts {
            if !firing.contains(a) {
                missing.push(format!("{}: no firing case for {a}", test.display()));
            }
            if !silent.contains(a) {
                missing.push(format!(
                    "{}: no case where {a} must not fire",
                    test.display()
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// A copy of the node tests (and their rules) with `from` replaced by `to`.
fn broken_copy(dir: &Path, from: &str, to: &str) -> PathBuf {
    let src = rules_dir().join("sonde-node.rules.test.yml");
    let text = std::fs::read_to_string(&src).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur once in {}",
        src.display()
    );
    std::fs::copy(
        rules_dir().join("sonde-node.rules.yml"),
        dir.join("sonde-node.rules.yml"),
    )
    .unwrap();
    let path = dir.join("broken.test.yml");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path
}

#[test]
fn promtool_and_sonde_both_fail_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    // (what is changed, text to replace, its replacement, what Sonde must name)
    let cases = [
        (
            "an annotation",
            "summary: \"Disk sda on node node-a: p99 I/O latency 298ms\"",
            "summary: \"Disk sda on node node-a: p99 I/O latency 299ms\"",
            &[
                "tests[5] (disk latency)",
                "NodeDiskLatencyHigh at 22m",
                "299ms",
                "298ms",
            ][..],
        ),
        (
            // Still pending at 35m: expecting it firing then must fail.
            "an eval_time",
            "      - eval_time: 36m\n        alertname: NodeFilesystemFillingUp",
            "      - eval_time: 35m\n        alertname: NodeFilesystemFillingUp",
            &[
                "tests[2] (filesystem filling up)",
                "NodeFilesystemFillingUp at 35m",
                "expected, not firing",
            ][..],
        ),
        (
            // Firing at 15m: a case saying it must not fire then must fail.
            "a silent case",
            "      - eval_time: 13m\n        alertname: SondeAgentMissing",
            "      - eval_time: 14m\n        alertname: SondeAgentMissing",
            &[
                "tests[0] (agent missing)",
                "SondeAgentMissing at 14m",
                "firing, not expected",
            ][..],
        ),
        (
            "a promql_expr_test value",
            "            value: 300",
            "            value: 240",
            &[
                "tests[0] (agent missing)",
                "expr \"time() -",
                "at 15m",
                "{node=\"node-a\"} 240",
            ][..],
        ),
    ];
    for (what, from, to, names) in cases {
        let file = broken_copy(dir.path(), from, to);
        let (promtool_ok, promtool_said) = run("promtool", &file);
        assert!(
            !promtool_ok,
            "promtool passes with {what} wrong:\n{promtool_said}"
        );
        let (sonde_ok, sonde_said) = run("sonde", &file);
        assert!(!sonde_ok, "sonde passes with {what} wrong:\n{sonde_said}");
        for n in names.iter().chain(&["broken.test.yml", "1 failed"]) {
            assert!(
                sonde_said.contains(n),
                "with {what} wrong, sonde's output lacks {n:?}:\n{sonde_said}"
            );
        }
    }
}

#[test]
fn a_malformed_test_file_is_one_error_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    // A misspelt key: promtool reads strictly, and so must Sonde.
    let file = broken_copy(
        dir.path(),
        "      - eval_time: 20m\n        alertname: NodeMemoryLow\n        exp_alerts:",
        "      - eval_time: 20m\n        alertname: NodeMemoryLow\n        exp_alert:",
    );
    let (promtool_ok, promtool_said) = run("promtool", &file);
    assert!(
        !promtool_ok,
        "promtool accepts a misspelt key:\n{promtool_said}"
    );
    let (sonde_ok, sonde_said) = run("sonde", &file);
    assert!(!sonde_ok, "sonde accepts a misspelt key:\n{sonde_said}");
    for n in [
        "broken.test.yml",
        "tests[3].alert_rule_test[1]",
        "exp_alert",
    ] {
        assert!(
            sonde_said.contains(n),
            "sonde's error lacks {n:?}:\n{sonde_said}"
        );
    }
    let bad_time = broken_copy(dir.path(), "eval_time: 6h20m", "eval_time: 6h20");
    let (sonde_ok, sonde_said) = run("sonde", &bad_time);
    assert!(
        !sonde_ok && sonde_said.contains("tests[1].alert_rule_test[1].eval_time"),
        "{sonde_said}"
    );
    assert!(
        !run("promtool", &bad_time).0,
        "promtool accepts eval_time 6h20"
    );
}

/// What the pack does not use, both tools on one small file: `interval`
/// apart from `evaluation_interval`, an `eval_time` between evaluations,
/// `group_eval_order` (the recording group listed second in the rule file
/// must run first, or the alert sees the old value and fires a minute
/// later), `external_labels`, `external_url`, `query` in a template.
#[test]
fn promtool_and_sonde_agree_on_group_order_and_template_data() {
    const RULES: &str = r#"groups:
  - name: second
    rules:
      - alert: JobDown
        expr: job:up:sum == 0
        for: 2m
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.job }} is down in {{ $externalLabels.cluster }}'
          link: '{{ $externalURL }}/alerts'
          detail: '{{ $value }} of {{ with query "count(up)" }}{{ . | first | value }}{{ end }} up'
  - name: first
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
"#;
    const TESTS: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
group_eval_order: [first, second]
tests:
  - interval: 30s
    external_labels:
      cluster: eu-1
    external_url: http://sonde.example:9090
    input_series:
      - series: 'up{job="api", instance="a"}'
        values: '1x3 0x10'
    alert_rule_test:
      - eval_time: 3m30s
        alertname: JobDown
      - eval_time: 4m30s
        alertname: JobDown
        exp_alerts:
          - exp_labels: {severity: page, job: api}
            exp_annotations:
              summary: api is down in eu-1
              link: http://sonde.example:9090/alerts
              detail: 0 of 1 up
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 4m
        exp_samples:
          - labels: 'job:up:sum{job="api"}'
            value: 0
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let good = dir.path().join("good.test.yml");
    std::fs::write(&good, TESTS).unwrap();
    let reordered = dir.path().join("reordered.test.yml");
    std::fs::write(
        &reordered,
        TESTS.replace("[first, second]", "[second, first]"),
    )
    .unwrap();
    for tool in ["promtool", "sonde"] {
        let (ok, said) = run(tool, &good);
        assert!(ok, "{tool} fails:\n{said}");
        let (ok, said) = run(tool, &reordered);
        assert!(!ok, "{tool} passes with the groups reordered:\n{said}");
    }
}
