//! The NPD layer as a whole: built-in rules on realistic kernel lines, NPD's own
//! example configs, and `start` reading real kernel logs.

use std::{
    collections::BTreeSet,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use super::*;
use crate::detect::problem::{Finding, Status};

fn uptime_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn rec(message: &str) -> Record {
    Record {
        facility: 0,
        level: 3,
        seq: 1,
        ts_usec: 0,
        time: SystemTime::now(),
        message: message.into(),
    }
}

/// Log monitors of the built-in configs, reading everything.
fn builtin_monitors(stats: &NpdStats) -> Vec<(LogMonitor, Vec<config::LogRule>)> {
    builtin()
        .into_iter()
        .map(|m| {
            let Kind::Kmsg(spec) = &m.spec.kind else {
                panic!("builtin is kmsg")
            };
            let lm =
                LogMonitor::new(m.source(), spec, SystemTime::UNIX_EPOCH, stats.clone()).unwrap();
            (lm, spec.rules.clone())
        })
        .collect()
}

fn reasons(findings: &[Finding]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|f| match f {
            Finding::Event { reason, .. } => format!("event:{reason}"),
            Finding::Condition {
                kind,
                reason,
                status,
                ..
            } => {
                assert_eq!(*status, Status::True);
                format!("condition:{kind}:{reason}")
            }
        })
        .collect()
}

#[test]
fn builtin_configs_load_with_their_conditions() {
    let ms = builtin();
    assert_eq!(
        ms.iter().map(|m| m.source()).collect::<Vec<_>>(),
        ["kernel-monitor", "readonly-monitor"]
    );
    let conds: Vec<ConditionDefault> = ms.iter().flat_map(|m| m.conditions()).collect();
    let deadlock = conds.iter().find(|c| c.kind == "KernelDeadlock").unwrap();
    assert_eq!(deadlock.reason, "KernelHasNoDeadlock");
    assert_eq!(deadlock.problem_reasons, ["DockerHung"]);
    let ro = conds
        .iter()
        .find(|c| c.kind == "ReadonlyFilesystem")
        .unwrap();
    assert_eq!(
        (ro.source.as_str(), ro.problem_reasons.as_slice()),
        (
            "readonly-monitor",
            &["FilesystemIsReadOnly".to_string()][..]
        )
    );
    // Verbatim copies of NPD's files.
    for (name, text) in BUILTIN {
        let peer = peer_suite().join(name);
        assert_eq!(
            std::fs::read_to_string(&peer).unwrap(),
            text,
            "{name} differs from {}",
            peer.display()
        );
    }
}

#[test]
fn every_builtin_rule_fires_on_a_realistic_kernel_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "Out of memory: Killed process 1234 (stress) total-vm:1234kB, anon-rss:100kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
            &["event:OOMKilling"],
        ),
        (
            "INFO: task kworker/u4:2:1234 blocked for more than 120 seconds.",
            &["event:TaskHung"],
        ),
        (
            "task docker:1234 blocked for more than 120 seconds.",
            &["event:TaskHung", "condition:KernelDeadlock:DockerHung"],
        ),
        (
            "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
            &["event:UnregisterNetDevice"],
        ),
        (
            "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
            &["event:KernelOops"],
        ),
        ("divide error: 0000 [#1] SMP", &["event:KernelOops"]),
        (
            "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
            &["event:Ext4Error"],
        ),
        (
            "EXT4-fs warning (device sda1): ext4_dx_add_entry:2006: Directory index full!",
            &["event:Ext4Warning"],
        ),
        (
            "Buffer I/O error on dev sdb1, logical block 0, async page read",
            &["event:IOError"],
        ),
        (
            "XFS (sda1): Shutting down filesystem",
            &["condition:XfsShutdown:XfsHasShutdown"],
        ),
        (
            "CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4d0a5f)",
            &["event:MemoryReadError"],
        ),
        (
            "{1}[Hardware Error]: event severity: corrected",
            &["event:CperHardwareErrorCorrected"],
        ),
        (
            "{2}[Hardware Error]: event severity: recoverable",
            &["event:CperHardwareErrorRecoverable"],
        ),
        (
            "{3}[Hardware Error]: event severity: fatal",
            &["condition:CperHardwareErrorFatal:CperHardwareErrorFatal"],
        ),
        (
            "EXT4-fs (sda1): Remounting filesystem read-only",
            &["condition:ReadonlyFilesystem:FilesystemIsReadOnly"],
        ),
        ("eth0: link up, 1000Mbps, full-duplex", &[]),
    ];
    let stats = NpdStats::default();
    let mut fired: BTreeSet<(String, String)> = BTreeSet::new();
    for (line, want) in cases {
        let mut got = Vec::new();
        for (m, _) in &mut builtin_monitors(&stats) {
            got.extend(m.on_record(&rec(line)));
        }
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(reasons(&got), want, "{line}");
        for f in &got {
            let (Finding::Event {
                source, message, ..
            }
            | Finding::Condition {
                source, message, ..
            }) = f;
            assert_eq!(message, line, "the message is the matched line");
            let r = match f {
                Finding::Event { reason, .. } | Finding::Condition { reason, .. } => reason.clone(),
            };
            fired.insert((source.clone(), r));
        }
    }
    for (m, rules) in builtin_monitors(&stats) {
        let _ = m;
        for r in rules {
            let src = if r.reason == "FilesystemIsReadOnly" {
                "readonly-monitor"
            } else {
                "kernel-monitor"
            };
            assert!(
                fired.contains(&(src.to_string(), r.reason.clone())),
                "rule {} never fired",
                r.reason
            );
        }
    }
    assert!(stats.matches_of("kernel-monitor", "KernelOops") >= 2);
}

