//! Loop devices for block I/O tests.

use std::process::Command;

use crate::require_binary;

/// A loop device over a sparse file, detached on drop.
pub struct LoopDevice {
    pub dev: String,
    file: std::path::PathBuf,
}

impl LoopDevice {
    pub fn new(mib: u64) -> LoopDevice {
        let losetup = require_binary("losetup");
        let file = std::env::temp_dir().join(format!("sonde-loop-{}.img", std::process::id()));
        std::fs::File::create(&file)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let out = Command::new(losetup)
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        LoopDevice { dev, file }
    }

    pub fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    /// (reads completed, sectors read, writes completed, sectors written) from sysfs.
    pub fn stat(&self) -> [u64; 4] {
        let s = std::fs::read_to_string(format!("/sys/block/{}/stat", self.name())).unwrap();
        let f: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
        [f[0], f[2], f[4], f[6]]
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}
