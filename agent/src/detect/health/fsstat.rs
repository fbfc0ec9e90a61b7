//! statvfs(3) for the filesystem checks, off the runtime's threads and with a
//! timeout: a hung mount (dead NFS server) must not stall the checks, and a call
//! still hanging from an earlier round is not repeated (no pile of stuck threads).

use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

/// What the checks take from statvfs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct FsStat {
    /// Blocks (any unit) in the filesystem and those unprivileged users may still use.
    pub blocks: u64,
    pub blocks_avail: u64,
    /// Inodes in the filesystem (0 when it has no fixed number, e.g. btrfs) and free.
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
}

impl FsStat {
    /// Fraction of the space unprivileged users may still use (the kubelet's
    /// `available`); `None` for a filesystem without blocks (e.g. a pseudo fs).
    pub fn avail_ratio(&self) -> Option<f64> {
        (self.blocks > 0).then(|| self.blocks_avail as f64 / self.blocks as f64)
    }

    pub fn inodes_free_ratio(&self) -> Option<f64> {
        (self.files > 0).then(|| self.files_free as f64 / self.files as f64)
    }
}

pub(super) fn statvfs(path: &Path) -> io::Result<FsStat> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: an all-zero statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FsStat {
        blocks: st.f_blocks,
        blocks_avail: st.f_bavail,
        files: st.f_files,
        files_free: st.f_ffree,
        readonly: st.f_flag & libc::ST_RDONLY != 0,
    })
}

/// statvfs with a timeout, remembering paths whose call has not returned.
#[derive(Clone, Debug, Default)]
pub(super) struct Stater {
    hung: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Stater {
    pub async fn stat(&self, path: &Path, timeout: Duration) -> Result<FsStat, String> {
        if self.hung.lock().unwrap().contains(path) {
            return Err(format!(
                "statvfs({}) from an earlier check has not returned yet",
                path.display()
            ));
        }
        self.hung.lock().unwrap().insert(path.to_path_buf());
        let hung = self.hung.clone();
        let p = path.to_path_buf();
        let call = tokio::task::spawn_blocking(move || {
            let r = statvfs(&p);
            hung.lock().unwrap().remove(&p);
            r
        });
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(Ok(st))) => Ok(st),
            Ok(Ok(Err(e))) => Err(format!("statvfs({}): {e}", path.display())),
            Ok(Err(e)) => Err(format!("statvfs({}): {e}", path.display())),
            Err(_) => Err(format!(
                "statvfs({}) did not return within {timeout:?}",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_statvfs_of_a_tempdir() {
        let dir = tempfile::tempdir().unwrap();
        let st = Stater::default()
            .stat(dir.path(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(st.blocks > 0 && st.blocks_avail <= st.blocks, "{st:?}");
        assert!(!st.readonly, "a tempdir we just created is writable");
        let r = st.avail_ratio().unwrap();
        assert!((0.0..=1.0).contains(&r));
    }

    #[tokio::test]
    async fn missing_path_is_an_error_naming_it() {
        let e = Stater::default()
            .stat(Path::new("/no/such/dir"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.contains("/no/such/dir"), "{e}");
    }

    #[test]
    fn ratios_of_empty_filesystems_are_none() {
        let st = FsStat {
            blocks: 0,
            blocks_avail: 0,
            files: 0,
            files_free: 0,
            readonly: false,
        };
        assert_eq!(st.avail_ratio(), None);
        assert_eq!(st.inodes_free_ratio(), None);
    }
}
