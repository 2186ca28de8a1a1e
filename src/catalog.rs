//! The fixed catalog of machine images and instance types a world offers.
//!
//! AWS publishes thousands of AMIs and hundreds of instance types; a learner needs the two
//! Linux families the instance runtime emulates (Amazon Linux 2023, Ubuntu 24.04) and the
//! small general-purpose types labs use. Both lists are static data, the same in every
//! region and every world, so an AMI id copied from one lab works in the next.
//!
//! Names, owners and field values are shaped like AWS's (`al2023-ami-2023.6.…-x86_64`,
//! `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-…`) so that the usual
//! look-ups work: `describe-images --owners amazon --filters Name=name,Values=al2023-ami-*`.
//! The ids are vpclab's own (real AMI ids differ per region and change with every
//! release). Hourly prices are on-demand Linux prices in us-east-1; where the project's
//! seed notes give a price (t2.micro $0.013, r5.large $0.126) that price is used, so lab
//! cost estimates agree with the course material.
//!
//! This module is data and look-ups only. Rendering (`DescribeImages`,
//! `DescribeInstanceTypes`) is the API layer's; what an OS looks like inside (shell,
//! package manager) is the instance runtime's, keyed by [`Os`].

/// The operating-system family of an image; the instance runtime picks its emulated
/// userland (`dnf` vs `apt`, `/etc/os-release`, default user) from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Os {
    /// Amazon Linux 2023 (user `ec2-user`, `dnf`/`yum`).
    AmazonLinux2023,
    /// Ubuntu 24.04 LTS "Noble Numbat" (user `ubuntu`, `apt`).
    Ubuntu2404,
}

impl Os {
    /// The login user AWS configures for images of this family.
    pub fn default_user(self) -> &'static str {
        match self {
            Os::AmazonLinux2023 => "ec2-user",
            Os::Ubuntu2404 => "ubuntu",
        }
    }
}

/// One machine image (`DescribeImages` item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `ami-…`, stable across worlds and regions.
    pub image_id: &'static str,
    /// AWS-shaped name, the usual filter target.
    pub name: &'static str,
    /// Free-text description as AWS shows it.
    pub description: &'static str,
    /// Owner account id (Amazon's or Canonical's).
    pub owner_id: &'static str,
    /// `ImageOwnerAlias`; `amazon` for every image here, so `--owners amazon` finds all.
    pub owner_alias: &'static str,
    /// `x86_64` (every instance type in the catalog is x86).
    pub architecture: &'static str,
    /// ISO 8601 with milliseconds, as AWS prints `CreationDate`.
    pub creation_date: &'static str,
    /// When AWS would deprecate it (two years after creation, as AWS sets for public AMIs).
    pub deprecation_time: &'static str,
    /// `/dev/xvda` (Amazon Linux) or `/dev/sda1` (Ubuntu).
    pub root_device_name: &'static str,
    /// The root volume's source snapshot.
    pub root_snapshot_id: &'static str,
    /// Root volume size in GiB.
    pub root_volume_size_gib: u32,
    /// `BootMode` (`uefi-preferred` for AL2023, `legacy-bios`/`uefi` for Ubuntu).
    pub boot_mode: &'static str,
    /// `ImdsSupport`: `v2.0` means instances launched from it require IMDSv2 tokens.
    pub imds_support: Option<&'static str>,
    /// Which emulated userland the instance gets.
    pub os: Os,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_pretty_name: &'static str,
    /// What `uname -r` prints.
    pub kernel_release: &'static str,
}

impl Image {
    /// The login user of this image.
    pub fn default_user(&self) -> &'static str {
        self.os.default_user()
    }

    /// `ImageLocation`: owner alias and name.
    pub fn location(&self) -> String {
        format!("{}/{}", self.owner_alias, self.name)
    }
}

