//! The end of the agent's flow: what it serves.

pub mod families;
pub mod server;
pub mod text_format;
