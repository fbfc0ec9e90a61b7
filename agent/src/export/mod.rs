//! The end of the agent's flow: what it serves, and what it pushes.

pub mod families;
pub mod kube;
pub mod otlp;
pub mod problems;
pub mod server;
pub mod text_format;
