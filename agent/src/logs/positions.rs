//! Where tailing resumes after a restart: `--log-positions FILE`.
//!
//! # Format (version 1)
//!
//! A JSON object, rewritten whole (temp file, fsync, rename, directory fsync), so
//! the file on disk is always one complete checkpoint:
//!
//! ```json
//! {"version": 1,
//!  "files": [{"path": "/var/log/pods/ns_pod_uid/app/0.log",
//!             "dev": 2049, "inode": 1234567,
//!             "fingerprint": "cbf29ce484222325", "fingerprint_len": 256,
//!             "offset": 1048576, "checkpoint_ns": 1700000000000000000}]}
//! ```
//!
//! - `dev`, `inode`: the file's identity when it was read; `path` is the name it
//!   was found under (a rotated file keeps its live name; it is found again by
//!   identity or fingerprint among the directory's files).
//! - `fingerprint`: FNV-1a 64 (hex) of the file's first `fingerprint_len` bytes
//!   (at most 256): tells a file from a new one on a reused inode, and finds the
//!   copy a copytruncate rotation left.
//! - `offset`: the byte after the last line that is durable in the log export
//!   queue. Partial state is not stored: while a `P` (partial) line is being
//!   joined, `offset` stays at the start of its first part, so the parts are read
//!   again after a restart and nothing half-joined is lost.
//! - `checkpoint_ns`: when the checkpoint was taken (Unix ns; absent = 0 =
//!   unknown in older files). A rotated sibling that is in no position and was
//!   modified after it was written while the agent was down (or not yet seen),
//!   so it is read from its start after a restart.
//!
//! A checkpoint is written only after the lines before each offset are in the
//! disk queue, so after a crash tailing resumes without loss; lines read after
//! the last checkpoint are read (and shipped) again, and the collector drops the
//! identical (timestamp, line) pairs.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    pub fingerprint: String,
    pub fingerprint_len: u64,
    pub offset: u64,
    #[serde(default)]
    pub checkpoint_ns: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    files: Vec<Position>,
}

/// Reads the checkpoint; a missing file is an empty one. A file that does not
/// parse is an error naming it (the caller logs it and starts afresh).
pub fn load(path: &Path) -> Result<Vec<Position>, String> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let f: FileFormat =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if f.version != 1 {
        return Err(format!("{}: unknown version {}", path.display(), f.version));
    }
    Ok(f.files)
}

/// Writes the checkpoint atomically.
pub fn save(path: &Path, files: &[Position]) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let body = serde_json::to_vec(&FileFormat {
        version: 1,
        files: files.to_vec(),
    })
    .map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)?.sync_all()
    })()
    .map_err(named)
}

/// Checks at startup that the checkpoint can be written (creating its directory),
/// so a bad `--log-positions` fails the start instead of every checkpoint.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut probe = path.as_os_str().to_owned();
    // Per process: agents in parallel tests may share the default path.
    probe.push(format!(".write-test.{}", std::process::id()));
    fs::write(&probe, b"")
        .and_then(|()| fs::remove_file(&probe))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// FNV-1a, 64 bit: a fingerprint that stays the same across Rust releases
/// (std's hasher does not promise that), five lines instead of a crate.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pos.json");
        check_writable(&path).unwrap();
        assert_eq!(load(&path).unwrap(), vec![]);
        let p = Position {
            path: "/x/0.log".into(),
            dev: 1,
            inode: 2,
            fingerprint: fingerprint(b"abc"),
            fingerprint_len: 3,
            offset: 99,
            checkpoint_ns: 5,
        };
        save(&path, std::slice::from_ref(&p)).unwrap();
        assert_eq!(load(&path).unwrap(), vec![p]);
        assert!(!dir.path().join("sub/pos.json.tmp").exists());
        // Checkpoints written before `checkpoint_ns` existed still load.
        fs::write(&path, br#"{"version":1,"files":[{"path":"/x/0.log","dev":1,"inode":2,"fingerprint":"","fingerprint_len":0,"offset":3}]}"#).unwrap();
        assert_eq!(load(&path).unwrap()[0].checkpoint_ns, 0);
        fs::write(&path, b"{\"version\":1,\"files\":[{").unwrap();
        assert!(load(&path).unwrap_err().contains("pos.json"));
        fs::write(&path, b"{\"version\":7,\"files\":[]}").unwrap();
        assert!(load(&path).unwrap_err().contains("version 7"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
    }
}
