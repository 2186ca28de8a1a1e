//! `vpclab trace SRC DST[:PORT] [--proto tcp|udp|icmp] [-6] [--json]`: the hop-by-hop
//! walk of one new connection and its reply through security groups, network ACLs, route
//! tables and gateways, with the rule that decided at each stage. `-6` (or an IPv6
//! address at either end) walks IPv6: the fabric's IPv6 decision path, egress-only
//! internet gateways included. The daemon answers it from
//! the fabric's own decision path on the current configuration (what the console's
//! reachability page and the Reachability Analyzer show); no packet is sent.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::outln;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Where the packet starts: an instance id, an interface id, a private IP address (or
    /// IPv6 address) of an interface, `internet` (a host on the internet) or `me` (your
    /// computer).
    pub src: String,
    /// Where it goes, with an optional port: `i-…:22`, `eni-…`, `10.0.2.15:5432`,
    /// `[2001:db8:0:1::5]:22`, `internet:443`, `me`. The port defaults to 22 (TCP) or
    /// 53 (UDP).
    pub dst: String,
    /// The protocol of the packet (`icmp` is ICMPv6 echo on an IPv6 walk).
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp", "icmp"])]
    pub proto: String,
    /// Walk IPv6: instances and interfaces stand for their first IPv6 address, `internet`
    /// and `me` for IPv6 hosts. Implied by an IPv6 address at either end.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// The vpclab endpoint (default: $VPCLAB_ENDPOINT, $AWS_ENDPOINT_URL, http://127.0.0.1:4566).
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// Splits `DST[:PORT]`. An IPv6 address takes its port in brackets (`[2001:db8::5]:22`);
/// a bare one (more than one colon) has none.
fn split_port(dst: &str) -> anyhow::Result<(&str, Option<u16>)> {
    if let Some(rest) = dst.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .with_context(|| format!("{dst:?}: a `[` without its `]`"))?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Ok((host, None)),
            Some(port) => {
                let port = port
                    .parse::<u16>()
                    .with_context(|| format!("{port:?} in {dst:?} is not a port (0-65535)"))?;
                Ok((host, Some(port)))
            }
            None => bail!("{dst:?}: write [ADDRESS]:PORT"),
        };
    }
    if dst.matches(':').count() > 1 {
        return Ok((dst, None));
    }
    match dst.rsplit_once(':') {
        None => Ok((dst, None)),
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .with_context(|| format!("{port:?} in {dst:?} is not a port (0-65535)"))?;
            Ok((host, Some(port)))
        }
    }
}

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let (dst, port) = split_port(&args.dst)?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("src", &args.src)
        .append_pair("dst", dst)
        .append_pair("proto", &args.proto);
    if let Some(p) = port {
        q.append_pair("port", &p.to_string());
    }
    if args.ipv6 {
        q.append_pair("ipv6", "1");
    }
    let query = q.finish().replace('+', "%20");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, text) = rt.block_on(async {
        let endpoint = super::connect::endpoint(args.endpoint.as_deref());
        let (sock, status, rest) =
            super::connect::request(&endpoint, "/_vpclab/trace", &query, false).await?;
        anyhow::Ok((status, super::connect::body(sock, rest).await))
    })?;
    if status != 200 {
        bail!("{}", text.lines().next().unwrap_or("trace failed"));
    }
    let v: Value = serde_json::from_str(&text).context("vpclab sent a malformed trace")?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        print_trace(&v)?;
    }
    Ok(if v["reachable"] == true {
        ExitCode::SUCCESS
    } else {
        // Documented: 3 when the destination is not reachable, so scripts can test it.
        ExitCode::from(3)
    })
}

fn print_path(title: &str, p: &Value) -> anyhow::Result<()> {
    outln!("{title}")?;
    for h in p["hops"].as_array().into_iter().flatten() {
        let name = h["name"]
            .as_str()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        outln!(
            "  {:>2}. {}{name}: {}",
            h["sequence"],
            h["component"].as_str().unwrap_or(""),
            h["action"].as_str().unwrap_or("")
        )?;
        if let Some(rule) = h["rule"].as_str() {
            outln!("      {rule}")?;
        }
    }
    if p["delivered"] == true {
        outln!("  => {}", p["outcome"].as_str().unwrap_or(""))?;
    } else {
        let code = p["code"]
            .as_str()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        outln!("  => {}{code}", p["outcome"].as_str().unwrap_or(""))?;
        if let Some(h) = p["hint"].as_str() {
            outln!("     {h}")?;
        }
    }
    Ok(())
}

fn print_trace(v: &Value) -> anyhow::Result<()> {
    let what = match v["port"].as_u64() {
        Some(p) => format!("{} port {p}", v["protocol"].as_str().unwrap_or("tcp")),
        None if v["ip_version"] == 6 => "ping6".to_string(),
        None => "ping".to_string(),
    };
    outln!(
        "trace {what} from {} to {}",
        v["source"].as_str().unwrap_or(""),
        v["destination"].as_str().unwrap_or("")
    )?;
    print_path("forward path:", &v["forward"])?;
    if v["return"].is_object() {
        print_path("return path (the reply):", &v["return"])?;
    }
    if let Some(n) = v["note"].as_str() {
        outln!("note: {n}")?;
    }
    let verdict = match (v["forward"]["delivered"] == true, v["reachable"] == true) {
        (_, true) => "reachable",
        (true, false) => "NOT reachable: the packet arrives but the reply is dropped",
        (false, false) => "NOT reachable",
    };
    outln!("result: {verdict}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_port;

    #[test]
    fn a_destination_may_carry_a_port() {
        assert_eq!(split_port("i-0abc:22").unwrap(), ("i-0abc", Some(22)));
        assert_eq!(split_port("10.0.1.5").unwrap(), ("10.0.1.5", None));
        assert!(split_port("10.0.1.5:http").is_err());
        assert_eq!(
            split_port("[2001:db8::5]:22").unwrap(),
            ("2001:db8::5", Some(22))
        );
        assert_eq!(split_port("2001:db8::5").unwrap(), ("2001:db8::5", None));
        assert_eq!(split_port("[2001:db8::5]").unwrap(), ("2001:db8::5", None));
        assert!(split_port("[2001:db8::5]22").is_err());
    }
}
