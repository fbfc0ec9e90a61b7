//! Every signal lands on the right container: kubelet-style cgroups for each
//! runtime and cgroup driver, real work inside them, and the probes' per-cgroup
//! series carry that container's identity — its ID from the cgroup path alone, and
//! its namespace, pod and container name once the (fake) API server knows the pod.

use std::time::Duration;

use sonde_tests::{
    Agent, Exposition,
    cgroup::{TestCgroup, kubelet_ids, kubelet_path},
    pingpong_command, require_bpf,
};

fn ids(n: u32) -> (String, String) {
    kubelet_ids(n, "ab")
}

/// Wakes up at least 2n times inside `cg`.
fn work(cg: &TestCgroup, n: u32) {
    let out = cg.spawn(&pingpong_command(n)).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn runqueue_samples_land_on_each_runtime_and_driver_by_container_id() {
    require_bpf!();
    let agent = Agent::start(&["--probes", "runqueue", "--probe-interval", "200ms"]);
    let layouts = [
        ("systemd", "containerd"),
        ("systemd", "cri-o"),
        ("systemd", "docker"),
        ("cgroupfs", "containerd"),
    ];
    let mut cgroups = Vec::new();
    for (n, (driver, runtime)) in layouts.iter().enumerate() {
        let (id, uid) = ids(n as u32);
        let cg = TestCgroup::at_path(&kubelet_path(driver, runtime, &uid, &id));
        work(&cg, 2_000);
        cgroups.push((cg, id));
    }
    let count = "cgroup_runqueue_latency_seconds_count";
    let e = agent.scrape_until("samples in every container", |e| {
        cgroups.iter().all(|(_, id)| {
            e.value(count, &[("container_id", id)])
                .is_some_and(|v| v >= 4_000.0)
        })
    });
    for (cg, id) in &cgroups {
        let want = [("container_id", id.as_str())];
        let s: Vec<_> = e.find(count, &want).collect();
        assert_eq!(s.len(), 1, "one series per container");
        assert_eq!(s[0].labels["cgroup"], cg.rel, "the series names its cgroup");
        // No API server: the pod is not known by name, and nothing is guessed.
        assert_eq!(s[0].labels.get("pod").map(String::as_str).unwrap_or(""), "");
    }
}

/// With the pod watch on: names appear, change and disappear as the pod does, and an
/// API outage changes nothing already known.
#[test]
fn pod_names_follow_the_api_and_survive_an_outage() {
    use sonde_tests::fake_apiserver::{FakeApiServer, pod_json};
    require_bpf!();
    let api = FakeApiServer::start();
    let (id, uid) = ids(10);
    api.add_pod(pod_json(
        "shop",
        "web-1",
        &uid,
        "node-a",
        &[(
            "app",
            &format!("containerd://{id}"),
            "registry.example/web:1.2",
        )],
        &[("app", "web")],
        Some(("ReplicaSet", "web-5d8f")),
    ));
    let kubeconfig = api.kubeconfig_path();
    let agent = Agent::start(&[
        "--probes",
        "runqueue",
        "--probe-interval",
        "200ms",
        "--node-name",
        "node-a",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--pod-labels",
        "app",
    ]);
    let cg = TestCgroup::at_path(&kubelet_path("systemd", "containerd", &uid, &id));
    work(&cg, 500);
    let count = "cgroup_runqueue_latency_seconds_count";
    // One series for the container, carrying `want`.
    let labelled = |want: &'static [(&'static str, &'static str)]| {
        let id = id.clone();
        move |e: &Exposition| {
            let want: Vec<(&str, &str)> = [("container_id", id.as_str())]
                .into_iter()
                .chain(want.iter().copied())
                .collect();
            e.find(count, &want).count() == 1
        }
    };
    agent.scrape_until(
        "pod names",
        labelled(&[
            ("namespace", "shop"),
            ("pod", "web-1"),
            ("container", "app"),
            ("label_app", "web"),
        ]),
    );

    api.update_pod(&uid, |p| {
        p["metadata"]["labels"]["app"] = "web-canary".into()
    });
    agent.scrape_until(
        "the changed label",
        labelled(&[("pod", "web-1"), ("label_app", "web-canary")]),
    );

    api.set_down(true);
    std::thread::sleep(Duration::from_secs(2));
    work(&cg, 200);
    let e = agent.scrape_until(
        "labels kept through the outage",
        labelled(&[("pod", "web-1"), ("label_app", "web-canary")]),
    );
    assert!(
        e.find(count, &[("container_id", &id), ("pod", "")])
            .next()
            .is_none(),
        "nothing forgotten during the outage"
    );
    // A container that starts during the outage is labelled by its ID alone.
    let (id2, uid2) = ids(11);
    let cg2 = TestCgroup::at_path(&kubelet_path("cgroupfs", "containerd", &uid2, &id2));
    work(&cg2, 500);
    agent.scrape_until("the new container by id", |e| {
        let want = [("container_id", id2.as_str())];
        e.find(count, &want).count() == 1
    });

    api.set_down(false);
    api.delete_pod(&uid);
    agent.scrape_until("names gone with the pod", |e| {
        let want = [("container_id", id.as_str())];
        let s: Vec<_> = e.find(count, &want).collect();
        s.len() == 1 && s[0].labels.get("pod").is_none_or(|p| p.is_empty())
    });
}

#[test]
fn direct_io_is_counted_to_the_submitting_container() {
    require_bpf!();
    let agent = Agent::start(&["--probes", "blockio", "--probe-interval", "200ms"]);
    let disk = sonde_tests::loopdev::LoopDevice::new(64);
    let (id, uid) = ids(20);
    let cg = TestCgroup::at_path(&kubelet_path("systemd", "cri-o", &uid, &id));
    const BLOCKS: u64 = 200;
    let out = cg
        .spawn(&format!(
            "exec dd if=/dev/zero of={} bs=64k count={BLOCKS} oflag=direct status=none",
            disk.dev
        ))
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "dd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = [
        ("container_id", id.as_str()),
        ("device", disk.name()),
        ("op", "write"),
    ];
    let e = agent.scrape_until("the container's writes", |e| {
        e.value("cgroup_disk_io_bytes_total", &want)
            .is_some_and(|v| v >= (BLOCKS * 65536) as f64)
    });
    assert_eq!(
        e.value("cgroup_disk_io_bytes_total", &want),
        Some((BLOCKS * 65536) as f64),
        "exactly what dd wrote"
    );
    assert!(
        e.value("cgroup_disk_io_requests_total", &want)
            .is_some_and(|n| n >= 1.0)
    );
}
