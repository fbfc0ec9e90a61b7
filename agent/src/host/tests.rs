//! The host collectors end to end, on a scratch directory standing in for the
//! host: what they serve from good sources, and that a missing source fails only
//! its own collector.

use std::{collections::HashSet, fs, path::PathBuf};

use prometheus_client::{encoding::text::encode, registry::Registry};

use super::{HostPaths, collectors};

/// A scratch directory standing in for the host's /proc, /sys and /.
struct FakeHost(PathBuf);

impl FakeHost {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sonde-host-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        FakeHost(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn scrape(&self) -> String {
        let paths = HostPaths {
            procfs: self.0.join("proc"),
            sysfs: self.0.join("sys"),
            rootfs: self.0.clone(),
        };
        let mut registry = Registry::default();
        for c in collectors(&paths) {
            registry.register_collector(c);
        }
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn success(text: &str, collector: &str) -> bool {
    let line = format!("node_scrape_collector_success{{collector=\"{collector}\"}} ");
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line}"));
    value == "1.0"
}

fn assert_families_unique(text: &str) {
    let mut seen = HashSet::new();
    for name in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
    {
        assert!(seen.insert(name), "family {name} written twice");
    }
}

#[test]
fn missing_sources_fail_their_collector_not_the_scrape() {
    let host = FakeHost::new("empty");
    let text = host.scrape();
    let file_based = [
        "conntrack",
        "cpu",
        "diskstats",
        "filefd",
        "filesystem",
        "loadavg",
        "meminfo",
        "netdev",
        "netstat",
        "pressure",
        "stat",
        "time",
        "vmstat",
    ];
    for c in file_based {
        assert!(!success(&text, c), "{c} has no source");
    }
    // Neither needs a file: sockstat's files are optional, the rest are syscalls.
    for c in ["sockstat", "uname", "timex", "tcpstat"] {
        assert!(success(&text, c), "{c}");
    }
    assert!(text.contains("node_uname_info{"));
    assert!(
        text.contains("node_time_seconds"),
        "the clock is served even without sysfs"
    );
    assert!(text.contains("node_scrape_collector_duration_seconds{collector=\"cpu\"}"));
    assert_families_unique(&text);
}

#[test]
fn a_fake_host_is_read_from_its_paths() {
    let host = FakeHost::new("fixture");
    host.write("proc/stat", "cpu  1 2 3 4\ncpu0 100 0 50 1000 3 0 1 0 0 0\nintr 9 1\nctxt 5\nbtime 1700000000\nprocesses 7\nprocs_running 2\nprocs_blocked 0\n");
    host.write("proc/meminfo", "MemTotal: 1024 kB\nHugePages_Total: 3\n");
    host.write("proc/loadavg", "0.5 0.25 0.125 1/100 42\n");
    host.write("proc/vmstat", "pgfault 11\noom_kill 1\n");
    host.write(
        "proc/diskstats",
        "   8 0 sda 10 1 8 4 20 2 16 6 0 9 10\n   8 1 sda1 1 1 1 1 1 1 1 1 0 1 1\n",
    );
    host.write(
        "proc/net/dev",
        "h1\nh2\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    );
    host.write("proc/net/netstat", "TcpExt: ListenDrops\nTcpExt: 4\n");
    host.write("proc/net/snmp", "Tcp: ActiveOpens\nTcp: 6\n");
    host.write(
        "proc/net/sockstat",
        "sockets: used 3\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 2\n",
    );
    for r in ["cpu", "io", "memory"] {
        host.write(&format!("proc/pressure/{r}"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n");
    }
    let root = host.0.display();
    host.write(
        "proc/1/mounts",
        &format!("/dev/sda {root}/ ext4 rw 0 0\nproc {root}/proc proc rw 0 0\n/dev/sdb {root}/data xfs ro 0 0\n"),
    );
    host.write("data/file", "x");
    host.write(
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
        "tsc hpet\n",
    );
    host.write(
        "sys/devices/system/clocksource/clocksource0/current_clocksource",
        "tsc\n",
    );
    host.write("sys/class/net/eth0/statistics/rx_nohandler", "17\n");
    host.write("proc/sys/fs/file-nr", "477\t0\t1000\n");
    host.write("proc/sys/net/netfilter/nf_conntrack_count", "3\n");
    host.write("proc/sys/net/netfilter/nf_conntrack_max", "100\n");
    host.write(
        "proc/net/stat/nf_conntrack",
        "entries found invalid ignore insert insert_failed drop early_drop search_restart\n1 2 0 0 0 0 0 0 0\n",
    );
    host.write(
        "run/udev/data/b8:0",
        "E:ID_MODEL=Fake\nE:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=0\n",
    );

    let text = host.scrape();
    for c in [
        "conntrack",
        "cpu",
        "diskstats",
        "filefd",
        "filesystem",
        "loadavg",
        "meminfo",
        "netdev",
        "netstat",
        "pressure",
        "sockstat",
        "stat",
        "time",
        "vmstat",
    ] {
        assert!(success(&text, c), "{c}:\n{text}");
    }
    for sample in [
        "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1.0",
        "node_boot_time_seconds{} 1700000000.0",
        "node_memory_MemTotal_bytes{} 1048576.0",
        "node_memory_HugePages_Total{} 3.0",
        "node_load15{} 0.125",
        "node_vmstat_oom_kill{} 1.0",
        "node_filefd_maximum{} 1000.0",
        "node_nf_conntrack_entries_limit{} 100.0",
        "node_nf_conntrack_stat_found{} 2.0",
        "node_disk_reads_completed_total{device=\"sda\"} 10.0",
        "node_disk_info{device=\"sda\",major=\"8\",minor=\"0\",path=\"\",wwn=\"\",model=\"Fake\",serial=\"\",revision=\"\"} 1.0",
        "node_disk_ata_rotation_rate_rpm{device=\"sda\"} 0.0",
        "node_network_transmit_compressed_total{device=\"eth0\"} 16.0",
        "node_network_receive_nohandler_total{device=\"eth0\"} 17.0",
        "node_netstat_TcpExt_ListenDrops{} 4.0",
        "node_sockstat_TCP_mem_bytes{}",
        "node_pressure_io_stalled_seconds_total{} 0.5",
        "node_filesystem_readonly{device=\"/dev/sdb\",mountpoint=\"/data\",fstype=\"xfs\"} 1.0",
        "node_filesystem_size_bytes{device=\"/dev/sda\",mountpoint=\"/\",fstype=\"ext4\"}",
        "node_time_clocksource_current_info{device=\"0\",clocksource=\"tsc\"} 1.0",
    ] {
        assert!(text.contains(sample), "missing {sample}:\n{text}");
    }
    assert!(!text.contains("sda1"), "partitions are excluded");
    assert!(!text.contains("mountpoint=\"/proc\""), "proc is excluded");
    assert_families_unique(&text);
}
