//! The `vpclab` command line: one module per subcommand, help text from doc comments.
//! `main.rs` only parses, calls [`run`], and prints one `vpclab: …` error.
//!
//! Exit codes: 0 success; 1 an error (printed once); 2 a usage error (clap).

pub mod connect;
pub mod ssh_config;
pub mod status;
pub mod up;
pub mod whoami;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A private, offline copy of AWS networking for learners.
#[derive(Debug, Parser)]
#[command(name = "vpclab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run vpclab in the foreground: the AWS API endpoint, state, and the network.
    Up(up::UpArgs),
    /// Show the running daemon's endpoints and a summary of the world.
    Status(status::StatusArgs),
    /// Open a TCP connection from your address in the world to HOST PORT (an OpenSSH
    /// ProxyCommand: `ssh -o ProxyCommand='vpclab connect %h %p' ec2-user@198.18.0.7`).
    Connect(connect::ConnectArgs),
    /// Print the OpenSSH config block that routes your world's public addresses and
    /// names through `vpclab connect`.
    SshConfig(ssh_config::SshConfigArgs),
    /// Print your address as your world sees it (for "allow SSH from my IP").
    Whoami(whoami::WhoamiArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Status(args) => status::run(args),
        Command::Connect(args) => connect::run(args),
        Command::SshConfig(args) => ssh_config::run(args),
        Command::Whoami(args) => whoami::run(args),
    }
}
