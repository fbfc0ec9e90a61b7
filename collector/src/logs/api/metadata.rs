//! `/loki/api/v1/labels`, `/loki/api/v1/label/{name}/values`,
//! `/loki/api/v1/series` and `/loki/api/v1/index/stats`: what streams exist
//! in a time range (default: the last 6 hours, as Loki).

use std::{collections::BTreeSet, ops::ControlFlow};

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use serde_json::{Value as Json, json};

use super::{
    LogApiState,
    error::LokiError,
    format,
    params::{self, DEFAULT_METADATA_SINCE_NS},
    query::{form, json_response, run},
};
use crate::{
    logs::{logql, model::Direction},
    model::{Labels, Matcher},
};

fn success(data: Json) -> Response {
    json_response(json!({"status": "success", "data": data}))
}

/// The stream selector of a `query` or `match[]` parameter, as matchers.
fn selector(name: &str, q: &str) -> Result<Vec<Matcher>, LokiError> {
    logql::compile_tail(q)
        .map(|t| t.matchers)
        .map_err(|e| LokiError::bad_request(format!("invalid {name} parameter: {e}")))
}

/// The optional `query` selector (Loki 2.9+ accepts one on the label endpoints).
fn optional_query(p: &crate::api::params::Params) -> Result<Option<Vec<Matcher>>, LokiError> {
    match p.get("query").filter(|q| !q.trim().is_empty()) {
        None => Ok(None),
        Some(q) => selector("query", q).map(Some),
    }
}

pub async fn labels(State(st): State<LogApiState>, req: Request) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let (start, end) = params::bounds(&p, DEFAULT_METADATA_SINCE_NS)?;
    let matchers = optional_query(&p)?;
    let (names, _) = run(&st, move |src, _| {
        Ok(match matchers {
            None => src.label_names(start, end)?,
            Some(m) => {
                let mut names = BTreeSet::new();
                for s in src.streams(&m, start, end)? {
                    names.extend(s.labels.iter().map(|(k, _)| k.to_string()));
                }
                names.into_iter().collect()
            }
        })
    })
    .await?;
    Ok(success(json!(names)))
}

pub async fn label_values(
    State(st): State<LogApiState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let (start, end) = params::bounds(&p, DEFAULT_METADATA_SINCE_NS)?;
    let matchers = optional_query(&p)?.unwrap_or_default();
    let (values, _) = run(&st, move |src, _| {
        Ok(src.label_values(&name, &matchers, start, end)?)
    })
    .await?;
    Ok(success(json!(values)))
}

/// The matcher sets of `match[]` (or `match`); none means every stream.
fn match_sets(p: &crate::api::params::Params) -> Result<Vec<Vec<Matcher>>, LokiError> {
    let mut sets = Vec::new();
    for q in p.all("match[]").into_iter().chain(p.all("match")) {
        sets.push(selector("match[]", q)?);
    }
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    Ok(sets)
}

pub async fn series(State(st): State<LogApiState>, req: Request) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let (start, end) = params::bounds(&p, DEFAULT_METADATA_SINCE_NS)?;
    let sets = match_sets(&p)?;
    let (series, _) = run(&st, move |src, _| {
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for m in &sets {
            all.extend(src.streams(m, start, end)?.into_iter().map(|s| s.labels));
        }
        Ok(all)
    })
    .await?;
    Ok(success(Json::Array(
        series.iter().map(format::labels).collect(),
    )))
}

/// Loki's `{"streams":N,"chunks":N,"bytes":N,"entries":N}` for a selector.
/// Counted by scanning the matching streams, stopping at the query byte
/// budget (then the counts are lower bounds); `chunks` is not tracked per
/// query and is reported as 0.
pub async fn index_stats(
    State(st): State<LogApiState>,
    req: Request,
) -> Result<Response, LokiError> {
    let p = form(req).await?;
    let (start, end) = params::bounds(&p, DEFAULT_METADATA_SINCE_NS)?;
    let matchers = optional_query(&p)?.unwrap_or_default();
    let ((streams, entries, bytes), _) = run(&st, move |src, limits| {
        let refs = src.streams(&matchers, start, end)?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        for r in &refs {
            src.scan(r, start, end, Direction::Forward, &mut |e| {
                entries += 1;
                bytes += e.line.len() as u64;
                if bytes > limits.max_bytes as u64 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if bytes > limits.max_bytes as u64 {
                break;
            }
        }
        Ok((refs.len(), entries, bytes))
    })
    .await?;
    Ok(json_response(
        json!({"streams": streams, "chunks": 0, "bytes": bytes, "entries": entries}),
    ))
}