/// Amazon's owner account for Amazon Linux images.
pub const AMAZON_OWNER_ID: &str = "137112412989";
/// Canonical's owner account for Ubuntu images.
pub const CANONICAL_OWNER_ID: &str = "099720109477";

/// The images, oldest first within each family. Two releases per family, so "the newest
/// image" queries (`sort_by(Images, &CreationDate)[-1]`) have something to choose from.
pub static IMAGES: &[Image] = &[
    Image {
        image_id: "ami-0b6563b71a4ed0983",
        name: "al2023-ami-2023.6.20241121.0-kernel-6.1-x86_64",
        description: "Amazon Linux 2023 AMI 2023.6.20241121.0 x86_64 HVM kernel-6.1",
        owner_id: AMAZON_OWNER_ID,
        owner_alias: "amazon",
        architecture: "x86_64",
        creation_date: "2024-11-20T23:05:49.000Z",
        deprecation_time: "2026-11-20T23:05:49.000Z",
        root_device_name: "/dev/xvda",
        root_snapshot_id: "snap-0f74c6b2f874ee48d",
        root_volume_size_gib: 8,
        boot_mode: "uefi-preferred",
        imds_support: Some("v2.0"),
        os: Os::AmazonLinux2023,
        os_pretty_name: "Amazon Linux 2023.6.20241121",
        kernel_release: "6.1.115-126.197.amzn2023.x86_64",
    },
    Image {
        image_id: "ami-0ccbe15b62d56cc35",
        name: "al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64",
        description: "Amazon Linux 2023 AMI 2023.6.20241212.0 x86_64 HVM kernel-6.1",
        owner_id: AMAZON_OWNER_ID,
        owner_alias: "amazon",
        architecture: "x86_64",
        creation_date: "2024-12-11T22:31:26.000Z",
        deprecation_time: "2026-12-11T22:31:26.000Z",
        root_device_name: "/dev/xvda",
        root_snapshot_id: "snap-0a215893d35d1df8c",
        root_volume_size_gib: 8,
        boot_mode: "uefi-preferred",
        imds_support: Some("v2.0"),
        os: Os::AmazonLinux2023,
        os_pretty_name: "Amazon Linux 2023.6.20241212",
        kernel_release: "6.1.119-129.201.amzn2023.x86_64",
    },
    Image {
        image_id: "ami-0b3229f3f53574c7e",
        name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241115",
        description: "Canonical, Ubuntu, 24.04, amd64 noble image",
        owner_id: CANONICAL_OWNER_ID,
        owner_alias: "amazon",
        architecture: "x86_64",
        creation_date: "2024-11-15T06:58:44.000Z",
        deprecation_time: "2026-11-15T06:58:44.000Z",
        root_device_name: "/dev/sda1",
        root_snapshot_id: "snap-0edd8a67d8982b8df",
        root_volume_size_gib: 8,
        boot_mode: "uefi-preferred",
        imds_support: None,
        os: Os::Ubuntu2404,
        os_pretty_name: "Ubuntu 24.04.1 LTS",
        kernel_release: "6.8.0-1018-aws",
    },
    Image {
        image_id: "ami-04a087d506a98c406",
        name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241206",
        description: "Canonical, Ubuntu, 24.04, amd64 noble image",
        owner_id: CANONICAL_OWNER_ID,
        owner_alias: "amazon",
        architecture: "x86_64",
        creation_date: "2024-12-06T07:12:09.000Z",
        deprecation_time: "2026-12-06T07:12:09.000Z",
        root_device_name: "/dev/sda1",
        root_snapshot_id: "snap-05ed0a652913fc2db",
        root_volume_size_gib: 8,
        boot_mode: "uefi-preferred",
        imds_support: None,
        os: Os::Ubuntu2404,
        os_pretty_name: "Ubuntu 24.04.1 LTS",
        kernel_release: "6.8.0-1019-aws",
    },
];

/// Looks an image up by id.
pub fn image(image_id: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.image_id == image_id)
}

