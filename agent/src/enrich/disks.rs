//! Block device number -> kernel name (`sda`, `loop0`, `nvme0n1`), from sysfs.

use std::{collections::HashMap, path::PathBuf};

/// The kernel's internal dev_t encoding, as the probes record it: `major << 20 | minor`.
pub fn split_dev(dev: u32) -> (u32, u32) {
    (dev >> 20, dev & ((1 << 20) - 1))
}

#[derive(Debug)]
pub struct DiskNames {
    sysfs: PathBuf,
    cache: HashMap<u32, String>,
}

impl DiskNames {
    pub fn new(sysfs: PathBuf) -> DiskNames {
        DiskNames {
            sysfs,
            cache: HashMap::new(),
        }
    }

    /// The device's name, or "major:minor" if sysfs does not know it (any more).
    pub fn name(&mut self, dev: u32) -> String {
        if let Some(n) = self.cache.get(&dev) {
            return n.clone();
        }
        let (major, minor) = split_dev(dev);
        let uevent = self.sysfs.join(format!("dev/block/{major}:{minor}/uevent"));
        let found = std::fs::read_to_string(uevent).ok().and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
        });
        match found {
            Some(name) => {
                self.cache.insert(dev, name.clone());
                name
            }
            // Not cached: a loop device may be attached later under the same number.
            None => format!("{major}:{minor}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_fake_sysfs() {
        let sysfs = std::env::temp_dir().join(format!("sonde-sys-test-{}", std::process::id()));
        std::fs::create_dir_all(sysfs.join("dev/block/7:3")).unwrap();
        std::fs::write(
            sysfs.join("dev/block/7:3/uevent"),
            "MAJOR=7\nMINOR=3\nDEVNAME=loop3\nDEVTYPE=disk\n",
        )
        .unwrap();
        let mut names = DiskNames::new(sysfs.clone());
        assert_eq!(names.name(7 << 20 | 3), "loop3");
        assert_eq!(names.name(8 << 20 | 1), "8:1");
        std::fs::remove_dir_all(&sysfs).unwrap();
    }
}
