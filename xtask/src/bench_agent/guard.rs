//! What the bench starts or changes on the machine, each undone when dropped: child
//! processes, a temp directory, a loop device, the `kernel.bpf_stats_enabled` sysctl
//! (and, in `kubepods`, the containers' cgroups). An error or Ctrl-C half-way therefore
//! leaves no agent, peer, bpftrace, loop device or cgroup behind.

use std::{
    fs, io,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From here on Ctrl-C or SIGTERM makes the next `check_interrupt` fail, so the guards unwind.
pub fn stop_on_interrupt() {
    let handler = note_interrupt as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking early (with an error) on Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        check_interrupt()?;
        thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    check_interrupt()
}

/// Polls `ready` every 100 ms until it says yes, for at most `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_interrupt()?;
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A free port on 127.0.0.1 (the kernel's pick; released for the peer to bind).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running child process; dropping it stops it (SIGTERM, then SIGKILL after 5 s).
pub struct Running {
    name: String,
    child: Child,
}

impl Running {
    /// Spawns `cmd` with its stdin on /dev/null.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Self> {
        cmd.stdin(Stdio::null());
        Self::spawn_with_stdin(name, cmd)
    }

    /// Spawns `cmd` with the stdin it was given (by default, ours).
    pub fn spawn_with_stdin(name: &str, mut cmd: Command) -> Result<Self> {
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill the child if xtask dies
        // without unwinding (SIGKILL), so nothing outlives the bench.
        unsafe {
            cmd.pre_exec(
                || match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                },
            );
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    /// Waits for the child to exit by itself within `timeout`; fails if it fails or overstays.
    pub fn finish(mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} failed ({status})", self.name);
                }
                return Ok(());
            }
            check_interrupt()?;
            if Instant::now() > deadline {
                bail!("{} did not finish within {timeout:?}", self.name);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion within `timeout`; returns how long it took.
pub fn run_bounded(name: &str, cmd: Command, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    Running::spawn(name, cmd)?.finish(timeout)?;
    Ok(start.elapsed())
}

/// The scratch directory's name, before the xtask's pid.
pub const TEMP_DIR_PREFIX: &str = "sonde-bench-agent-";

/// A scratch directory under /tmp for logs, the loop device's backing file and the list of
/// cgroups the bench created.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<Self> {
        Self::with_prefix(TEMP_DIR_PREFIX)
    }

    /// `/tmp/<prefix><pid>`, emptied first.
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A fresh file to send a child's output to.
    pub fn log(&self, name: &str) -> Result<fs::File> {
        let path = self.path(name);
        fs::File::create(&path).with_context(|| format!("creating {}", path.display()))
    }

    /// The last lines of a log written with `log`, to quote in an error.
    pub fn tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.path(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loop device over a sparse file; detached when dropped.
pub struct LoopDevice {
    pub dev: String,
}

impl LoopDevice {
    pub fn over_sparse_file(file: &Path, bytes: u64) -> Result<Self> {
        fs::File::create(file)?.set_len(bytes)?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()?;
        if !out.status.success() {
            bail!(
                "losetup {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self {
            dev: String::from_utf8(out.stdout)?.trim().to_string(),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` while held; the value found before is restored on drop.
/// (The agent turns stats on for itself; bpftrace does not, so its runs need this.)
pub struct BpfStatsOn {
    before: String,
}

impl BpfStatsOn {
    pub fn enable() -> Result<Self> {
        let before =
            fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(Self {
            before: before.trim().to_string(),
        })
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.before);
    }
}
