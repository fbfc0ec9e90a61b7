//! The eBPF object embedded at build time (see `agent/build.rs`).

/// The compiled `agent-ebpf` object, or empty when the agent was built without it.
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sonde-probes.o"));

pub fn embedded() -> bool {
    cfg!(sonde_probes) && !OBJECT.is_empty()
}
