//! `/api/v1/query` and `/api/v1/query_range`.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    response::Response,
};

use super::{
    ApiState,
    error::ApiError,
    format,
    params::{Params, now_ms},
};
use crate::query::{Engine, Value};

/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

pub async fn instant(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let query = query_param(&p)?;
    let t = p.time("time", now_ms())?;
    let engine = engine(&state, &p)?;
    let v = run(move || engine.instant(&query, t)).await?;
    Ok(format::query_answer(&v))
}

pub async fn range(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let query = query_param(&p)?;
    let start = required(&p, "start")?;
    let start = p.time("start", start)?;
    let end = required(&p, "end")?;
    let end = p.time("end", end)?;
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = p
        .duration("step")?
        .ok_or_else(|| ApiError::bad_param("step", "cannot parse \"\" to a valid duration"))?;
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Prometheus's own limit and wording.
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine(&state, &p)?;
    let v = run(move || engine.range(&query, start, end, step)).await?;
    Ok(format::query_answer(&v))
}

fn query_param(p: &Params) -> Result<String, ApiError> {
    match p.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(q.to_string()),
        _ => Err(ApiError::bad_param("query", "no query given")),
    }
}

/// A required time parameter (its value is re-read by `Params::time`).
fn required(p: &Params, name: &str) -> Result<i64, ApiError> {
    match p.get(name) {
        Some(s) if !s.is_empty() => Ok(0),
        _ => Err(ApiError::bad_param(
            name,
            "cannot parse \"\" to a valid timestamp",
        )),
    }
}

/// An engine for this request: the `timeout` parameter may shorten, never
/// lengthen, `--query-timeout`.
fn engine(state: &ApiState, p: &Params) -> Result<Engine, ApiError> {
    let mut opts = state.engine_options.clone();
    if let Some(ms) = p.duration("timeout")? {
        if ms <= 0 {
            return Err(ApiError::bad_param("timeout", "must be positive"));
        }
        opts.timeout = opts.timeout.min(Duration::from_millis(ms as u64));
    }
    Ok(Engine::new(state.storage.clone(), opts))
}

/// Evaluation is CPU-bound and reads storage synchronously: off the async threads.
async fn run(
    f: impl FnOnce() -> Result<Value, crate::query::QueryError> + Send + 'static,
) -> Result<Value, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("query task failed: {e}"))),
    }
}
