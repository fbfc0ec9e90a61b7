//! statfs(2) with node_exporter's stuck-mount rule: a mount whose statfs has not
//! returned after 5 s is marked stuck and skipped (served as a device error) until
//! that call finally returns. Without it one dead NFS server would hang every
//! scrape, and with it each scrape thread it caught.
//!
//! The calls run on a long-lived helper thread that the scrape waits on with a
//! timeout (starting a thread per scrape cost more than all the statfs calls). A
//! helper caught in a hung call is abandoned and a new one takes the other mounts.

use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc},
    thread,
    time::Duration,
};

use tracing::warn;

/// What node_exporter takes from statfs(2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Usage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

#[derive(Debug)]
pub(super) struct Statfs {
    timeout: Duration,
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
    /// statfs(2); replaced in tests by one that hangs.
    stat: StatFn,
    /// The helper's job queue, `None` until started or after it was abandoned. The
    /// lock also keeps concurrent scrapes from queueing behind each other's calls.
    helper: Mutex<Option<mpsc::Sender<Job>>>,
}

type StatFn = fn(&Path) -> io::Result<Usage>;

/// Stat `paths[start..]`, sending each result back in order.
struct Job {
    paths: Arc<Vec<PathBuf>>,
    start: usize,
    reply: mpsc::Sender<io::Result<Usage>>,
}

impl Statfs {
    pub fn new(timeout: Duration) -> Self {
        Statfs {
            timeout,
            stuck: Arc::default(),
            stat: statfs,
            helper: Mutex::new(None),
        }
    }

    /// statfs of every path, in order.
    pub fn all(&self, paths: Vec<PathBuf>) -> Vec<io::Result<Usage>> {
        let mut helper = lock(&self.helper);
        let paths = Arc::new(paths);
        let mut results = Vec::with_capacity(paths.len());
        while results.len() < paths.len() {
            let (reply, replies) = mpsc::channel();
            let job = Job {
                paths: Arc::clone(&paths),
                start: results.len(),
                reply,
            };
            let unsent = match helper.as_ref() {
                Some(tx) => tx.send(job).err().map(|mpsc::SendError(job)| job),
                None => Some(job),
            };
            if let Some(job) = unsent {
                match self.start_helper() {
                    Ok(tx) => {
                        let _ = tx.send(job); // a helper that died at once shows as Disconnected below
                        *helper = Some(tx);
                    }
                    Err(e) => {
                        // No thread to spare: better a scrape that may block than none.
                        warn!("cannot start the statfs helper thread ({e}); calling statfs inline");
                        results.extend(
                            paths[results.len()..]
                                .iter()
                                .map(|p| self.skip_or_statfs(p)),
                        );
                        break;
                    }
                }
            }
            while results.len() < paths.len() {
                match replies.recv_timeout(self.timeout) {
                    Ok(result) => results.push(result),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut stuck = lock(&self.stuck);
                        // The call may have returned just now: take its result.
                        if let Ok(result) = replies.try_recv() {
                            results.push(result);
                            continue;
                        }
                        let path = &paths[results.len()];
                        warn!(mount = %path.display(), "statfs timed out; skipping this mount until it returns");
                        stuck.insert(path.clone());
                        results.push(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "statfs timed out",
                        )));
                        *helper = None; // abandon the helper in its call
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        results.push(Err(io::Error::other("statfs helper thread died")));
                        *helper = None;
                        break;
                    }
                }
            }
        }
        results
    }

    fn start_helper(&self) -> io::Result<mpsc::Sender<Job>> {
        let (tx, jobs) = mpsc::channel();
        let (stuck, stat) = (Arc::clone(&self.stuck), self.stat);
        thread::Builder::new()
            .name("sonde-statfs".into())
            .spawn(move || helper(&jobs, &stuck, stat))?;
        Ok(tx)
    }

    fn skip_or_statfs(&self, path: &Path) -> io::Result<Usage> {
        if lock(&self.stuck).contains(path) {
            return Err(still_stuck());
        }
        (self.stat)(path)
    }
}

