//! Kubelet-style pod and container cgroups with one live process in each, as the kubelet
//! (systemd driver) and containerd leave them on a node, undone when dropped:
//!
//! `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<64 hex>.scope`
//!
//! at the same relative path in the cgroup v2 tree and, on a hybrid host, in the v1 cpu,
//! cpuacct, memory, blkio and pids hierarchies (the kubelet creates every pod's cgroup in all
//! of them). One pod per container. Each container's process is a bash loop that wakes up
//! five times a second and sleeps in between, moved into its cgroup in every hierarchy, so
//! the agent's per-cgroup probe maps (run-queue latency) get an entry for every container.
//!
//! The loop waits with the `read -t 0.2` builtin on a pipe nobody writes to, not with
//! `sleep 0.2`: 200 `sh -c 'while :; do sleep 0.2; done'` fork and exec 1000 processes a
//! second, which took 1.3 of this VM's 2 CPUs; the builtin wakes up as often for a few
//! percent of one, so the load does not drown what is measured.
//!
//! Nothing outlives the bench: on drop the pipe's write end closes (every loop reads EOF
//! and exits), `cgroup.kill` and the [`Running`] guards kill what is left, and every
//! directory this created is removed deepest first, in every hierarchy. Directories that
//! were there before (a `kubepods.slice` the test suite made) are left alone. Were xtask
//! killed outright (SIGKILL, no unwinding), the loops would still die (parent-death signal,
//! EOF, and a 600 s limit of their own), and the next run removes the empty cgroups left
//! behind from the list each run keeps in its scratch directory ([`sweep_stale`]).

use std::{
    collections::HashSet,
    fs,
    io::{self, Write},
    os::fd::{FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use super::guard::{self, Running, TempDir};

const CGROUP_FS: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];
const QOS_SLICE: &str = "/kubepods.slice/kubepods-besteffort.slice";
/// Wake up every 0.2 s; exit on EOF (the bench is gone) or after 600 s, whichever is first.
const LOOP: &str = "while (( SECONDS < 600 )); do read -r -t 0.2; (( $? > 128 )) || exit 0; done";
/// How long the teardown keeps retrying `rmdir` of cgroups whose processes are still leaving.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Ledger files in the scratch directory: the cgroups one batch created, one path a line.
const LEDGER_PREFIX: &str = "cgroups-";

/// The hierarchies to create each cgroup in: the v2 tree first, then any v1 ones.
pub struct Hierarchies {
    pub v2: PathBuf,
    all: Vec<PathBuf>,
}

impl Hierarchies {
    pub fn detect() -> Result<Hierarchies> {
        let base = Path::new(CGROUP_FS);
        let unified = base.join("unified");
        let v2 = if unified.join("cgroup.procs").exists() {
            unified
        } else if base.join("cgroup.controllers").exists() {
            base.to_path_buf()
        } else {
            bail!(
                "no cgroup v2 tree at {CGROUP_FS}/unified or {CGROUP_FS}: the probes key their maps by v2 cgroup"
            );
        };
        let mut all = vec![v2.clone()];
        if v2 != base {
            // cpu and cpuacct are often one mount with both names as links: create once.
            let mut seen = HashSet::new();
            for controller in V1_CONTROLLERS {
                let root = base.join(controller);
                if root.join("cgroup.procs").exists() && seen.insert(fs::canonicalize(&root)?) {
                    all.push(root);
                }
            }
        }
        Ok(Hierarchies { v2, all })
    }

    /// `/sys/fs/cgroup/{unified,cpu,...}`, for the report.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .all
            .iter()
            .map(|p| {
                p.file_name()
                    .map_or("?".into(), |n| n.to_string_lossy().into_owned())
            })
            .collect();
        match self.v2.as_path() == Path::new(CGROUP_FS) {
            true => CGROUP_FS.to_string(),
            false => format!("{CGROUP_FS}/{{{}}}", names.join(",")),
        }
    }
}

