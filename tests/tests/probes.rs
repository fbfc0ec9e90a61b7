//! Each eBPF probe against ground truth the kernel keeps elsewhere, in cgroups,
//! loop devices and network namespaces these tests create. Needs root and BTF:
//! elsewhere the tests print why they skip; `cargo xtask test` on a machine that
//! can load BPF turns a skip into a failure.

use std::{process::Command, time::Duration};

use sonde_tests::{
    Agent, Exposition, cgroup::TestCgroup, loopdev::LoopDevice, pingpong_command, require_binary,
    require_bpf,
};

const FAST: &[&str] = &["--probe-interval", "200ms"];

fn probe_up(agent: &Agent, probe: &str) {
    let e = agent.scrape();
    assert_eq!(
        e.value("sonde_probe_up", &[("probe", probe)]),
        Some(1.0),
        "probe {probe} down:\n{}",
        agent.log_text()
    );
}

#[test]
fn runqueue_latency_counts_each_wakeup_in_its_cgroup() {
    require_bpf!();
    let agent = Agent::start(&[&["--probes", "runqueue"], FAST].concat());
    probe_up(&agent, "runqueue");
    let cg = TestCgroup::new("runq");
    const N: u64 = 20_000;
    let out = cg
        .spawn(&pingpong_command(N as u32))
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = "cgroup_runqueue_latency_seconds_count";
    let e = agent.scrape_until("the cgroup's histogram", |e| {
        e.value(name, &[("cgroup", &cg.rel)])
            .is_some_and(|v| v >= (2 * N) as f64)
    });
    let count = e.value(name, &[("cgroup", &cg.rel)]).unwrap();
    // Process start-up and exit add a few hundred wakeups of their own; not thousands.
    assert!(
        count <= (2 * N + 5_000) as f64,
        "{count} samples for {N} round trips"
    );
    let inf = e.value(
        "cgroup_runqueue_latency_seconds_bucket",
        &[("cgroup", &cg.rel), ("le", "+Inf")],
    );
    assert_eq!(inf, Some(count), "+Inf bucket must equal the count");
    let sum = e
        .value(
            "cgroup_runqueue_latency_seconds_sum",
            &[("cgroup", &cg.rel)],
        )
        .unwrap();
    assert!(
        sum > 0.0 && sum / count < 0.1,
        "mean wait {}s is not plausible",
        sum / count
    );
}

#[test]
fn oom_kill_yields_one_event_with_pid_comm_and_cgroup() {
    require_bpf!();
    assert!(
        std::path::Path::new("/sys/fs/cgroup/memory").exists(),
        "this test needs a v1 memory controller at /sys/fs/cgroup/memory to cause a real OOM kill"
    );
    let agent = Agent::start(&[&["--probes", "oom"], FAST].concat());
    probe_up(&agent, "oom");
    let cg = TestCgroup::new("oom").with_memory_limit(32 << 20);
    // python3 touches 512 MiB in a 32 MiB cgroup: the kernel's OOM killer takes it.
    let child = cg.spawn("exec python3 -c 'x = bytearray(512 << 20); print(len(x))'");
    let pid = child.id() as u64; // `exec` keeps the shell's pid
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the workload was not killed: {out:?}"
    );
    let event = agent.wait_for_log(Duration::from_secs(10), |v| {
        v["fields"]["message"] == "OOM kill" && v["fields"]["pid"].as_u64() == Some(pid)
    });
    assert_eq!(event["fields"]["comm"], "python3", "{event}");
    assert_eq!(event["fields"]["cgroup"], cg.rel.as_str(), "{event}");
    assert_eq!(
        event["fields"]["cgroup_id"].as_u64(),
        Some(cg.id()),
        "{event}"
    );
    let kills = agent
        .log_json()
        .iter()
        .filter(|v| {
            v["fields"]["message"] == "OOM kill" && v["fields"]["pid"].as_u64() == Some(pid)
        })
        .count();
    assert_eq!(kills, 1, "one kill, one event");
    agent.scrape_until("cgroup_oom_kills_total", |e| {
        e.value("cgroup_oom_kills_total", &[("cgroup", &cg.rel)]) == Some(1.0)
    });
}

