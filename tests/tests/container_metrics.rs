//! cAdvisor's `container_*` metrics for a real container on this hybrid host, held
//! against what the kernel counts elsewhere: a kubelet-style pod and container
//! cgroup in the v2 tree and in the v1 cpu, cpuacct, memory, blkio and pids
//! hierarchies, a process inside that burns CPU under a quota, touches 64 MiB, does
//! direct I/O to a loop device and starts children; a second container that the
//! kernel OOM-kills. Ground truth: /proc/<pid>/{stat,status,cgroup}, the loop
//! device's /sys/block stat, and the exit signal.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use sonde_tests::{Agent, Exposition, cgroup::TestCgroup, require_binary};

const MIB: f64 = 1024.0 * 1024.0;
const V1_ROOT: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];
/// Sleeping children the worker starts; with the worker, the container's processes.
const CHILDREN: usize = 3;

/// A 64-hex container ID and a pod UID unique to this process and `n`.
fn ids(n: u32) -> (String, String) {
    sonde_tests::cgroup::kubelet_ids(n, "cd")
}

/// The same cgroup in each v1 hierarchy, as the kubelet makes it on a hybrid host.
/// Removes what it created, deepest first.
struct V1Cgroup {
    rel: String,
    created: Vec<PathBuf>,
}

impl V1Cgroup {
    fn at_path(rel: &str, controllers: &[&str]) -> V1Cgroup {
        let mut created = Vec::new();
        for c in controllers {
            let root = Path::new(V1_ROOT).join(c);
            assert!(
                root.join("cgroup.procs").exists(),
                "no v1 {c} hierarchy at {}: this test needs a hybrid host",
                root.display()
            );
            let leaf = root.join(rel.trim_start_matches('/'));
            for dir in leaf
                .ancestors()
                .take_while(|d| *d != root)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                if !dir.exists() {
                    std::fs::create_dir(dir)
                        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
                    created.push(dir.to_path_buf());
                }
            }
        }
        V1Cgroup {
            rel: rel.to_string(),
            created,
        }
    }

    fn dir(&self, controller: &str) -> PathBuf {
        Path::new(V1_ROOT)
            .join(controller)
            .join(self.rel.trim_start_matches('/'))
    }

    fn write(&self, controller: &str, file: &str, value: &str) {
        let path = self.dir(controller).join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("writing {value:?} to {}: {e}", path.display()));
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A loop device over a scratch file: a disk only this test writes to.
struct Loop {
    dev: String,
    file: PathBuf,
}

impl Loop {
    fn new() -> Loop {
        let file = std::env::temp_dir().join(format!(
            "sonde-container-metrics-{}.img",
            std::process::id()
        ));
        std::fs::write(&file, vec![0u8; 16 << 20]).unwrap();
        let out = Command::new(require_binary("losetup"))
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            file,
        }
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    fn major_minor(&self) -> String {
        std::fs::read_to_string(format!("/sys/block/{}/dev", self.name()))
            .unwrap()
            .trim()
            .to_string()
    }

    /// (sectors read, writes completed, sectors written) from /sys/block/<dev>/stat.
    fn stat(&self) -> (u64, u64, u64) {
        let text = std::fs::read_to_string(format!("/sys/block/{}/stat", self.name())).unwrap();
        let f: Vec<u64> = text
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        (f[2], f[4], f[6])
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn python() -> PathBuf {
    // Not a version manager's shim: its shell scripts would run in the container too.
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        system
    } else {
        require_binary("python3")
    }
}

/// A process started inside the container's cgroups (all joined before it execs,
/// so everything it does is counted there); it and everything it started are
/// killed on drop through the v2 cgroup's `cgroup.kill`.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
    v2: PathBuf,
}

