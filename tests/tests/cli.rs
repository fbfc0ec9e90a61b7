//! The agent as a user meets it: defaults, `--help`, bad flags and files, and
//! running without the privileges the probes need.

use std::process::Command;

use sonde_tests::{Agent, agent_binary, require_binary};

/// Runs the agent expecting it to refuse; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(agent_binary()).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {args:?}: {out:?}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line for {args:?}, got:\n{err}");
    assert!(err.starts_with("sonde-agent: "), "{err}");
    err
}

#[test]
fn bad_flags_and_files_give_one_line_naming_what_and_where() {
    assert!(refused(&["--listen", "nowhere"]).contains("--listen"));
    assert!(refused(&["--probes", "runqueue,bogus"]).contains("bogus"));
    assert!(refused(&["--no-such-flag"]).contains("--no-such-flag"));
    assert!(refused(&["--probe-interval", "0s"]).contains("--probe-interval"));

    let dir = std::env::temp_dir().join(format!("sonde-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\n[probes]\nintervall = \"1s\"\n",
    )
    .unwrap();
    let err = refused(&["--config", file.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:3", file.display())) && err.contains("intervall"),
        "{err}"
    );
    let err = refused(&["--config", dir.join("missing.toml").to_str().unwrap()]);
    assert!(err.contains("missing.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_describes_every_flag() {
    let out = Command::new(agent_binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--listen",
        "--log-level",
        "--log-format",
        "--probes",
        "--probe-interval",
        "--max-cgroups",
        "--cgroup-root",
        "--path.procfs",
        "--path.sysfs",
        "--path.rootfs",
        "--check-config",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn check_config_validates_without_starting() {
    let out = Command::new(agent_binary())
        .args(["--check-config", "--probes", "oom"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Oom"));
}

#[test]
fn probes_off_by_configuration_are_reported_and_host_metrics_served() {
    let agent = Agent::start(&["--probes", "none"]);
    let e = agent.scrape();
    for probe in ["runqueue", "oom", "tcp", "blockio"] {
        assert_eq!(
            e.value("sonde_probe_up", &[("probe", probe)]),
            Some(0.0),
            "{probe}"
        );
    }
    assert!(
        e.value("node_boot_time_seconds", &[])
            .is_some_and(|v| v > 0.0)
    );
    assert!(
        e.find("node_cpu_seconds_total", &[("mode", "idle")])
            .count()
            > 0
    );
}

/// Degrade, never die: without the privileges to load BPF the agent still serves
/// host metrics, and says on /metrics and in its log which probes are off and why.
#[test]
fn without_privileges_probes_are_off_with_a_reason_and_host_metrics_still_flow() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: dropping privileges needs root to start from");
        return;
    }
    let setpriv = require_binary("setpriv");
    let setpriv = setpriv.to_str().unwrap();
    let agent = Agent::start_wrapped(
        &[
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ],
        &[],
    );
    let e = agent.scrape();
    for probe in ["runqueue", "oom", "tcp", "blockio"] {
        assert_eq!(
            e.value("sonde_probe_up", &[("probe", probe)]),
            Some(0.0),
            "{probe} up without privileges?"
        );
    }
    assert!(
        e.value("node_load1", &[]).is_some(),
        "host metrics must still be served"
    );
    // With dmesg_restrict the kernel log needs CAP_SYSLOG: its problem monitors
    // are off, not fatal, and /metrics says so.
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|s| s.trim() == "1");
    let kmsg_up = e.value("sonde_kmsg_up", &[("path", "/dev/kmsg")]);
    if restricted {
        assert_eq!(kmsg_up, Some(0.0), "/dev/kmsg readable without CAP_SYSLOG?");
    } else {
        assert!(kmsg_up.is_some(), "sonde_kmsg_up missing");
    }
    let off = agent.wait_for_log(std::time::Duration::from_secs(5), |v| {
        v["fields"]["message"] == "probe is off"
    });
    let reason = off["fields"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("needs root")
            || reason.contains("ermission")
            || reason.contains("not permitted"),
        "reason: {reason}"
    );
}

#[test]
fn metrics_speak_prometheus_text_by_default_and_openmetrics_on_request() {
    let agent = Agent::start(&["--probes", "none"]);
    let text = sonde_tests::scrape(agent.addr, None);
    assert!(
        text.contains("# TYPE node_cpu_seconds_total counter"),
        "classic format names counters with _total"
    );
    assert!(!text.contains("# EOF") && !text.contains("{} "));
    let om = sonde_tests::scrape(
        agent.addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(
        om.contains("# TYPE node_cpu_seconds counter"),
        "OpenMetrics names the family without _total"
    );
    assert!(om.trim_end().ends_with("# EOF"));
    let (a, b) = (
        sonde_tests::parse_exposition(&text),
        sonde_tests::parse_exposition(&om),
    );
    assert!(a.value("node_boot_time_seconds", &[]) == b.value("node_boot_time_seconds", &[]));
    let (code, body) = sonde_tests::http_get(agent.addr, "/healthz", None).unwrap();
    assert_eq!((code, body.trim()), (200, "ok"));
}
