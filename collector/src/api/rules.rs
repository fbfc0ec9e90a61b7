//! `/api/v1/rules`, `/api/v1/alerts` and `POST /-/reload`, in Prometheus's shapes.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value as Json, json};

use super::{error::ApiError, format};
use crate::{
    alert::{
        group::{Health, RuleSpec},
        manager::RuleManager,
        notify::alertmanager::rfc3339,
        state::Alert,
    },
    model::format_float,
};

pub fn routes(manager: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(manager)
}

fn alert_json(a: &Alert) -> Json {
    json!({
        "labels": format::labels(&a.labels),
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at),
        "value": format_float(a.value),
    })
}

fn health(h: &Health) -> (&'static str, Json) {
    let status = match (&h.last_error, h.last_evaluation) {
        (Some(_), _) => "err",
        (None, 0) => "unknown",
        (None, _) => "ok",
    };
    let mut extra = json!({
        "evaluationTime": h.duration.as_secs_f64(),
        "lastEvaluation": if h.last_evaluation == 0 {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            rfc3339(h.last_evaluation)
        },
    });
    if let Some(e) = &h.last_error {
        extra["lastError"] = json!(e);
    }
    (status, extra)
}

async fn rules(
    State(m): State<Arc<RuleManager>>,
    Query(p): Query<BTreeMap<String, String>>,
) -> Response {
    let (want_alerts, want_records) = match p.get("type").map(String::as_str) {
        None | Some("") => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return ApiError::bad_param("type", format!("not supported value {other:?}"))
                .into_response();
        }
    };
    let mut groups = Vec::new();
    for g in m.groups() {
        let g = g.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = Vec::new();
        for r in &g.rules {
            let (status, mut j) = health(&r.health);
            match &r.spec {
                RuleSpec::Alert(a) if want_alerts => {
                    let active = r.state.active();
                    let state = if active
                        .iter()
                        .any(|x| x.state == crate::alert::state::AlertState::Firing)
                    {
                        "firing"
                    } else if active.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    let fields = json!({
                        "state": state,
                        "name": a.name,
                        "query": a.expr,
                        "duration": a.hold.as_secs_f64(),
                        "keepFiringFor": a.keep_firing_for.as_secs_f64(),
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "alerts": active.into_iter().map(alert_json).collect::<Vec<_>>(),
                        "health": status,
                        "type": "alerting",
                    });
                    merge(&mut j, fields);
                }
                RuleSpec::Record(rec) if want_records => {
                    let fields = json!({
                        "name": rec.name,
                        "query": rec.expr,
                        "labels": rec.labels,
                        "health": status,
                        "type": "recording",
                    });
                    merge(&mut j, fields);
                }
                _ => continue,
            }
            rules.push(j);
        }
        let (_, mut gj) = health(&g.health);
        gj.as_object_mut().map(|o| o.remove("lastError"));
        merge(
            &mut gj,
            json!({
                "name": g.spec_name,
                "file": g.file.display().to_string(),
                "rules": rules,
                "interval": g.interval.as_secs_f64(),
                "limit": g.limit,
            }),
        );
        groups.push(gj);
    }
    format::success(json!({ "groups": groups }))
}

fn merge(into: &mut Json, from: Json) {
    if let (Some(a), Json::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

async fn alerts(State(m): State<Arc<RuleManager>>) -> Response {
    let mut out = Vec::new();
    for g in m.groups() {
        let g = g.lock().unwrap_or_else(|e| e.into_inner());
        for r in &g.rules {
            out.extend(r.state.active().into_iter().map(alert_json));
        }
    }
    format::success(json!({ "alerts": out }))
}

async fn reload(State(m): State<Arc<RuleManager>>) -> Response {
    match tokio::task::spawn_blocking(move || m.reload()).await {
        Ok(Ok(())) => (axum::http::StatusCode::OK, "").into_response(),
        Ok(Err(e)) => (
            axum::http::StatusCode::BAD_REQUEST,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}
