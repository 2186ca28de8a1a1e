//! `ApiError`: the one error type of the model, carrying the AWS error code, message and
//! HTTP status the API layer renders. The model decides *which* AWS error a request earns;
//! the API layer only renders it (EC2 `<Response><Errors>…`, Route 53 `<ErrorResponse>…`).

use std::borrow::Cow;

/// An AWS-shaped error: code (e.g. `InvalidVpcID.NotFound`), human message, HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: Cow<'static, str>,
    pub message: String,
    pub status: u16,
    /// Further elements of the error document, in order, for the errors AWS documents
    /// with more than a code and a message (S3's `InvalidObjectState` carries the
    /// object's `StorageClass`). Protocols whose error documents have no such elements
    /// ignore them.
    pub elements: Vec<(&'static str, String)>,
}

impl ApiError {
    /// A client error (HTTP 400), the status of almost every EC2 error.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
            status: 400,
            elements: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds an element to the error document (see [`ApiError::elements`]).
    pub fn with_element(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.elements.push((name, value.into()));
        self
    }

    /// `InvalidParameterValue` with AWS's message.
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", message)
    }

    /// `InvalidParameterValue` phrased as AWS phrases a bad value of a named parameter.
    pub fn bad_param(name: &str, value: &str) -> Self {
        Self::invalid_value(format!("Value ({value}) for parameter {name} is invalid."))
    }

    /// `MissingParameter`, as AWS phrases it.
    pub fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// `InvalidParameterCombination`.
    pub fn combination(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterCombination", message)
    }

    /// A `.NotFound` error: `code` is e.g. `InvalidVpcID.NotFound`, `what` e.g. `vpc ID`.
    pub fn not_found(code: &'static str, what: &str, id: &str) -> Self {
        Self::new(code, format!("The {what} '{id}' does not exist"))
    }

    /// `DependencyViolation`: a delete that would orphan something.
    pub fn dependency(message: impl Into<String>) -> Self {
        Self::new("DependencyViolation", message)
    }

    /// `DryRunOperation`: the request would have succeeded. AWS answers it with HTTP 412.
    pub fn dry_run_ok() -> Self {
        Self::new(
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
        .with_status(412)
    }

    /// `AuthFailure` (HTTP 401).
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new("AuthFailure", message).with_status(401)
    }

    /// An internal failure (e.g. the state database could not be written). Rendered with
    /// HTTP 500; the detail is logged, not sent.
    pub fn internal() -> Self {
        Self::new(
            "InternalError",
            "An internal error has occurred; the request was not applied.",
        )
        .with_status(500)
    }

    pub fn is_dry_run_ok(&self) -> bool {
        self.code == "DryRunOperation"
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
