//! The error every service returns: a kind that the server maps to a protocol's status and
//! code, and the message users see (MLflow's exact wording where its clients or tests look).

use kiln_blobs::BlobError;
use kiln_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (MLflow: INVALID_PARAMETER_VALUE, 400).
    InvalidParameter,
    /// The thing named does not exist (RESOURCE_DOES_NOT_EXIST, 404).
    NotFound,
    /// A name is taken (RESOURCE_ALREADY_EXISTS, 400 in MLflow).
    AlreadyExists,
    /// The operation is not available here (NOT_IMPLEMENTED, 501).
    NotImplemented,
    /// Our fault (INTERNAL_ERROR, 500).
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError { kind: ErrorKind::InvalidParameter, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ServiceError { kind: ErrorKind::NotFound, message: message.into() }
    }
    pub fn exists(message: impl Into<String>) -> Self {
        ServiceError { kind: ErrorKind::AlreadyExists, message: message.into() }
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        ServiceError { kind: ErrorKind::NotImplemented, message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ServiceError { kind: ErrorKind::Internal, message: message.into() }
    }
    /// "Missing value for required parameter 'x'…", MLflow's wording.
    pub fn missing(param: &str) -> Self {
        ServiceError::invalid(format!(
            "Missing value for required parameter '{param}'. See the API docs for more information about request parameters."
        ))
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidSearch(m) => ServiceError::invalid(m),
            StoreError::NotFound(m) => ServiceError::not_found(m),
            StoreError::AlreadyExists(m) => ServiceError::exists(m),
            other => {
                tracing::error!(error = %other, "store failure");
                ServiceError::internal(other.to_string())
            }
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::InvalidPath(_) => ServiceError::invalid("Invalid path"),
            BlobError::Body(m) => ServiceError::invalid(format!("Upload failed: {m}")),
            other => {
                tracing::error!(error = %other, "artifact storage failure");
                ServiceError::internal(other.to_string())
            }
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
