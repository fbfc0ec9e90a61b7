//! Node problem detection: sources find problems, the hub keeps the node's
//! conditions, and `export` reports them (Node status, Events, metrics, OTLP).
//!
//! - [`npd`] reads node-problem-detector's own monitor configs and applies their
//!   rules to the kernel log ([`kmsg`]), counts matches over time (NPD's
//!   log-counter) and runs custom plugins;
//! - [`health`] checks the kubelet, the container runtime, the clock, the root
//!   filesystem, disk and inode room, and pressure stall information;
//! - [`evidence`] raises problems from what the eBPF probes measure (OOM kills,
//!   TCP retransmits, block I/O and run-queue latency), naming the pods involved;
//! - [`problem`] is the vocabulary they share with the hub and the reporters.

pub mod evidence;
pub mod health;
pub mod hub;
pub mod kmsg;
pub mod npd;
pub mod oom_join;
pub mod problem;
pub mod start;
