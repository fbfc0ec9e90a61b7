//! cAdvisor-compatible per-container metrics (`container_cpu_usage_seconds_total`,
//! `container_memory_working_set_bytes`, ...) read from the cgroup files at scrape
//! time, with the labels the kubelet's `/metrics/cadvisor` has: `container`, `id`
//! (the cgroup path), `image`, `name` (the container ID), `namespace`, `pod`.
//!
//! What is served: every container cgroup below the kubelet's `kubepods` root, and
//! every pod-level cgroup (`container=""`, as cAdvisor has it), up to a cap.
//!
//! Where the numbers come from, file by file: the v2 file when the v2 tree has it,
//! else the v1 hierarchy's. Pure v2 hosts serve everything from v2. Hybrid hosts
//! have a v2 tree with no controllers (only `cgroup.procs`, the CPU totals in
//! `cpu.stat` and PSI) next to v1 hierarchies with the rest; the kubelet creates
//! each pod's cgroup at the same relative path in all of them. Which file serves
//! which group is decided per scrape at the kubepods root ([`walk::Layout`]).
//! v1 disk I/O comes from BFQ's stats when they have data, else the throttle stats,
//! in runc's (so cAdvisor's) order; since Linux 6.10 the throttle stats count only
//! on disks that have had a throttle rule, so v1 hosts without BFQ may show none.
//!
//! Files:
//! - `collector`: the [`ContainerStats`] collector and the cap;
//! - `walk`: finding pod and container cgroups, and the layout;
//! - `v2`, `v1`: reading each version's files; `parse`: their text formats;
//! - `stats`: one cgroup's values and the file reader; `devices`: disk names;
//! - `encode`: the families with cAdvisor's names, types, HELP and labels.
//!
//! Where we differ from cAdvisor, on purpose:
//! - `name` is the container ID. cAdvisor has the runtime's name there, which is
//!   the ID under containerd and CRI-O, but `k8s_<container>_<pod>_...` under Docker.
//! - `container_oom_events_total` is the kernel's own OOM-kill count (v2
//!   `memory.events`, v1 `memory.oom_control`) rather than kernel log lines cAdvisor
//!   watches; it survives agent restarts and does not miss kills.
//! - A disk sysfs does not know is labelled `major:minor`, not `""`: two such disks
//!   would otherwise be one series.
//! - CFS counters are served when the cgroup has had CFS periods, which only elapse
//!   under a CPU quota; cAdvisor checks the quota itself (one more file a container).
//! - The kubepods root and QoS-class cgroups are not served, nor is anything outside
//!   kubepods (cAdvisor serves `/`, system slices...): node-level numbers are
//!   node_exporter's families.

mod collector;
mod devices;
mod encode;
mod parse;
mod stats;
mod v1;
mod v2;
pub(crate) mod walk;

#[cfg(test)]
mod tests;

pub use collector::ContainerStats;
