//! placeholder
pub mod catalog;
pub mod keys;
