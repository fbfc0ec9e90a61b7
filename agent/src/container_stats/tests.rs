//! The collector end to end on scratch directories standing in for the cgroup
//! trees and sysfs: a pure v2 host, a hybrid host, a v1-only host, bad files, and
//! the cap.

use std::{
    fs,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{encoding::text::encode, registry::Registry};
use sonde_tests::{Exposition, parse_exposition};

use super::{ContainerStats, stats::Reader};
use crate::{
    enrich::{cgroups::CgroupPaths, workloads::Workloads},
    export::text_format::openmetrics_to_prometheus,
};

const UID: &str = "0f6c1f6e-2b7a-4f1e-9d3c-5a8b7c6d5e4f";
const ID: &str = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";

fn pod_rel() -> String {
    format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        UID.replace('-', "_")
    )
}

fn container_rel() -> String {
    format!("{}/cri-containerd-{ID}.scope", pod_rel())
}

/// A scratch host: `unified/` (the v2 tree), `v1/<controller>/`, `sys/`.
struct Fixture(PathBuf);

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("sonde-cstats-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let f = Fixture(dir);
        f.write(
            "sys/dev/block/254:0/uevent",
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        );
        f
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.0.join(rel.trim_start_matches('/'))).unwrap();
    }

    /// A collector over this host; `v2`: whether the host has a v2 tree.
    fn collector(&self, v2: bool, max: usize) -> ContainerStats {
        let root = v2.then(|| self.0.join("unified"));
        let workloads = Workloads::new(
            CgroupPaths::new(root, Duration::ZERO),
            None,
            &[],
            Duration::from_secs(60),
        );
        ContainerStats::new(
            Arc::new(Mutex::new(workloads)),
            self.0.join("v1"),
            self.0.join("sys"),
            max,
        )
    }

    /// A pure v2 cgroup with every file the collector reads.
    fn v2_cgroup(&self, rel: &str, procs: &str, usage_us: u64) {
        let d = format!("unified{rel}");
        self.write(&format!("{d}/cgroup.procs"), procs);
        self.write(
            &format!("{d}/cpu.stat"),
            &format!("usage_usec {usage_us}\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250000\n"),
        );
        self.write(&format!("{d}/memory.current"), "104857600\n");
        self.write(
            &format!("{d}/memory.stat"),
            "anon 67108864\nfile 33554432\nkernel 1\ninactive_file 8388608\nactive_file 2\n",
        );
        self.write(
            &format!("{d}/memory.events"),
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n",
        );
        self.write(
            &format!("{d}/io.stat"),
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:9 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        self.write(&format!("{d}/pids.current"), "3\n");
        self.pressure(&d);
    }

    fn pressure(&self, dir: &str) {
        for (file, some, full) in [
            ("cpu", 1_500_000, 500_000),
            ("memory", 20, 10),
            ("io", 300, 200),
        ] {
            self.write(
                &format!("{dir}/{file}.pressure"),
                &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n"),
            );
        }
    }

    /// A hybrid host's cgroup: core files in the v2 tree, the rest in v1.
    fn hybrid_cgroup(&self, rel: &str, procs: &str) {
        let d = format!("unified{rel}");
        self.write(&format!("{d}/cgroup.procs"), procs);
        self.write(
            &format!("{d}/cpu.stat"),
            "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnice_usec 0\n",
        );
        self.pressure(&d);
        self.write(
            &format!("v1/cpu{rel}/cpu.stat"),
            "nr_periods 20\nnr_throttled 5\nthrottled_time 750000000\nnr_bursts 0\nburst_time 0\n",
        );
        self.write(
            &format!("v1/memory{rel}/memory.usage_in_bytes"),
            "50331648\n",
        );
        self.write(
            &format!("v1/memory{rel}/memory.stat"),
            "cache 1\nrss 2\ninactive_file 3\ntotal_cache 16777216\ntotal_rss 25165824\ntotal_inactive_file 60000000\n",
        );
        self.write(
            &format!("v1/memory{rel}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        self.write(
            &format!("v1/blkio{rel}/blkio.throttle.io_service_bytes_recursive"),
            "254:0 Read 1024\n254:0 Write 2048\n254:0 Sync 0\n254:0 Async 3072\n254:0 Discard 0\n254:0 Total 3072\nTotal 3072\n",
        );
        self.write(
            &format!("v1/blkio{rel}/blkio.throttle.io_serviced_recursive"),
            "254:0 Read 1\n254:0 Write 2\n254:0 Total 3\nTotal 3\n",
        );
        self.write(&format!("v1/pids{rel}/pids.current"), "4\n");
        self.mkdir(&format!("v1/cpuacct{rel}"));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What /metrics would serve (the Prometheus text format), parsed.
fn scrape(c: ContainerStats) -> (Exposition, Arc<ContainerStats>) {
    let c = Arc::new(c);
    let again = scrape_again(&c);
    (again, c)
}

fn scrape_again(c: &Arc<ContainerStats>) -> Exposition {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(c.clone()));
    let mut om = String::new();
    encode(&mut om, &registry).unwrap();
    parse_exposition(&openmetrics_to_prometheus(&om))
}

fn v(e: &Exposition, name: &str, want: &[(&str, &str)]) -> f64 {
    e.value(name, want)
        .unwrap_or_else(|| panic!("no single {name}{want:?} in {:#?}", e.samples))
}

#[test]
fn pure_v2_host() {
    let f = Fixture::new("v2");
    f.write(
        "unified/kubepods.slice/cgroup.subtree_control",
        "cpuset cpu io memory hugetlb pids rdma\n",
    );
    f.write("unified/kubepods.slice/cpu.pressure", "");
    f.v2_cgroup(&pod_rel(), "", 3_000_000);
    f.v2_cgroup(&container_rel(), "10\n11\n", 1_500_000);
    // Not served: a container's own sub-cgroup, CRI-O's monitor, a QoS slice's stranger.
    f.v2_cgroup(&format!("{}/nested", container_rel()), "12\n", 1);
    f.v2_cgroup(&format!("{}/crio-conmon-{ID}.scope", pod_rel()), "13\n", 1);
    f.v2_cgroup(
        "/kubepods.slice/kubepods-burstable.slice/garbage",
        "14\n",
        1,
    );
    let (e, _) = scrape(f.collector(true, 100));

    let c = [("name", ID)];
    assert_eq!(v(&e, "container_processes", &c), 2.0);
    assert_eq!(v(&e, "container_threads", &c), 3.0);
    assert_eq!(
        v(
            &e,
            "container_cpu_usage_seconds_total",
            &[("name", ID), ("cpu", "total")]
        ),
        1.5
    );
    assert_eq!(v(&e, "container_cpu_user_seconds_total", &c), 1.0);
    assert_eq!(v(&e, "container_cpu_system_seconds_total", &c), 0.5);
    assert_eq!(v(&e, "container_cpu_cfs_periods_total", &c), 10.0);
    assert_eq!(v(&e, "container_cpu_cfs_throttled_periods_total", &c), 4.0);
    assert_eq!(v(&e, "container_cpu_cfs_throttled_seconds_total", &c), 0.25);
    assert_eq!(v(&e, "container_memory_usage_bytes", &c), 104857600.0);
    assert_eq!(
        v(&e, "container_memory_working_set_bytes", &c),
        (104857600 - 8388608) as f64
    );
    assert_eq!(v(&e, "container_memory_rss", &c), 67108864.0);
    assert_eq!(v(&e, "container_memory_cache", &c), 33554432.0);
    assert_eq!(v(&e, "container_oom_events_total", &c), 2.0);
    let vda = [("name", ID), ("device", "/dev/vda")];
    assert_eq!(v(&e, "container_fs_reads_bytes_total", &vda), 4096.0);
    assert_eq!(v(&e, "container_fs_writes_bytes_total", &vda), 8192.0);
    assert_eq!(v(&e, "container_fs_reads_total", &vda), 1.0);
    assert_eq!(v(&e, "container_fs_writes_total", &vda), 2.0);
    // sysfs does not know 7:9: named by number, not "" (which two such disks would share).
    assert_eq!(
        v(
            &e,
            "container_fs_reads_bytes_total",
            &[("name", ID), ("device", "7:9")]
        ),
        512.0
    );
    assert_eq!(
        v(&e, "container_pressure_cpu_waiting_seconds_total", &c),
        1.5
    );
    assert_eq!(
        v(&e, "container_pressure_cpu_stalled_seconds_total", &c),
        0.5
    );
    assert_eq!(
        v(&e, "container_pressure_memory_waiting_seconds_total", &c),
        0.00002
    );
    assert_eq!(
        v(&e, "container_pressure_io_stalled_seconds_total", &c),
        0.0002
    );

    // cAdvisor's labels: without the API, only the path and the ID are known.
    let s = e.find("container_memory_rss", &c).next().unwrap();
    let labels: Vec<(&str, &str)> = s
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id = container_rel();
    assert_eq!(
        labels,
        [
            ("container", ""),
            ("id", id.as_str()),
            ("image", ""),
            ("name", ID),
            ("namespace", ""),
            ("pod", "")
        ]
    );
    // The pod-level cgroup, as cAdvisor has it: no container, no name.
    let pod = pod_rel();
    assert_eq!(
        v(
            &e,
            "container_cpu_usage_seconds_total",
            &[("id", &pod), ("name", "")]
        ),
        3.0
    );
    assert_eq!(v(&e, "container_processes", &[("id", &pod)]), 0.0);

    let ids: std::collections::BTreeSet<&str> = e
        .find("container_processes", &[])
        .map(|s| s.labels["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [pod.as_str(), id.as_str()].into(),
        "only the pod and its container"
    );
    assert_eq!(e.types["container_cpu_usage_seconds_total"], "counter");
    assert_eq!(e.types["container_memory_working_set_bytes"], "gauge");
    assert_eq!(e.types["container_fs_reads_bytes_total"], "counter");
    assert_eq!(v(&e, "sonde_container_stats_read_errors_total", &[]), 0.0);
    assert_eq!(v(&e, "sonde_containers_refused_total", &[]), 0.0);
}

#[test]
fn hybrid_host_takes_what_v2_lacks_from_v1() {
    let f = Fixture::new("hybrid");
    f.write("unified/kubepods.slice/cgroup.subtree_control", "");
    f.write("unified/kubepods.slice/cpu.pressure", "");
    f.hybrid_cgroup(&pod_rel(), "");
    f.hybrid_cgroup(&container_rel(), "42\n");
    let (e, _) = scrape(f.collector(true, 100));

    let c = [("name", ID)];
    assert_eq!(v(&e, "container_processes", &c), 1.0);
    assert_eq!(v(&e, "container_threads", &c), 4.0, "v1 pids");
    assert_eq!(
        v(&e, "container_cpu_usage_seconds_total", &c),
        2.0,
        "v2 cpu.stat"
    );
    assert_eq!(v(&e, "container_cpu_user_seconds_total", &c), 1.5);
    assert_eq!(
        v(&e, "container_cpu_cfs_periods_total", &c),
        20.0,
        "v1 cpu.stat"
    );
    assert_eq!(v(&e, "container_cpu_cfs_throttled_periods_total", &c), 5.0);
    assert_eq!(v(&e, "container_cpu_cfs_throttled_seconds_total", &c), 0.75);
    assert_eq!(v(&e, "container_memory_usage_bytes", &c), 50331648.0);
    assert_eq!(
        v(&e, "container_memory_working_set_bytes", &c),
        0.0,
        "inactive file above usage floors at 0"
    );
    assert_eq!(
        v(&e, "container_memory_rss", &c),
        25165824.0,
        "total_rss, not rss"
    );
    assert_eq!(v(&e, "container_memory_cache", &c), 16777216.0);
    assert_eq!(v(&e, "container_oom_events_total", &c), 1.0);
    let vda = [("name", ID), ("device", "/dev/vda")];
    assert_eq!(v(&e, "container_fs_reads_bytes_total", &vda), 1024.0);
    assert_eq!(v(&e, "container_fs_writes_bytes_total", &vda), 2048.0);
    assert_eq!(v(&e, "container_fs_reads_total", &vda), 1.0);
    assert_eq!(v(&e, "container_fs_writes_total", &vda), 2.0);
    assert_eq!(
        v(&e, "container_pressure_io_waiting_seconds_total", &c),
        0.0003
    );
    assert_eq!(
        v(&e, "sonde_container_stats_read_errors_total", &[]),
        0.0,
        "nothing looked for where it cannot be"
    );
}

#[test]
fn v1_blkio_prefers_bfq_stats_when_they_have_data() {
    let f = Fixture::new("bfq");
    f.write("unified/kubepods.slice/cgroup.subtree_control", "");
    let rel = container_rel();
    f.hybrid_cgroup(&pod_rel(), "");
    f.hybrid_cgroup(&rel, "");
    // Throttle stats stay as they are; BFQ's have other numbers.
    f.write(
        "v1/blkio/kubepods.slice/blkio.bfq.io_service_bytes_recursive",
        "254:0 Write 1\nTotal 1\n",
    );
    for cg in [pod_rel(), rel] {
        f.write(
            &format!("v1/blkio{cg}/blkio.bfq.io_service_bytes_recursive"),
            "254:0 Read 7\n254:0 Write 9\nTotal 16\n",
        );
        f.write(
            &format!("v1/blkio{cg}/blkio.bfq.io_serviced_recursive"),
            "254:0 Read 1\n254:0 Write 1\nTotal 2\n",
        );
    }
    let (e, _) = scrape(f.collector(true, 100));
    let vda = [("name", ID), ("device", "/dev/vda")];
    assert_eq!(v(&e, "container_fs_reads_bytes_total", &vda), 7.0);
    assert_eq!(v(&e, "container_fs_writes_bytes_total", &vda), 9.0);
    assert_eq!(v(&e, "container_fs_writes_total", &vda), 1.0);
}

#[test]
fn v1_only_host() {
    let f = Fixture::new("v1");
    let rel = container_rel();
    f.hybrid_cgroup(&rel, "1\n2\n3\n");
    f.write(&format!("v1/cpuacct{rel}/cgroup.procs"), "1\n2\n3\n");
    f.write(&format!("v1/cpuacct{rel}/cpuacct.usage"), "2500000000\n");
    f.write(
        &format!("v1/cpuacct{rel}/cpuacct.stat"),
        "user 150\nsystem 50\n",
    );
    f.mkdir(&format!("v1/cpuacct{}", pod_rel()));
    fs::remove_dir_all(f.0.join("unified")).unwrap();
    let (e, _) = scrape(f.collector(false, 100));

    let c = [("name", ID)];
    assert_eq!(v(&e, "container_processes", &c), 3.0);
    assert_eq!(v(&e, "container_cpu_usage_seconds_total", &c), 2.5);
    assert_eq!(
        v(&e, "container_cpu_user_seconds_total", &c),
        1.5,
        "USER_HZ ticks"
    );
    assert_eq!(v(&e, "container_memory_rss", &c), 25165824.0);
    assert_eq!(
        e.find("container_pressure_cpu_waiting_seconds_total", &[])
            .count(),
        0,
        "no PSI without v2"
    );
    // The pod-level cgroup has no files in this fixture: every read of it is an error.
    assert!(v(&e, "sonde_container_stats_read_errors_total", &[]) > 0.0);
}

#[test]
fn bad_files_skip_their_values_and_are_counted() {
    let f = Fixture::new("garbage");
    f.write(
        "unified/kubepods.slice/cgroup.subtree_control",
        "cpu memory io pids\n",
    );
    f.write("unified/kubepods.slice/cpu.pressure", "");
    let rel = container_rel();
    f.v2_cgroup(&pod_rel(), "", 1);
    f.v2_cgroup(&rel, "1\n", 1);
    let d = format!("unified{rel}");
    f.write(&format!("{d}/cpu.stat"), "usage_usec 1\nuser_usec x\n");
    f.write(&format!("{d}/memory.current"), "max\n");
    f.write(&format!("{d}/io.stat"), "\u{0}\u{1}garbage=1\n");
    f.write(&format!("{d}/cpu.pressure"), "some total=\n");
    f.write(&format!("{d}/memory.events"), &"9".repeat(100_000));
    fs::remove_file(f.0.join(format!("{d}/pids.current"))).unwrap();
    // A huge number is a number: no overflow, whatever the unit conversion.
    f.write(
        &format!("{d}/memory.pressure"),
        &format!("some total={}\n", u64::MAX),
    );
    let (e, _) = scrape(f.collector(true, 100));

    let c = [("name", ID)];
    for gone in [
        "container_cpu_usage_seconds_total",
        "container_cpu_cfs_periods_total",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_fs_reads_bytes_total",
        "container_pressure_cpu_waiting_seconds_total",
        "container_oom_events_total",
        "container_threads",
    ] {
        assert_eq!(e.find(gone, &c).count(), 0, "{gone} has no good source");
    }
    // What was good is still served.
    assert_eq!(v(&e, "container_processes", &c), 1.0);
    assert_eq!(v(&e, "container_memory_rss", &c), 67108864.0);
    assert_eq!(
        v(&e, "container_pressure_memory_waiting_seconds_total", &c),
        u64::MAX as f64 / 1e6
    );
    assert_eq!(
        v(&e, "container_pressure_io_waiting_seconds_total", &c),
        0.0003
    );
    assert_eq!(
        v(&e, "sonde_container_stats_read_errors_total", &[]),
        6.0,
        "one per bad file"
    );
}

#[test]
fn a_cgroup_that_vanishes_is_one_error_and_left_out() {
    let dir = std::env::temp_dir().join(format!("sonde-cstats-gone-{}", std::process::id()));
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::write(dir.join("a/x"), "1\n").unwrap();
    let errors = AtomicU64::new(0);
    let mut r = Reader::new(&dir, &errors);
    r.begin();
    assert_eq!(r.value(&dir, "/a", "x", super::parse::number), Some(1));
    assert_eq!(r.value(&dir, "/a", "missing", super::parse::number), None);
    assert!(
        !r.gone,
        "a missing file in a live cgroup is an error, not a stop"
    );
    fs::remove_dir_all(dir.join("a")).unwrap();
    assert_eq!(r.value(&dir, "/a", "x", super::parse::number), None);
    assert!(r.gone);
    assert_eq!(r.value(&dir, "/a", "y", super::parse::number), None);
    assert_eq!(
        errors.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the stop counted once"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cap_keeps_served_cgroups_and_counts_the_rest() {
    let f = Fixture::new("cap");
    f.write(
        "unified/kubepods/cgroup.subtree_control",
        "cpu memory io pids\n",
    );
    let pod = format!("/kubepods/pod{UID}");
    let a = format!("{pod}/{}", "a".repeat(64));
    let b = format!("{pod}/{}", "b".repeat(64));
    for rel in [&pod, &a, &b] {
        f.v2_cgroup(rel, "", 1);
    }
    let c = Arc::new(f.collector(true, 2));
    let served = |e: &Exposition| -> Vec<String> {
        e.find("container_processes", &[])
            .map(|s| s.labels["id"].clone())
            .collect()
    };
    let e = scrape_again(&c);
    assert_eq!(served(&e), [pod.clone(), a.clone()], "in path order");
    assert_eq!(v(&e, "sonde_containers_refused_total", &[]), 1.0);
    // A newcomer that sorts first does not push out what was served.
    let first = format!("{pod}/{}", "0".repeat(64));
    f.v2_cgroup(&first, "", 1);
    let e = scrape_again(&c);
    assert_eq!(served(&e), [pod.clone(), a.clone()]);
    assert_eq!(
        v(&e, "sonde_containers_refused_total", &[]),
        3.0,
        "counted at every scrape"
    );
    // Room made by a stopped container goes to a newcomer.
    fs::remove_dir_all(f.0.join(format!("unified{a}"))).unwrap();
    let e = scrape_again(&c);
    assert_eq!(served(&e), [pod.clone(), first.clone()]);
}

#[test]
fn names_the_kubelet_does_not_write_are_skipped_and_counted() {
    let f = Fixture::new("names");
    f.v2_cgroup(&pod_rel(), "", 1);
    f.v2_cgroup(&container_rel(), "1\n", 1);
    f.mkdir(&format!("unified{}/crio-conmon-{ID}.scope", pod_rel())); // expected: not counted
    f.mkdir(&format!("unified{}/not-a-container", pod_rel()));
    f.mkdir("unified/kubepods.slice/kubepods-burstable.slice/garbage.slice");
    let (e, _) = scrape(f.collector(true, 100));
    assert_eq!(v(&e, "sonde_cgroup_names_unrecognized_total", &[]), 2.0);
    assert_eq!(
        e.find("container_processes", &[]).count(),
        2,
        "the pod and its container are still served"
    );
}