impl Worker {
    fn start(v2: &TestCgroup, v1: &V1Cgroup, controllers: &[&str], script: &str) -> Worker {
        let mut enter = format!("echo $$ > {}/cgroup.procs", v2.v2.display());
        for c in controllers {
            enter.push_str(&format!(
                " && echo $$ > {}/cgroup.procs",
                v1.dir(c).display()
            ));
        }
        let mut child = Command::new("sh")
            .args([
                "-c",
                &format!("{enter} && exec {} -c \"$0\"", python().display()),
                script,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning sh");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Worker {
            child,
            stdout,
            v2: v2.v2.clone(),
        }
    }

    /// Waits for the line the script prints when its work is done.
    fn wait_ready(&mut self) {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        if line.trim() != "ready" {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let mut err = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("the worker failed before it was ready: {line:?}\n{err}");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = std::fs::write(self.v2.join("cgroup.kill"), "1");
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed processes leave the cgroup a moment later; the cgroups' drops retry too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(self.v2.join("cgroup.procs"))
            .is_ok_and(|p| !p.trim().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The processes in the v2 cgroup `rel`, by what /proc/<pid>/cgroup says.
fn pids_in(rel: &str) -> Vec<u32> {
    let line = format!("0::{rel}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|t| t.lines().any(|l| l == line))
        })
        .collect()
}

/// CPU seconds a process and its reaped children used: /proc/<pid>/stat's
/// utime + stime + cutime + cstime.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // After the ")": state is field 3 of the man page, so utime (14) is index 11.
    (fields[11] + fields[12] + fields[13] + fields[14]) / ticks
}

/// A field of /proc/<pid>/status in bytes (the kernel writes kB).
fn status_bytes(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} for {pid}"));
    line.trim_start_matches(':')
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

fn threads(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn one(e: &Exposition, name: &str, want: &[(&str, &str)]) -> f64 {
    e.value(name, want).unwrap_or_else(|| {
        let near: Vec<_> = e.samples.iter().filter(|s| s.name == name).collect();
        panic!("no single {name}{want:?}; that family has {near:#?}")
    })
}

#[test]
fn container_metrics_match_what_the_kernel_counts() {
    sonde_tests::require_root!("creates cgroups and a loop device,");
    let (id, uid) = ids(0);
    let (oom_id, _) = ids(1);
    let pod = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        uid.replace('-', "_")
    );
    let rel = format!("{pod}/cri-containerd-{id}.scope");
    let oom_rel = format!("{pod}/cri-containerd-{oom_id}.scope");

    // Declared before the workers, so dropped after them: processes leave, then cgroups go.
    let disk = Loop::new();
    let v2 = TestCgroup::at_path(&rel);
    let v1 = V1Cgroup::at_path(&rel, &V1_CONTROLLERS);
    let oom_v2 = TestCgroup::at_path(&oom_rel);
    let oom_v1 = V1Cgroup::at_path(&oom_rel, &["memory"]);
    // Half a CPU: the half second of burning is throttled, so CFS has numbers.
    v1.write("cpu", "cpu.cfs_period_us", "100000");
    v1.write("cpu", "cpu.cfs_quota_us", "50000");
    // Since Linux 6.10 v1 blkio counts I/O only on disks with a throttle rule (or
    // under BFQ); cAdvisor reads the same files. A rule no I/O here comes near.
    v1.write(
        "blkio",
        "blkio.throttle.write_bps_device",
        &format!("{} 1099511627776", disk.major_minor()),
    );
    oom_v1.write(
        "memory",
        "memory.limit_in_bytes",
        &(32u64 << 20).to_string(),
    );
    let disk_before = disk.stat();

    let script = format!(
        r#"
import mmap, os, subprocess, sys, time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
memory = b"\x01" * (64 << 20)  # written, so every page is resident
fd = os.open("{dev}", os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT wants
buf.write(b"x" * (1 << 20))
for _ in range(8):
    os.write(fd, buf)
os.lseek(fd, 0, os.SEEK_SET)
for _ in range(4):
    os.readv(fd, [buf])
os.close(fd)
children = [subprocess.Popen(["sleep", "600"]) for _ in range({CHILDREN})]
print("ready", flush=True)
sys.stdin.read()
"#,
        dev = disk.dev
    );
    let started = Instant::now();
    let mut worker = Worker::start(&v2, &v1, &V1_CONTROLLERS, &script);
    worker.wait_ready();
    let burned_wall = started.elapsed().as_secs_f64();

    let mut oom = Worker::start(&oom_v2, &oom_v1, &["memory"], "b = b'x' * (64 << 20)");
    let status = oom.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel's OOM killer took it"
    );

    let agent = Agent::start(&["--probes", "none"]);
    let e = agent.scrape();
    // The kernel's own accounts, read after the scrape so that CPU can only have grown.
    let pids = pids_in(&rel);
    let disk_after = disk.stat();
    let proc_cpu: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let rss_anon: f64 = pids.iter().map(|p| status_bytes(*p, "RssAnon")).sum();
    let proc_threads: f64 = pids.iter().map(|p| threads(*p)).sum();

    let c: &[(&str, &str)] = &[("name", &id)];
    let got = |name: &str| e.value(name, c).unwrap_or(f64::NAN);
    eprintln!(
        "kernel: cpu {proc_cpu:.3} s, RssAnon {:.1} MiB, {} processes, {proc_threads} threads; served: cpu {:.3} s, \
         throttled {} of {} periods, rss {:.1} MiB, working set {:.1} MiB",
        rss_anon / MIB,
        pids.len(),
        e.value(
            "container_cpu_usage_seconds_total",
            &[("name", &id), ("cpu", "total")]
        )
        .unwrap_or(f64::NAN),
        got("container_cpu_cfs_throttled_periods_total"),
        got("container_cpu_cfs_periods_total"),
        got("container_memory_rss") / MIB,
        got("container_memory_working_set_bytes") / MIB,
    );
    // Labels: the ID from the path; no API server, so no pod, namespace or image.
    let s = e
        .find("container_memory_rss", c)
        .next()
        .unwrap_or_else(|| panic!("no series for {id}:\n{}", agent.log_text()));
    for (label, want) in [
        ("id", rel.as_str()),
        ("name", &id),
        ("container", ""),
        ("pod", ""),
        ("namespace", ""),
        ("image", ""),
    ] {
        assert_eq!(
            s.labels.get(label).map(String::as_str),
            Some(want),
            "label {label}"
        );
    }

    // Processes: the worker and its children, as /proc/<pid>/cgroup places them.
    assert_eq!(pids.len(), 1 + CHILDREN, "the kernel's count: {pids:?}");
    assert_eq!(one(&e, "container_processes", c), pids.len() as f64);
    assert_eq!(
        one(&e, "container_threads", c),
        proc_threads,
        "v1 pids.current against /proc's Threads"
    );

    // CPU: what the processes' own accounts say, less the moment before the shell
    // joined the cgroup, and not much more (/proc rounds down to clock ticks).
    let cpu = one(
        &e,
        "container_cpu_usage_seconds_total",
        &[("name", &id), ("cpu", "total")],
    );
    assert!(
        proc_cpu >= 0.5,
        "the worker burned half a second: {proc_cpu}"
    );
    assert!(
        cpu >= proc_cpu - 0.02 && cpu <= proc_cpu + 0.25,
        "cgroup {cpu} s vs /proc {proc_cpu} s"
    );
    let split = one(&e, "container_cpu_user_seconds_total", c)
        + one(&e, "container_cpu_system_seconds_total", c);
    assert!(
        (split - cpu).abs() < 0.05,
        "user + system {split} vs usage {cpu}"
    );

    // CFS: 0.5 s of CPU at half a CPU takes 1 s, in 100 ms periods, most throttled.
    let periods = one(&e, "container_cpu_cfs_periods_total", c);
    let throttled = one(&e, "container_cpu_cfs_throttled_periods_total", c);
    let throttled_s = one(&e, "container_cpu_cfs_throttled_seconds_total", c);
    assert!(
        periods >= 8.0 && throttled >= 4.0 && throttled <= periods,
        "periods {periods}, throttled {throttled}"
    );
    assert!(
        throttled_s > 0.1 && throttled_s < burned_wall,
        "throttled {throttled_s} s within {burned_wall} s of work"
    );

    // Memory: anonymous memory as /proc's RssAnon counts it, 64 MiB of it ours.
    let rss = one(&e, "container_memory_rss", c);
    let usage = one(&e, "container_memory_usage_bytes", c);
    let working_set = one(&e, "container_memory_working_set_bytes", c);
    assert!(rss >= 64.0 * MIB, "rss {rss}");
    assert!(
        (rss - rss_anon).abs() < 4.0 * MIB,
        "cgroup rss {rss} vs RssAnon {rss_anon}"
    );
    assert!(
        working_set >= rss && working_set <= usage,
        "rss {rss} <= working set {working_set} <= usage {usage}"
    );
    assert!(
        usage < rss + 64.0 * MIB,
        "usage {usage} is not far above rss {rss}"
    );
    assert!(one(&e, "container_memory_cache", c) >= 0.0);
    assert_eq!(one(&e, "container_oom_events_total", c), 0.0);
    assert_eq!(
        one(&e, "container_oom_events_total", &[("name", &oom_id)]),
        1.0,
        "the OOM-killed container"
    );

    // Disk: what the loop device's own stat counted (only this test writes to it).
    let d: &[(&str, &str)] = &[("name", &id), ("device", &disk.dev)];
    let written = (disk_after.2 - disk_before.2) as f64 * 512.0;
    assert_eq!(written, 8.0 * MIB, "the device saw our 8 MiB");
    assert_eq!(one(&e, "container_fs_writes_bytes_total", d), written);
    assert_eq!(
        one(&e, "container_fs_writes_total", d),
        (disk_after.1 - disk_before.1) as f64
    );
    let read = one(&e, "container_fs_reads_bytes_total", d);
    assert_eq!(read, 4.0 * MIB, "what the worker read");
    assert!(
        (disk_after.0 - disk_before.0) as f64 * 512.0 >= read,
        "the device saw at least our reads"
    );
    assert!(one(&e, "container_fs_reads_total", d) >= 4.0);

    // PSI from the v2 tree: all tasks stalled never exceeds some task waiting.
    for r in ["cpu", "memory", "io"] {
        let some = one(
            &e,
            &format!("container_pressure_{r}_waiting_seconds_total"),
            c,
        );
        let full = one(
            &e,
            &format!("container_pressure_{r}_stalled_seconds_total"),
            c,
        );
        assert!(full <= some, "{r}: stalled {full} > waiting {some}");
    }

    // The pod-level cgroup, as cAdvisor serves it: no container, its totals include ours.
    let p: &[(&str, &str)] = &[("id", &pod), ("name", ""), ("container", "")];
    assert!(one(&e, "container_cpu_usage_seconds_total", p) >= cpu);
    assert!(one(&e, "container_memory_rss", p) >= rss - MIB);
    assert_eq!(
        one(&e, "container_processes", p),
        0.0,
        "processes live in the containers"
    );

    assert_eq!(
        e.types
            .get("container_cpu_usage_seconds_total")
            .map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        e.types
            .get("container_memory_working_set_bytes")
            .map(String::as_str),
        Some("gauge")
    );
    assert!(
        e.value("sonde_container_stats_read_errors_total", &[])
            .is_some()
    );
    assert!(e.value("sonde_containers_refused_total", &[]).is_some());
}
