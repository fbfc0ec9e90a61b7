//! The eBPF probes' userspace half: load (`load`), read the kernel's aggregates on
//! the agent's schedule (`maps`, `reader`), forward the rare events (`oom`), and
//! describe it all as metrics (`runqueue`, `tcp`, `blockio`, `cost`, `metrics`).

pub mod blockio;
pub mod cost;
pub mod http;
pub mod load;
pub mod maps;
pub mod metrics;
pub mod object;
pub mod offsets;
pub mod oom;
pub mod reader;
pub mod runqueue;
pub mod stdio;
pub mod tcp;
