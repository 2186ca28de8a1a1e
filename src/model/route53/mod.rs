//! Route 53 in the model: hosted zones, record sets and their change batches
//! ([`zone`]), and health checks ([`health`]). The DNS answers themselves are computed
//! by `crate::dns` from a view it builds out of these resources.

pub mod health;
pub mod rdata;
pub mod zone;

pub use zone::*;

use crate::model::ApiError;

/// `InvalidInput` (400).
pub fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidInput", message)
}

/// Strips `/hostedzone/` (or `/change/`) as the CLI and SDKs may send ids either way.
pub fn bare_id<'a>(id: &'a str, prefix: &str) -> &'a str {
    id.strip_prefix(prefix).unwrap_or(id)
}
