//! vpclab: a private, offline copy of AWS networking for learners.
//!
//! - [`model`]: the resources of every account's world, AWS validation rules, durable
//!   state (SQLite) and the change feed the fabric subscribes to.
//! - [`api`]: the AWS wire protocols (EC2 Query today), rendering what the model says.
//! - [`cli`]: the `vpclab` subcommands.
//! - [`keys`]: key-pair material with AWS's formats and fingerprints.
//! - [`catalog`]: the machine images and instance types every world offers.
//! - [`instance`]: inside an instance: SSH server, emulated shell, SFTP, IMDS, boot.
//! - [`http1`]: HTTP/1.1 for every host inside a world (hyper over fabric streams).
//! - [`world`]: the per-account runtime: the fabric, internet, instances and resolvers.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod dns;
pub mod http1;
pub mod instance;
pub mod keys;
pub mod model;
pub mod world;
