//! Host metrics that node_exporter 1.5 dashboards read unchanged: the same family
//! names, types, label names, HELP texts and values, read from /proc and /sys at
//! scrape time.
//!
//! One file per node_exporter collector. They all run inside one [`runner::HostCollector`]
//! because node_exporter reports every collector in the same two families
//! (`node_scrape_collector_{success,duration_seconds}`), and a family may appear only
//! once in an exposition.
//!
//! Where we knowingly differ from node_exporter, the collector's doc comment says so.

use std::path::PathBuf;

use prometheus_client::collector::Collector;

mod conntrack;
mod cpu;
mod diskstats;
mod filefd;
mod filesystem;
mod loadavg;
mod meminfo;
mod mounts;
mod netdev;
mod netstat;
mod pressure;
mod runner;
mod sockdiag;
mod sockstat;
mod source;
mod stat;
mod statfs;
mod tcpstat;
#[cfg(test)]
mod tests;
mod time;
mod timex;
mod udev;
mod uname;
mod vmstat;

/// Where the host's filesystems are mounted. In a Kubernetes pod the host's /proc,
/// /sys and / are usually mounted at /host/proc, /host/sys and /host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
        }
    }
}

/// The host collectors, ready to register. Each reads its source on every scrape.
pub fn collectors(paths: &HostPaths) -> Vec<Box<dyn Collector>> {
    let host = runner::HostCollector::new(
        paths.clone(),
        vec![
            Box::new(conntrack::Conntrack),
            Box::new(cpu::Cpu::new()),
            Box::new(diskstats::Diskstats),
            Box::new(filefd::Filefd),
            Box::new(filesystem::Filesystem::new()),
            Box::new(loadavg::Loadavg),
            Box::new(meminfo::Meminfo),
            Box::new(netdev::Netdev),
            Box::new(netstat::Netstat),
            Box::new(pressure::Pressure),
            Box::new(sockstat::Sockstat::new()),
            Box::new(stat::Stat),
            Box::new(tcpstat::Tcpstat),
            Box::new(time::Time),
            Box::new(timex::Timex),
            Box::new(uname::Uname),
            Box::new(vmstat::Vmstat),
        ],
    );
    vec![Box::new(host)]
}
