//! Alertmanager API v2 silence endpoints over the router's silences:
//! `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}`. Errors are a
//! JSON string, as Alertmanager answers: 400 for a malformed or invalid body,
//! 404 for an unknown ID. Each change is saved to the silences file, if any.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};

use super::{Router, now_ms, silence::PostableSilence};

#[derive(Clone)]
pub struct SilenceApi {
    pub router: Arc<Mutex<Router>>,
    /// Where silences are saved after each change (`Silences::save`).
    pub file: Option<PathBuf>,
}

pub fn routes(api: SilenceApi) -> axum::Router {
    axum::Router::new()
        .route("/api/v2/silences", get(list).post(create))
        .route("/api/v2/silence/{id}", get(get_one).delete(expire))
        .with_state(api)
}

fn error(code: StatusCode, msg: String) -> Response {
    (code, Json(msg)).into_response()
}

impl SilenceApi {
    fn lock(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, r: &Router) {
        if let Some(f) = &self.file
            && let Err(e) = r.silences.save(f)
        {
            tracing::warn!(error = %e, "saving silences failed");
        }
    }
}

async fn list(State(api): State<SilenceApi>) -> Response {
    Json(api.lock().silences.list(now_ms())).into_response()
}

async fn get_one(State(api): State<SilenceApi>, Path(id): Path<String>) -> Response {
    match api.lock().silences.get(&id, now_ms()) {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

async fn create(State(api): State<SilenceApi>, body: Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed silence: {e}")),
    };
    let mut r = api.lock();
    match r.silences.create(p, now_ms()) {
        Ok(id) => {
            api.save(&r);
            Json(serde_json::json!({ "silenceID": id })).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("silence invalid: {e}")),
    }
}

async fn expire(State(api): State<SilenceApi>, Path(id): Path<String>) -> Response {
    let mut r = api.lock();
    if r.silences.get(&id, now_ms()).is_none() {
        return error(StatusCode::NOT_FOUND, format!("silence {id} not found"));
    }
    match r.silences.expire(&id, now_ms()) {
        Ok(()) => {
            api.save(&r);
            StatusCode::OK.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::route::config::RouteConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request over a fresh connection; returns (status, body).
    async fn call(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
        (status, body)
    }

    #[tokio::test]
    async fn silences_over_http() {
        let cfg = RouteConfig::parse("route: {receiver: r}\nreceivers: [{name: r}]\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("silences.json");
        let api = SilenceApi {
            router: Arc::new(Mutex::new(Router::new(cfg, String::new()))),
            file: Some(file.clone()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, routes(api.clone())).into_future());

        let now = chrono::Utc::now();
        let body = serde_json::json!({
            "matchers": [{"name": "env", "value": "prod", "isRegex": false, "isEqual": true}],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "me", "comment": "deploy"
        });
        let (code, resp) = call(addr, "POST", "/api/v2/silences", &body.to_string()).await;
        assert_eq!(code, 200, "{resp}");
        let id = serde_json::from_str::<serde_json::Value>(&resp).unwrap()["silenceID"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(file.exists(), "saved after create");

        let (code, resp) = call(addr, "GET", &format!("/api/v2/silence/{id}"), "").await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["status"]["state"], "active");
        assert_eq!(v["matchers"][0]["name"], "env");
        assert_eq!(v["createdBy"], "me");

        let (code, resp) = call(addr, "GET", "/api/v2/silences", "").await;
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&resp)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let (code, _) = call(addr, "DELETE", &format!("/api/v2/silence/{id}"), "").await;
        assert_eq!(code, 200);
        let (_, resp) = call(addr, "GET", &format!("/api/v2/silence/{id}"), "").await;
        assert!(resp.contains("\"expired\""), "{resp}");

        let (code, resp) = call(addr, "POST", "/api/v2/silences", "{\"matchers\": 1}").await;
        assert_eq!(code, 400);
        assert!(resp.starts_with("\"malformed silence: "), "{resp}");
        let mut bad = body.clone();
        bad["matchers"] = serde_json::json!([]);
        let (code, resp) = call(addr, "POST", "/api/v2/silences", &bad.to_string()).await;
        assert_eq!(code, 400);
        assert!(resp.contains("at least one matcher"), "{resp}");
        let (code, _) = call(addr, "GET", "/api/v2/silence/nope", "").await;
        assert_eq!(code, 404);
        let (code, _) = call(addr, "DELETE", "/api/v2/silence/nope", "").await;
        assert_eq!(code, 404);
    }
}
