//! sonde-collector: Sonde's central service.
//!
//! Data flows one way: `ingest` (decode and validate OTLP and remote_write)
//! -> `store` (durable, compressed, indexed) -> `query` (PromQL) -> `api`
//! (the Prometheus HTTP API). `model` holds the types they all share.

pub mod api;
pub mod config;
pub mod ingest;
pub mod model;
pub mod query;
pub mod store;