/// The helper thread. A result is sent under the `stuck` lock, so it either reaches
/// the scrape or finds its mount marked stuck: then the scrape has given up on this
/// helper, which clears the mark and exits.
fn helper(jobs: &mpsc::Receiver<Job>, stuck: &Mutex<HashSet<PathBuf>>, stat: StatFn) {
    for job in jobs {
        for path in &job.paths[job.start..] {
            if lock(stuck).contains(path) {
                if job.reply.send(Err(still_stuck())).is_err() {
                    break;
                }
                continue;
            }
            let result = stat(path);
            let mut stuck = lock(stuck);
            if stuck.remove(path) {
                warn!(mount = %path.display(), "statfs returned after all; monitoring this mount again");
                return;
            }
            if job.reply.send(result).is_err() {
                break;
            }
        }
    }
}

fn still_stuck() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "mount is unresponsive (an earlier statfs has not returned)",
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// statfs(2), not statvfs(3): node_exporter multiplies block counts by `f_bsize`.
fn statfs(path: &Path) -> io::Result<Usage> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and buf is a valid, writable statfs.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bsize = buf.f_bsize as f64;
    Ok(Usage {
        size: buf.f_blocks as f64 * bsize,
        free: buf.f_bfree as f64 * bsize,
        avail: buf.f_bavail as f64 * bsize,
        files: buf.f_files as f64,
        files_free: buf.f_ffree as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_real_paths_in_order() {
        let s = Statfs::new(Duration::from_secs(5));
        let results = s.all(vec![
            "/".into(),
            "/nonexistent-sonde".into(),
            "/proc".into(),
        ]);
        assert_eq!(results.len(), 3);
        assert!(results[0].as_ref().unwrap().size > 0.0);
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(results[2].is_ok());
    }

    #[test]
    fn the_helper_is_reused() {
        let s = Statfs::new(Duration::from_secs(5));
        assert!(s.all(vec!["/".into()])[0].is_ok());
        assert!(s.helper.lock().unwrap().is_some());
        assert!(
            s.all(vec!["/".into(), "/proc".into()])
                .iter()
                .all(|r| r.is_ok())
        );
        assert!(s.all(Vec::new()).is_empty());
    }

    /// A statfs whose first call on "/slow" hangs for 300 ms.
    fn slow_stat(path: &Path) -> io::Result<Usage> {
        static HUNG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if path == Path::new("/slow") && !HUNG.swap(true, std::sync::atomic::Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(300));
        }
        Ok(Usage {
            size: 1.0,
            free: 0.0,
            avail: 0.0,
            files: 0.0,
            files_free: 0.0,
        })
    }

    #[test]
    fn a_hung_call_marks_the_mount_stuck_until_it_returns() {
        let s = Statfs {
            stat: slow_stat,
            ..Statfs::new(Duration::from_millis(50))
        };
        let paths = || vec![PathBuf::from("/a"), "/slow".into(), "/b".into()];
        let kinds = |r: Vec<io::Result<Usage>>| {
            r.into_iter()
                .map(|r| r.err().map(|e| e.kind()))
                .collect::<Vec<_>>()
        };

        assert_eq!(
            kinds(s.all(paths())),
            [None, Some(io::ErrorKind::TimedOut), None]
        );
        assert_eq!(
            kinds(s.all(paths())),
            [None, Some(io::ErrorKind::WouldBlock), None],
            "skipped while stuck"
        );
        thread::sleep(Duration::from_millis(400));
        assert_eq!(
            kinds(s.all(paths())),
            [None, None, None],
            "the late return clears the mark"
        );
    }

    #[test]
    fn a_stuck_mount_is_skipped_until_it_returns() {
        let s = Statfs::new(Duration::from_secs(5));
        s.stuck.lock().unwrap().insert("/".into());
        let results = s.all(vec!["/".into(), "/proc".into()]);
        assert_eq!(
            results[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(results[1].is_ok());
        assert!(
            s.stuck.lock().unwrap().contains(&PathBuf::from("/")),
            "only its own late return clears the mark"
        );
    }
}
