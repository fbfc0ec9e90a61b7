//! The Prometheus API's error answer:
//! `{"status":"error","errorType":"bad_data","error":"..."}` with its HTTP status.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::query::QueryError;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub error_type: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            error_type: "bad_data",
            message: message.into(),
        }
    }

    /// `invalid parameter "name": why`, Prometheus's wording for a bad parameter.
    pub fn bad_param(name: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {name:?}: {why}"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            error_type: "internal",
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        ApiError {
            status: e.http_status(),
            error_type: e.error_type(),
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(format!("storage: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"status": "error", "errorType": self.error_type, "error": self.message});
        (status, axum::Json(body)).into_response()
    }
}
