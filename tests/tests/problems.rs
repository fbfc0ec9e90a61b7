//! Node problems end to end: real kernel messages written to `/dev/kmsg`, a real
//! OOM kill in a test cgroup, the agent's detector, and the real kube client
//! reporting to the fake API server (Events, NodeConditions) as NPD would.
//!
//! Every test marks its kernel lines with a fresh nonce: the kernel log is
//! shared by every agent running at the time (and, through NPD's 5-minute
//! lookback, by later ones), so a test only trusts lines it wrote.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use serde_json::Value;
use sonde_tests::{
    Agent,
    cgroup::{TestCgroup, kubelet_path},
    fake_apiserver::FakeApiServer,
    require_bpf,
};

const NODE: &str = "node-a";

fn nonce() -> String {
    format!("{}{:06}", std::process::id(), fastrand_u32() % 1_000_000)
}

fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(7)
}

/// One kernel log line, through its own open of /dev/kmsg: the kernel rate
/// limits writes per open file, not per writer.
fn kmsg(line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("opening /dev/kmsg for writing (root)");
    f.write_all(line.as_bytes()).expect("writing /dev/kmsg");
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn agent_for(api: &FakeApiServer, extra: &[&str]) -> Agent {
    Agent::start_on_node(api, NODE, extra)
}

fn event_with(api: &FakeApiServer, reason: &str, needle: &str) -> Option<Value> {
    api.events().into_iter().find(|e| {
        e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(needle))
    })
}

#[test]
fn kernel_log_lines_become_events_through_the_builtin_npd_rules() {
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let agent = agent_for(&api, &["--probes", "none"]);
    let n = nonce();
    kmsg(&format!(
        "Buffer I/O error on dev sonde{n}, logical block 7, async page read\n"
    ));
    kmsg(&format!(
        "Out of memory: Killed process 4{n} (sonde{n}) total-vm:1024kB, anon-rss:512kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n"
    ));
    let io = wait_until("IOError event", Duration::from_secs(20), || {
        event_with(&api, "IOError", &format!("sonde{n}"))
    });
    assert_eq!(io["type"], "Warning", "{io}");
    assert_eq!(io["involvedObject"]["kind"], "Node", "{io}");
    assert_eq!(io["involvedObject"]["name"], NODE, "{io}");
    assert!(
        io["message"]
            .as_str()
            .unwrap()
            .starts_with("Buffer I/O error on dev"),
        "the message is the kernel's line: {io}"
    );
    let oom = wait_until("OOMKilling event", Duration::from_secs(20), || {
        event_with(
            &api,
            "OOMKilling",
            &format!("Killed process 4{n} (sonde{n})"),
        )
    });
    assert_eq!(oom["type"], "Warning", "{oom}");
    // NPD's metrics count them too.
    agent.scrape_until("problem_counter for both", |e| {
        e.value("problem_counter", &[("reason", "IOError")])
            .unwrap_or(0.0)
            >= 1.0
            && e.value("problem_counter", &[("reason", "OOMKilling")])
                .unwrap_or(0.0)
                >= 1.0
    });
    // The builtin readonly-monitor's condition is reported False with NPD's default.
    let ro = wait_until(
        "ReadonlyFilesystem condition",
        Duration::from_secs(20),
        || {
            api.node_conditions(NODE)
                .into_iter()
                .find(|c| c["type"] == "ReadonlyFilesystem")
        },
    );
    assert_eq!(ro["reason"], "FilesystemIsNotReadOnly", "{ro}");
    assert_eq!(ro["status"], "False", "{ro}");
}

