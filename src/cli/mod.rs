//! The `vpclab` command line: one module per subcommand, help text from doc comments.
//! `main.rs` only parses, calls [`run`], and prints one `vpclab: …` error.
//!
//! Exit codes: 0 success; 1 an error (printed once); 2 a usage error (clap); 3 `vpclab
//! trace` found the destination not reachable.

/// Like `println!`, but a failed write is an error (`?`) instead of a panic, so that
/// `vpclab status | head` ends quietly: `main` treats a broken pipe as success.
#[macro_export]
#[doc(hidden)]
macro_rules! __vpclab_outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
/// Like `print!`, with the same error handling as [`outln!`].
#[macro_export]
#[doc(hidden)]
macro_rules! __vpclab_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub use crate::__vpclab_out as out;
pub use crate::__vpclab_outln as outln;

/// Whether an error is (caused by) a closed stdout: the reader went away, which for a
/// command-line tool is success (`vpclab status | head -1`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub mod ca;
pub mod capture;
pub mod class;
pub mod connect;
pub mod grade;
pub mod lab;
pub mod mail;
pub mod ssh_config;
pub mod status;
pub mod trace;
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
    /// The hop-by-hop walk of one packet and its reply (SRC to DST[:PORT]), with the
    /// rule that decided at each stage. Exit code 3 when DST is not reachable.
    Trace(trace::TraceArgs),
    /// A live packet capture (pcap) of what crosses an interface, an instance or a
    /// subnet: `-w FILE.pcap` for tshark/Wireshark, else one line per packet.
    Capture(capture::CaptureArgs),
    /// Print your address as your world sees it (for "allow SSH from my IP").
    Whoami(whoami::WhoamiArgs),
    /// Read the local mailbox of SNS email subscriptions (confirmations, alarm
    /// notifications); --follow waits for new mail.
    Mail(mail::MailArgs),
    /// Print vpclab's certificate authority (PEM), which signs the simulated internet's
    /// HTTPS, and how to make a browser trust it.
    Ca(ca::CaArgs),
    /// Guided labs that grade themselves: list, start, status, check, hint, test …
    Lab(lab::LabArgs),
    /// Re-grade signed lab reports: rebuild each learner's final state in a scratch
    /// world, run every check there, print a table (or --csv, --json).
    Grade(grade::GradeArgs),
    /// A course for a whole class: roster, keys, credentials (serve it with `up --class`).
    Class(class::ClassArgs),
    /// The first process inside an instance's sandbox (started by the daemon).
    #[command(hide = true)]
    InstanceAgent(InstanceAgentArgs),
    /// A tool inside an instance's sandbox (`dnf`, `systemctl` …, run by its wrapper).
    #[command(hide = true)]
    InstanceTool(InstanceToolArgs),
}

/// `vpclab instance-tool NAME ARGS…`: only the wrappers inside a sandbox run it.
#[derive(Debug, clap::Args)]
pub struct InstanceToolArgs {
    /// The tool's name, then its arguments as typed.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
    pub argv: Vec<String>,
}

/// `vpclab instance-agent`: only the daemon starts it, inside a sandbox.
#[derive(Debug, clap::Args)]
pub struct InstanceAgentArgs {
    /// Only check that a TUN device can be created here, then exit.
    #[arg(long)]
    pub probe: bool,
    /// From outside: whether a sandbox can start on this machine (what `vpclab up
    /// --runtime sandbox` checks: bwrap, unprivileged user namespaces, /dev/net/tun);
    /// exits 1 with the reason when not. For scripts (`scripts/test`).
    #[arg(long, conflicts_with = "probe")]
    pub check_sandbox: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Status(args) => status::run(args),
        Command::Connect(args) => connect::run(args),
        Command::SshConfig(args) => ssh_config::run(args),
        Command::Whoami(args) => whoami::run(args),
        Command::Mail(args) => mail::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Capture(args) => capture::run(args),
        Command::Ca(args) => ca::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Grade(args) => grade::run(args),
        Command::Class(args) => class::run(args),
        Command::InstanceAgent(args) => {
            if args.check_sandbox {
                let me = std::env::current_exe()?;
                crate::instance::sandbox::probe(&me).map_err(anyhow::Error::msg)?;
            } else if args.probe {
                crate::instance::sandbox::agent::probe()?;
            } else {
                crate::instance::sandbox::agent::run()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::InstanceTool(args) => Ok(crate::instance::sandbox::tools::run(&args.argv)),
    }
}
