//! `/loki/api/v1/query` and `/loki/api/v1/query_range` (GET, or POST with a form body).

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::header,
    response::{IntoResponse, Response},
};

use super::{
    LogApiState,
    error::LokiError,
    format::{self, Summary},
    params::{self, DEFAULT_SINCE_NS, MAX_POINTS, now_ns},
};
use crate::{
    api::params::Params,
    logs::{
        logql::{self, LogQlError, LogQlLimits, QueryData},
        model::LogSource,
    },
};

pub async fn instant(State(st): State<LogApiState>, req: Request) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let query = query_param(&p)?;
    let at = params::time(&p, "time", now_ns())?;
    let limit = params::limit(&p, st.limits.max_lines)?;
    let direction = params::direction(&p)?;
    let (data, summary) = run(&st, move |src, limits| {
        logql::query_instant(src, &query, at, limit, direction, limits)
    })
    .await?;
    Ok(answer(&data, at, summary))
}

pub async fn range(State(st): State<LogApiState>, req: Request) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let query = query_param(&p)?;
    let (start, end) = params::bounds(&p, DEFAULT_SINCE_NS)?;
    let step = params::duration(&p, "step")?.unwrap_or_else(|| params::default_step_ns(start, end));
    if step <= 0 {
        return Err(LokiError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(LokiError::bad_request(
            "exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter",
        ));
    }
    let limit = params::limit(&p, st.limits.max_lines)?;
    let direction = params::direction(&p)?;
    let (data, summary) = run(&st, move |src, limits| {
        logql::query_range(src, &query, start, end, step, limit, direction, limits)
    })
    .await?;
    Ok(answer(&data, end, summary))
}

/// The URL query plus a form-encoded POST body.
pub(super) async fn form(req: Request) -> Result<Params, LokiError> {
    Params::from_request(req)
        .await
        .map_err(|e| LokiError::bad_request(e.message))
}

fn query_param(p: &Params) -> Result<String, LokiError> {
    match p.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(q.to_string()),
        _ => Err(LokiError::bad_request("query parameter is required")),
    }
}

/// Runs a query on a blocking thread (evaluation is CPU-bound and reads the
/// store synchronously), bounded by `--query-timeout`. On timeout the answer
/// is 504 at once; the evaluation itself stops at its byte budget.
pub(super) async fn run<T: Send + 'static>(
    st: &LogApiState,
    f: impl FnOnce(&dyn LogSource, &LogQlLimits) -> Result<T, LogQlError> + Send + 'static,
) -> Result<(T, Summary), LokiError> {
    let store = st.store.clone();
    let limits = st.limits.clone();
    let started = Instant::now();
    let task = tokio::task::spawn_blocking(move || f(store.as_ref(), &limits));
    let out = match tokio::time::timeout(st.timeout, task).await {
        Err(_) => {
            return Err(LokiError {
                status: 504,
                message: format!(
                    "query timed out after {:?} (--query-timeout); narrow the time range or the selector",
                    st.timeout
                ),
            });
        }
        Ok(Err(e)) => return Err(LokiError::internal(format!("query task failed: {e}"))),
        Ok(Ok(Err(e))) => {
            return Err(LokiError {
                status: e.http_status(),
                message: e.to_string(),
            });
        }
        Ok(Ok(Ok(v))) => v,
    };
    let summary = Summary {
        exec_time_secs: started.elapsed().as_secs_f64(),
        entries_returned: 0,
    };
    Ok((out, summary))
}

/// The success answer; `at_ns` stamps an instant vector.
fn answer(data: &QueryData, at_ns: i64, mut summary: Summary) -> Response {
    let (kind, result) = match data {
        QueryData::Streams(s) => {
            summary.entries_returned = s.iter().map(|s| s.entries.len()).sum();
            ("streams", format::streams(s))
        }
        QueryData::Vector(v) => ("vector", format::vector(v, at_ns)),
        QueryData::Matrix(m) => ("matrix", format::matrix(m)),
    };
    json_response(format::query_answer(kind, result, summary))
}

pub(super) fn json_response(v: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}
