//! A generator of node_exporter-like data for tests and benchmarks:
//! counters with random increments, gauges doing random walks at realistic
//! precision (pages, centi-units, nanosecond durations), constant series,
//! and scrape timestamps with a few milliseconds of jitter on half the nodes.

use crate::model::{Labels, Sample, TimeSeries};

/// Deterministic SplitMix64 so generated data is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How one generated series evolves.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Counter growing by `rate` per scrape ± noise, rounded to `decimals`.
    Counter {
        rate: f64,
        decimals: i32,
    },
    /// Counter that rarely moves (errors, drops).
    Rare,
    /// Random walk with steps of `quantum`, up to `max_steps` per scrape.
    Walk {
        quantum: f64,
        max_steps: i64,
    },
    /// Fresh noisy value each scrape with `decimals` digits (durations).
    Noise {
        scale: f64,
        decimals: i32,
    },
    Constant,
}

struct GenSeries {
    labels: Labels,
    kind: Kind,
    value: f64,
}

fn round(v: f64, decimals: i32) -> f64 {
    // Through text, like a scrape: the stored float is the one a parser makes.
    format!("{v:.*}", decimals.max(0) as usize)
        .parse()
        .unwrap_or(v)
}

/// node_exporter-like series for `nodes` instances (about 300 per node).
pub fn node_exporter_series(nodes: usize, rng: &mut Rng) -> Vec<(Labels, Kind, f64)> {
    let mut out = Vec::new();
    for n in 0..nodes {
        let inst = format!("node-{n}:9100");
        let mut add = |name: &str, extra: &[(&str, &str)], kind: Kind, start: f64| {
            let mut pairs = vec![
                ("__name__".to_string(), name.to_string()),
                ("instance".into(), inst.clone()),
                ("job".into(), "node".into()),
            ];
            pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            out.push((Labels::new(pairs), kind, start));
        };
        let modes = [
            "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
        ];
        for cpu in 0..8 {
            for (i, mode) in modes.iter().enumerate() {
                let rate = [12.0, 2.0, 0.8, 0.1, 0.0, 0.05, 0.0, 0.01][i];
                let c = cpu.to_string();
                add(
                    "node_cpu_seconds_total",
                    &[("cpu", &c), ("mode", mode)],
                    Kind::Counter { rate, decimals: 2 },
                    100_000.0 * (i + 1) as f64,
                );
            }
        }
        for dev in ["eth0", "lo", "docker0", "veth12ab"] {
            for dir in ["receive", "transmit"] {
                add(
                    &format!("node_network_{dir}_bytes_total"),
                    &[("device", dev)],
                    Kind::Counter {
                        rate: 150_000.0,
                        decimals: 0,
                    },
                    1e10,
                );
                add(
                    &format!("node_network_{dir}_packets_total"),
                    &[("device", dev)],
                    Kind::Counter {
                        rate: 200.0,
                        decimals: 0,
                    },
                    1e7,
                );
                add(
                    &format!("node_network_{dir}_errs_total"),
                    &[("device", dev)],
                    Kind::Rare,
                    0.0,
                );
                add(
                    &format!("node_network_{dir}_drop_total"),
                    &[("device", dev)],
                    Kind::Rare,
                    3.0,
                );
                add(
                    &format!("node_network_{dir}_fifo_total"),
                    &[("device", dev)],
                    Kind::Constant,
                    0.0,
                );
            }
            add(
                "node_network_mtu_bytes",
                &[("device", dev)],
                Kind::Constant,
                1500.0,
            );
            add("node_network_up", &[("device", dev)], Kind::Constant, 1.0);
        }
        for dev in ["sda", "sdb", "nvme0n1"] {
            add(
                "node_disk_reads_completed_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 30.0,
                    decimals: 0,
                },
                1e6,
            );
            add(
                "node_disk_writes_completed_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 80.0,
                    decimals: 0,
                },
                3e6,
            );
            add(
                "node_disk_read_bytes_total",
                &[("device", dev)],
                Kind::Walk {
                    quantum: 512.0,
                    max_steps: 0,
                },
                0.0,
            );
            add(
                "node_disk_written_bytes_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 400_000.0,
                    decimals: 0,
                },
                4e10,
            );
            add(
                "node_disk_io_time_seconds_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 1.5,
                    decimals: 3,
                },
                5e4,
            );
            add(
                "node_disk_read_time_seconds_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 0.3,
                    decimals: 3,
                },
                1e4,
            );
            add(
                "node_disk_write_time_seconds_total",
                &[("device", dev)],
                Kind::Counter {
                    rate: 2.0,
                    decimals: 3,
                },
                2e4,
            );
            add(
                "node_disk_io_now",
                &[("device", dev)],
                Kind::Walk {
                    quantum: 1.0,
                    max_steps: 1,
                },
                0.0,
            );
        }
        for (i, m) in [
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "Active",
            "Inactive",
            "Dirty",
            "Writeback",
            "AnonPages",
            "Mapped",
            "Shmem",
            "Slab",
            "SReclaimable",
            "SUnreclaim",
            "KernelStack",
            "PageTables",
            "Committed_AS",
            "VmallocUsed",
            "AnonHugePages",
            "Active_anon",
        ]
        .iter()
        .enumerate()
        {
            add(
                &format!("node_memory_{m}_bytes"),
                &[],
                Kind::Walk {
                    quantum: 4096.0,
                    max_steps: [500, 50, 5][i % 3],
                },
                4096.0 * 1_000_000.0,
            );
        }
        for m in [
            "MemTotal",
            "SwapTotal",
            "SwapFree",
            "HugePages_Total",
            "Hugepagesize",
            "VmallocTotal",
            "CmaTotal",
            "DirectMap4k",
            "DirectMap2M",
            "DirectMap1G",
            "Mlocked",
            "Unevictable",
            "Bounce",
            "NFS_Unstable",
            "WritebackTmp",
            "HardwareCorrupted",
            "HugePages_Free",
            "HugePages_Rsvd",
            "HugePages_Surp",
            "CmaFree",
        ] {
            add(
                &format!("node_memory_{m}_bytes"),
                &[],
                Kind::Constant,
                16_777_216_000.0,
            );
        }
        for mp in ["/", "/boot", "/var", "/home", "/data"] {
            add(
                "node_filesystem_size_bytes",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Constant,
                1e11,
            );
            add(
                "node_filesystem_avail_bytes",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Walk {
                    quantum: 4096.0,
                    max_steps: 20,
                },
                4096.0 * 1e7,
            );
            add(
                "node_filesystem_free_bytes",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Walk {
                    quantum: 4096.0,
                    max_steps: 20,
                },
                4096.0 * 1.1e7,
            );
            add(
                "node_filesystem_files",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Constant,
                6_553_600.0,
            );
            add(
                "node_filesystem_files_free",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Walk {
                    quantum: 1.0,
                    max_steps: 3,
                },
                6_000_000.0,
            );
            add(
                "node_filesystem_readonly",
                &[("mountpoint", mp), ("fstype", "ext4")],
                Kind::Constant,
                0.0,
            );
        }
        for l in ["node_load1", "node_load5", "node_load15"] {
            add(
                l,
                &[],
                Kind::Walk {
                    quantum: 0.01,
                    max_steps: 30,
                },
                2.0,
            );
        }
        for s in 0..8 {
            let c = format!("temp{s}");
            add(
                "node_hwmon_temp_celsius",
                &[("chip", "coretemp"), ("sensor", &c)],
                Kind::Walk {
                    quantum: 1.0,
                    max_steps: 1,
                },
                45.0,
            );
        }
        for (i, v) in [
            "pgfault",
            "pgmajfault",
            "pgpgin",
            "pgpgout",
            "pswpin",
            "pswpout",
            "oom_kill",
            "pgsteal_direct",
            "pgscan_kswapd",
            "numa_hit",
            "numa_miss",
            "thp_fault_alloc",
        ]
        .iter()
        .enumerate()
        {
            let kind = if i % 4 == 3 {
                Kind::Rare
            } else {
                Kind::Counter {
                    rate: [5000.0, 3.0, 800.0][i % 3],
                    decimals: 0,
                }
            };
            add(&format!("node_vmstat_{v}"), &[], kind, 1e8);
        }
        for c in [
            "arp",
            "bcache",
            "bonding",
            "btrfs",
            "conntrack",
            "cpu",
            "cpufreq",
            "diskstats",
            "edac",
            "entropy",
            "filefd",
            "filesystem",
            "hwmon",
            "infiniband",
            "ipvs",
            "loadavg",
            "mdadm",
            "meminfo",
            "netclass",
            "netdev",
            "netstat",
            "nfs",
            "nvme",
            "os",
            "powersupply",
            "pressure",
            "rapl",
            "schedstat",
            "sockstat",
            "softnet",
            "stat",
            "textfile",
            "thermal_zone",
            "time",
            "timex",
            "udp_queues",
            "uname",
            "vmstat",
            "xfs",
            "zfs",
        ] {
            add(
                "node_scrape_collector_success",
                &[("collector", c)],
                Kind::Constant,
                1.0,
            );
            add(
                "node_scrape_collector_duration_seconds",
                &[("collector", c)],
                Kind::Noise {
                    scale: 0.002,
                    decimals: 9,
                },
                0.0,
            );
        }
        for g in [
            "go_goroutines",
            "go_threads",
            "go_memstats_alloc_bytes",
            "go_memstats_heap_inuse_bytes",
            "go_memstats_heap_objects",
            "go_memstats_sys_bytes",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            add(
                g,
                &[],
                Kind::Walk {
                    quantum: 1.0,
                    max_steps: 2000,
                },
                1e6,
            );
        }
        for q in ["0", "0.25", "0.5", "0.75", "1"] {
            add(
                "go_gc_duration_seconds",
                &[("quantile", q)],
                Kind::Noise {
                    scale: 0.0005,
                    decimals: 9,
                },
                0.0,
            );
        }
        add(
            "go_memstats_alloc_bytes_total",
            &[],
            Kind::Counter {
                rate: 3e6,
                decimals: 0,
            },
            1e9,
        );
        add(
            "process_cpu_seconds_total",
            &[],
            Kind::Counter {
                rate: 0.15,
                decimals: 2,
            },
            1e3,
        );
        add(
            "node_uname_info",
            &[("release", "6.18.0"), ("machine", "x86_64")],
            Kind::Constant,
            1.0,
        );
        add("node_boot_time_seconds", &[], Kind::Constant, 1.7e9);
        add(
            "node_time_seconds",
            &[],
            Kind::Counter {
                rate: 15.0,
                decimals: 3,
            },
            1.7e9,
        );
        add("up", &[], Kind::Constant, 1.0);
    }
    let _ = rng.next();
    out
}

