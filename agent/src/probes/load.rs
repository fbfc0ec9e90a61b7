//! Loading the probes: resolve offsets, create the maps, load and attach each
//! probe's programs. A probe that fails is reported with its reason and left off;
//! the others and the host metrics carry on (degrade, never die).

use std::{os::fd::OwnedFd, path::Path};

use anyhow::{Context, Result, anyhow};
use aya::{Btf, Ebpf, EbpfLoader, programs::BtfTracePoint};
use tracing::{info, warn};

use super::{maps::Maps, object, offsets};
use crate::config::{Config, Probe};

/// Why the http probe is off while spans are.
const HTTP_NEEDS_SPANS: &str = "the http probe needs spans on (--spans, on by default with --collector): its spans go to the collector";

/// The programs of each probe. Each program is named after its BTF tracepoint.
pub fn programs(probe: Probe) -> &'static [&'static str] {
    match probe {
        Probe::Runqueue => &["sched_wakeup", "sched_wakeup_new", "sched_switch"],
        Probe::Oom => &["mark_victim"],
        Probe::Tcp => &[
            "tcp_retransmit_skb",
            "tcp_send_reset",
            "inet_sock_set_state",
        ],
        Probe::Blockio => &["block_bio_queue", "block_rq_issue", "block_rq_complete"],
        // Classic syscall tracepoints, attached through tracefs (`super::http`).
        Probe::Http => super::http::PROGRAMS,
    }
}

#[derive(Clone, Debug)]
pub struct ProbeStatus {
    pub probe: Probe,
    pub up: bool,
    /// Why the probe is off; empty when it is up.
    pub reason: String,
}

/// Everything loaded. Dropping it detaches and unloads the programs.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub maps: Maps,
    /// Keeps `kernel.bpf_stats_enabled` on while the agent runs (off again on drop).
    pub stats: Option<OwnedFd>,
    /// The stdout/stderr tap, when configured and attached; taken by the log path.
    pub stdio: Option<super::stdio::StdioTap>,
    /// The http probe's maps, when it is up; taken by its span builder.
    pub http: Option<super::http::HttpProbe>,
}

/// Loads the configured probes. Returns what loaded (if anything) and every probe's status.
pub fn load(cfg: &Config) -> (Option<Loaded>, Vec<ProbeStatus>) {
    let wanted = |p: &Probe| cfg.probes.contains(p);
    let mut status: Vec<ProbeStatus> = Probe::ALL
        .iter()
        .map(|&probe| ProbeStatus {
            probe,
            up: false,
            reason: "disabled by configuration".into(),
        })
        .collect();
    let tap = cfg.logs.as_ref().is_some_and(|l| l.tap);
    if cfg.probes.is_empty() && !tap {
        return (None, status);
    }
    let (mut loaded, btf) = match load_object(cfg) {
        Ok(l) => l,
        Err(e) => {
            let reason = concise(&e);
            if tap {
                warn!(reason = %reason, "the stdout/stderr tap is off");
            }
            for s in status.iter_mut().filter(|s| wanted(&s.probe)) {
                s.reason = reason.clone();
            }
            return (None, status);
        }
    };
    for s in status.iter_mut().filter(|s| wanted(&s.probe)) {
        let attached = match s.probe {
            Probe::Http if cfg.spans.is_none() => Err(anyhow!(HTTP_NEEDS_SPANS)),
            Probe::Http => super::http::attach(&mut loaded.ebpf).map(|h| loaded.http = Some(h)),
            probe => attach(&mut loaded.ebpf, &btf, probe),
        };
        match attached {
            Ok(()) => {
                s.up = true;
                s.reason.clear();
            }
            Err(e) => s.reason = concise(&e),
        }
    }
    if tap {
        match super::stdio::attach(&mut loaded.ebpf) {
            Ok(t) => loaded.stdio = Some(t),
            Err(e) => warn!(reason = %concise(&e), "the stdout/stderr tap is off"),
        }
    }
    drop(btf);
    release_freed_memory();
    loaded.stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            warn!(error = %e, "cannot turn on kernel BPF run-time stats; probe cost will read 0");
            None
        }
    };
    (Some(loaded), status)
}

