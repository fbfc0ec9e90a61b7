//! Logs: `ingest` (OTLP logs, Loki push) -> `store` (per-stream compressed
//! chunks behind a WAL) -> `logql` (LogQL over any [`model::LogSource`]) ->
//! `api` (Loki's HTTP API, which Grafana speaks). `model` holds the types they share;
//! label sets and matchers are the metric side's [`crate::model`] types.

pub mod api;
pub mod ingest;
pub mod logql;
pub mod model;
pub mod store;
