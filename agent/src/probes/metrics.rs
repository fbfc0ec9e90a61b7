//! The probes on /metrics: their state, what they lost, what they cost, and the
//! kernel metrics themselves from the latest reading.

use std::fmt;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use sonde_probe_abi::Loss;

use super::{blockio, load::ProbeStatus, oom, reader::Latest, runqueue, tcp};
use crate::export::families;

#[derive(Debug)]
pub struct ProbeMetrics {
    pub status: Vec<ProbeStatus>,
    pub stats_enabled: bool,
    pub latest: Latest,
}

impl Collector for ProbeMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        families::gauge(
            &mut enc,
            "sonde_probe_up",
            "Whether an eBPF probe is loaded and attached (1) or off (0; the log says why).",
            self.status.iter().map(|s| {
                (
                    crate::labels!("probe" => s.probe.name()),
                    if s.up { 1.0 } else { 0.0 },
                )
            }),
        )?;
        families::gauge(
            &mut enc,
            "sonde_bpf_stats_enabled",
            "Whether the kernel is keeping BPF run-time stats for the probes' cost metrics.",
            [(
                families::Labels::new(),
                if self.stats_enabled { 1.0 } else { 0.0 },
            )],
        )?;
        if self
            .status
            .iter()
            .any(|s| s.probe == crate::config::Probe::Http && s.up)
        {
            super::http::encode(&mut enc)?;
        }
        let Some(r) = self.latest.read().unwrap().clone() else {
            return Ok(());
        };
        families::counter(
            &mut enc,
            "sonde_probe_events_lost",
            "Kernel events the probes could not record, by probe and reason.",
            Loss::ALL.iter().map(|l| {
                let (probe, reason) = l.labels();
                (
                    crate::labels!("probe" => probe, "reason" => reason),
                    r.snapshot.lost[*l as usize] as f64,
                )
            }),
        )?;
        families::counter(
            &mut enc,
            "sonde_bpf_program_run_seconds",
            "Time the kernel spent running each eBPF program.",
            r.costs.iter().map(|c| {
                (
                    crate::labels!("probe" => c.probe.name(), "program" => c.program),
                    c.run_ns as f64 / 1e9,
                )
            }),
        )?;
        families::counter(
            &mut enc,
            "sonde_bpf_program_runs",
            "Times the kernel ran each eBPF program.",
            r.costs.iter().map(|c| {
                (
                    crate::labels!("probe" => c.probe.name(), "program" => c.program),
                    c.runs as f64,
                )
            }),
        )?;
        families::gauge(
            &mut enc,
            "sonde_probe_read_duration_seconds",
            "How long the agent's last read of the probes' kernel maps took.",
            [(families::Labels::new(), r.took.as_secs_f64())],
        )?;
        runqueue::encode(&mut enc, &r)?;
        oom::encode(&mut enc, &r)?;
        tcp::encode(&mut enc, &r)?;
        blockio::encode(&mut enc, &r)?;
        Ok(())
    }
}
