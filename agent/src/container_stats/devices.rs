//! Block device number -> the `device` label cAdvisor gives per-disk I/O: `/dev/sda`.
//!
//! Like `enrich::disks`, from sysfs's uevent DEVNAME, but in cAdvisor's `/dev/` form
//! and handed out as a shared `Arc<str>`: every container's series for a disk carry
//! the same name, so a scrape of hundreds of containers allocates it once.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use super::parse::Dev;

#[derive(Debug)]
pub struct DeviceNames {
    sysfs: PathBuf,
    known: Mutex<HashMap<Dev, Arc<str>>>,
}

impl DeviceNames {
    pub fn new(sysfs: PathBuf) -> DeviceNames {
        DeviceNames {
            sysfs,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// `/dev/<name>`, or `major:minor` when sysfs does not know the device (cAdvisor
    /// leaves the label empty there, which would make two such disks one series).
    pub fn name(&self, (major, minor): Dev) -> Arc<str> {
        if let Some(name) = self.lock().get(&(major, minor)) {
            return name.clone();
        }
        // Read without the lock: a concurrent scrape may look up other devices meanwhile.
        let uevent = self.sysfs.join(format!("dev/block/{major}:{minor}/uevent"));
        let found = std::fs::read_to_string(uevent).ok().and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(|n| format!("/dev/{n}")))
        });
        match found {
            Some(name) => self
                .lock()
                .entry((major, minor))
                .or_insert_with(|| Arc::from(name))
                .clone(),
            // Not cached: a loop device may be attached later under the same number.
            None => Arc::from(format!("{major}:{minor}")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Dev, Arc<str>>> {
        // A cache of names: whatever a panicking thread left in it is still usable.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
