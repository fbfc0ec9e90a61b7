//! Finding the live log files: `<log-dir>/<ns>_<pod>_<uid>/<container>/*.log`,
//! by polling (a few `readdir`s and `stat`s every 250 ms; no inotify, which
//! misses events on overlay and network filesystems and needs a watch per dir).

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::path::{is_live_log_name, parse_pod_dir};

/// A file as `stat` saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub inode: u64,
}

#[derive(Clone, Debug)]
pub struct Found {
    pub path: PathBuf,
    pub id: Identity,
    pub size: u64,
}

pub fn identity(m: &fs::Metadata) -> Identity {
    Identity {
        dev: m.dev(),
        inode: m.ino(),
    }
}

/// The live log files under `log_dir`, sorted by path. Unreadable or vanished
/// directories are skipped (pods come and go between `readdir` and `stat`).
pub fn scan(log_dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let Ok(pods) = fs::read_dir(log_dir) else {
        return out;
    };
    for pod in pods.flatten() {
        let pod_name = pod.file_name();
        let Some(pod_name) = pod_name.to_str() else {
            continue;
        };
        if parse_pod_dir(pod_name, "c").is_none() {
            continue;
        }
        let Ok(containers) = fs::read_dir(pod.path()) else {
            continue;
        };
        for container in containers.flatten() {
            let Ok(files) = fs::read_dir(container.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                if !name.to_str().is_some_and(is_live_log_name) {
                    continue;
                }
                let path = file.path();
                // stat, not lstat: kubelet's docker-era files are symlinks.
                let Ok(m) = fs::metadata(&path) else { continue };
                if m.is_file() {
                    out.push(Found {
                        path,
                        id: identity(&m),
                        size: m.len(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