/// Names unique to this run: every pod UID starts with the run's tag, so the series of the
/// bench's own containers are the ones whose cgroup path has `pod<tag>_` in it.
pub struct Naming {
    tag: String,
    batch: u32,
    state: u64,
}

impl Naming {
    pub fn new() -> Naming {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut n = Naming {
            tag: String::new(),
            batch: 0,
            state: nanos ^ (u64::from(std::process::id()) << 32),
        };
        n.tag = format!("{:08x}", n.random() as u32);
        n
    }

    /// Text found in every series of this run's containers (and nobody else's).
    pub fn marker(&self) -> String {
        format!("pod{}_", self.tag)
    }

    /// splitmix64: good enough for names, and no dependency.
    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The cgroup path of container `i` of the current batch, relative to a hierarchy root.
    fn container(&mut self, i: usize) -> String {
        let (a, b, c) = (self.random(), self.random(), self.random());
        let uid = format!(
            "{}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            self.tag,
            self.batch & 0xffff,
            i & 0xfff,
            a & 0xfff,
            b & 0xffff_ffff_ffff
        );
        let id = format!(
            "{}{:04x}{:04x}{:016x}{:016x}{:016x}",
            self.tag,
            self.batch & 0xffff,
            i & 0xffff,
            a,
            b,
            c
        );
        format!(
            "{QOS_SLICE}/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        )
    }
}

/// `n` containers, each with its pod, its cgroups and its process; all gone when dropped.
pub struct Containers {
    processes: Vec<Running>,
    /// Each container's v2 cgroup, for `cgroup.kill`.
    scopes: Vec<PathBuf>,
    /// Every directory this created, parents before children.
    created: Vec<PathBuf>,
    ledger: (PathBuf, fs::File),
    /// The write end of the pipe the loops read; closing it stops them all.
    stop: Option<OwnedFd>,
}

impl Containers {
    pub fn start(
        h: &Hierarchies,
        names: &mut Naming,
        n: usize,
        dir: &TempDir,
    ) -> Result<Containers> {
        names.batch += 1;
        let ledger_path = dir.path(&format!("{LEDGER_PREFIX}{}.list", names.batch));
        let ledger = fs::File::create(&ledger_path)
            .with_context(|| format!("creating {}", ledger_path.display()))?;
        let (read, write) = pipe()?;
        // From here on an error drops `c`, which undoes whatever was done so far.
        let mut c = Containers {
            processes: Vec::with_capacity(n),
            scopes: Vec::with_capacity(n),
            created: Vec::new(),
            ledger: (ledger_path, ledger),
            stop: Some(write),
        };
        for i in 0..n {
            guard::check_interrupt()?;
            let rel = names.container(i);
            for root in &h.all {
                c.mkdir_all(root, &rel)?;
            }
            c.scopes.push(h.v2.join(&rel[1..]));
            let mut cmd = Command::new("bash");
            cmd.args(["-c", LOOP])
                .stdin(Stdio::from(read.try_clone()?))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let process = Running::spawn_with_stdin("a container's process (bash loop)", cmd)?;
            let pid = process.pid().to_string();
            c.processes.push(process);
            for root in &h.all {
                let procs = root.join(&rel[1..]).join("cgroup.procs");
                fs::write(&procs, &pid)
                    .with_context(|| format!("moving pid {pid} into {}", procs.display()))?;
            }
        }
        Ok(c)
    }

    /// utime + stime of the containers' processes so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.processes
            .iter()
            .filter_map(|p| super::scrape::cpu_seconds(p.pid()).ok())
            .sum()
    }

