//! cgroup v2 id -> path. The id the kernel programs record is the cgroup
//! directory's inode number, so a walk of the hierarchy resolves it.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::debug;

/// Finds the cgroup v2 mount in `<procfs>/self/mountinfo` (pure v2 at
/// /sys/fs/cgroup, or the unified tree of a hybrid host).
pub fn find_root(procfs: &Path) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string(procfs.join("self/mountinfo")).ok()?;
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> ..."
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split(' ').nth(4)?))
    })
}

/// A cache of id -> path ("/" for the root), refreshed by walking the tree when an
/// unknown id turns up, at most once per `min_walk_interval`.
#[derive(Debug)]
pub struct CgroupPaths {
    root: Option<PathBuf>,
    by_id: HashMap<u64, Arc<str>>,
    last_walk: Option<Instant>,
    min_walk_interval: Duration,
}

impl CgroupPaths {
    pub fn new(root: Option<PathBuf>, min_walk_interval: Duration) -> CgroupPaths {
        CgroupPaths {
            root,
            by_id: HashMap::new(),
            last_walk: None,
            min_walk_interval,
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The path of `id`, walking the tree first if it is unknown (and a walk is due).
    /// The path of `id` if that cgroup exists now. A cached path is checked with one
    /// `stat` (cgroup ids are never reused, so a matching inode is the same cgroup),
    /// which is how removed cgroups are noticed.
    pub fn path(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some(path) = self.by_id.get(&id) {
            if self.exists(path, id) {
                return Some(path.clone());
            }
            self.by_id.remove(&id);
        }
        if self.walk_due() {
            self.walk();
        }
        self.by_id.get(&id).cloned()
    }

    fn exists(&self, path: &str, id: u64) -> bool {
        let Some(root) = &self.root else { return false };
        std::fs::metadata(root.join(path.trim_start_matches('/'))).is_ok_and(|m| m.ino() == id)
    }

    fn walk_due(&self) -> bool {
        self.root.is_some()
            && self
                .last_walk
                .is_none_or(|t| t.elapsed() >= self.min_walk_interval)
    }

    fn walk(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        self.last_walk = Some(Instant::now());
        let mut by_id = HashMap::with_capacity(self.by_id.len().max(64));
        let mut stack = vec![(root.clone(), String::from("/"))];
        while let Some((dir, rel)) = stack.pop() {
            // Directories vanish mid-walk all the time (containers stop): skip, don't fail.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            by_id.insert(meta.ino(), Arc::from(rel.as_str()));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if rel == "/" {
                        format!("/{name}")
                    } else {
                        format!("{rel}/{name}")
                    };
                    stack.push((entry.path(), child));
                }
            }
        }
        debug!(cgroups = by_id.len(), root = %root.display(), "walked the cgroup tree");
        self.by_id = by_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_mountinfo_and_walks_a_tree() {
        let dir = std::env::temp_dir().join(format!("sonde-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let mut paths = CgroupPaths::new(Some(dir.clone()), Duration::ZERO);
        assert_eq!(paths.path(ino(&dir)).as_deref(), Some("/"));
        assert_eq!(paths.path(ino(&dir.join("a/b"))).as_deref(), Some("/a/b"));
        assert_eq!(paths.path(u64::MAX), None);
        // A removed cgroup is noticed, even though its path was cached.
        let b = ino(&dir.join("a/b"));
        std::fs::remove_dir(dir.join("a/b")).unwrap();
        assert_eq!(paths.path(b), None);
        std::fs::remove_dir_all(&dir).unwrap();

        let procfs = std::env::temp_dir().join(format!("sonde-proc-test-{}", std::process::id()));
        std::fs::create_dir_all(procfs.join("self")).unwrap();
        std::fs::write(
            procfs.join("self/mountinfo"),
            "30 23 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
             40 30 0:35 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        assert_eq!(
            find_root(&procfs),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        std::fs::write(procfs.join("self/mountinfo"), "garbage\n - \n").unwrap();
        assert_eq!(find_root(&procfs), None);
        std::fs::remove_dir_all(&procfs).unwrap();
    }
}
