//! Traces: `ingest` (OTLP traces over gRPC and HTTP, validated whole) ->
//! `store` (a WAL, an in-memory head and immutable segment files indexed by
//! trace id, service and operation) -> `api` (Jaeger's HTTP query API, which
//! Grafana's Jaeger data source and Jaeger UI speak). `model` holds the span
//! as stored, which all three share.

pub mod api;
pub mod ingest;
pub mod model;
pub mod store;
