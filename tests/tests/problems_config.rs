//! `--problem-config`: node-problem-detector's own monitor JSON files, checked
//! at `--check-config` time. NPD's example configs load or are refused with one
//! line naming the file and what is unsupported; broken configs exit 2 with one
//! line naming the file and the field, never a panic.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sonde_tests::{agent_binary, workspace_root};

fn check(files: &[&Path]) -> Output {
    let list = files
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    Command::new(agent_binary())
        .args(["--check-config", "--problem-config", &list])
        .output()
        .unwrap()
}

/// Expects exit 2 and exactly one stderr line; returns it.
fn refused(files: &[&Path]) -> String {
    let out = check(files);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {files:?}: {out:?}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "one line for {files:?}, got:\n{err}"
    );
    assert!(err.starts_with("sonde-agent: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn peer_suite() -> PathBuf {
    workspace_root().join("../shared/peer-suites/node-problem-detector")
}

#[test]
fn npd_example_configs_load_or_are_refused_naming_what_is_unsupported() {
    // None: loads. Some(words): refused, the line says these.
    let expect: &[(&str, Option<&[&str]>)] = &[
        ("kernel-monitor.json", None),
        ("readonly-monitor.json", None),
        ("kernel-monitor-counter.json", None),
        (
            "docker-monitor.json",
            Some(&["plugin", "journald", "not supported"]),
        ),
        (
            "systemd-monitor-counter.json",
            Some(&[
                "rules[0].args",
                "--journald-source=systemd",
                "not supported",
            ]),
        ),
        (
            "health-checker-kubelet.json",
            Some(&["rules[0].path", "health-checker"]),
        ),
        (
            "health-checker-containerd.json",
            Some(&["rules[0].path", "health-checker"]),
        ),
        (
            "custom-plugin-monitor.json",
            Some(&["rules[0].path", "check_ntp.sh"]),
        ),
    ];
    let dir = peer_suite();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (_, want) = expect
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("a new NPD example config, {name}: add what to expect"));
        seen += 1;
        match want {
            None => {
                let out = check(&[&path]);
                assert!(out.status.success(), "{name} should load: {out:?}");
            }
            Some(words) => {
                let err = refused(&[&path]);
                assert!(err.contains(&name), "{name}: {err}");
                for w in *words {
                    assert!(err.contains(w), "{name}: expected {w:?} in: {err}");
                }
            }
        }
    }
    assert_eq!(seen, expect.len());
    // Several files at once, comma separated.
    let ok = check(&[
        &dir.join("kernel-monitor.json"),
        &dir.join("readonly-monitor.json"),
        &dir.join("kernel-monitor-counter.json"),
    ]);
    assert!(ok.status.success(), "{ok:?}");
}

const GOOD_RULE: &str =
    r#"{"type":"temporary","reason":"OOMKilling","pattern":"Killed process \\d+ .*"}"#;

fn monitor(rules: &str) -> String {
    format!(
        r#"{{"plugin":"kmsg","logPath":"/dev/kmsg","lookback":"5m","bufferSize":10,"source":"kernel-monitor",
        "conditions":[{{"type":"KernelDeadlock","reason":"KernelHasNoDeadlock","message":"kernel has no deadlock"}}],
        "rules":[{rules}]}}"#
    )
}

#[test]
fn broken_configs_exit_2_with_one_line_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown-plugin.json",
            monitor(GOOD_RULE).replace(r#""plugin":"kmsg""#, r#""plugin":"syslog""#),
            &["plugin", "unknown plugin \"syslog\""],
        ),
        (
            "bad-regex.json",
            monitor(&format!(
                r#"{GOOD_RULE},{{"type":"temporary","reason":"Oops","pattern":"BUG: (unclosed"}}"#
            )),
            &["rules[1].pattern", "invalid regex"],
        ),
        (
            "no-reason.json",
            monitor(r#"{"type":"temporary","pattern":"x"}"#),
            &["rules[0].reason", "missing"],
        ),
        (
            "bad-type.json",
            monitor(r#"{"type":"forever","reason":"R","pattern":"x"}"#),
            &["rules[0].type", "forever"],
        ),
        (
            "undeclared-condition.json",
            monitor(r#"{"type":"permanent","condition":"Gone","reason":"R","pattern":"x"}"#),
            &["rules[0].condition", "Gone"],
        ),
        (
            "wrong-type.json",
            monitor(GOOD_RULE).replace(r#""bufferSize":10"#, r#""bufferSize":"ten""#),
            &["bufferSize", "invalid type"],
        ),
        (
            "truncated.json",
            monitor(GOOD_RULE)[..120].to_string(),
            &["invalid JSON", "line "],
        ),
        ("empty.json", String::new(), &["invalid JSON"]),
    ];
    for (name, text, words) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = refused(&[&path]);
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
        for w in *words {
            assert!(err.contains(w), "{name}: expected {w:?} in: {err}");
        }
    }
    // Not a file, and no file at all.
    for path in [dir.path().to_path_buf(), dir.path().join("missing.json")] {
        let err = refused(&[&path]);
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    // A good file next to a bad one: the bad one is named.
    let good = dir.path().join("good.json");
    std::fs::write(&good, monitor(GOOD_RULE)).unwrap();
    assert!(check(&[&good]).status.success());
    let err = refused(&[&good, &dir.path().join("bad-regex.json")]);
    assert!(
        err.contains("bad-regex.json") && !err.contains("good.json"),
        "{err}"
    );
}

#[test]
fn custom_plugins_must_exist_and_be_executable_relative_to_the_config() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugin")).unwrap();
    let script = dir.path().join("plugin/check_ntp.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let cfg = dir.path().join("ntp.json");
    std::fs::write(
        &cfg,
        r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"30s","timeout":"5s"},"source":"ntp-custom-plugin-monitor",
        "conditions":[{"type":"NTPProblem","reason":"NTPIsUp","message":"ntp service is up"}],
        "rules":[{"type":"permanent","condition":"NTPProblem","reason":"NTPIsDown","path":"./plugin/check_ntp.sh","timeout":"3s"}]}"#,
    )
    .unwrap();
    let err = refused(&[&cfg]);
    assert!(
        err.contains("rules[0].path") && err.contains("not an executable"),
        "{err}"
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = check(&[&cfg]);
    assert!(out.status.success(), "{out:?}");
}
