//! Loki's error answer: `{"code":400,"status":"error","message":"..."}` as
//! `application/json` (Loki 2.9 and later; Grafana shows `message`, and falls
//! back to the raw body for older plain-text answers, so both work with it).

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

#[derive(Debug)]
pub struct LokiError {
    pub status: u16,
    pub message: String,
}

impl LokiError {
    pub fn bad_request(message: impl Into<String>) -> LokiError {
        LokiError {
            status: 400,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> LokiError {
        LokiError {
            status: 500,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LokiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::json!({"code": self.status, "status": "error", "message": self.message});
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }
}