#[test]
fn a_permanent_rule_sets_a_condition_once_and_keeps_its_transition_time() {
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let n = nonce();
    let kind = format!("SondeWedged{n}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wedge-monitor.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "plugin": "kmsg",
            "logPath": "/dev/kmsg",
            "lookback": "1m",
            "bufferSize": 10,
            "source": "wedge-monitor",
            "conditions": [{"type": kind, "reason": "NotWedged", "message": "all good"}],
            "rules": [
                {"type": "permanent", "condition": kind, "reason": "Wedged",
                 "pattern": format!("sonde-test {n} wedged on \\w+")},
                {"type": "temporary", "reason": "Hiccup", "pattern": format!("sonde-test {n} hiccup .*")}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let agent = agent_for(
        &api,
        &[
            "--probes",
            "none",
            "--problem-config",
            config.to_str().unwrap(),
        ],
    );
    let cond = |api: &FakeApiServer| {
        api.node_conditions(NODE)
            .into_iter()
            .find(|c| c["type"] == kind.as_str())
    };
    let initial = wait_until("the condition's default", Duration::from_secs(20), || {
        cond(&api)
    });
    assert_eq!(
        (initial["status"].as_str(), initial["reason"].as_str()),
        (Some("False"), Some("NotWedged"))
    );
    // The kubelet's own conditions are untouched by our patches.
    assert!(
        api.node_conditions(NODE)
            .iter()
            .any(|c| c["type"] == "Ready"),
        "the node's Ready condition was lost: {:?}",
        api.node_conditions(NODE)
    );

    kmsg(&format!("sonde-test {n} wedged on disk0\n"));
    let set = wait_until("the condition set True", Duration::from_secs(20), || {
        cond(&api).filter(|c| c["status"] == "True")
    });
    assert_eq!(set["reason"], "Wedged", "{set}");
    assert!(
        set["message"].as_str().unwrap().contains("wedged on disk0"),
        "{set}"
    );
    let changed = wait_until(
        "the condition change event",
        Duration::from_secs(20),
        || event_with(&api, "Wedged", &kind),
    );
    assert_eq!(changed["type"], "Normal", "{changed}");

    // The same problem again: no new transition, the message stays the first one.
    kmsg(&format!("sonde-test {n} wedged on disk1\n"));
    kmsg(&format!("sonde-test {n} hiccup after wedge\n"));
    wait_until(
        "the temporary rule's event",
        Duration::from_secs(20),
        || event_with(&api, "Hiccup", &format!("sonde-test {n} hiccup")),
    );
    let again = cond(&api).unwrap();
    assert_eq!(
        again["lastTransitionTime"], set["lastTransitionTime"],
        "{again}"
    );
    assert!(
        again["message"].as_str().unwrap().contains("disk0"),
        "{again}"
    );
    agent.scrape_until("problem_gauge", |e| {
        e.value("problem_gauge", &[("type", &kind), ("reason", "Wedged")]) == Some(1.0)
    });
}

#[test]
fn a_real_oom_kill_names_the_pod_it_killed() {
    require_bpf!();
    assert!(
        std::path::Path::new("/sys/fs/cgroup/memory").exists(),
        "this test needs a v1 memory controller at /sys/fs/cgroup/memory to cause a real OOM kill"
    );
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let (id, uid) = api.add_app_pod(NODE, "shop", "cart-0", (61, "cd"));
    let agent = agent_for(&api, &["--probes", "oom", "--probe-interval", "200ms"]);
    let cg = TestCgroup::at_path(&kubelet_path("systemd", "containerd", &uid, &id))
        .with_memory_limit(32 << 20);
    // Wait for the pod watch to have listed the pod, so the kill can be named at once.
    api.wait_for_requests(Duration::from_secs(20), "the pod watch", |log| {
        log.iter().any(|r| r.is_pod_watch())
    });
    let child = cg.spawn("exec python3 -c 'x = bytearray(512 << 20); print(len(x))'");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the workload was not killed: {out:?}"
    );
    let ev = wait_until("the OOMKilling event", Duration::from_secs(30), || {
        event_with(&api, "OOMKilling", &format!("Killed process {pid} "))
    });
    let msg = ev["message"].as_str().unwrap();
    assert!(msg.contains("in pod shop/cart-0 container app"), "{ev}");
    assert_eq!(ev["related"]["kind"], "Pod", "{ev}");
    assert_eq!(ev["related"]["name"], "cart-0", "{ev}");
    assert_eq!(ev["related"]["namespace"], "shop", "{ev}");
    // One kill, one event: the kernel's line and the probe's record were joined.
    let same: Vec<_> = api
        .events()
        .into_iter()
        .filter(|e| {
            e["reason"] == "OOMKilling"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("Killed process {pid} ")))
        })
        .collect();
    assert_eq!(same.len(), 1, "{same:#?}");
    assert_eq!(same[0]["count"], 1, "{same:#?}");
    drop(agent);
}