/// One instance type (`DescribeInstanceTypes` item) plus its on-demand price.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceType {
    /// `t2.micro`, …
    pub name: &'static str,
    /// Default vCPUs.
    pub vcpus: u32,
    /// Default physical cores.
    pub cores: u32,
    /// Default threads per core.
    pub threads_per_core: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// On-demand Linux price per hour in USD (us-east-1).
    pub hourly_usd: f64,
    /// `xen` (t2) or `nitro` (the rest).
    pub hypervisor: &'static str,
    /// `ProcessorInfo.SupportedArchitectures`.
    pub architectures: &'static [&'static str],
    /// `ProcessorInfo.SustainedClockSpeedInGhz`.
    pub clock_ghz: f64,
    /// `NetworkInfo.NetworkPerformance`.
    pub network_performance: &'static str,
    /// `NetworkInfo.MaximumNetworkInterfaces`.
    pub max_network_interfaces: u32,
    /// `NetworkInfo.Ipv4AddressesPerInterface`.
    pub ipv4_per_interface: u32,
    /// `FreeTierEligible`.
    pub free_tier: bool,
    /// `BurstablePerformanceSupported` (the T families).
    pub burstable: bool,
    /// `EnaSupport`: `required` on Nitro, `unsupported` on t2.
    pub ena_support: &'static str,
}

const X86: &[&str] = &["x86_64"];
const X86_AND_I386: &[&str] = &["i386", "x86_64"];

/// The instance types, in the order AWS lists them (family, then size).
pub static INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "t2.nano",
        vcpus: 1,
        cores: 1,
        threads_per_core: 1,
        memory_mib: 512,
        hourly_usd: 0.0058,
        hypervisor: "xen",
        architectures: X86_AND_I386,
        clock_ghz: 2.4,
        network_performance: "Low to Moderate",
        max_network_interfaces: 2,
        ipv4_per_interface: 2,
        free_tier: false,
        burstable: true,
        ena_support: "unsupported",
    },
    InstanceType {
        name: "t2.micro",
        vcpus: 1,
        cores: 1,
        threads_per_core: 1,
        memory_mib: 1024,
        // Seed notes: $0.013/h (AWS's current list price is $0.0116).
        hourly_usd: 0.013,
        hypervisor: "xen",
        architectures: X86_AND_I386,
        clock_ghz: 2.5,
        network_performance: "Low to Moderate",
        max_network_interfaces: 2,
        ipv4_per_interface: 2,
        free_tier: true,
        burstable: true,
        ena_support: "unsupported",
    },
    InstanceType {
        name: "t2.small",
        vcpus: 1,
        cores: 1,
        threads_per_core: 1,
        memory_mib: 2048,
        hourly_usd: 0.023,
        hypervisor: "xen",
        architectures: X86_AND_I386,
        clock_ghz: 2.5,
        network_performance: "Low to Moderate",
        max_network_interfaces: 3,
        ipv4_per_interface: 4,
        free_tier: false,
        burstable: true,
        ena_support: "unsupported",
    },
    InstanceType {
        name: "t3.nano",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 512,
        hourly_usd: 0.0052,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 2.5,
        network_performance: "Up to 5 Gigabit",
        max_network_interfaces: 2,
        ipv4_per_interface: 2,
        free_tier: false,
        burstable: true,
        ena_support: "required",
    },
    InstanceType {
        name: "t3.micro",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 1024,
        hourly_usd: 0.0104,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 2.5,
        network_performance: "Up to 5 Gigabit",
        max_network_interfaces: 2,
        ipv4_per_interface: 2,
        free_tier: true,
        burstable: true,
        ena_support: "required",
    },
    InstanceType {
        name: "t3.small",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 2048,
        hourly_usd: 0.0208,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 2.5,
        network_performance: "Up to 5 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 4,
        free_tier: false,
        burstable: true,
        ena_support: "required",
    },
    InstanceType {
        name: "t3.medium",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 4096,
        hourly_usd: 0.0416,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 2.5,
        network_performance: "Up to 5 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 6,
        free_tier: false,
        burstable: true,
        ena_support: "required",
    },
    InstanceType {
        name: "t3.large",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 8192,
        hourly_usd: 0.0832,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 2.5,
        network_performance: "Up to 5 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 12,
        free_tier: false,
        burstable: true,
        ena_support: "required",
    },
    InstanceType {
        name: "m5.large",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 8192,
        hourly_usd: 0.096,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 3.1,
        network_performance: "Up to 10 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 10,
        free_tier: false,
        burstable: false,
        ena_support: "required",
    },
    InstanceType {
        name: "c5.large",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 4096,
        hourly_usd: 0.085,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 3.4,
        network_performance: "Up to 10 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 10,
        free_tier: false,
        burstable: false,
        ena_support: "required",
    },
    InstanceType {
        name: "r5.large",
        vcpus: 2,
        cores: 1,
        threads_per_core: 2,
        memory_mib: 16384,
        // Seed notes: $0.126/h.
        hourly_usd: 0.126,
        hypervisor: "nitro",
        architectures: X86,
        clock_ghz: 3.1,
        network_performance: "Up to 10 Gigabit",
        max_network_interfaces: 3,
        ipv4_per_interface: 10,
        free_tier: false,
        burstable: false,
        ena_support: "required",
    },
];

