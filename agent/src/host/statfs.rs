//! statfs(2) with node_exporter's stuck-mount rule: a mount whose statfs has not
//! returned after 5 s is marked stuck and skipped (served as a device error) until
//! that call finally returns. Without it one dead NFS server would hang every
//! scrape, and with it each scrape thread it caught.
//!
//! The calls run on a helper thread, one per scrape, that the scrape waits on with a
//! timeout; a helper caught in a hung call is left behind and a new one takes the
//! remaining mounts.

use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::PathBuf,
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
}

impl Statfs {
    pub fn new(timeout: Duration) -> Self {
        Statfs { timeout, stuck: Arc::default() }
    }

    /// statfs of every path, in order.
    pub fn all(&self, paths: Vec<PathBuf>) -> Vec<io::Result<Usage>> {
        let paths = Arc::new(paths);
        let mut results = Vec::with_capacity(paths.len());
        while results.len() < paths.len() {
            let (tx, rx) = mpsc::channel();
            let (start, paths_for_helper, stuck) = (results.len(), Arc::clone(&paths), Arc::clone(&self.stuck));
            let spawned = thread::Builder::new()
                .name("sonde-statfs".into())
                .spawn(move || helper(&paths_for_helper[start..], &stuck, &tx));
            if spawned.is_err() {
                // No thread to spare: better a scrape that may block than none.
                results.extend(paths[start..].iter().map(|p| self.skip_or_statfs(p)));
                break;
            }
            while results.len() < paths.len() {
                match rx.recv_timeout(self.timeout) {
                    Ok(result) => results.push(result),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut stuck = lock(&self.stuck);
                        // The call may have returned just now: take its result.
                        if let Ok(result) = rx.try_recv() {
                            results.push(result);
                            continue;
                        }
                        let path = &paths[results.len()];
                        warn!(mount = %path.display(), "statfs timed out; skipping this mount until it returns");
                        stuck.insert(path.clone());
                        results.push(Err(io::Error::new(io::ErrorKind::TimedOut, "statfs timed out")));
                        break; // leave this helper in its call; a new one takes the rest
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        results.push(Err(io::Error::other("statfs helper died")));
                        break;
                    }
                }
            }
        }
        results
    }

    fn skip_or_statfs(&self, path: &PathBuf) -> io::Result<Usage> {
        if lock(&self.stuck).contains(path) {
            return Err(still_stuck());
        }
        statfs(path)
    }
}

/// Runs on the helper thread. The send happens under the `stuck` lock, so a result
/// either reaches the scrape or finds its mount marked stuck, which it then clears.
fn helper(paths: &[PathBuf], stuck: &Mutex<HashSet<PathBuf>>, tx: &mpsc::Sender<io::Result<Usage>>) {
    for path in paths {
        if lock(stuck).contains(path) {
            if tx.send(Err(still_stuck())).is_err() {
                return;
            }
            continue;
        }
        let result = statfs(path);
        let mut stuck = lock(stuck);
        if stuck.remove(path) {
            // The scrape that waited for this call gave up on it and has moved on.
            warn!(mount = %path.display(), "statfs returned after all; monitoring this mount again");
            return;
        }
        if tx.send(result).is_err() {
            return;
        }
    }
}

fn still_stuck() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "mount is unresponsive (an earlier statfs has not returned)")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// statfs(2), not statvfs(3): node_exporter multiplies block counts by `f_bsize`.
fn statfs(path: &PathBuf) -> io::Result<Usage> {
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
        let results = s.all(vec!["/".into(), "/nonexistent-sonde".into(), "/proc".into()]);
        assert_eq!(results.len(), 3);
        assert!(results[0].as_ref().unwrap().size > 0.0);
        assert_eq!(results[1].as_ref().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(results[2].is_ok());
    }

    #[test]
    fn a_stuck_mount_is_skipped_until_it_returns() {
        let s = Statfs::new(Duration::from_secs(5));
        s.stuck.lock().unwrap().insert("/".into());
        let results = s.all(vec!["/".into(), "/proc".into()]);
        assert_eq!(results[0].as_ref().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(results[1].is_ok());
        assert!(s.stuck.lock().unwrap().contains(&PathBuf::from("/")), "only its own late return clears the mark");
    }
}
