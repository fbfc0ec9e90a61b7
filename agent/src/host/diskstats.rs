//! `diskstats`: per-device I/O counters from /proc/diskstats as `node_disk_*{device}`,
//! skipping partitions, ram, loop and floppy devices (node_exporter 1.5's default
//! `--collector.diskstats.device-exclude`), plus `node_disk_info` and the ATA and
//! device-mapper families from the udev database.
//!
//! Each line is parsed by procfs's `DiskStat`.

use procfs::DiskStat;
use prometheus_client::encoding::DescriptorEncoder;

use super::{
    source::{Collect, Error, Sources},
    udev::Properties,
};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Diskstats;

struct Disk {
    stat: DiskStat,
    major: String,
    minor: String,
    udev: Properties,
}

/// One `node_disk_*` family drawn from /proc/diskstats. `value` is `None` when the
/// kernel is too old to write the column (discards: 4.18, flushes: 5.5).
struct Column {
    name: &'static str,
    help: &'static str,
    counter: bool,
    value: fn(&DiskStat) -> Option<f64>,
}

const SECTOR_BYTES: f64 = 512.0;
/// The kernel counts time in milliseconds; node_exporter multiplies by this.
const SECONDS_PER_MS: f64 = 1.0 / 1000.0;

#[rustfmt::skip]
const COLUMNS: [Column; 17] = [
    Column { name: "node_disk_reads_completed", help: "The total number of reads completed successfully.", counter: true, value: |d| Some(d.reads as f64) },
    Column { name: "node_disk_reads_merged", help: "The total number of reads merged.", counter: true, value: |d| Some(d.merged as f64) },
    Column { name: "node_disk_read_bytes", help: "The total number of bytes read successfully.", counter: true, value: |d| Some(d.sectors_read as f64 * SECTOR_BYTES) },
    Column { name: "node_disk_read_time_seconds", help: "The total number of seconds spent by all reads.", counter: true, value: |d| Some(d.time_reading as f64 * SECONDS_PER_MS) },
    Column { name: "node_disk_writes_completed", help: "The total number of writes completed successfully.", counter: true, value: |d| Some(d.writes as f64) },
    Column { name: "node_disk_writes_merged", help: "The number of writes merged.", counter: true, value: |d| Some(d.writes_merged as f64) },
    Column { name: "node_disk_written_bytes", help: "The total number of bytes written successfully.", counter: true, value: |d| Some(d.sectors_written as f64 * SECTOR_BYTES) },
    Column { name: "node_disk_write_time_seconds", help: "This is the total number of seconds spent by all writes.", counter: true, value: |d| Some(d.time_writing as f64 * SECONDS_PER_MS) },
    Column { name: "node_disk_io_now", help: "The number of I/Os currently in progress.", counter: false, value: |d| Some(d.in_progress as f64) },
    Column { name: "node_disk_io_time_seconds", help: "Total seconds spent doing I/Os.", counter: true, value: |d| Some(d.time_in_progress as f64 * SECONDS_PER_MS) },
    Column { name: "node_disk_io_time_weighted_seconds", help: "The weighted # of seconds spent doing I/Os.", counter: true, value: |d| Some(d.weighted_time_in_progress as f64 * SECONDS_PER_MS) },
    Column { name: "node_disk_discards_completed", help: "The total number of discards completed successfully.", counter: true, value: |d| d.discards.map(|v| v as f64) },
    Column { name: "node_disk_discards_merged", help: "The total number of discards merged.", counter: true, value: |d| d.discards_merged.map(|v| v as f64) },
    Column { name: "node_disk_discarded_sectors", help: "The total number of sectors discarded successfully.", counter: true, value: |d| d.sectors_discarded.map(|v| v as f64) },
    Column { name: "node_disk_discard_time_seconds", help: "This is the total number of seconds spent by all discards.", counter: true, value: |d| d.time_discarding.map(|v| v as f64 * SECONDS_PER_MS) },
    Column { name: "node_disk_flush_requests", help: "The total number of flush requests completed successfully", counter: true, value: |d| d.flushes.map(|v| v as f64) },
    Column { name: "node_disk_flush_requests_time_seconds", help: "This is the total number of seconds spent by all flush requests.", counter: true, value: |d| d.time_flushing.map(|v| v as f64 * SECONDS_PER_MS) },
];

/// udev properties served as `node_disk_ata_*` gauges when a disk has `ID_ATA`.
const ATA: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

