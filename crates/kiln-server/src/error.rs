//! One error type for every route, mapped to MLflow's error body and status table in one
//! place (`IntoResponse`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_tracking::{ErrorKind, ServiceError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_PARAMETER_VALUE", message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "RESOURCE_DOES_NOT_EXIST", message: message.into() }
    }
    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_IMPLEMENTED, code: "NOT_IMPLEMENTED", message: message.into() }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, code) = match e.kind {
            ErrorKind::InvalidParameter => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            // MLflow answers 400, not 409, for a taken name; clients rely on it.
            ErrorKind::AlreadyExists => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            ErrorKind::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        };
        ApiError { status, code, message: e.message }
    }
}

impl From<kiln_blobs::BlobError> for ApiError {
    fn from(e: kiln_blobs::BlobError) -> Self {
        ServiceError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A native-API query string, or a 400 saying what is wrong with it.
pub(crate) fn query<T>(q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|axum::extract::Query(t)| t).map_err(|e| ApiError::invalid(e.body_text()))
}

/// A native-API JSON body, or a 400 saying what is wrong with it.
pub(crate) fn body<T>(b: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>) -> ApiResult<T> {
    b.map(|axum::Json(t)| t).map_err(|e| ApiError::invalid(e.body_text()))
}