/// A storm of kernel lines (NPD saturates near 4,500 OOM kills a minute) costs
/// little: every built-in rule against every line.
#[test]
fn storm_of_kernel_lines_is_cheap() {
    let stats = NpdStats::default();
    let mut monitors = builtin_monitors(&stats);
    let lines = [
        "Out of memory: Killed process 1234 (stress) total-vm:1234kB, anon-rss:100kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1,task_memcg=/kubepods/pod1/c1,task=stress,pid=1234,uid=0",
        "Memory cgroup out of memory: Killed process 1234 (stress) total-vm:1234kB, anon-rss:100kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
        "stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        " [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
    ];
    let n = 6_000;
    let started = Instant::now();
    let mut events = 0;
    for i in 0..n {
        for (m, _) in &mut monitors {
            events += m.on_record(&rec(lines[i % lines.len()])).len();
        }
    }
    let took = started.elapsed();
    assert_eq!(events, 2 * n / lines.len());
    // A minute's storm in well under a second of CPU, even unoptimised.
    assert!(took < Duration::from_secs(1), "{n} lines took {took:?}");
}

pub(crate) fn peer_suite() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/peer-suites/node-problem-detector"
    ))
}

#[test]
fn npd_example_configs_load_or_are_refused_naming_what() {
    let dir = peer_suite();
    let expect: &[(&str, Option<&str>)] = &[
        ("kernel-monitor.json", None),
        ("readonly-monitor.json", None),
        ("kernel-monitor-counter.json", None),
        (
            "docker-monitor.json",
            Some("plugin: \"journald\" is not supported"),
        ),
        (
            "systemd-monitor-counter.json",
            Some("rules[0].args: log-counter --journald-source=systemd is not supported"),
        ),
        (
            "health-checker-kubelet.json",
            Some("rules[0].path: NPD's health-checker (--component="),
        ),
        (
            "health-checker-containerd.json",
            Some("rules[0].path: NPD's health-checker (--component="),
        ),
        (
            "custom-plugin-monitor.json",
            Some("rules[0].path: \"./config/plugin/check_ntp.sh\""),
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = expect
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        seen += 1;
        match (load(std::slice::from_ref(&path)), want.1) {
            (Ok(ms), None) => assert_eq!(ms.len(), 1),
            (Err(e), Some(what)) => {
                assert_eq!(e.lines().count(), 1, "{e}");
                assert!(e.starts_with(&format!("{}: {what}", path.display())), "{e}");
            }
            (got, _) => panic!("{name}: unexpected {got:?}"),
        }
    }
    assert_eq!(seen, expect.len());
    // The counter config is counted natively over /dev/kmsg.
    let m = &load(&[dir.join("kernel-monitor-counter.json")]).unwrap()[0];
    let Kind::Custom(c) = &m.spec.kind else {
        panic!()
    };
    let Action::LogCounter(lc) = &c.rules[0].action else {
        panic!()
    };
    assert_eq!(
        (lc.count, lc.lookback, lc.kmsg.to_str()),
        (3, Duration::from_secs(1200), Some("/dev/kmsg"))
    );
    assert_eq!(m.conditions()[0].problem_reasons, ["UnregisterNetDevice"]);
}

#[test]
fn not_a_file_and_missing_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    for p in [dir.path().to_path_buf(), dir.path().join("missing.json")] {
        let e = load(std::slice::from_ref(&p)).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: cannot read", p.display())),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Finding>) -> Finding {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a finding within 5s")
        .expect("channel open")
}

