//! Series metadata endpoints: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/metadata`.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use serde_json::{Map, Value as Json, json};

use super::{ApiState, error::ApiError, format, params::Params};

/// Open-ended ranges, as Prometheus defaults `start`/`end` to min/max time.
const MIN_T: i64 = i64::MIN;
const MAX_T: i64 = i64::MAX;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("storage task failed: {e}"))),
    }
}

fn range(p: &Params) -> Result<(i64, i64), ApiError> {
    let (start, end) = (p.time("start", MIN_T)?, p.time("end", MAX_T)?);
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

pub async fn series(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let sets = p.matcher_sets()?;
    let (start, end) = range(&p)?;
    let storage = state.storage.clone();
    let found = blocking(move || storage.series(&sets, start, end)).await?;
    Ok(format::success(Json::Array(
        found.iter().map(format::labels).collect(),
    )))
}

pub async fn labels(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let sets = p.matcher_sets()?;
    let (start, end) = range(&p)?;
    let storage = state.storage.clone();
    let names = blocking(move || storage.label_names(&sets, start, end)).await?;
    Ok(format::success(json!(names)))
}

pub async fn label_values(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let valid = name == crate::model::METRIC_NAME
        || name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let p = Params::from_request(req).await?;
    let sets = p.matcher_sets()?;
    let (start, end) = range(&p)?;
    let storage = state.storage.clone();
    let values = blocking(move || storage.label_values(&name, &sets, start, end)).await?;
    Ok(format::success(json!(values)))
}

pub async fn metadata(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let limit = count_param(&p, "limit")?;
    let limit_per_metric = count_param(&p, "limit_per_metric")?;
    let metric = p
        .get("metric")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let storage = state.storage.clone();
    let all = blocking(move || storage.metadata()).await?;
    let mut out = Map::new();
    for (name, mut entries) in all {
        if metric.as_ref().is_some_and(|m| *m != name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        if let Some(l) = limit_per_metric {
            entries.truncate(l);
        }
        out.insert(
            name,
            serde_json::to_value(entries).map_err(|e| ApiError::internal(e.to_string()))?,
        );
    }
    Ok(format::success(Json::Object(out)))
}

/// `limit`-style parameters: a count; negative or 0 means no limit, as in Prometheus.
fn count_param(p: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match p.get(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| ApiError::bad_param(name, format!("{s:?} is not a number")))?;
            Ok((n > 0).then_some(n as usize))
        }
    }
}
