//! The tap's classic tracepoint is attached through tracefs. systemd mounts it
//! at boot, but minimal hosts (and containers given `/sys` without it) have an
//! empty `/sys/kernel/tracing`; as root we mount it there ourselves, as bpftrace
//! and perf expect an operator to. Must run before aya first looks (it caches
//! the answer for the process).

use std::{ffi::CString, path::Path};

const MOUNT_POINT: &str = "/sys/kernel/tracing";

fn has_entries(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
}

/// Ok when tracefs is (or now is) reachable where aya looks; else why not.
pub fn ensure_mounted() -> Result<(), String> {
    let at = Path::new(MOUNT_POINT);
    if has_entries(at) || has_entries(Path::new("/sys/kernel/debug/tracing")) {
        return Ok(());
    }
    if !at.is_dir() {
        return Err(format!(
            "{MOUNT_POINT} does not exist (kernel without tracefs?)"
        ));
    }
    let (src, target, fstype) = (
        CString::new("nodev").unwrap_or_default(),
        CString::new(MOUNT_POINT).unwrap_or_default(),
        CString::new("tracefs").unwrap_or_default(),
    );
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "tracefs is not mounted and mounting it at {MOUNT_POINT} failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    tracing::info!(
        path = MOUNT_POINT,
        "mounted tracefs for the stdout/stderr tap"
    );
    Ok(())
}