/// Looks an instance type up by name.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// The instance type `RunInstances` uses when none is given. AWS's documented default is
/// `m1.small`, a previous-generation type this catalog does not offer; vpclab uses the
/// free-tier `t2.micro` instead.
pub const DEFAULT_INSTANCE_TYPE: &str = "t2.micro";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn image_ids_are_unique_and_shaped_like_aws_ids() {
        let ids: BTreeSet<_> = IMAGES.iter().map(|i| i.image_id).collect();
        assert_eq!(ids.len(), IMAGES.len());
        for i in IMAGES {
            let hex = i.image_id.strip_prefix("ami-").expect("ami- prefix");
            assert_eq!(hex.len(), 17, "{}", i.image_id);
            assert!(
                hex.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            let snap = i
                .root_snapshot_id
                .strip_prefix("snap-")
                .expect("snap- prefix");
            assert_eq!(snap.len(), 17);
        }
    }

    #[test]
    fn amazon_linux_logs_in_as_ec2_user_and_ubuntu_as_ubuntu() {
        for i in IMAGES {
            if i.name.starts_with("al2023-ami-") {
                assert_eq!(i.default_user(), "ec2-user");
                assert_eq!(i.root_device_name, "/dev/xvda");
            } else if i
                .name
                .starts_with("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-")
            {
                assert_eq!(i.default_user(), "ubuntu");
                assert_eq!(i.owner_id, CANONICAL_OWNER_ID);
            } else {
                panic!("unexpected image name {}", i.name);
            }
            assert_eq!(i.owner_alias, "amazon");
        }
    }

    #[test]
    fn every_instance_type_has_vcpus_memory_and_a_price() {
        let names: BTreeSet<_> = INSTANCE_TYPES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), INSTANCE_TYPES.len());
        for t in INSTANCE_TYPES {
            assert!(
                t.vcpus >= 1 && t.memory_mib >= 512 && t.hourly_usd > 0.0,
                "{t:?}"
            );
            assert_eq!(t.vcpus, t.cores * t.threads_per_core, "{}", t.name);
        }
        assert!(instance_type(DEFAULT_INSTANCE_TYPE).is_some());
    }

    #[test]
    fn prices_follow_the_seed_notes() {
        let price = |n| instance_type(n).expect("in catalog").hourly_usd;
        assert_eq!(price("t2.micro"), 0.013);
        assert_eq!(price("r5.large"), 0.126);
    }
}