fn write_config(dir: &Path, name: &str, json: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

/// `start` on a file of kmsg records: lookback skips old records, rules fire,
/// findings reach the hub's channel, and the stats are on the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_applies_rules_from_a_kmsg_file_with_lookback() {
    let dir = tempfile::tempdir().unwrap();
    let kmsg_path = dir.path().join("kmsg");
    let now_us = uptime_usec();
    let old_us = now_us.saturating_sub(600_000_000); // 10 minutes ago
    let mut f = std::fs::File::create(&kmsg_path).unwrap();
    writeln!(f, "3,1,{old_us},-;XFS (sdz): Shutting down filesystem").unwrap();
    writeln!(f, "6,2,{now_us},-;hello").unwrap();
    f.flush().unwrap();
    let cfg = write_config(
        dir.path(),
        "m.json",
        &format!(
            r#"{{"plugin":"kmsg","logPath":"{}","lookback":"5m","bufferSize":10,"source":"test-monitor",
            "conditions":[{{"type":"XfsShutdown","reason":"XfsHasNotShutDown","message":"XFS has not shutdown"}}],
            "rules":[{{"type":"temporary","reason":"OOMKilling","pattern":"Killed process \\d+ (.+) total-vm:\\d+kB.*"}},
                     {{"type":"permanent","condition":"XfsShutdown","reason":"XfsHasShutdown","pattern":"XFS .* Shutting down filesystem.?"}}]}}"#,
            kmsg_path.display()
        ),
    );
    let monitors = load(&[cfg]).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let mut registry = Registry::default();
    let defaults = start(monitors, tx, &mut registry).unwrap();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].problem_reasons, ["XfsHasShutdown"]);
    // Appended after start: the reader follows the file.
    writeln!(
        f,
        "3,3,{},-;Killed process 42 (stress) total-vm:10kB, anon-rss:1kB",
        uptime_usec()
    )
    .unwrap();
    writeln!(
        f,
        "3,4,{},-;XFS (sda1): Shutting down filesystem",
        uptime_usec()
    )
    .unwrap();
    match next(&mut rx).await {
        Finding::Event {
            source,
            reason,
            message,
            time,
            ..
        } => {
            assert_eq!(
                (source.as_str(), reason.as_str()),
                ("test-monitor", "OOMKilling")
            );
            assert!(message.starts_with("Killed process 42"));
            assert!(
                SystemTime::now().duration_since(time).unwrap_or_default()
                    < Duration::from_secs(30)
            );
        }
        other => panic!("{other:?}"),
    }
    match next(&mut rx).await {
        Finding::Condition {
            kind,
            status,
            reason,
            message,
            ..
        } => {
            assert_eq!(
                (kind.as_str(), status, reason.as_str()),
                ("XfsShutdown", Status::True, "XfsHasShutdown")
            );
            assert_eq!(
                message, "XFS (sda1): Shutting down filesystem",
                "the old sdz line is outside the lookback"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("sonde_kmsg_records_total{}"), 4.0);
    assert_eq!(value("sonde_kmsg_records_lost_total{}"), 0.0);
    assert_eq!(
        value("sonde_problem_rule_matches_total{source=\"test-monitor\",reason=\"OOMKilling\"}"),
        1.0
    );
    assert_eq!(
        value(
            "sonde_problem_rule_matches_total{source=\"test-monitor\",reason=\"XfsHasShutdown\"}"
        ),
        1.0
    );
}

/// The real device, a custom rule, a line written to /dev/kmsg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reads_dev_kmsg() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!(
        "sonde-npd-test-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    );
    let cfg = write_config(
        dir.path(),
        "m.json",
        &format!(
            r#"{{"plugin":"kmsg","logPath":"/dev/kmsg","lookback":"1m","source":"dev-test","conditions":[],
            "rules":[{{"type":"temporary","reason":"Tagged","pattern":"{tag} \\w+"}}]}}"#
        ),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    start(load(&[cfg]).unwrap(), tx, &mut Registry::default()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .and_then(|mut f| f.write_all(format!("{tag} fired\n").as_bytes()))
        .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let Finding::Event {
        reason, message, ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(
        (reason.as_str(), message),
        ("Tagged", format!("{tag} fired"))
    );
}

/// A custom plugin through `start`: NonOK sets the condition, with the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_runs_custom_plugins() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check.sh");
    std::fs::write(&plugin, "#!/bin/sh\necho ntp is down\nexit 1\n").unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = write_config(
        dir.path(),
        "c.json",
        r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"1h","timeout":"5s"},"source":"ntp",
        "conditions":[{"type":"NTPProblem","reason":"NTPIsUp","message":"ntp service is up"}],
        "rules":[{"type":"permanent","condition":"NTPProblem","reason":"NTPIsDown","path":"./check.sh"}]}"#,
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let defaults = start(load(&[cfg]).unwrap(), tx, &mut Registry::default()).unwrap();
    assert_eq!(defaults[0].reason, "NTPIsUp");
    let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let Finding::Condition {
        kind,
        status,
        reason,
        message,
        ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(
        (kind.as_str(), status, reason.as_str(), message.as_str()),
        ("NTPProblem", Status::True, "NTPIsDown", "ntp is down")
    );
}