/// Creates the maps and readies the programs; also returns the parsed kernel BTF,
/// which attaching needs (it is several MB: parse it once).
fn load_object(cfg: &Config) -> Result<(Loaded, Btf)> {
    if !object::embedded() {
        return Err(anyhow!(
            "this sonde-agent was built without its eBPF object (run `cargo xtask build-ebpf`, then build again)"
        ));
    }
    let offsets = offsets::resolve(Path::new(offsets::VMLINUX_BTF))?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF from /sys/kernel/btf/vmlinux")?;
    raise_memlock_limit();
    let n = cfg.max_cgroups;
    let mut loader = EbpfLoader::new();
    if !(cfg.probes.contains(&Probe::Http) && cfg.spans.is_some()) {
        // Off: its ring buffer and tables at their smallest (the object creates every map).
        loader
            .map_max_entries("HTTP_EVENTS", 4096)
            .map_max_entries("HTTP_CONNS", 1)
            .map_max_entries("HTTP_REQUESTS", 1);
    }
    let mut ebpf = loader
        .btf(Some(&btf))
        // RUNQ_START is task-local storage, which aya has no userspace type for; the
        // agent never reads it from userspace.
        .allow_unsupported_maps()
        .override_global("OFFSETS", &offsets, true)
        .override_global("STDIO_SKIP_TGID", &std::process::id(), true)
        .map_max_entries("RUNQ_HIST", n)
        .map_max_entries("CONNECT_HIST", n)
        .map_max_entries("CGROUP_COUNTERS", n)
        .map_max_entries("CGROUP_IO", n)
        .load(object::OBJECT)
        .context("loading the eBPF object (needs root, or CAP_BPF with CAP_PERFMON)")?;
    let maps = Maps::take(&mut ebpf)?;
    Ok((
        Loaded {
            ebpf,
            maps,
            stats: None,
            stdio: None,
            http: None,
        },
        btf,
    ))
}

fn attach(ebpf: &mut Ebpf, btf: &Btf, probe: Probe) -> Result<()> {
    let names = programs(probe);
    for (i, name) in names.iter().enumerate() {
        let result = (|| -> Result<()> {
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} is missing from the eBPF object"))?
                .try_into()?;
            prog.load(name, btf)
                .with_context(|| format!("loading {name}"))?;
            prog.attach().with_context(|| format!("attaching {name}"))?;
            Ok(())
        })();
        if let Err(e) = result {
            // Leave nothing of a half-attached probe behind.
            for done in &names[..=i] {
                if let Some(p) = ebpf
                    .program_mut(done)
                    .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
                {
                    let _ = p.unload();
                }
            }
            return Err(e);
        }
    }
    info!(probe = %probe, programs = ?names, "probe attached");
    Ok(())
}

/// The error chain on one line. A verifier rejection carries the whole verifier log:
/// that goes to the debug log, and the reason keeps only what went wrong.
fn concise(e: &anyhow::Error) -> String {
    // aya repeats a cause in its own message ("failed to create map X: failed to
    // create map X: ..."); say each part once.
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        for part in cause.to_string().split(": ") {
            if !parts.iter().any(|p| p == part) {
                parts.push(part.to_string());
            }
        }
    }
    let full = parts.join(": ");
    match full.split_once(" Verifier output:") {
        Some((head, log)) => {
            tracing::debug!(verifier_log = %log, "verifier rejected a program");
            let last = log.lines().rev().find(|l| {
                let l = l.trim();
                !l.is_empty()
                    && !l.starts_with("verification time")
                    && !l.starts_with("processed ")
                    && !l.starts_with("stack depth")
                    && !l.starts_with(':')
            });
            format!("{head} Verifier: {}", last.unwrap_or("").trim())
        }
        None => full.replace('\n', " "),
    }
}

/// Loading parses the kernel's BTF (several MB, twice: ours and aya's). It is all
/// freed by now, but glibc keeps freed heap mapped; hand it back so the agent's
/// resident memory reflects what it uses while running, not its start-up peak.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones ignore it.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11");
    }
}
