//! sonde-collector: Sonde's central service.
//!
//! Data flows one way: `ingest` (decode and validate OTLP and remote_write)
//! -> `store` (durable, compressed, indexed) -> `query` (PromQL) -> `api`
//! (the Prometheus HTTP API). `model` holds the types they all share. `logs`
//! is the same flow for log lines: OTLP logs and Loki push -> a per-stream
//! chunk store -> LogQL -> Loki's HTTP API.

pub mod alert;
pub mod api;
pub mod config;
pub mod ingest;
pub mod logs;
pub mod model;
pub mod query;
pub mod store;
pub mod tls;
pub mod traces;
