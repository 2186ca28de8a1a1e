//! vpclab: a private, offline copy of AWS networking for learners.
//!
//! - [`model`]: the resources of every account's world, AWS validation rules, durable
//!   state (SQLite) and the change feed the fabric subscribes to.
//! - [`api`]: the AWS wire protocols (EC2 Query today), rendering what the model says.
//! - [`cli`]: the `vpclab` subcommands.

pub mod api;
pub mod cli;
pub mod dns;
pub mod model;
