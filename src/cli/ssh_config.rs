//! `vpclab ssh-config`: prints the OpenSSH configuration block that sends connections to
//! the world's public addresses (198.18.0.0/15) and their public DNS names
//! (`ec2-198-18-0-7.compute-1.amazonaws.com`) through `vpclab connect`, so a plain
//! `ssh -i key.pem ec2-user@198.18.0.7` works. Append it to `~/.ssh/config`. It matches
//! only names of the world's public range, never other `*.amazonaws.com` hosts: a
//! learner's real EC2 instances keep their direct connections.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// An endpoint to bake into the ProxyCommand (default: found at connect time).
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// The configuration text.
pub fn config_text(exe: &str, endpoint: Option<&str>) -> String {
    let endpoint = endpoint
        .map(|e| format!(" --endpoint {e}"))
        .unwrap_or_default();
    format!(
        "# vpclab: reach your world's public addresses and names through `vpclab connect`.\n\
         # 198.18.0.0/15 is written as two patterns (OpenSSH host patterns have no CIDR).\n\
         # Only the world's names: real instances' names (other ranges) are left alone.\n\
         Host 198.18.*.* 198.19.*.* ec2-198-18-*.amazonaws.com ec2-198-19-*.amazonaws.com\n\
         \x20   ProxyCommand \"{exe}\" connect{endpoint} %h %p\n"
    )
}

pub fn run(args: SshConfigArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "vpclab".to_string());
    crate::cli::out!("{}", config_text(&exe, args.endpoint.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::config_text;

    #[test]
    fn config_routes_only_the_world_public_range_and_its_names_through_connect() {
        let text = config_text("/usr/bin/vpclab", None);
        let host = text
            .lines()
            .find(|l| l.starts_with("Host "))
            .expect("a Host line");
        // 198.18.0.0/15 = 198.18.x.y and 198.19.x.y.
        assert_eq!(
            host,
            "Host 198.18.*.* 198.19.*.* ec2-198-18-*.amazonaws.com ec2-198-19-*.amazonaws.com"
        );
        assert!(text.contains("ProxyCommand \"/usr/bin/vpclab\" connect %h %p"));
        let with = config_text("vpclab", Some("http://127.0.0.1:9999"));
        assert!(with.contains("connect --endpoint http://127.0.0.1:9999 %h %p"));
    }
}
