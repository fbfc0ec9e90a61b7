//! The eBPF stdout/stderr tap (`--log-tap on`): a container with no log file is
//! read from its `write(2)`s to fd 1 and 2 and its lines reach the collector with
//! the pod's labels; a container whose pod has a log directory is left to the
//! tailer (tapping it too would ship its lines twice).

use std::time::{Duration, Instant};

use sonde_tests::{
    cgroup::{TestCgroup, kubelet_ids, kubelet_path},
    fake_apiserver::{FakeApiServer, pod_json},
    logs_rig::{LogsRig, total},
    loki::{Entry, now_ns},
    require_bpf,
};

const LINES: u64 = 300;

/// What the tapped container runs: numbered lines on stdout (each its own write),
/// stderr lines, one line split over three writes, and one 10 KiB write, longer
/// than the tap keeps (its head arrives, the loss is counted).
const WRITER: &str = r#"
import os, time
for i in range(300):
    os.write(1, b"tap seq=%d\n" % i)
for i in range(5):
    os.write(2, b"oops %d\n" % i)
os.write(1, b"joined ")
os.write(1, b"from three ")
os.write(1, b"writes\n")
os.write(1, b"x" * 10240 + b"\n")
time.sleep(0.5)
"#;

#[test]
fn tapped_container_lines_arrive_labelled_and_logged_pods_are_left_to_the_tailer() {
    require_bpf!();
    let api = FakeApiServer::start();
    let (id, uid) = kubelet_ids(1, "ef");
    let (logged_id, logged_uid) = kubelet_ids(2, "ef");
    for (name, uid, id) in [
        ("quiet-1", &uid, &id),
        ("logged-1", &logged_uid, &logged_id),
    ] {
        api.add_pod(pod_json(
            "shop",
            name,
            uid,
            "node-a",
            &[(
                "app",
                &format!("containerd://{id}"),
                "registry.example/app:1",
            )],
            &[],
            None,
        ));
    }
    let kubeconfig = api.kubeconfig_path();
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 temp path");
    let rig = LogsRig::start(&[
        "--log-tap",
        "on",
        "--node-name",
        "node-a",
        "--kubeconfig",
        kubeconfig,
    ]);
    // The logged pod has its kubelet log directory (empty: nothing written yet).
    std::fs::create_dir_all(rig.log_root.join(format!("shop_logged-1_{logged_uid}/app")))
        .expect("log dir");

    // Containers other tests left behind may be tapped too: count from what is tapped now.
    let tapped = |e: &sonde_tests::Exposition| e.value("sonde_stdio_tap_cgroups", &[]);
    let before = tapped(
        &rig.agent()
            .scrape_until("the tap's first look at the cgroups", |e| {
                tapped(e).is_some()
            }),
    )
    .unwrap_or_default();
    let quiet = TestCgroup::at_path(&kubelet_path("systemd", "containerd", &uid, &id));
    let logged = TestCgroup::at_path(&kubelet_path(
        "systemd",
        "containerd",
        &logged_uid,
        &logged_id,
    ));
    rig.agent()
        .scrape_until("the quiet container tapped, the logged one not", |e| {
            tapped(e) == Some(before + 1.0)
        });
    // One more look (every 2 s) must not add the logged one.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        tapped(&rig.agent().scrape()),
        Some(before + 1.0),
        "the logged container is not tapped"
    );

    let start = now_ns() - 1_000_000_000;
    let python = format!("/usr/bin/python3 -c '{}'", WRITER.replace('\'', "'\\''"));
    for cg in [&quiet, &logged] {
        let out = cg
            .spawn(&python)
            .wait_with_output()
            .expect("running the writer");
        assert!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let loki = rig.loki();
    let want = LINES as usize + 5 + 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries: Vec<Entry> = loop {
        let got = loki
            .query_all(
                r#"{namespace="shop"}"#,
                start,
                now_ns() + 1_000_000_000,
                5_000,
            )
            .unwrap_or_else(|e| panic!("querying the collector: {e}"));
        if got.len() >= want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let label = |e: &Entry, name: &str| e.labels.get(name).cloned().unwrap_or_default();
    assert!(
        entries.iter().all(|e| label(e, "pod") == "quiet-1"),
        "only the container without a log file is tapped; got pods {:?}\n{}",
        entries
            .iter()
            .map(|e| label(e, "pod"))
            .collect::<std::collections::BTreeSet<_>>(),
        rig.logs_for_failure()
    );
    for e in &entries {
        assert_eq!(
            (
                label(e, "container").as_str(),
                label(e, "node").as_str(),
                label(e, "container_id").as_str()
            ),
            ("app", "node-a", id.as_str()),
            "labels of {e:?}"
        );
    }
    let stdout: Vec<&Entry> = entries
        .iter()
        .filter(|e| label(e, "stream") == "stdout")
        .collect();
    let stderr: Vec<&Entry> = entries
        .iter()
        .filter(|e| label(e, "stream") == "stderr")
        .collect();
    let mut seqs: Vec<u64> = stdout
        .iter()
        .filter_map(|e| e.line.strip_prefix("tap seq=")?.parse().ok())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..LINES).collect::<Vec<_>>(),
        "every stdout line exactly once\n{}",
        rig.logs_for_failure()
    );
    let mut errs: Vec<&str> = stderr.iter().map(|e| e.line.as_str()).collect();
    errs.sort_unstable();
    assert_eq!(
        errs,
        ["oops 0", "oops 1", "oops 2", "oops 3", "oops 4"],
        "stderr lines, labelled stderr"
    );
    assert!(
        stdout.iter().any(|e| e.line == "joined from three writes"),
        "writes joined into one line"
    );
    let long = stdout
        .iter()
        .find(|e| e.line.starts_with("xxxx"))
        .expect("the head of the 10 KiB write");
    assert_eq!(
        long.line.len(),
        4096,
        "the tap keeps the first 4 KiB of a write"
    );
    assert_eq!(entries.len(), want, "nothing else arrived");

    let e = rig.agent().scrape();
    let truncated = e.value(
        "sonde_probe_events_lost_total",
        &[("probe", "stdio"), ("reason", "write_truncated")],
    );
    assert_eq!(truncated, Some(1.0), "the cut write is counted");
    assert_eq!(total(&e, "sonde_stdio_tap_lines_dropped_total"), 0.0);
}
