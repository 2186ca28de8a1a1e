//! The lab engine: step-by-step labs that grade themselves by observing the learner's
//! running world.
//!
//! - [`spec`]: a lab as written (`lab.toml`, unknown keys rejected with file, line and
//!   key path).
//! - [`params`] and [`template`]: per-learner parameters drawn from a seed, and the
//!   `{{param}}` placeholders of pages and checks.
//! - [`resolve`]: the resolved lab (typed checks, valid references) and `lint`.
//! - [`grade`]: the checks (`resource`, `route`, `reach`, `dns`, `file`, `quiz`,
//!   `all`/`any`/`not`), each pass, fail or error.
//! - [`progress`]: the hash-chained event log of each learner.
//! - [`service`]: the `/_vpclab/lab/…` routes of the API port (the CLI is the client).
//!
//! What it leaves to others: the lab files (`labs/`), the command line (`cli::lab`),
//! packet decisions (the fabric, asked through `world`), DNS answers (`dns`).

pub mod grade;
pub mod params;
pub mod progress;
pub mod resolve;
pub mod service;
pub mod spec;
pub mod template;
