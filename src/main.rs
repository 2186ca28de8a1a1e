//! The `vpclab` binary: parses the command line, runs it, prints one `vpclab: …` error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vpclab::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPCLAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match vpclab::cli::run(cli) {
        Ok(code) => code,
        Err(e) if vpclab::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpclab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
