//! The directory of immutable data files the log store (chunk files) and the
//! trace store (segment files) keep beside their WAL: what is there at open,
//! unreadable files set aside, and durable deletes.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::store::tsdb::wal::fsync_dir;

/// A store directory as opened: `<dir>/<data>` and `<dir>/wal` exist, and
/// `<dir>/lock` is held while `lock` is open.
pub(crate) struct StoreDirs {
    pub data: PathBuf,
    pub wal: PathBuf,
    pub lock: fs::File,
}

/// Creates a log or trace store's directories and locks it; `what` names
/// the directory in the error ("log directory").
pub(crate) fn open_dirs(dir: &Path, data: &str, what: &str) -> io::Result<StoreDirs> {
    let (data, wal) = (dir.join(data), dir.join("wal"));
    fs::create_dir_all(&data)?;
    fs::create_dir_all(&wal)?;
    let lock = crate::store::dir_lock::lock_dir(dir, what)?;
    Ok(StoreDirs { data, wal, lock })
}

/// The data files in `dir` that `parse_name` recognises, as (sequence, path)
/// oldest first. `.tmp` files are deleted: a write that crashed before its
/// rename, whose data is still in the WAL.
pub(crate) fn list(
    dir: &Path,
    parse_name: impl Fn(&str) -> Option<u64>,
) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            fs::remove_file(e.path())?;
        } else if let Some(seq) = parse_name(name) {
            names.push((seq, e.path()));
        }
    }
    names.sort();
    Ok(names)
}

/// Renames a file that failed to open to `<name>.<ext>.corrupt`: kept for
/// inspection, never read again. `what` names the kind of file in the log.
pub(crate) fn set_aside(path: &Path, ext: &str, what: &str, error: &io::Error) -> io::Result<()> {
    let aside = path.with_extension(format!("{ext}.corrupt"));
    tracing::error!(file = %path.display(), error = %error,
        "unreadable {what} skipped; renamed to {}", aside.display());
    fs::rename(path, aside)
}

/// Unlinks a data file (already gone is fine) and fsyncs `dir`, so the
/// delete survives a crash.
pub(crate) fn remove_durably(dir: &Path, path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fsync_dir(dir)
}
