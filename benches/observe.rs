//! Observability benchmark, in process (no daemon): what watching the network costs.
//!
//! - `flow_records_per_s`: flow-record updates per second while both interfaces of an
//!   established flow have a VPC flow log (each packet updates the sender's egress and
//!   the receiver's ingress record), through `LiveFabric`, the forwarder of every world.
//! - `flow_log_overhead_pct`: how much slower forwarding is with those flow logs than
//!   without (goal: under 10%).
//! - `capture_overhead_pct`: how much slower `LiveFabric` forwarding is with its capture
//!   tap idle than the bare fabric (the tap's one atomic load).
//! - `analysis_ms`: one reachability analysis (`World::walk`: compile the world, walk a
//!   new connection and its reply), the median of 200 (goal: under 5 ms).
//!
//! Each per-packet figure is the best of 5 rounds of 400,000 packets: on a machine
//! shared with other builds the slower rounds measure the neighbours. Prints as its
//! last line `BENCH observe flow_records_per_s=… flow_log_overhead_pct=…
//! capture_overhead_pct=… analysis_ms=…`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use vpclab::model::ec2::eni::EniSpec;
use vpclab::model::ec2::insights::{Proto, WalkQuery};
use vpclab::model::{Env, Timestamp, World};
use vpclab::world::fabric::LiveFabric;
use vpclab_netstack::host::Forwarder;
use vpclab_netstack::{Flow, Port, TcpFlags};

const ROUNDS: usize = 5;
const PACKETS: u64 = 400_000;

/// A VPC with two subnets and one interface in each (default security group, which lets
/// members talk to each other; default NACL; the main route table's local route).
fn world() -> (World, String, String) {
    let env = Env::new("us-east-1", Timestamp(1_700_000_000_000));
    let mut w = World::new("000000000000");
    let vpc = w.create_vpc(&env, "10.0.0.0/16", None, &[]).expect("vpc");
    let a_net = w
        .create_subnet(&env, &vpc, "10.0.1.0/24", Some("us-east-1a"), None, &[])
        .expect("subnet a");
    let b_net = w
        .create_subnet(&env, &vpc, "10.0.2.0/24", Some("us-east-1a"), None, &[])
        .expect("subnet b");
    let eni = |w: &mut World, subnet: &str| {
        let spec = EniSpec {
            subnet_id: subnet.to_string(),
            ..EniSpec::default()
        };
        w.create_network_interface(&env, spec, &[]).expect("eni")
    };
    let a = eni(&mut w, &a_net);
    let b = eni(&mut w, &b_net);
    (w, a, b)
}

/// Best nanoseconds per packet of `send` over the rounds.
fn per_packet(mut send: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PACKETS {
            send();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / PACKETS as f64);
    }
    best
}

fn main() {
    let (w, a, b) = world();
    let ip = |id: &str| w.network_interfaces.get(id).expect("eni").private_ip;
    let (a_ip, b_ip) = (ip(&a), ip(&b));
    let (pa, pb): (Port, Port) = (
        Port::Eni(Arc::from(a.as_str())),
        Port::Eni(Arc::from(b.as_str())),
    );
    let mut live = LiveFabric::new("000000000000", Arc::new(w.clone()));
    let now = smoltcp::time::Instant::from_millis(0);

    // Open the connection a -> b so that the ACKs below are an established flow.
    let mut syn = Flow::tcp_syn(a_ip, 40_000, b_ip, 22).to_packet(b"");
    assert_eq!(
        live.forward(now, &pa, &mut syn),
        Some(pb.clone()),
        "SYN delivered"
    );
    let mut synack = Flow::tcp(b_ip, 22, a_ip, 40_000, TcpFlags::SYN_ACK).to_packet(b"");
    assert_eq!(
        live.forward(now, &pb, &mut synack),
        Some(pa.clone()),
        "SYN-ACK delivered"
    );
    let ack = Flow::tcp(a_ip, 40_000, b_ip, 22, TcpFlags::ACK).to_packet(&[0u8; 64]);
    let mut buf = Vec::with_capacity(256);

    let bare_ns = per_packet(|| {
        buf.clear();
        buf.extend_from_slice(&ack);
        black_box(live.current().forward(now, &pa, &mut buf));
    });
    let tapped_ns = per_packet(|| {
        buf.clear();
        buf.extend_from_slice(&ack);
        black_box(live.forward(now, &pa, &mut buf));
    });
    live.without_compiling()
        .set_flow_logged([Arc::from(a.as_str()), Arc::from(b.as_str())]);
    let logged_ns = per_packet(|| {
        buf.clear();
        buf.extend_from_slice(&ack);
        black_box(live.forward(now, &pa, &mut buf));
    });
    let drained = live.without_compiling().drain_flow_records();
    assert_eq!(
        drained.records.len(),
        2,
        "one egress and one ingress record"
    );

    let q = WalkQuery {
        source: a.clone(),
        destination: Some(b.clone()),
        source_ip: None,
        destination_ip: None,
        proto: Proto::Tcp,
        source_port: 40_001,
        destination_port: 22,
        ipv6: false,
    };
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let walked = w
            .walk("us-east-1", &q, Timestamp(1_700_000_000_000))
            .expect("walk");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(walked.reachable(), "a -> b is open");
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let analysis_ms = times[times.len() / 2];

    let records_per_s = 2.0e9 / logged_ns;
    let flow_log_pct = (logged_ns - tapped_ns) / tapped_ns * 100.0;
    let capture_pct = (tapped_ns - bare_ns) / bare_ns * 100.0;
    println!("bare fabric, established flow: {bare_ns:.1} ns/packet");
    println!("LiveFabric with an idle capture tap: {tapped_ns:.1} ns/packet");
    println!("LiveFabric with flow logs on both interfaces: {logged_ns:.1} ns/packet");
    println!("reachability analysis (compile + round trip): {analysis_ms:.3} ms");
    println!(
        "BENCH observe flow_records_per_s={records_per_s:.0} flow_log_overhead_pct={flow_log_pct:.1} capture_overhead_pct={capture_pct:.1} analysis_ms={analysis_ms:.3}"
    );
}
