//! Test cgroups: a v2 cgroup (what the probes key by) and, for OOM tests, a v1
//! memory cgroup with a limit. Removed on drop.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// A container id and pod uid unique to this test process and `n`, shaped as the
/// kubelet and runtimes write them (64 hex digits; a version-4 UUID). `fill` (two
/// hex digits) pads the id, so different tests' containers are told apart at a glance.
pub fn kubelet_ids(n: u32, fill: &str) -> (String, String) {
    let seed = format!("{:08x}{:04x}", std::process::id(), n);
    let id = format!("{seed}{}", fill.repeat(26));
    let uid = format!(
        "{}-{}-4{}-8{}-{}",
        &seed[..8],
        &seed[8..12],
        &seed[9..12],
        &seed[..3],
        "0123456789ab"
    );
    (id, uid)
}

/// The kubelet's cgroup path for a container, per cgroup driver and runtime.
pub fn kubelet_path(driver: &str, runtime: &str, uid: &str, id: &str) -> String {
    match driver {
        "systemd" => {
            let u = uid.replace('-', "_");
            let scope = match runtime {
                "containerd" => format!("cri-containerd-{id}.scope"),
                "cri-o" => format!("crio-{id}.scope"),
                _ => format!("docker-{id}.scope"),
            };
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/{scope}"
            )
        }
        _ => format!("/kubepods/besteffort/pod{uid}/{id}"),
    }
}

/// The cgroup v2 mount: pure v2 at /sys/fs/cgroup or a hybrid host's unified tree.
pub fn v2_root() -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.procs").exists() {
        unified.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

pub struct TestCgroup {
    /// Path relative to the v2 root, as the agent labels it ("/sonde-test-...").
    pub rel: String,
    pub v2: PathBuf,
    pub v1_memory: Option<PathBuf>,
    /// Directories `at_path` created (the cgroup itself last), removed deepest first.
    created_parents: Vec<PathBuf>,
}

impl TestCgroup {
    /// A fresh v2 cgroup named after the test and this process.
    pub fn new(name: &str) -> TestCgroup {
        let leaf = format!("sonde-test-{name}-{}", std::process::id());
        let v2 = v2_root().join(&leaf);
        let _ = std::fs::remove_dir(&v2);
        std::fs::create_dir(&v2)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", v2.display()));
        TestCgroup {
            rel: format!("/{leaf}"),
            v2,
            v1_memory: None,
            created_parents: Vec::new(),
        }
    }

    /// A cgroup at `rel` below the v2 root (e.g. a kubelet-style path), creating
    /// parents as needed; every directory it created is removed on drop.
    pub fn at_path(rel: &str) -> TestCgroup {
        let v2 = v2_root().join(rel.trim_start_matches('/'));
        let mut created = Vec::new();
        for dir in v2.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if !dir.exists() {
                std::fs::create_dir(dir)
                    .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
                created.push(dir.to_path_buf());
            }
        }
        TestCgroup {
            rel: rel.to_string(),
            v2,
            v1_memory: None,
            created_parents: created,
        }
    }

    /// Also a v1 memory cgroup limited to `limit` bytes (hybrid hosts; real OOM kills).
    pub fn with_memory_limit(mut self, limit: u64) -> TestCgroup {
        let v1 = Path::new("/sys/fs/cgroup/memory").join(self.v2.file_name().unwrap());
        let _ = std::fs::remove_dir(&v1);
        std::fs::create_dir(&v1).unwrap_or_else(|e| panic!("creating {}: {e}", v1.display()));
        std::fs::write(v1.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
        self.v1_memory = Some(v1);
        self
    }

    /// The cgroup id the kernel programs record: the directory's inode.
    pub fn id(&self) -> u64 {
        std::fs::metadata(&self.v2).unwrap().ino()
    }

    /// Runs `sh -c script` with the shell already inside this cgroup (and its memory
    /// cgroup), so everything it execs or forks is counted here from the start.
    pub fn spawn(&self, script: &str) -> Child {
        let mut enter = format!("echo $$ > {}/cgroup.procs", self.v2.display());
        if let Some(v1) = &self.v1_memory {
            enter.push_str(&format!(" && echo $$ > {}/cgroup.procs", v1.display()));
        }
        Command::new("sh")
            .args(["-c", &format!("{enter} && {script}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning sh")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let parents = self.created_parents.iter().rev().filter(|d| **d != self.v2);
        let dirs: Vec<&PathBuf> = [Some(&self.v2), self.v1_memory.as_ref()]
            .into_iter()
            .flatten()
            .chain(parents)
            .collect();
        for dir in dirs {
            // Processes may take a moment to leave after exit.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}
