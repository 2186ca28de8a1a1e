//! `vpclab whoami`: the learner's address as the world sees it (the address to allow in
//! a security group for "SSH from my IP").

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// The vpclab endpoint (default: $VPCLAB_ENDPOINT, $AWS_ENDPOINT_URL, http://127.0.0.1:4566).
    #[arg(long)]
    pub endpoint: Option<String>,
}

pub fn run(args: WhoamiArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let endpoint = super::connect::endpoint(args.endpoint.as_deref());
        let (sock, status, rest) =
            super::connect::request(&endpoint, "/_vpclab/whoami", "", false).await?;
        let text = super::connect::body(sock, rest).await;
        if status != 200 {
            anyhow::bail!("{}", text.lines().next().unwrap_or("whoami failed"));
        }
        crate::cli::outln!("{text}")?;
        Ok(ExitCode::SUCCESS)
    })
}
