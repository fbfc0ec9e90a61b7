//! The udev database entry of a block device (`/run/udev/data/b<major>:<minor>`),
//! which node_exporter's `diskstats` turns into `node_disk_info` labels and the ATA
//! and device-mapper families.

use std::path::Path;

use super::source::read;

/// The `E:KEY=value` properties of one device. Empty when udev has no entry (no
/// udev on the host, or the directory is not mounted into the pod).
#[derive(Debug, Default)]
pub(super) struct Properties {
    text: String,
}

impl Properties {
    /// Reads the entry under `rootfs`; the host's /run is not the pod's.
    pub fn read(rootfs: &Path, major: i32, minor: i32) -> Self {
        let path = rootfs.join(format!("run/udev/data/b{major}:{minor}"));
        Properties {
            text: read(&path).unwrap_or_default(),
        }
    }

    #[cfg(test)]
    pub fn from_text(text: &str) -> Self {
        Properties {
            text: text.to_string(),
        }
    }

    /// A property's value, if the entry has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (k, v) = line.strip_prefix("E:")?.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// A property's value, or "" as node_exporter's labels have it.
    pub fn label(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// The serial printed on the disk label if udev knows it, else the short serial.
    pub fn serial(&self) -> &str {
        match self.label("SCSI_IDENT_SERIAL") {
            "" => self.label("ID_SERIAL_SHORT"),
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_properties() {
        let p = Properties::from_text(
            "S:disk/by-id/x\nE:ID_MODEL=QEMU HARDDISK\nE:ID_SERIAL_SHORT=QM1\nE:BROKEN\nE:DM_LV_LAYER=\n",
        );
        assert_eq!(p.get("ID_MODEL"), Some("QEMU HARDDISK"));
        assert_eq!(p.get("DM_LV_LAYER"), Some(""));
        assert_eq!(p.get("BROKEN"), None);
        assert_eq!(p.label("ID_WWN"), "");
        assert_eq!(p.serial(), "QM1");
        assert_eq!(
            Properties::from_text("E:SCSI_IDENT_SERIAL=S1\nE:ID_SERIAL_SHORT=QM1\n").serial(),
            "S1"
        );
    }

    #[test]
    fn missing_entry_is_empty() {
        let p = Properties::read(Path::new("/nonexistent"), 8, 0);
        assert_eq!(p.get("ID_MODEL"), None);
    }
}
