//! `vpclab capture eni-…|i-…|subnet-… [-w FILE.pcap] [--count N] [--duration S]`: a live
//! packet capture of what crosses an interface (both directions), streamed by the daemon
//! in the libpcap format (LINKTYPE_RAW: IPv4 packets without a link header), readable
//! by tcpdump, tshark and Wireshark. Without `-w`, one line per packet.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::AsyncReadExt;
use vpclab_netstack::{FlowProto, parse_flow};

use super::outln;

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// What to capture on: a network interface (eni-…), an instance's interfaces (i-…)
    /// or every interface of a subnet (subnet-…).
    pub target: String,
    /// Write the packets to this pcap file (`-` for standard output) instead of printing
    /// one line per packet.
    #[arg(short = 'w', long = "write")]
    pub write: Option<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(short = 'd', long)]
    pub duration: Option<f64>,
    /// The vpclab endpoint (default: $VPCLAB_ENDPOINT, $AWS_ENDPOINT_URL, http://127.0.0.1:4566).
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// Undoes HTTP/1.1 chunked transfer coding, fed as bytes arrive.
#[derive(Default)]
struct Dechunk {
    buf: Vec<u8>,
    /// Bytes left in the current chunk (`None`: a size line is next).
    left: Option<usize>,
    done: bool,
}

impl Dechunk {
    /// Adds received bytes; returns the payload they complete.
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        if self.done {
            // Trailers after the last chunk carry nothing we need.
            return Ok(Vec::new());
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match self.left {
                None => {
                    let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(out);
                    };
                    let line = String::from_utf8_lossy(&self.buf[..eol]).to_string();
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                            .with_context(|| format!("vpclab sent a bad chunk size {line:?}"))?;
                    self.buf.drain(..eol + 2);
                    if size == 0 {
                        self.done = true;
                        return Ok(out);
                    }
                    self.left = Some(size);
                }
                Some(n) => {
                    // The chunk's data, then its CRLF.
                    if self.buf.len() < n + 2 {
                        return Ok(out);
                    }
                    out.extend_from_slice(&self.buf[..n]);
                    self.buf.drain(..n + 2);
                    self.left = None;
                }
            }
        }
    }
}

/// Splits a pcap stream into records as bytes arrive: (seconds, microseconds, data).
#[derive(Default)]
struct PcapReader {
    buf: Vec<u8>,
    header: bool,
    big_endian: bool,
}

impl PcapReader {
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<(u32, u32, Vec<u8>)>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if !self.header {
            if self.buf.len() < 24 {
                return Ok(out);
            }
            self.big_endian = match self.buf[..4] {
                [0xa1, 0xb2, 0xc3, 0xd4] => true,
                [0xd4, 0xc3, 0xb2, 0xa1] => false,
                _ => bail!("vpclab did not send a pcap stream"),
            };
            self.buf.drain(..24);
            self.header = true;
        }
        let u32_at = |b: &[u8], i: usize, be: bool| {
            let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
            if be {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        while self.buf.len() >= 16 {
            let len = u32_at(&self.buf, 8, self.big_endian) as usize;
            if self.buf.len() < 16 + len {
                break;
            }
            let secs = u32_at(&self.buf, 0, self.big_endian);
            let micros = u32_at(&self.buf, 4, self.big_endian);
            out.push((secs, micros, self.buf[16..16 + len].to_vec()));
            self.buf.drain(..16 + len);
        }
        Ok(out)
    }
}

/// One line for a packet, tcpdump-like: time, addresses and ports, protocol, flags.
fn summary(secs: u32, micros: u32, data: &[u8]) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::from(secs))
        .map(|t| format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()))
        .unwrap_or_else(|_| secs.to_string());
    let Ok(f) = parse_flow(data) else {
        return format!("{t}.{micros:06} {} bytes (not parsed)", data.len());
    };
    let what = match f.proto {
        FlowProto::Tcp {
            sport,
            dport,
            flags,
        } => {
            let mut names = Vec::new();
            for (bit, name) in [
                (0x02, "SYN"),
                (0x10, "ACK"),
                (0x01, "FIN"),
                (0x04, "RST"),
                (0x08, "PSH"),
            ] {
                if flags.0 & bit != 0 {
                    names.push(name);
                }
            }
            format!(
                "{}.{sport} > {}.{dport}: TCP [{}]",
                f.src,
                f.dst,
                names.join(",")
            )
        }
        FlowProto::Udp { sport, dport } => format!("{}.{sport} > {}.{dport}: UDP", f.src, f.dst),
        FlowProto::Icmp { ty, code, .. } => {
            let name = match ty {
                8 => "echo request".to_string(),
                0 => "echo reply".to_string(),
                3 => format!("unreachable (code {code})"),
                11 => "time exceeded".to_string(),
                t => format!("type {t} code {code}"),
            };
            format!("{} > {}: ICMP {name}", f.src, f.dst)
        }
        FlowProto::Other(p) => format!("{} > {}: IP protocol {p}", f.src, f.dst),
    };
    format!("{t}.{micros:06} {what}, length {}", data.len())
}

