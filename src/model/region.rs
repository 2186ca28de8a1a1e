//! The regions and availability zones vpclab offers. Each region has the AZ letters AWS
//! gives most accounts; default subnets are created one per AZ, in this order, with the
//! /20 blocks AWS uses (172.31.0.0/20, 172.31.16.0/20, …).

/// A region: its name and the letters of its availability zones.
pub struct RegionInfo {
    pub name: &'static str,
    pub zone_letters: &'static str,
    /// The prefix of zone ids (`use1` → `use1-az1`).
    pub zone_id_prefix: &'static str,
}

pub const REGIONS: &[RegionInfo] = &[
    RegionInfo {
        name: "us-east-1",
        zone_letters: "abcdef",
        zone_id_prefix: "use1",
    },
    RegionInfo {
        name: "us-east-2",
        zone_letters: "abc",
        zone_id_prefix: "use2",
    },
    RegionInfo {
        name: "us-west-1",
        zone_letters: "ab",
        zone_id_prefix: "usw1",
    },
    RegionInfo {
        name: "us-west-2",
        zone_letters: "abcd",
        zone_id_prefix: "usw2",
    },
    RegionInfo {
        name: "ca-central-1",
        zone_letters: "abd",
        zone_id_prefix: "cac1",
    },
    RegionInfo {
        name: "eu-west-1",
        zone_letters: "abc",
        zone_id_prefix: "euw1",
    },
    RegionInfo {
        name: "eu-west-2",
        zone_letters: "abc",
        zone_id_prefix: "euw2",
    },
    RegionInfo {
        name: "eu-central-1",
        zone_letters: "abc",
        zone_id_prefix: "euc1",
    },
    RegionInfo {
        name: "eu-north-1",
        zone_letters: "abc",
        zone_id_prefix: "eun1",
    },
    RegionInfo {
        name: "ap-southeast-1",
        zone_letters: "abc",
        zone_id_prefix: "apse1",
    },
    RegionInfo {
        name: "ap-southeast-2",
        zone_letters: "abc",
        zone_id_prefix: "apse2",
    },
    RegionInfo {
        name: "ap-northeast-1",
        zone_letters: "acd",
        zone_id_prefix: "apne1",
    },
    RegionInfo {
        name: "ap-south-1",
        zone_letters: "abc",
        zone_id_prefix: "aps1",
    },
    RegionInfo {
        name: "sa-east-1",
        zone_letters: "abc",
        zone_id_prefix: "sae1",
    },
];

pub fn region(name: &str) -> Option<&'static RegionInfo> {
    REGIONS.iter().find(|r| r.name == name)
}

/// One availability zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub zone_id: String,
    pub region: &'static str,
}

impl RegionInfo {
    pub fn zones(&self) -> Vec<Zone> {
        self.zone_letters
            .chars()
            .enumerate()
            .map(|(i, c)| Zone {
                name: format!("{}{}", self.name, c),
                zone_id: format!("{}-az{}", self.zone_id_prefix, i + 1),
                region: self.name,
            })
            .collect()
    }

    pub fn zone(&self, name: &str) -> Option<Zone> {
        self.zones().into_iter().find(|z| z.name == name)
    }

    pub fn zone_by_id(&self, id: &str) -> Option<Zone> {
        self.zones().into_iter().find(|z| z.zone_id == id)
    }
}

/// The zones of `region` (empty for an unknown region).
pub fn zones(region_name: &str) -> Vec<Zone> {
    region(region_name)
        .map(RegionInfo::zones)
        .unwrap_or_default()
}