    /// Creates `rel` and any missing parent below `root`, noting each directory it creates.
    /// Parents shared with others (`kubepods.slice`) may come and go meanwhile: if one
    /// vanishes between two steps, start over.
    fn mkdir_all(&mut self, root: &Path, rel: &str) -> Result<()> {
        let leaf = root.join(&rel[1..]);
        let chain: Vec<PathBuf> = leaf
            .ancestors()
            .take_while(|d| *d != root)
            .map(Path::to_path_buf)
            .collect();
        let mut attempts = 0;
        'again: loop {
            attempts += 1;
            for dir in chain.iter().rev() {
                match fs::create_dir(dir) {
                    Ok(()) => self.note_created(dir)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                        continue 'again;
                    }
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("creating cgroup {}", dir.display()));
                    }
                }
            }
            return Ok(());
        }
    }

    fn note_created(&mut self, dir: &Path) -> Result<()> {
        self.created.push(dir.to_path_buf());
        writeln!(self.ledger.1, "{}", dir.display()).context("writing the cgroup ledger")
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        drop(self.stop.take());
        for scope in &self.scopes {
            let _ = fs::write(scope.join("cgroup.kill"), "1");
        }
        self.processes.clear();
        let left = remove_deepest_first(&self.created, REMOVE_TIMEOUT);
        if left.is_empty() {
            let _ = fs::remove_file(&self.ledger.0);
        } else {
            eprintln!(
                "xtask: could not remove {} bench cgroups (listed in {}), e.g. {}",
                left.len(),
                self.ledger.0.display(),
                left[0].display()
            );
        }
    }
}

/// Removes `dirs` (parents listed before children) in reverse, retrying while processes
/// leave, until `timeout`; returns what is still there.
fn remove_deepest_first(dirs: &[PathBuf], timeout: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + timeout;
    let mut left = Vec::new();
    for dir in dirs.iter().rev() {
        loop {
            match fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // Someone else's cgroups below a shared parent we created: theirs to remove.
                Err(_) if has_subdirectories(dir) => {
                    left.push(dir.clone());
                    break;
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Err(_) => {
                    left.push(dir.clone());
                    break;
                }
            }
        }
    }
    left
}

fn has_subdirectories(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

/// Removes the cgroups that earlier runs, killed before they could clean up, left behind:
/// those in the ledgers of scratch directories whose xtask is gone. Only `rmdir`, which
/// cannot remove a cgroup that has processes or children. Returns how many it removed.
pub fn sweep_stale() -> usize {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(guard::TEMP_DIR_PREFIX))
        else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue; // not ours, or its xtask still runs (or the pid was reused: leave it)
        }
        let Ok(files) = fs::read_dir(entry.path()) else {
            continue;
        };
        let mut all_gone = true;
        for file in files.flatten() {
            if !file
                .file_name()
                .to_string_lossy()
                .starts_with(LEDGER_PREFIX)
            {
                continue;
            }
            let text = fs::read_to_string(file.path()).unwrap_or_default();
            let dirs: Vec<PathBuf> = text
                .lines()
                .map(PathBuf::from)
                .filter(|p| p.starts_with(CGROUP_FS) && p.exists())
                .collect();
            let left = remove_deepest_first(&dirs, Duration::ZERO);
            removed += dirs.len() - left.len();
            all_gone &= left.is_empty();
        }
        if all_gone {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    removed
}

/// A pipe, both ends close-on-exec (the children get the read end as their stdin only).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we pass, which has room for two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 succeeded, so both are open fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_the_kubelets_and_carry_the_marker() {
        let mut names = Naming::new();
        names.batch = 3;
        let rel = names.container(7);
        let marker = names.marker();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(
            parts[..3],
            ["", "kubepods.slice", "kubepods-besteffort.slice"]
        );
        let pod = parts[3]
            .strip_prefix("kubepods-besteffort-pod")
            .unwrap()
            .strip_suffix(".slice")
            .unwrap();
        assert!(parts[3].contains(&marker));
        let groups: Vec<usize> = pod.split('_').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        let id = parts[4]
            .strip_prefix("cri-containerd-")
            .unwrap()
            .strip_suffix(".scope")
            .unwrap();
        assert_eq!(id.len(), 64);
        assert!(
            pod.chars()
                .chain(id.chars())
                .all(|c| c == '_' || c.is_ascii_hexdigit())
        );
        assert_ne!(rel, names.container(7), "every call names a new container");
    }
}
