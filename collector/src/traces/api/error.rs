//! Jaeger's error shape: the structured response with `data: null` and the
//! message in `errors`, under the matching HTTP status (400 for bad
//! parameters, 404 for an unknown trace, 500 for a storage fault).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "data": null,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": self.status.as_u16(), "msg": self.message}],
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Jaeger's success shape.
pub fn ok(data: serde_json::Value) -> Response {
    let total = data.as_array().map_or(0, |a| a.len());
    axum::Json(json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": null,
    }))
    .into_response()
}
