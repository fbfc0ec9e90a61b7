//! Jaeger's HTTP query API on the main HTTP port, in the shapes Grafana's
//! Jaeger data source and Jaeger UI read: `/api/services`,
//! `/api/services/{service}/operations`, `/api/operations`, `/api/traces`
//! (search, or `traceID=` lookups), `/api/traces/{id}` and
//! `/api/dependencies`. Every answer is Jaeger's structured response
//! (`{"data", "total", "limit", "offset", "errors"}`).

pub mod error;
pub mod jaeger;
pub mod params;

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    response::Response,
    routing::get,
};
use serde_json::{Value as Json, json};

use crate::traces::{
    model::{SpanKind, TraceId, parse_trace_id},
    store::{TraceQuery, TraceStore},
};
use error::{ApiError, ok};
use params::Params;

/// Jaeger's default search limit.
const DEFAULT_LIMIT: usize = 100;
/// Searches look this far back when no `start` (or `lookback`) is given.
const DEFAULT_LOOKBACK_NS: i64 = 3_600_000_000_000;
/// Jaeger's default dependencies lookback: a day.
const DEFAULT_DEPS_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone)]
pub struct TraceApiState {
    pub store: Arc<TraceStore>,
}

pub fn routes(state: TraceApiState) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .with_state(state)
}

/// Runs store reads (which may read segment files) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("trace read task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("reading traces: {e}")))
}

fn answer(r: Result<Json, ApiError>) -> Response {
    match r {
        Ok(data) => ok(data),
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

async fn services(State(s): State<TraceApiState>) -> Response {
    let store = s.store.clone();
    answer(blocking(move || Ok(json!(store.services()))).await)
}

async fn service_operations(
    State(s): State<TraceApiState>,
    Path(service): Path<String>,
) -> Response {
    let store = s.store.clone();
    answer(
        blocking(move || {
            let mut names: Vec<String> = store
                .operations(&service)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            names.dedup();
            Ok(json!(names))
        })
        .await,
    )
}

/// `/api/operations?service=&spanKind=`: `[{"name", "spanKind"}]`.
async fn operations(State(s): State<TraceApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let Some(service) = p.get("service").map(str::to_string) else {
        return answer(Err(ApiError::bad_request(
            "parameter 'service' is required",
        )));
    };
    let kind = p.get("spanKind").map(str::to_string);
    let store = s.store.clone();
    answer(
        blocking(move || {
            let ops: Vec<Json> = store
                .operations(&service)
                .into_iter()
                .map(|(name, k)| (name, SpanKind::from_u8(k).jaeger_name().unwrap_or("")))
                .filter(|(_, k)| kind.as_deref().is_none_or(|want| want == *k))
                .map(|(name, k)| json!({"name": name, "spanKind": k}))
                .collect();
            Ok(json!(ops))
        })
        .await,
    )
}

async fn trace(State(s): State<TraceApiState>, Path(id): Path<String>) -> Response {
    let Some(tid) = parse_trace_id(&id) else {
        return answer(Err(ApiError::bad_request(format!(
            "malformed trace id {id:?}: want up to 32 hex digits"
        ))));
    };
    let store = s.store.clone();
    answer(match blocking(move || store.trace(&tid)).await {
        Ok(spans) if spans.is_empty() => Err(ApiError::not_found("trace not found")),
        Ok(spans) => Ok(json!([jaeger::trace(&spans)])),
        Err(e) => Err(e),
    })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The search's parameters, checked as Jaeger checks them.
fn parse_search(p: &Params) -> Result<TraceQuery, ApiError> {
    let service = p
        .get("service")
        .ok_or_else(|| ApiError::bad_request("parameter 'service' is required"))?
        .to_string();
    let us = |k: &str| -> Result<Option<i64>, ApiError> {
        Ok(p.int(k)?.map(|v| v.saturating_mul(1000)))
    };
    let end_ns = us("end")?.unwrap_or_else(now_ns);
    let start_ns = match us("start")? {
        Some(s) => s,
        None => {
            let lb = p.duration_ns("lookback")?.map_or(DEFAULT_LOOKBACK_NS, |d| {
                i64::try_from(d).unwrap_or(i64::MAX)
            });
            end_ns.saturating_sub(lb)
        }
    };
    if start_ns > end_ns {
        return Err(ApiError::bad_request("'start' must not be after 'end'"));
    }
    let min = p.duration_ns("minDuration")?;
    let max = p.duration_ns("maxDuration")?;
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        return Err(ApiError::bad_request(
            "'minDuration' should be smaller than 'maxDuration'",
        ));
    }
    let limit = match p.int("limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) if n < 0 => {
            return Err(ApiError::bad_request("'limit' must not be negative"));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    Ok(TraceQuery {
        service,
        operation: p.get("operation").map(str::to_string),
        tags: params::tags(p)?,
        min_duration_ns: min,
        max_duration_ns: max,
        start_ns,
        end_ns,
        limit,
    })
}

async fn search(State(s): State<TraceApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let store = s.store.clone();
    // `traceID=` lookups, as Jaeger UI's compare view asks.
    let ids = p.all("traceID");
    if !ids.is_empty() {
        let mut tids: Vec<TraceId> = Vec::new();
        for id in ids {
            match parse_trace_id(id) {
                Some(t) => tids.push(t),
                None => {
                    return answer(Err(ApiError::bad_request(format!(
                        "malformed trace id {id:?}: want up to 32 hex digits"
                    ))));
                }
            }
        }
        return answer(
            blocking(move || {
                let mut out = Vec::new();
                for t in &tids {
                    let spans = store.trace(t)?;
                    if !spans.is_empty() {
                        out.push(jaeger::trace(&spans));
                    }
                }
                Ok(json!(out))
            })
            .await,
        );
    }
    let query = match parse_search(&p) {
        Ok(q) => q,
        Err(e) => return answer(Err(e)),
    };
    answer(
        blocking(move || {
            let traces = store.search(&query)?;
            Ok(json!(
                traces.iter().map(|t| jaeger::trace(t)).collect::<Vec<_>>()
            ))
        })
        .await,
    )
}

/// `/api/dependencies?endTs=&lookback=` (milliseconds, as Jaeger takes them).
async fn dependencies(State(s): State<TraceApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let parsed = (|| {
        let end_ms = p.int("endTs")?.unwrap_or(now_ns() / 1_000_000);
        let lookback = p.int("lookback")?.unwrap_or(DEFAULT_DEPS_LOOKBACK_MS);
        if lookback < 0 {
            return Err(ApiError::bad_request("'lookback' must not be negative"));
        }
        Ok((end_ms.saturating_sub(lookback), end_ms))
    })();
    let (start_ms, end_ms) = match parsed {
        Ok(x) => x,
        Err(e) => return answer(Err(e)),
    };
    let store = s.store.clone();
    answer(
        blocking(move || {
            let links: Vec<Json> = store
                .dependencies(
                    start_ms.saturating_mul(1_000_000),
                    end_ms.saturating_mul(1_000_000),
                )
                .into_iter()
                .map(|(p, c, n)| json!({"parent": p, "child": c, "callCount": n}))
                .collect();
            Ok(json!(links))
        })
        .await,
    )
}
