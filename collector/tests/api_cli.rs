//! The command line: one-line errors naming the flag, key or file; the
//! `promql-test` subcommand's summary and exit codes.

mod api_support;

use std::process::Command;

use api_support::{Collector, binary};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("running sonde-collector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(stderr: &str) -> &str {
    assert_eq!(stderr.lines().count(), 1, "want one line, got: {stderr}");
    stderr.trim_end()
}

#[test]
fn bad_flags_and_config_are_one_line_naming_them() {
    let (code, _, err) = run(&["--retention-time", "forever"]);
    assert_eq!(code, 2);
    assert!(
        one_line(&err).starts_with("sonde-collector: --retention-time: \"forever\""),
        "{err}"
    );

    let (code, _, err) = run(&["--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("--no-such-flag"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, "data-dir = \"d\"\nretension-time = \"1d\"\n").unwrap();
    let (code, _, err) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    let line = one_line(&err);
    assert!(
        line.contains(&format!("{}:2", cfg.display())) && line.contains("retension-time"),
        "{line}"
    );

    std::fs::write(&cfg, "max-request-bytes = \"lots\"\n").unwrap();
    let (code, _, err) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("max-request-bytes"), "{err}");

    let (code, _, err) = run(&["--config", "/nonexistent/collector.toml"]);
    assert_eq!(code, 2);
    assert!(
        one_line(&err).starts_with("sonde-collector: /nonexistent/collector.toml:"),
        "{err}"
    );

    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--data-dir",
        "--http-listen",
        "--otlp-http-listen",
        "--grpc-listen",
        "--retention-time",
        "--retention-size",
        "--max-series",
        "--ooo-window",
        "--max-request-bytes",
        "--query-timeout",
        "--query-max-samples",
        "--lookback-delta",
        "--log-level",
        "--log-format",
        "--config",
        "promql-test",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn promql_test_reports_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass.test");
    std::fs::write(
        &pass,
        "load 5m\n  http_requests{job=\"api\"} 0+10x10\n\neval instant at 50m http_requests\n  http_requests{job=\"api\"} 100\n\neval instant at 50m sum(http_requests)\n  {} 100\n",
    )
    .unwrap();
    let (code, out, err) = run(&["promql-test", pass.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().last(), Some("2 passed, 0 failed"), "{out}");

    let fail = dir.path().join("fail.test");
    std::fs::write(
        &fail,
        "load 5m\n  m 1+1x3\n\neval instant at 10m m\n  m 99\n",
    )
    .unwrap();
    let (code, out, _) = run(&[
        "promql-test",
        pass.to_str().unwrap(),
        fail.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 1 failed"), "{out}");
    assert!(
        out.contains("fail.test"),
        "the failure names its file: {out}"
    );

    let (code, _, err) = run(&["promql-test", "/nonexistent.test"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.test"), "{err}");
}

#[test]
fn sigterm_stops_cleanly_and_startup_names_the_data_dir() {
    let mut c = Collector::start(&[]);
    let log = c.log();
    let dir = c.dir.path().join("data");
    assert!(
        log.contains(&dir.display().to_string()),
        "data dir in the startup log: {log}"
    );
    assert!(
        log.contains(&c.grpc.to_string()) && log.contains(&c.otlp_http.to_string()),
        "{log}"
    );
    assert_eq!(c.terminate(), Some(0), "{}", c.log());
    assert!(c.log().contains("stopped"), "{}", c.log());
}
