//! placeholder
pub mod dns;
