//! placeholder
pub mod instance;
