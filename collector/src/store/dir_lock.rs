//! The lock file that keeps two processes from opening one store directory.

use std::{fs, io, os::fd::AsRawFd, path::Path};

/// Takes an exclusive advisory lock on `<dir>/lock`, held while the returned file
/// is open. `what` names the directory in the error ("data directory").
pub(crate) fn lock_dir(dir: &Path, what: &str) -> io::Result<fs::File> {
    let path = dir.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "{what} {} is in use by another process (cannot lock {}): {e}",
                dir.display(),
                path.display()
            ),
        ));
    }
    Ok(f)
}