/// Generates `steps` scrapes, 15s apart, of node_exporter-like data: one
/// batch per scrape. Half the nodes scrape with a few ms of jitter.
pub fn node_exporter_batches(
    nodes: usize,
    steps: usize,
    start_ms: i64,
    seed: u64,
) -> Vec<Vec<TimeSeries>> {
    let mut rng = Rng::new(seed);
    let mut series: Vec<GenSeries> = node_exporter_series(nodes, &mut rng)
        .into_iter()
        .map(|(labels, kind, value)| GenSeries {
            labels,
            kind,
            value,
        })
        .collect();
    let mut batches = Vec::with_capacity(steps);
    for step in 0..steps {
        let mut batch = Vec::with_capacity(series.len());
        for s in &mut series {
            let node: i64 = s
                .labels
                .get("instance")
                .and_then(|i| {
                    i.trim_start_matches("node-")
                        .split(':')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            let jitter = if node % 2 == 1 {
                rng.below(5) as i64 - 2
            } else {
                0
            };
            let t = start_ms + node * 137 + step as i64 * 15_000 + jitter;
            s.value = match s.kind {
                Kind::Counter { rate, decimals } => {
                    round(s.value + rate * (0.5 + rng.unit()), decimals)
                }
                Kind::Rare => s.value + if rng.below(50) == 0 { 1.0 } else { 0.0 },
                Kind::Walk { quantum, max_steps } => {
                    let steps = rng.below(2 * max_steps as u64 + 1) as i64 - max_steps;
                    let q = if quantum == 1.0 || quantum >= 512.0 {
                        0
                    } else {
                        2
                    };
                    round((s.value + steps as f64 * quantum).max(0.0), q)
                }
                Kind::Noise { scale, decimals } => round(scale * (0.2 + rng.unit()), decimals),
                Kind::Constant => s.value,
            };
            batch.push(TimeSeries {
                labels: s.labels.clone(),
                samples: vec![Sample { t, v: s.value }],
            });
        }
        batches.push(batch);
    }
    batches
}