pub fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("target", &args.target);
    if let Some(n) = args.count {
        q.append_pair("count", &n.to_string());
    }
    if let Some(s) = args.duration {
        if !(s.is_finite() && s >= 0.0) {
            bail!("--duration must be a number of seconds");
        }
        q.append_pair("duration_ms", &((s * 1000.0) as u64).to_string());
    }
    let query = q.finish().replace('+', "%20");
    let mut file: Option<Box<dyn Write>> = match args.write.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {path}"))?,
        ))),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let packets = rt.block_on(async {
        let endpoint = super::connect::endpoint(args.endpoint.as_deref());
        let (mut sock, status, rest) =
            super::connect::request(&endpoint, "/_vpclab/capture", &query, false).await?;
        if status != 200 {
            let text = super::connect::body(sock, rest).await;
            bail!("{}", text.lines().next().unwrap_or("capture failed"));
        }
        // The daemon subscribed before it answered: from here on nothing is missed.
        eprintln!("capturing on {} (Ctrl-C to stop)", args.target);
        let mut dechunk = Dechunk::default();
        let mut pcap = PcapReader::default();
        let mut packets = 0u64;
        let mut incoming = rest;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let payload = dechunk.feed(&incoming)?;
            if let Some(f) = file.as_mut() {
                f.write_all(&payload)?;
                f.flush()?;
                packets += pcap.feed(&payload)?.len() as u64;
            } else {
                for (s, us, data) in pcap.feed(&payload)? {
                    outln!("{}", summary(s, us, &data))?;
                    packets += 1;
                }
            }
            if dechunk.done {
                break;
            }
            let n = match tokio::time::timeout(Duration::from_secs(3600 * 24), sock.read(&mut buf))
                .await
            {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => 0,
            };
            if n == 0 {
                break;
            }
            incoming = buf[..n].to_vec();
        }
        anyhow::Ok(packets)
    })?;
    if let Some(path) = args.write.as_deref().filter(|p| *p != "-") {
        eprintln!("{packets} packets written to {path}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_pcap_arrives_in_pieces_and_is_split_into_records() {
        let mut stream = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        stream.extend([0u8; 16]);
        let pkt = vpclab_netstack::Flow::tcp_syn(
            "10.0.1.10".parse().unwrap(),
            40001,
            "10.0.1.20".parse().unwrap(),
            22,
        )
        .to_packet(&[]);
        for (s, us) in [(1u32, 5u32), (2, 6)] {
            stream.extend(s.to_le_bytes());
            stream.extend(us.to_le_bytes());
            stream.extend((pkt.len() as u32).to_le_bytes());
            stream.extend((pkt.len() as u32).to_le_bytes());
            stream.extend(&pkt);
        }
        // Chunk it in two, then feed it byte by byte.
        let mut wire = Vec::new();
        for part in [&stream[..30], &stream[30..]] {
            wire.extend(format!("{:x}\r\n", part.len()).as_bytes());
            wire.extend(part);
            wire.extend(b"\r\n");
        }
        wire.extend(b"0\r\n\r\n");
        let (mut d, mut p, mut got) = (Dechunk::default(), PcapReader::default(), Vec::new());
        for b in &wire {
            let payload = d.feed(std::slice::from_ref(b)).unwrap();
            got.extend(p.feed(&payload).unwrap());
        }
        assert!(d.done);
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].0, got[1].1), (2, 6));
        let line = summary(got[0].0, got[0].1, &got[0].2);
        assert!(
            line.contains("10.0.1.10.40001 > 10.0.1.20.22: TCP [SYN]"),
            "{line}"
        );
    }
}