impl Collect for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let text = src.proc("diskstats")?;
        let mut disks = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let stat = DiskStat::from_line(line)
                .map_err(|e| Error::parse(format!("/proc/diskstats: bad line {line:?}: {e}")))?;
            if excluded(&stat.name) || disks.iter().any(|d: &Disk| d.stat.name == stat.name) {
                continue;
            }
            let udev = Properties::read(src.rootfs(), stat.major, stat.minor);
            disks.push(Disk {
                major: stat.major.to_string(),
                minor: stat.minor.to_string(),
                stat,
                udev,
            });
        }

        families::gauge(
            enc,
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            disks.iter().map(|d| {
                let u = &d.udev;
                let labels = [
                    ("device", d.stat.name.as_str()),
                    ("major", &d.major),
                    ("minor", &d.minor),
                    ("path", u.label("ID_PATH")),
                    ("wwn", u.label("ID_WWN")),
                    ("model", u.label("ID_MODEL")),
                    ("serial", u.serial()),
                    ("revision", u.label("ID_REVISION")),
                ];
                (labels, 1.0)
            }),
        )?;
        for c in &COLUMNS {
            let samples = disks
                .iter()
                .filter_map(|d| Some(([("device", d.stat.name.as_str())], (c.value)(&d.stat)?)));
            if c.counter {
                families::counter(enc, c.name, c.help, samples)?;
            } else {
                families::gauge(enc, c.name, c.help, samples)?;
            }
        }
        for (key, name, help) in ATA {
            let samples = disks
                .iter()
                .filter(|d| d.udev.get("ID_ATA").is_some())
                .filter_map(|d| {
                    // node_exporter skips (and logs) a value it cannot parse.
                    Some((
                        [("device", d.stat.name.as_str())],
                        d.udev.get(key)?.parse::<f64>().ok()?,
                    ))
                });
            families::gauge(enc, name, help, samples)?;
        }
        families::gauge(
            enc,
            "node_disk_device_mapper_info",
            "Info about disk device mapper.",
            disks
                .iter()
                .filter(|d| !d.udev.label("DM_NAME").is_empty())
                .map(|d| {
                    let u = &d.udev;
                    let labels = [
                        ("device", d.stat.name.as_str()),
                        ("name", u.label("DM_NAME")),
                        ("uuid", u.label("DM_UUID")),
                        ("vg_name", u.label("DM_VG_NAME")),
                        ("lv_name", u.label("DM_LV_NAME")),
                        ("lv_layer", u.label("DM_LV_LAYER")),
                    ];
                    (labels, 1.0)
                }),
        )?;
        Ok(())
    }
}

/// node_exporter 1.5's default `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`:
/// every alternative ends in a non-digit, so the trailing digits are the `\d+`.
fn excluded(device: &str) -> bool {
    let stem = device.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == device.len() {
        return false;
    }
    let sd_like = |s: &str| {
        let b = s.as_bytes();
        b.len() == 3
            && matches!(b[0], b'h' | b's' | b'v')
            && b[1] == b'd'
            && b[2].is_ascii_lowercase()
    };
    let nvme_partition = |s: &str| {
        let Some(rest) = s.strip_prefix("nvme").and_then(|r| r.strip_suffix('p')) else {
            return false;
        };
        let Some((ctrl, ns)) = rest.split_once('n') else {
            return false;
        };
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        digits(ctrl) && digits(ns)
    };
    matches!(stem, "ram" | "loop" | "fd")
        || sd_like(stem)
        || stem
            .strip_prefix('x')
            .is_some_and(|s| s.starts_with("vd") && sd_like(s))
        || nvme_partition(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_like_node_exporter() {
        for dev in [
            "ram0",
            "loop12",
            "fd0",
            "sda1",
            "hdb2",
            "vda1",
            "xvda3",
            "nvme0n1p2",
            "nvme10n11p3",
        ] {
            assert!(excluded(dev), "{dev} must be excluded");
        }
        for dev in [
            "sda",
            "vda",
            "xvda",
            "nvme0n1",
            "zram0",
            "dm-0",
            "md127",
            "sdaa1",
            "nvme0n1p",
            "mmcblk0p1",
            "loop",
            "xsda1",
        ] {
            assert!(!excluded(dev), "{dev} must be kept");
        }
    }

    #[test]
    fn columns_follow_the_kernel_version() {
        let old = DiskStat::from_line("   8       0 sda 10 1 8 4 20 2 16 6 0 9 10").unwrap();
        let new = DiskStat::from_line(" 254       0 vda 32652 7373 4019562 15026 13797 22206 4257496 15529 0 9204 31157 6407 41 754800 538 1314 62").unwrap();
        let served = |d: &DiskStat| COLUMNS.iter().filter_map(|c| (c.value)(d)).count();
        assert_eq!(served(&old), 11);
        assert_eq!(served(&new), 17);
        assert_eq!((COLUMNS[2].value)(&new), Some(4019562.0 * 512.0));
        assert_eq!((COLUMNS[3].value)(&new), Some(15.026));
        assert_eq!((COLUMNS[16].value)(&new), Some(0.062));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["8 0", "8 0 sda x 1 2 3 4 5 6 7 8 9 10", "x y z"] {
            assert!(DiskStat::from_line(bad).is_err(), "{bad:?}");
        }
    }
}