#[test]
fn block_io_matches_the_devices_own_stats() {
    require_bpf!();
    let agent = Agent::start(&[&["--probes", "blockio"], FAST].concat());
    probe_up(&agent, "blockio");
    let disk = LoopDevice::new(64);
    let ours = |e: &Exposition, metric: &str, op: &str| {
        e.value(metric, &[("device", disk.name()), ("op", op)])
            .unwrap_or(0.0)
    };
    // Baselines on both sides, taken once the device is quiet (udev probes new
    // devices): the agent reads its maps every 200ms, so after 500ms of quiet its
    // reading covers everything sysfs counted.
    let (sys0, e0) = (0..20)
        .find_map(|_| {
            let before = disk.stat();
            std::thread::sleep(Duration::from_millis(500));
            let e = agent.scrape();
            (disk.stat() == before).then_some((before, e))
        })
        .expect("the loop device never went quiet");
    for args in [
        [
            "if=/dev/zero",
            &format!("of={}", disk.dev),
            "bs=64k",
            "count=300",
            "oflag=direct",
        ],
        [
            &format!("if={}", disk.dev),
            "of=/dev/null",
            "bs=16k",
            "count=500",
            "iflag=direct",
        ],
    ] {
        let st = Command::new("dd")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "dd {args:?}");
    }
    let sys1 = disk.stat();
    let d = |i: usize| (sys1[i] - sys0[i]) as f64;
    let e1 = agent.scrape_until("the loop device's I/O", |e| {
        ours(e, "disk_io_requests_total", "read") - ours(&e0, "disk_io_requests_total", "read")
            >= d(0)
            && ours(e, "disk_io_requests_total", "write")
                - ours(&e0, "disk_io_requests_total", "write")
                >= d(2)
    });
    let delta = |metric: &str, op: &str| ours(&e1, metric, op) - ours(&e0, metric, op);
    let close = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
    assert!(
        d(0) >= 500.0 && d(2) >= 300.0,
        "sysfs saw too little I/O: {sys0:?} -> {sys1:?}"
    );
    assert!(
        close(delta("disk_io_requests_total", "read"), d(0)),
        "reads: ours {} vs sysfs {}",
        delta("disk_io_requests_total", "read"),
        d(0)
    );
    assert!(
        close(delta("disk_io_requests_total", "write"), d(2)),
        "writes: ours {} vs sysfs {}",
        delta("disk_io_requests_total", "write"),
        d(2)
    );
    assert!(
        close(delta("disk_io_bytes_total", "read"), d(1) * 512.0),
        "read bytes: ours {} vs sysfs {}",
        delta("disk_io_bytes_total", "read"),
        d(1) * 512.0
    );
    assert!(
        close(delta("disk_io_bytes_total", "write"), d(3) * 512.0),
        "write bytes: ours {} vs sysfs {}",
        delta("disk_io_bytes_total", "write"),
        d(3) * 512.0
    );
    let lat = delta("disk_io_latency_seconds_count", "read");
    assert!(
        close(lat, d(0)),
        "every completed read has a latency sample: {lat} vs {}",
        d(0)
    );
}

/// A network namespace with loopback up, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new(name: &str) -> NetNs {
        let ip = require_binary("ip");
        let ns = format!("sonde-{name}-{}", std::process::id());
        let _ = Command::new(&ip).args(["netns", "del", &ns]).status();
        assert!(
            Command::new(&ip)
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success(),
            "ip netns add"
        );
        assert!(
            Command::new(&ip)
                .args(["-n", &ns, "link", "set", "lo", "up"])
                .status()
                .unwrap()
                .success()
        );
        NetNs(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn tcp_connects_to_a_closed_port_are_failures_and_open_ones_are_timed() {
    require_bpf!();
    let agent = Agent::start(&[&["--probes", "tcp"], FAST].concat());
    probe_up(&agent, "tcp");
    let ns = NetNs::new("tcp");
    let cg = TestCgroup::new("tcp");
    // In the namespace: FAILS connects to a port nobody listens on (the kernel
    // answers RST), then OK connects to a listener.
    const FAILS: u64 = 25;
    const OK: u64 = 7;
    let client = format!(
        "import socket\n\
         refused = 0\n\
         for _ in range({FAILS}):\n\
         \x20   try:\n\
         \x20       socket.create_connection(('127.0.0.1', 9), timeout=5).close()\n\
         \x20   except ConnectionRefusedError:\n\
         \x20       refused += 1\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(64)\n\
         for _ in range({OK}):\n\
         \x20   socket.create_connection(srv.getsockname(), timeout=5).close()\n\
         print(refused)\n"
    );
    let out = cg
        .spawn(&format!(
            "exec ip netns exec {} python3 -c \"{}\"",
            ns.0,
            client.replace('"', "\\\"")
        ))
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        FAILS.to_string(),
        "every connect to the closed port was refused"
    );
    let labels = [("cgroup", cg.rel.as_str())];
    let e = agent.scrape_until("the connects", |e| {
        e.value("cgroup_tcp_connect_failures_total", &labels) == Some(FAILS as f64)
            && e.value("cgroup_tcp_connects_total", &labels) == Some(OK as f64)
    });
    assert_eq!(
        e.value("cgroup_tcp_connect_latency_seconds_count", &labels),
        Some(OK as f64)
    );
    // The refusing side had no socket: its resets belong to the host ("/").
    assert!(
        e.value("cgroup_tcp_resets_sent_total", &[("cgroup", "/")])
            .is_some_and(|v| v >= FAILS as f64)
    );
}
