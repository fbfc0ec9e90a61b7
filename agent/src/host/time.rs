//! `time`: the system clock, the local time zone's offset, and the kernel's clock
//! sources from /sys/devices/system/clocksource.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, read};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Time;

impl Collect for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        families::gauge(
            enc,
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            [(NO_LABELS, now.as_nanos() as f64 / 1e9)],
        )?;
        let (zone, offset) = local_zone(now.as_secs() as libc::time_t);
        families::gauge(
            enc,
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            [([("time_zone", zone.as_str())], offset)],
        )?;

        // Served after the clock, as node_exporter does: a missing sysfs still
        // leaves the time above.
        let sources = clocksources(src)?;
        families::gauge(
            enc,
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            sources.iter().flat_map(|(device, available, _)| {
                available
                    .split_ascii_whitespace()
                    .map(move |cs| ([("device", device.as_str()), ("clocksource", cs)], 1.0))
            }),
        )?;
        families::gauge(
            enc,
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            sources.iter().map(|(device, _, current)| {
                (
                    [("device", device.as_str()), ("clocksource", current.trim())],
                    1.0,
                )
            }),
        )?;
        Ok(())
    }
}

/// The zone's abbreviation ("UTC", "CET") and its offset east of UTC, from the C
/// library's view of TZ and /etc/localtime, as Go's `time.Now().Zone()` gives.
fn local_zone(now: libc::time_t) -> (String, f64) {
    // SAFETY: an all-zero tm is valid for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() || tm.tm_zone.is_null() {
        return ("UTC".into(), 0.0);
    }
    // SAFETY: tm_zone points to a NUL-terminated string owned by the C library.
    let zone = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned();
    (zone, tm.tm_gmtoff as f64)
}

/// `(device, available, current)` per clocksourceN directory, numbered by their
/// sorted order as node_exporter numbers them.
fn clocksources(src: &Sources) -> Result<Vec<(String, String, String)>, Error> {
    let dir = src.sys_path("devices/system/clocksource");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("clocksource")
                .is_some_and(|d| d.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    names.sort();
    let mut sources = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let available = read(&dir.join(name).join("available_clocksource"))?;
        let current = read(&dir.join(name).join("current_clocksource"))?;
        sources.push((i.to_string(), available, current));
    }
    Ok(sources)
}
