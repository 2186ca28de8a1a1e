//! The DNS answer engine on arbitrary query bytes, from the internet and from inside a
//! VPC, over UDP and TCP.
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;
use vpclab::dns::{DnsView, HostedZone, Transport, Vantage, VpcDns, answer};

static VIEW: LazyLock<DnsView> = LazyLock::new(|| {
    let mut view = DnsView::default();
    let cidr = FromStr::from_str("10.0.0.0/16").expect("cidr");
    view.vpcs.insert("vpc-a".into(), VpcDns::new("us-east-1", cidr));
    let mut zone = HostedZone::new("example.lab", false);
    zone.add("www.example.lab", RecordType::A, 300, &["198.18.0.10"])
        .expect("record");
    zone.add("alias.example.lab", RecordType::CNAME, 300, &["www.example.lab."])
        .expect("record");
    view.zones.insert("Z1".into(), zone);
    view
});

fuzz_target!(|data: &[u8]| {
    for vantage in [Vantage::Internet, Vantage::Vpc("vpc-a")] {
        for transport in [Transport::UDP, Transport::Tcp] {
            let _ = answer(&VIEW, vantage, data, transport);
        }
    }
});
