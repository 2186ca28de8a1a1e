//! Instances: the EC2 records behind RunInstances, DescribeInstances,
//! DescribeInstanceStatus, Start/Stop/Reboot/TerminateInstances, GetConsoleOutput and
//! Modify/DescribeInstanceAttribute. The instance *runtime* (SSH, shell, metadata) lives in
//! `instance/`; it reads these records through [`World::runtime_instances`].
//!
//! AWS rules reproduced here:
//! - An instance lives in one subnet; its primary network interface takes the subnet's
//!   next free private address (or the one asked for) and the VPC's default security
//!   group unless groups are given; without a subnet, the default subnet of the default
//!   VPC (`VPCIdNotSpecified` when there is none).
//! - A public address from the pool comes with the instance when the subnet maps public
//!   addresses on launch or the request says `AssociatePublicIpAddress`.
//! - Lifecycle: pending → running → stopping → stopped → pending → running;
//!   shutting-down → terminated, visible for an hour afterwards. Stop releases an
//!   automatic public address and start assigns a new one; an Elastic IP stays. The
//!   private address survives stop/start. Terminating deletes the primary interface
//!   (`DeleteOnTermination`), which frees the private address.
//! - State codes: pending 0, running 16, shutting-down 32, terminated 48, stopping 64,
//!   stopped 80 (the high byte is internal and always 0 here).
//!
//! Time: a transitional state records when it began and how long it lasts
//! (`transition_ms`, chosen at launch from the daemon's boot delay). Readers compute the
//! settled state from those timestamps ([`Instance::settled`]), so a describe is exact at
//! any instant, `aws ec2 wait instance-running` sees `running` as soon as the boot delay
//! has passed, and a restarted daemon resumes where it stopped. The ticker persists the
//! transitions and their side effects ([`World::advance_instances`]); every mutation
//! settles the instance first.
//!
//! # For the instance runtime
//!
//! - Subscribe to the control (`Control::subscribe`): on every committed change (the
//!   ticker commits each pending → running transition), call
//!   [`World::runtime_instances`]`(now)` and diff by `instance_id`: boot hosts whose
//!   state is `Running` (`boots == 1` means the first boot: run user data), stop hosts that are `Stopping`/`Stopped`/`ShuttingDown` or gone, restart
//!   services when `reboots` grows. Each [`RuntimeInstance`] carries the image family
//!   and login user, addresses, MAC, groups, resolver, key line and decoded user data.
//! - Report back through `Control::mutate(account, &env, false, |w, env| …)`:
//!   [`World::record_host_keys`] (so GetConsoleOutput prints their fingerprints),
//!   [`World::set_console_output`] / [`World::append_console_output`] (the runtime's
//!   boot log and user-data output replace vpclab's generated log), and
//!   [`World::instance_initiated_shutdown`] for `shutdown -h now` inside the instance.

use std::net::Ipv4Addr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::eni::{EniAssociation, EniSpec, NetworkInterface, private_dns_name, public_dns_name};
use crate::catalog;
use crate::model::filter::{Filter, b};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

/// The boot delay when the daemon is not told otherwise (AWS takes tens of seconds; two
/// seconds is enough for `aws ec2 wait` to mean something without slowing a lab).
pub const DEFAULT_BOOT_DELAY_MS: i64 = 2_000;
/// How long a terminated instance stays visible (AWS: about an hour).
pub const TERMINATED_VISIBLE_MS: i64 = 3_600_000;
/// AWS's per-call launch limit for a new account (vCPU-based on AWS; a count here).
pub const MAX_INSTANCES_PER_CALL: i64 = 20;
/// AWS's user-data limit (before base64).
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// GetConsoleOutput returns at most the last 64 KiB.
pub const MAX_CONSOLE_BYTES: usize = 64 * 1024;

/// The six instance states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    /// The API name (`shutting-down`, …).
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// The API code (low byte; AWS documents the high byte as internal).
    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }
}

/// `StateReason` (code and message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

impl StateReason {
    fn new(code: &str, message: &str) -> Self {
        StateReason {
            code: code.into(),
            message: message.into(),
        }
    }

    fn user_shutdown() -> Self {
        Self::new(
            "Client.UserInitiatedShutdown",
            "Client.UserInitiatedShutdown: User initiated shutdown",
        )
    }

    fn instance_shutdown() -> Self {
        Self::new(
            "Client.InstanceInitiatedShutdown",
            "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    pub region: String,
    /// `r-…`, shared by the instances of one RunInstances call.
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    /// The key pair's OpenSSH public key line, copied at launch (deleting the key pair
    /// later does not change what the instance accepts, as on AWS).
    pub public_key: Option<String>,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    /// The primary interface; `None` once terminated.
    pub primary_eni: Option<String>,
    /// The primary private address (kept for the record after termination).
    pub private_ip: Ipv4Addr,
    /// Whether the primary interface gets an automatic public address at each start.
    pub auto_public_ip: bool,
    /// The automatic public address released at the last stop (the next start picks
    /// another one, as AWS does).
    #[serde(default)]
    pub last_public_ip: Option<Ipv4Addr>,
    pub state: InstanceState,
    /// When `state` began.
    pub state_since: Timestamp,
    /// How long each transitional state lasts (pending, stopping, shutting-down).
    pub transition_ms: i64,
    /// When the instance last entered `pending` from launch or start (`LaunchTime`).
    pub launch_time: Timestamp,
    /// When RunInstances created it (orders DescribeInstances output).
    pub created: Timestamp,
    /// `StateTransitionReason` (`User initiated (2024-12-12 10:00:00 GMT)`).
    pub state_transition_reason: String,
    pub state_reason: Option<StateReason>,
    /// User data as sent (base64), if any.
    pub user_data: Option<String>,
    pub ami_launch_index: u32,
    pub client_token: Option<String>,
    pub disable_api_termination: bool,
    pub disable_api_stop: bool,
    /// CloudWatch detailed monitoring (`Monitoring.State` `enabled`): the `AWS/EC2`
    /// metrics are published every minute instead of every 5 minutes.
    #[serde(default)]
    pub monitoring: bool,
    /// `stop` or `terminate` (what `shutdown -h now` inside the instance does).
    pub shutdown_behavior: String,
    /// IMDS: `optional` (v1 and v2) or `required` (v2 only).
    pub http_tokens: String,
    /// IMDS: `enabled` or `disabled`.
    pub http_endpoint: String,
    /// IMDS over IPv6 (`HttpProtocolIpv6`): the service also answers at
    /// [fd00:ec2::254] for the instance's IPv6 addresses. AWS's default is disabled.
    #[serde(default)]
    pub http_protocol_ipv6: bool,
    pub http_put_response_hop_limit: u32,
    /// The root EBS volume id (`vol-…`); volumes themselves are not modelled.
    pub root_volume_id: String,
    /// Completed boots (pending → running transitions). User data runs on the first.
    pub boots: u32,
    /// Reboots requested (RebootInstances); the runtime restarts services when it grows.
    pub reboots: u32,
    /// The SSH host keys (OpenSSH public lines) the runtime generated for this instance;
    /// printed by GetConsoleOutput. Empty until the runtime records them.
    #[serde(default)]
    pub host_keys: Vec<String>,
    /// Console text from the runtime: appended lines (user-data output), or its whole
    /// boot log when `console_from_runtime`.
    #[serde(default)]
    pub console_extra: String,
    /// Whether the runtime wrote the whole console ([`World::set_console_output`]); then
    /// GetConsoleOutput shows only that, not vpclab's generated boot log.
    #[serde(default)]
    pub console_from_runtime: bool,
    /// `PrivateDnsNameOptions`, copied from the subnet's options at launch.
    #[serde(default)]
    pub dns_name_options: super::ipv6::PrivateDnsNameOptions,
}

impl Resource for Instance {
    const KIND: &'static str = "instance";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Instance {
    /// `Monitoring.State` as DescribeInstances shows it.
    pub fn monitoring_state(&self) -> &'static str {
        if self.monitoring {
            "enabled"
        } else {
            "disabled"
        }
    }

    /// The state at `now` and when it began, following transitions whose time has come.
    pub fn settled(&self, now: Timestamp) -> (InstanceState, Timestamp) {
        let due = self.state_since.plus_ms(self.transition_ms);
        let next = match self.state {
            InstanceState::Pending => InstanceState::Running,
            InstanceState::Stopping => InstanceState::Stopped,
            InstanceState::ShuttingDown => InstanceState::Terminated,
            s => return (s, self.state_since),
        };
        if now >= due {
            (next, due)
        } else {
            (self.state, self.state_since)
        }
    }

    /// Whether the record should disappear (terminated for longer than AWS shows it).
    pub fn expired(&self, now: Timestamp) -> bool {
        let (state, since) = self.settled(now);
        state == InstanceState::Terminated && now >= since.plus_ms(TERMINATED_VISIBLE_MS)
    }

    /// The catalog image it was launched from.
    pub fn image(&self) -> Option<&'static catalog::Image> {
        catalog::image(&self.image_id)
    }

    /// The user data decoded (it was validated as base64 at launch).
    pub fn user_data_bytes(&self) -> Option<Vec<u8>> {
        self.user_data
            .as_deref()
            .and_then(|u| BASE64.decode(u.as_bytes()).ok())
    }

    /// The primary private IPv4 address; `None` for an instance in an IPv6-only subnet
    /// (see `eni::NO_PRIVATE_IPV4`).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        (self.private_ip != super::eni::NO_PRIVATE_IPV4).then_some(self.private_ip)
    }

    /// `ip-10-0-1-5.ec2.internal`; also the instance's hostname. An instance without a
    /// private IPv4 address (IPv6-only subnet) has the resource-based name
    /// `i-….ec2.internal`, the only hostname type AWS allows there.
    pub fn private_dns_name(&self) -> String {
        match self.ipv4() {
            Some(ip) => private_dns_name(&self.region, ip),
            None => super::eni::resource_dns_name(&self.region, &self.id),
        }
    }
}

pub fn instance_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidInstanceID.NotFound", "instance ID", id)
}

/// Checks the shape of an instance id (`i-` and 8 or 17 hex digits).
fn check_instance_id(id: &str) -> ApiResult<()> {
    let ok = id.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{id}\""),
        ))
    }
}

/// `User initiated (2024-12-12 10:00:00 GMT)`, AWS's StateTransitionReason.
fn user_initiated(now: Timestamp) -> String {
    let iso = now.iso();
    // `2024-12-12T10:00:00.000Z` → `2024-12-12 10:00:00`
    let when = iso.get(..19).unwrap_or(&iso).replace('T', " ");
    format!("User initiated ({when} GMT)")
}

/// One `NetworkInterface.N` of RunInstances.
#[derive(Clone, Debug, Default)]
pub struct NicSpec {
    pub device_index: Option<i64>,
    pub network_interface_id: Option<String>,
    pub subnet_id: Option<String>,
    pub associate_public_ip: Option<bool>,
    pub groups: Vec<String>,
    pub private_ip: Option<String>,
    /// `PrivateIpAddresses.N` (address, primary).
    pub private_ips: Vec<(String, bool)>,
    pub delete_on_termination: Option<bool>,
    pub description: Option<String>,
    /// `Ipv6AddressCount`: IPv6 addresses from the subnet's /64.
    pub ipv6_address_count: Option<i64>,
    /// `SecondaryPrivateIpAddressCount`: secondary private IPv4 addresses.
    pub secondary_private_ip_count: Option<i64>,
}

/// The parameters of RunInstances vpclab honours.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub key_name: Option<String>,
    pub min_count: Option<i64>,
    pub max_count: Option<i64>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub security_group_names: Vec<String>,
    pub private_ip: Option<String>,
    /// `Ipv6AddressCount` (top level; `NetworkInterface.N.Ipv6AddressCount` is in the
    /// interface spec).
    pub ipv6_address_count: Option<i64>,
    pub network_interfaces: Vec<NicSpec>,
    pub user_data: Option<String>,
    pub tag_specs: Vec<TagSpec>,
    pub availability_zone: Option<String>,
    pub client_token: Option<String>,
    pub disable_api_termination: Option<bool>,
    pub disable_api_stop: Option<bool>,
    /// `Monitoring.Enabled`: detailed monitoring from launch.
    pub monitoring: Option<bool>,
    pub shutdown_behavior: Option<String>,
    pub http_tokens: Option<String>,
    pub http_endpoint: Option<String>,
    /// `MetadataOptions.HttpProtocolIpv6`: `enabled` or `disabled`.
    pub http_protocol_ipv6: Option<String>,
    pub http_put_response_hop_limit: Option<i64>,
    /// The daemon's boot delay (how long pending, stopping and shutting-down last).
    pub boot_delay_ms: i64,
    /// `BlockDeviceMapping.N`: the root volume's overrides and extra volumes.
    pub block_devices: Vec<BlockDeviceSpec>,
}

/// One `BlockDeviceMapping.N` of RunInstances (EBS only; instance store is not modelled).
#[derive(Clone, Debug, Default)]
pub struct BlockDeviceSpec {
    pub device_name: String,
    pub ebs: super::volume::VolumeSpec,
    pub delete_on_termination: Option<bool>,
    /// `NoDevice`: suppress a mapping of the AMI (ours have only the root).
    pub no_device: bool,
}

/// One line of a Start/Stop/TerminateInstances answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

/// Everything DescribeInstances shows about one instance, resolved at one instant.
#[derive(Clone, Debug)]
pub struct InstanceView<'a> {
    pub instance: &'a Instance,
    pub state: InstanceState,
    pub state_since: Timestamp,
    pub image: Option<&'static catalog::Image>,
    /// The primary interface (absent once terminated).
    pub eni: Option<&'a NetworkInterface>,
    pub public_ip: Option<Ipv4Addr>,
    /// `amazon` for an automatic address, the account for an Elastic IP.
    pub public_ip_owner: Option<String>,
    pub private_dns_name: String,
    /// Empty unless the instance has a public address and its VPC `enableDnsHostnames`.
    pub public_dns_name: String,
    /// (group id, group name) of the primary interface.
    pub groups: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// DescribeInstanceStatus line.
#[derive(Clone, Debug)]
pub struct StatusView<'a> {
    pub instance: &'a Instance,
    pub state: InstanceState,
    /// `ok`, `initializing` or `not-applicable`.
    pub instance_status: &'static str,
    pub system_status: &'static str,
}

/// What the instance runtime needs to run one instance (see the module docs of
/// `instance/`): everything is owned, so it outlives the snapshot it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInstance {
    pub account: String,
    pub region: String,
    pub instance_id: String,
    /// `pending`/`running`/… at the instant asked for.
    pub state: InstanceState,
    pub state_since: Timestamp,
    pub image_id: String,
    pub os: Option<catalog::Os>,
    /// The image's login user (`ec2-user`, `ubuntu`).
    pub default_user: Option<String>,
    pub instance_type: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub eni_id: Option<String>,
    pub mac: Option<String>,
    pub private_ip: Ipv4Addr,
    pub subnet_cidr: Option<ipnet::Ipv4Net>,
    /// The primary interface's IPv6 addresses (dual stack), and its subnet's /64.
    pub ipv6_addresses: Vec<std::net::Ipv6Addr>,
    pub subnet_ipv6_cidr: Option<ipnet::Ipv6Net>,
    pub public_ip: Option<Ipv4Addr>,
    pub security_group_ids: Vec<String>,
    /// The same groups by name (instance metadata `security-groups`).
    pub security_group_names: Vec<String>,
    /// The VPC resolver, primary block base + 2 (`/etc/resolv.conf`).
    pub dns_server: Option<Ipv4Addr>,
    /// What the VPC's DHCP option set gives the instance.
    pub dhcp: Option<super::dhcp::DhcpSettings>,
    /// The subnet's prefix length (`ip addr`).
    pub subnet_prefix_len: Option<u8>,
    pub private_dns_name: String,
    pub public_dns_name: String,
    pub key_name: Option<String>,
    /// OpenSSH public key line of the launch key pair.
    pub public_key: Option<String>,
    /// Decoded user data.
    pub user_data: Option<Vec<u8>>,
    /// Completed boots, counting a pending → running transition that is due but not yet
    /// persisted: an instance that is `Running` with `boots == 1` is on its first boot
    /// (when user data runs).
    pub boots: u32,
    pub reboots: u32,
    pub launch_time: Timestamp,
    pub http_tokens: String,
    pub http_endpoint: String,
    /// The metadata service answers at [fd00:ec2::254] too (`HttpProtocolIpv6`).
    pub http_protocol_ipv6: bool,
    pub host_keys: Vec<String>,
    /// The data volumes attached now (not the root), in device order.
    pub volumes: Vec<super::volume::RuntimeVolume>,
}

impl Filterable for Instance {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let eni = self
            .primary_eni
            .as_deref()
            .and_then(|e| world.network_interfaces.get(e));
        let public_ip = eni
            .and_then(|e| e.association.as_ref())
            .map(|a| a.public_ip);
        let groups: Vec<String> = eni.map(|e| e.groups.clone()).unwrap_or_default();
        let image = self.image();
        Some(match name {
            "instance-id" => vec![self.id.clone()],
            "reservation-id" => vec![self.reservation_id.clone()],
            // The stored state; DescribeInstances applies these two with the settled state.
            "instance-state-name" => vec![self.state.name().into()],
            "instance-state-code" => vec![self.state.code().to_string()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "subnet-id" => vec![self.subnet_id.clone()],
            "instance-type" => vec![self.instance_type.clone()],
            "image-id" => vec![self.image_id.clone()],
            "key-name" => self.key_name.clone().into_iter().collect(),
            "private-ip-address" | "network-interface.addresses.private-ip-address" => eni
                .and_then(|e| e.ipv4())
                .map(|ip| ip.to_string())
                .into_iter()
                .collect(),
            "ip-address" | "association.public-ip" | "network-interface.association.public-ip" => {
                public_ip.map(|i| i.to_string()).into_iter().collect()
            }
            "private-dns-name" => vec![self.private_dns_name()],
            "dns-name" => public_ip
                .filter(|_| {
                    world
                        .vpcs
                        .get(&self.vpc_id)
                        .is_some_and(|v| v.enable_dns_hostnames)
                })
                .map(|ip| public_dns_name(&self.region, ip))
                .into_iter()
                .collect(),
            "availability-zone" | "placement.availability-zone" => {
                vec![self.availability_zone.clone()]
            }
            "instance.group-id" | "group-id" => groups,
            "instance.group-name" | "group-name" => groups
                .iter()
                .filter_map(|g| world.security_groups.get(g))
                .map(|g| g.group_name.clone())
                .collect(),
            "network-interface.network-interface-id" => {
                self.primary_eni.clone().into_iter().collect()
            }
            "network-interface.mac-address" => eni.map(|e| e.mac.clone()).into_iter().collect(),
            "source-dest-check" => eni.map(|e| b(e.source_dest_check)).into_iter().collect(),
            "architecture" => image
                .map(|i| i.architecture.to_string())
                .into_iter()
                .collect(),
            "ami-launch-index" | "launch-index" => vec![self.ami_launch_index.to_string()],
            "launch-time" => vec![self.launch_time.iso()],
            "owner-id" => vec![world.account.clone()],
            "root-device-type" => vec!["ebs".into()],
            "root-device-name" => image
                .map(|i| i.root_device_name.to_string())
                .into_iter()
                .collect(),
            "block-device-mapping.volume-id" => vec![self.root_volume_id.clone()],
            "hypervisor" => vec!["xen".into()],
            "virtualization-type" => vec!["hvm".into()],
            "platform-details" => vec!["Linux/UNIX".into()],
            "tenancy" | "placement.tenancy" => vec!["default".into()],
            "client-token" => self.client_token.clone().into_iter().collect(),
            "metadata-options.http-tokens" => vec![self.http_tokens.clone()],
            "metadata-options.http-endpoint" => vec![self.http_endpoint.clone()],
            "metadata-options.http-protocol-ipv6" => {
                vec![enabled_or_disabled(self.http_protocol_ipv6).to_string()]
            }
            "state-reason-code" => self
                .state_reason
                .as_ref()
                .map(|r| r.code.clone())
                .into_iter()
                .collect(),
            "monitoring-state" => vec![self.monitoring_state().into()],
            _ => return None,
        })
    }
}

/// Builds a console log shaped like cloud-init's on the image's distribution.
fn boot_log(
    inst: &Instance,
    view_mac: Option<&str>,
    subnet: Option<ipnet::Ipv4Net>,
    booted_at: Timestamp,
) -> String {
    let image = inst.image();
    let kernel = image.map(|i| i.kernel_release).unwrap_or("6.1.0");
    let pretty = image.map(|i| i.os_pretty_name).unwrap_or("Linux");
    // The resource-based hostname (the instance id) where there is no IPv4 address.
    let hostname = match inst.ipv4() {
        Some(ip) => format!("ip-{}", ip.to_string().replace('.', "-")),
        None => inst.id.clone(),
    };
    let address = inst
        .ipv4()
        .map_or_else(|| ".".to_string(), |ip| ip.to_string());
    let mask = subnet
        .map(|n| n.netmask().to_string())
        .unwrap_or_else(|| "255.255.255.0".into());
    let mac = view_mac.unwrap_or("02:00:00:00:00:00");
    let when = booted_at.iso();
    let stamp = when.get(..19).unwrap_or(&when).replace('T', " ");
    let mut out = String::new();
    out.push_str(&format!(
        "[    0.000000] Linux version {kernel} (mockbuild@vpclab) #1 SMP PREEMPT_DYNAMIC\n"
    ));
    out.push_str(
        "[    0.000000] Command line: root=LABEL=/ ro console=tty0 console=ttyS0,115200n8\n",
    );
    out.push_str("[    1.021337] systemd[1]: Detected virtualization amazon.\n");
    out.push_str(&format!(
        "[    1.204511] systemd[1]: Set hostname to <{hostname}>.\n"
    ));
    out.push_str(&format!(
        "Cloud-init v. 24.1 running 'init' at {stamp} +0000. Up 4.21 seconds.\n"
    ));
    out.push_str("ci-info: ++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++\n");
    out.push_str(
        "ci-info: | Device |  Up  |   Address   |      Mask      | Scope  |     Hw-Address    |\n",
    );
    out.push_str(&format!(
        "ci-info: |  ens5  | True | {:<11} | {:<14} | global | {mac} |\n",
        address, mask
    ));
    out.push_str(
        "ci-info: |   lo   | True |  127.0.0.1  |   255.0.0.0    |  host  |         .         |\n",
    );
    out.push_str("Cloud-init v. 24.1 running 'modules:config'. Up 6.02 seconds.\n");
    out.push_str("#############################################################\n");
    out.push_str("-----BEGIN SSH HOST KEY FINGERPRINTS-----\n");
    if inst.host_keys.is_empty() {
        // The runtime records host keys when it first boots the instance; until then
        // there is nothing truthful to print.
        out.push_str("(host keys not generated yet)\n");
    }
    for line in &inst.host_keys {
        if let Some((bits, fp, label)) = host_key_fingerprint(line) {
            out.push_str(&format!("{bits} {fp} root@{hostname} ({label})\n"));
        }
    }
    out.push_str("-----END SSH HOST KEY FINGERPRINTS-----\n");
    out.push_str("#############################################################\n");
    out.push_str("-----BEGIN SSH HOST KEY KEYS-----\n");
    for line in &inst.host_keys {
        let mut parts = line.split_whitespace();
        if let (Some(alg), Some(data)) = (parts.next(), parts.next()) {
            out.push_str(&format!("{alg} {data} root@{hostname}\n"));
        }
    }
    out.push_str("-----END SSH HOST KEY KEYS-----\n");
    out.push_str(&format!(
        "Cloud-init v. 24.1 finished at {stamp} +0000. Datasource DataSourceEc2Local.  Up 9.87 seconds\n"
    ));
    match image.map(|i| i.os) {
        Some(catalog::Os::Ubuntu2404) => {
            out.push_str(&format!(
                "\n{pretty} {hostname} ttyS0\n\n{hostname} login: \n"
            ));
        }
        _ => {
            out.push_str(&format!(
                "\n{pretty}\nKernel {kernel} on an x86_64 (-)\n\n{hostname} login: \n"
            ));
        }
    }
    out
}

/// (bits, `SHA256:…`, type label) of a host key, the parts `ssh-keygen -l` and
/// cloud-init print.
fn host_key_fingerprint(line: &str) -> Option<(u32, String, &'static str)> {
    use russh::keys::ssh_key::HashAlg;
    let key = russh::keys::ssh_key::PublicKey::from_openssh(line.trim()).ok()?;
    let (bits, label) = match key.key_data() {
        russh::keys::ssh_key::public::KeyData::Ed25519(_) => (256, "ED25519"),
        russh::keys::ssh_key::public::KeyData::Rsa(r) => (r.key_size(), "RSA"),
        russh::keys::ssh_key::public::KeyData::Ecdsa(e) => match e.curve() {
            russh::keys::ssh_key::EcdsaCurve::NistP256 => (256, "ECDSA"),
            russh::keys::ssh_key::EcdsaCurve::NistP384 => (384, "ECDSA"),
            russh::keys::ssh_key::EcdsaCurve::NistP521 => (521, "ECDSA"),
        },
        _ => return None,
    };
    Some((bits, key.fingerprint(HashAlg::Sha256).to_string(), label))
}

impl World {
    /// An instance of `region`, or `InvalidInstanceID.NotFound` (also for one that has
    /// expired from view).
    pub fn instance(&self, region: &str, id: &str) -> ApiResult<&Instance> {
        match self.instances.get(id) {
            Some(i) if i.region == region => Ok(i),
            _ => Err(instance_not_found(id)),
        }
    }

    /// Checks a list of instance ids: well-formed, all present (AWS names every missing
    /// one in a single error).
    fn check_instance_ids(&self, env: &Env, ids: &[String]) -> ApiResult<()> {
        for id in ids {
            check_instance_id(id)?;
        }
        let missing: Vec<&str> = ids
            .iter()
            .filter(|id| match self.instances.get(id.as_str()) {
                Some(i) => i.region != env.region || i.expired(env.now),
                None => true,
            })
            .map(String::as_str)
            .collect();
        match missing.as_slice() {
            [] => Ok(()),
            [one] => Err(instance_not_found(one)),
            many => Err(ApiError::new(
                "InvalidInstanceID.NotFound",
                format!("The instance IDs '{}' do not exist", many.join(", ")),
            )),
        }
    }

    /// RunInstances. Returns the reservation id and the new instance ids (in launch-index
    /// order). With a `ClientToken` seen before, returns the earlier launch (idempotency,
    /// as the CLI's retries expect).
    pub fn run_instances(
        &mut self,
        env: &Env,
        req: &RunRequest,
    ) -> ApiResult<(String, Vec<String>)> {
        if let Some(token) = req.client_token.as_deref().filter(|t| !t.is_empty()) {
            let mut earlier: Vec<&Instance> = self
                .instances
                .in_region(&env.region)
                .filter(|i| i.client_token.as_deref() == Some(token))
                .collect();
            if let Some(first) = earlier.first() {
                let rid = first.reservation_id.clone();
                earlier.sort_by_key(|i| i.ami_launch_index);
                return Ok((rid, earlier.iter().map(|i| i.id.clone()).collect()));
            }
        }

        // Parameters, in the order AWS checks them.
        let image_id = req
            .image_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing("ImageId"))?;
        let (min, max) = match (req.min_count, req.max_count) {
            (Some(a), Some(b)) => (a, b),
            (None, _) => return Err(ApiError::missing("MinCount")),
            (_, None) => return Err(ApiError::missing("MaxCount")),
        };
        if min < 1 {
            return Err(ApiError::invalid_value(format!(
                "Value ({min}) for parameter minCount is invalid. Expected a positive integer."
            )));
        }
        if max < min {
            return Err(ApiError::invalid_value(format!(
                "Value ({max}) for parameter maxCount is invalid. Expected a value greater than or equal to minCount ({min})."
            )));
        }
        if min > MAX_INSTANCES_PER_CALL {
            return Err(ApiError::new(
                "InstanceLimitExceeded",
                format!(
                    "You have requested more instances ({min}) than your current instance limit of {MAX_INSTANCES_PER_CALL} allows for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
                ),
            ));
        }
        if !image_id.starts_with("ami-") {
            return Err(ApiError::new(
                "InvalidAMIID.Malformed",
                format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
            ));
        }
        let image = catalog::image(image_id).ok_or_else(|| {
            ApiError::new(
                "InvalidAMIID.NotFound",
                format!("The image id '[{image_id}]' does not exist"),
            )
        })?;
        let type_name = req
            .instance_type
            .as_deref()
            .unwrap_or(catalog::DEFAULT_INSTANCE_TYPE);
        let itype = catalog::instance_type(type_name).ok_or_else(|| {
            ApiError::invalid_value(format!("Invalid value '{type_name}' for InstanceType."))
        })?;
        if !itype.architectures.contains(&image.architecture) {
            return Err(ApiError::invalid_value(format!(
                "The instance type '{type_name}' does not support the '{}' architecture of image '{image_id}'.",
                image.architecture
            )));
        }
        let public_key = match req.key_name.as_deref() {
            Some(name) => Some(
                self.key_pair_by_name(&env.region, name)
                    .ok_or_else(|| super::key_pair::key_pair_not_found(name))?
                    .public_key
                    .clone(),
            ),
            None => None,
        };
        let user_data = match req.user_data.as_deref() {
            Some(u) if !u.is_empty() => {
                let raw = BASE64.decode(u.trim().as_bytes()).map_err(|_| {
                    ApiError::invalid_value("Invalid BASE64 encoding of user data.")
                })?;
                if raw.len() > MAX_USER_DATA_BYTES {
                    return Err(ApiError::invalid_value(format!(
                        "User data is limited to {MAX_USER_DATA_BYTES} bytes"
                    )));
                }
                Some(u.trim().to_string())
            }
            _ => None,
        };
        let shutdown_behavior = match req.shutdown_behavior.as_deref() {
            None => "stop".to_string(),
            Some(v @ ("stop" | "terminate")) => v.to_string(),
            Some(v) => return Err(ApiError::bad_param("InstanceInitiatedShutdownBehavior", v)),
        };
        let http_tokens = match req.http_tokens.as_deref() {
            // AL2023 images are flagged `ImdsSupport: v2.0`: their instances require tokens.
            None => if image.imds_support == Some("v2.0") {
                "required"
            } else {
                "optional"
            }
            .to_string(),
            Some(v @ ("optional" | "required")) => v.to_string(),
            Some(v) => return Err(ApiError::bad_param("HttpTokens", v)),
        };
        let http_endpoint = match req.http_endpoint.as_deref() {
            None => "enabled".to_string(),
            Some(v @ ("enabled" | "disabled")) => v.to_string(),
            Some(v) => return Err(ApiError::bad_param("HttpEndpoint", v)),
        };
        let protocol_ipv6 = match req.http_protocol_ipv6.as_deref() {
            None | Some("disabled") => false,
            Some("enabled") => true,
            Some(v) => return Err(ApiError::bad_param("HttpProtocolIpv6", v)),
        };
        let hop_limit = match req.http_put_response_hop_limit {
            None => {
                if image.imds_support == Some("v2.0") {
                    2
                } else {
                    1
                }
            }
            Some(n @ 1..=64) => n as u32,
            Some(n) => {
                return Err(ApiError::bad_param(
                    "HttpPutResponseHopLimit",
                    &n.to_string(),
                ));
            }
        };
        World::check_tag_specs(&req.tag_specs, &["instance", "volume", "network-interface"])?;

        // The network: one primary interface, new or existing.
        if req.network_interfaces.len() > 1
            || req
                .network_interfaces
                .iter()
                .any(|n| n.device_index.unwrap_or(0) != 0)
        {
            return Err(ApiError::invalid_value(
                "vpclab launches instances with one network interface (device index 0); attach more with AttachNetworkInterface.",
            ));
        }
        let nic = req.network_interfaces.first().cloned();
        if let Some(n) = &nic {
            if req.subnet_id.is_some() && n.subnet_id.is_some() {
                return Err(ApiError::combination(
                    "Network interfaces and an instance-level subnet ID may not be specified on the same request",
                ));
            }
            if !req.security_group_ids.is_empty() && !n.groups.is_empty() {
                return Err(ApiError::combination(
                    "Network interfaces and an instance-level security groups may not be specified on the same request",
                ));
            }
            if req.private_ip.is_some() && (n.private_ip.is_some() || !n.private_ips.is_empty()) {
                return Err(ApiError::combination(
                    "Network interfaces and an instance-level private IP address should not be specified on the same request",
                ));
            }
            if n.network_interface_id.is_some()
                && (n.associate_public_ip.is_some() || n.subnet_id.is_some())
            {
                return Err(ApiError::combination(
                    "The associatePublicIPAddress and subnet parameters can only be specified for a new network interface.",
                ));
            }
        }
        let existing_eni = match nic.as_ref().and_then(|n| n.network_interface_id.clone()) {
            Some(id) => {
                let eni = self.network_interface(&env.region, &id)?;
                if eni.attachment.is_some() || eni.status != "available" {
                    return Err(ApiError::new(
                        "InvalidNetworkInterface.InUse",
                        format!("Interface: [{id}] in use."),
                    ));
                }
                if max > 1 {
                    return Err(ApiError::combination(
                        "An existing network interface can only be attached to a single instance.",
                    ));
                }
                Some(eni.clone())
            }
            None => None,
        };
        let subnet_id = match (
            &existing_eni,
            nic.as_ref().and_then(|n| n.subnet_id.clone()),
            req.subnet_id.clone(),
        ) {
            (Some(e), _, _) => e.subnet_id.clone(),
            (None, Some(s), _) | (None, None, Some(s)) => s,
            (None, None, None) => {
                self.default_subnet_for_launch(env, req.availability_zone.as_deref())?
            }
        };
        let subnet = self.subnet(&env.region, &subnet_id)?.clone();
        if let Some(az) = req.availability_zone.as_deref()
            && az != subnet.availability_zone
        {
            return Err(ApiError::invalid_value(format!(
                "The specified Availability Zone '{az}' does not match the Availability Zone of subnet '{subnet_id}' ({}).",
                subnet.availability_zone
            )));
        }
        let vpc = self.vpc(&env.region, &subnet.vpc_id)?.clone();

        let mut groups: Vec<String> = if let Some(n) = &nic {
            n.groups.clone()
        } else {
            req.security_group_ids.clone()
        };
        if !req.security_group_names.is_empty() {
            if !vpc.is_default {
                return Err(ApiError::combination(
                    "The parameter groupName cannot be used with the parameter subnet",
                ));
            }
            for name in &req.security_group_names {
                let sg = self
                    .security_groups
                    .in_region(&env.region)
                    .find(|g| g.vpc_id == vpc.id && &g.group_name == name)
                    .ok_or_else(|| {
                        ApiError::new(
                            "InvalidGroup.NotFound",
                            format!(
                                "The security group '{name}' does not exist in default VPC '{}'",
                                vpc.id
                            ),
                        )
                    })?;
                if !groups.contains(&sg.id) {
                    groups.push(sg.id.clone());
                }
            }
        }
        for g in &groups {
            let sg = self.security_group(&env.region, g)?;
            if sg.vpc_id != vpc.id {
                return Err(ApiError::invalid_value(format!(
                    "Security group {g} and subnet {subnet_id} belong to different networks."
                )));
            }
        }
        if existing_eni.is_none() {
            let mut check = groups.clone();
            if check.is_empty()
                && let Some(d) = self.default_sg(&vpc.id)
            {
                check.push(d.id.clone());
            }
            self.check_groups(env, &vpc.id, &check)?;
        }

        // AWS (EC2 User Guide, "IPv6-only subnets"): only instances built on the Nitro
        // System launch into an IPv6-only subnet.
        if subnet.ipv6_native && itype.hypervisor != "nitro" {
            return Err(ApiError::invalid_value(format!(
                "Instance type {} is not supported in the IPv6-only subnet {subnet_id}: only Nitro-based instance types launch into IPv6-only subnets.",
                itype.name
            )));
        }
        let requested_ip = {
            let from_nic = nic.as_ref().and_then(|n| {
                n.private_ip.clone().or_else(|| {
                    n.private_ips
                        .iter()
                        .find(|(_, primary)| *primary)
                        .or(n.private_ips.first())
                        .map(|(ip, _)| ip.clone())
                })
            });
            match from_nic.or_else(|| req.private_ip.clone()) {
                Some(s) => Some(
                    s.parse::<Ipv4Addr>()
                        .map_err(|_| ApiError::bad_param("PrivateIpAddress", &s))?,
                ),
                None => None,
            }
        };
        if requested_ip.is_some() && max > 1 {
            return Err(ApiError::combination(
                "Cannot specify a private IP address when launching more than one instance.",
            ));
        }
        if let Some(ip) = requested_ip {
            self.check_private_ip(&subnet_id, ip)?;
        }
        let auto_public_ip = match nic.as_ref().and_then(|n| n.associate_public_ip) {
            // A public IPv4 address maps to a private one, which an IPv6-only subnet's
            // interfaces do not have.
            Some(true) if subnet.ipv6_native => {
                return Err(super::subnet::ipv6_native_no_ipv4(&subnet_id));
            }
            Some(v) => v,
            None => existing_eni.is_none() && subnet.map_public_ip_on_launch,
        };

        // How many fit: AWS launches up to MaxCount, and fails only below MinCount.
        let count = if existing_eni.is_some() {
            1
        } else {
            // An IPv6-only subnet's /64 never runs out at this scale.
            let free = if subnet.ipv6_native {
                MAX_INSTANCES_PER_CALL
            } else {
                i64::from(self.available_ip_count(&subnet))
            };
            let want = max.min(MAX_INSTANCES_PER_CALL);
            if free < min {
                return Err(ApiError::new(
                    "InsufficientFreeAddressesInSubnet",
                    format!(
                        "There are not enough free addresses in subnet '{subnet_id}' to satisfy the requested number of instances."
                    ),
                ));
            }
            want.min(free)
        };

        // AWS: an explicit IPv6 address count, else one address when the subnet assigns
        // IPv6 addresses on creation.
        let ipv6_count = match req
            .ipv6_address_count
            .or(nic.as_ref().and_then(|n| n.ipv6_address_count))
        {
            Some(n) if !(0..=50).contains(&n) => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({n}) for parameter ipv6AddressCount is invalid."
                )));
            }
            Some(n) => n as usize,
            None if existing_eni.is_none() && subnet.assign_ipv6_address_on_creation => 1,
            None => 0,
        };
        if ipv6_count > 0 && subnet.ipv6_cidrs.is_empty() {
            return Err(ApiError::invalid_value(format!(
                "The subnet {subnet_id} has no IPv6 CIDR block: IPv6 addresses cannot be assigned."
            )));
        }
        let reservation_id = self.alloc_id("r");
        let delete_on_termination = nic
            .as_ref()
            .and_then(|n| n.delete_on_termination)
            .unwrap_or(existing_eni.is_none());
        let mut ids = Vec::new();
        for index in 0..count {
            let instance_id = self.alloc_id("i");
            let eni_id = match &existing_eni {
                Some(e) => e.id.clone(),
                None => self.create_interface(
                    env,
                    EniSpec {
                        subnet_id: subnet_id.clone(),
                        private_ip: requested_ip,
                        groups: groups.clone(),
                        description: nic
                            .as_ref()
                            .and_then(|n| n.description.clone())
                            .unwrap_or_default(),
                        interface_type: "interface".into(),
                        requester_managed: false,
                    },
                )?,
            };
            self.attach_interface(env, &eni_id, &instance_id, 0, delete_on_termination)?;
            if existing_eni.is_none() {
                self.instances_secondary_ips(env, &eni_id, nic.as_ref(), itype.name)?;
            }
            if ipv6_count > 0 && existing_eni.is_none() {
                // An interface in an IPv6-only subnet was created with its first one.
                let have = self
                    .network_interfaces
                    .get(&eni_id)
                    .map_or(0, |e| e.ipv6_addresses.len());
                let v6 = self.next_ipv6_addresses(&subnet_id, ipv6_count.saturating_sub(have))?;
                if let Some(e) = self.network_interfaces.get_mut(&eni_id) {
                    e.ipv6_addresses.extend(v6);
                }
            }
            if auto_public_ip {
                self.assign_auto_public_ip(&eni_id, None)?;
            }
            let private_ip = self
                .network_interfaces
                .get(&eni_id)
                .map(|e| e.private_ip)
                .ok_or_else(ApiError::internal)?;
            let root_volume_id = self.alloc_id("vol");
            self.instances.insert(Instance {
                id: instance_id.clone(),
                region: env.region.clone(),
                reservation_id: reservation_id.clone(),
                image_id: image.image_id.to_string(),
                instance_type: itype.name.to_string(),
                key_name: req.key_name.clone(),
                public_key: public_key.clone(),
                vpc_id: vpc.id.clone(),
                subnet_id: subnet_id.clone(),
                availability_zone: subnet.availability_zone.clone(),
                primary_eni: Some(eni_id.clone()),
                private_ip,
                auto_public_ip,
                last_public_ip: None,
                state: InstanceState::Pending,
                state_since: env.now,
                transition_ms: req.boot_delay_ms.max(0),
                launch_time: env.now,
                created: env.now,
                state_transition_reason: String::new(),
                state_reason: Some(StateReason::new("pending", "pending")),
                user_data: user_data.clone(),
                ami_launch_index: index as u32,
                client_token: req.client_token.clone().filter(|t| !t.is_empty()),
                disable_api_termination: req.disable_api_termination.unwrap_or(false),
                disable_api_stop: req.disable_api_stop.unwrap_or(false),
                monitoring: req.monitoring.unwrap_or(false),
                shutdown_behavior: shutdown_behavior.clone(),
                http_tokens: http_tokens.clone(),
                http_endpoint: http_endpoint.clone(),
                http_protocol_ipv6: protocol_ipv6,
                http_put_response_hop_limit: hop_limit,
                root_volume_id,
                boots: 0,
                reboots: 0,
                host_keys: Vec::new(),
                console_extra: String::new(),
                console_from_runtime: false,
                dns_name_options: subnet.dns_name_options.clone(),
            });
            self.create_launch_volumes(env, &instance_id, req, image)?;
            self.apply_tag_specs(env, &instance_id, "instance", &req.tag_specs)?;
            if existing_eni.is_none() {
                self.apply_tag_specs(env, &eni_id, "network-interface", &req.tag_specs)?;
            }
            ids.push(instance_id);
        }
        Ok((reservation_id, ids))
    }

    /// Secondary private addresses of a launched instance's new interface: the
    /// `PrivateIpAddresses.N` that are not primary, or `SecondaryPrivateIpAddressCount`
    /// new ones, within the instance type's limit per interface.
    fn instances_secondary_ips(
        &mut self,
        env: &Env,
        eni_id: &str,
        nic: Option<&NicSpec>,
        instance_type: &str,
    ) -> ApiResult<()> {
        let Some(n) = nic else {
            return Ok(());
        };
        let primary = n.private_ips.iter().position(|(_, p)| *p).or(
            if n.private_ip.is_none() && !n.private_ips.is_empty() {
                Some(0)
            } else {
                None
            },
        );
        let mut listed = Vec::new();
        for (i, (ip, _)) in n.private_ips.iter().enumerate() {
            if Some(i) == primary {
                continue;
            }
            listed.push(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::bad_param("PrivateIpAddress", ip))?,
            );
        }
        if listed.is_empty() && n.secondary_private_ip_count.is_none() {
            return Ok(());
        }
        let limit = crate::catalog::instance_type(instance_type)
            .map_or(50, |t| t.ipv4_per_interface as usize);
        let want = listed.len() + n.secondary_private_ip_count.unwrap_or(0).max(0) as usize;
        if 1 + want > limit {
            return Err(ApiError::new(
                "PrivateIpAddressLimitExceeded",
                format!(
                    "Number of private addresses will exceed limit: {instance_type} holds at most {limit} IPv4 addresses per interface."
                ),
            ));
        }
        if !listed.is_empty() {
            self.assign_private_ip_addresses(env, eni_id, None, &listed, false)?;
        }
        if let Some(c) = n.secondary_private_ip_count.filter(|c| *c > 0) {
            self.assign_private_ip_addresses(env, eni_id, Some(c), &[], false)?;
        }
        Ok(())
    }

    /// The subnet a launch without a subnet uses: the default subnet of the default VPC
    /// (in the requested zone, else the first zone).
    fn default_subnet_for_launch(&self, env: &Env, az: Option<&str>) -> ApiResult<String> {
        let vpc = self.default_vpc(&env.region).ok_or_else(|| {
            ApiError::new("VPCIdNotSpecified", "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.")
        })?;
        let mut candidates: Vec<_> = self
            .subnets
            .in_region(&env.region)
            .filter(|s| s.vpc_id == vpc.id && s.default_for_az)
            .collect();
        candidates.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
        let pick = match az {
            Some(az) => candidates.into_iter().find(|s| s.availability_zone == az),
            None => candidates.into_iter().next(),
        };
        pick.map(|s| s.id.clone()).ok_or_else(|| {
            ApiError::new(
                "MissingInput",
                "No subnets found for the default VPC. Please specify a subnet.",
            )
        })
    }

    /// Gives an interface an automatic public address from the pool (no-op if it has one).
    /// `avoid` is the address it had before a stop: AWS hands out a different one at start
    /// (the lesson of stop/start), so that address is held while the pool picks.
    pub(crate) fn assign_auto_public_ip(
        &mut self,
        eni_id: &str,
        avoid: Option<Ipv4Addr>,
    ) -> ApiResult<()> {
        if self
            .network_interfaces
            .get(eni_id)
            .is_some_and(|e| e.association.is_some())
        {
            return Ok(());
        }
        if let Some(old) = avoid
            && let Some(e) = self.network_interfaces.get_mut(eni_id)
        {
            // Held only within this mutation: replaced below before anything commits.
            e.association = Some(EniAssociation {
                public_ip: old,
                allocation_id: None,
                association_id: None,
            });
        }
        let ip = self.alloc_public_ip()?;
        if let Some(e) = self.network_interfaces.get_mut(eni_id) {
            e.association = Some(EniAssociation {
                public_ip: ip,
                allocation_id: None,
                association_id: None,
            });
        }
        Ok(())
    }

    /// Drops an interface's automatic public address (an Elastic IP stays); returns the
    /// address released.
    fn release_auto_public_ip(&mut self, eni_id: &str) -> Option<Ipv4Addr> {
        let auto = self
            .network_interfaces
            .get(eni_id)
            .and_then(|e| e.association.as_ref())
            .filter(|a| a.allocation_id.is_none())
            .map(|a| a.public_ip);
        if auto.is_some()
            && let Some(e) = self.network_interfaces.get_mut(eni_id)
        {
            e.association = None;
        }
        auto
    }

    /// Applies an instance's due transitions (and their side effects) at `now`.
    fn settle_instance(&mut self, id: &str, now: Timestamp) {
        loop {
            let Some(inst) = self.instances.get(id) else {
                return;
            };
            let (state, since) = inst.settled(now);
            if state == inst.state {
                if inst.expired(now) {
                    self.instances.remove(id);
                    self.drop_tags(id);
                }
                return;
            }
            match state {
                InstanceState::Running => {
                    if let Some(i) = self.instances.get_mut(id) {
                        i.boots += 1;
                        i.state_reason = None;
                    }
                }
                InstanceState::Stopped => {
                    if let Some(i) = self.instances.get_mut(id) {
                        i.state_reason = i
                            .state_reason
                            .clone()
                            .or_else(|| Some(StateReason::user_shutdown()));
                    }
                }
                InstanceState::Terminated => {
                    self.release_instance_interfaces(id);
                    self.release_instance_volumes(id);
                    if let Some(i) = self.instances.get_mut(id) {
                        i.primary_eni = None;
                    }
                }
                _ => {}
            }
            if let Some(i) = self.instances.get_mut(id) {
                i.state = state;
                i.state_since = since;
            }
        }
    }

    /// At termination: interfaces with DeleteOnTermination go (with their Elastic IP
    /// association), the others are detached and become available.
    fn release_instance_interfaces(&mut self, instance_id: &str) {
        let attached = self.network_interfaces.ids_where(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id)
        });
        for eni_id in attached {
            let Some(eni) = self.network_interfaces.get(&eni_id).cloned() else {
                continue;
            };
            let delete = eni
                .attachment
                .as_ref()
                .is_some_and(|a| a.delete_on_termination);
            if let Some(alloc) = eni
                .association
                .as_ref()
                .and_then(|a| a.allocation_id.clone())
                && delete
                && let Some(addr) = self.addresses.get_mut(&alloc)
            {
                addr.association = None;
            }
            if delete {
                self.network_interfaces.remove(&eni_id);
                self.drop_tags(&eni_id);
            } else if let Some(e) = self.network_interfaces.get_mut(&eni_id) {
                e.attachment = None;
                e.status = "available".into();
                if e.association
                    .as_ref()
                    .is_some_and(|a| a.allocation_id.is_none())
                {
                    e.association = None;
                }
            }
        }
    }

    /// Whether any instance has a transition (or expiry) due at `now`; the ticker asks.
    pub fn instances_due(&self, now: Timestamp) -> bool {
        self.instances
            .iter()
            .any(|i| i.settled(now).0 != i.state || i.expired(now))
    }

    /// Persists every instance transition due at `now` (called from `World::advance`).
    pub fn advance_instances(&mut self, now: Timestamp) {
        for id in self
            .instances
            .ids_where(|i| i.settled(now).0 != i.state || i.expired(now))
        {
            self.settle_instance(&id, now);
        }
    }

    fn settle_all(&mut self, ids: &[String], now: Timestamp) {
        for id in ids {
            self.settle_instance(id, now);
        }
    }

    /// StartInstances.
    pub fn start_instances(
        &mut self,
        env: &Env,
        ids: &[String],
        boot_delay_ms: i64,
    ) -> ApiResult<Vec<StateChange>> {
        self.check_instance_ids(env, ids)?;
        self.settle_all(ids, env.now);
        for id in ids {
            let state = self.instance(&env.region, id)?.state;
            if !matches!(
                state,
                InstanceState::Stopped | InstanceState::Running | InstanceState::Pending
            ) {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!("The instance '{id}' is not in a state from which it can be started."),
                ));
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let inst = self.instance(&env.region, id)?.clone();
            if inst.state == InstanceState::Stopped {
                if inst.auto_public_ip
                    && let Some(eni) = &inst.primary_eni
                {
                    self.assign_auto_public_ip(eni, inst.last_public_ip)?;
                }
                if let Some(i) = self.instances.get_mut(id) {
                    i.state = InstanceState::Pending;
                    i.state_since = env.now;
                    i.launch_time = env.now;
                    i.transition_ms = boot_delay_ms.max(0);
                    i.state_transition_reason = String::new();
                    i.state_reason = Some(StateReason::new("pending", "pending"));
                }
            }
            let current = self.instance(&env.region, id)?.state;
            out.push(StateChange {
                instance_id: id.clone(),
                previous: inst.state,
                current,
            });
        }
        Ok(out)
    }

    /// StopInstances.
    pub fn stop_instances(&mut self, env: &Env, ids: &[String]) -> ApiResult<Vec<StateChange>> {
        self.check_instance_ids(env, ids)?;
        self.settle_all(ids, env.now);
        for id in ids {
            let inst = self.instance(&env.region, id)?;
            if inst.disable_api_stop {
                return Err(ApiError::new(
                    "OperationNotPermitted",
                    format!(
                        "The instance '{id}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again."
                    ),
                ));
            }
            if matches!(
                inst.state,
                InstanceState::Pending | InstanceState::ShuttingDown | InstanceState::Terminated
            ) {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!("This instance '{id}' is not in a state from which it can be stopped."),
                ));
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let inst = self.instance(&env.region, id)?.clone();
            if inst.state == InstanceState::Running {
                self.begin_shutdown(
                    env,
                    id,
                    InstanceState::Stopping,
                    StateReason::user_shutdown(),
                );
            }
            let current = self.instance(&env.region, id)?.state;
            out.push(StateChange {
                instance_id: id.clone(),
                previous: inst.state,
                current,
            });
        }
        Ok(out)
    }

    fn begin_shutdown(&mut self, env: &Env, id: &str, to: InstanceState, reason: StateReason) {
        let eni = self.instances.get(id).and_then(|i| i.primary_eni.clone());
        let released = eni.and_then(|e| self.release_auto_public_ip(&e));
        if let Some(i) = self.instances.get_mut(id) {
            if released.is_some() {
                i.last_public_ip = released;
            }
            i.state = to;
            i.state_since = env.now;
            i.state_transition_reason = user_initiated(env.now);
            i.state_reason = Some(reason);
        }
    }

    /// TerminateInstances.
    pub fn terminate_instances(
        &mut self,
        env: &Env,
        ids: &[String],
    ) -> ApiResult<Vec<StateChange>> {
        self.check_instance_ids(env, ids)?;
        self.settle_all(ids, env.now);
        for id in ids {
            if self.instance(&env.region, id)?.disable_api_termination {
                return Err(ApiError::new(
                    "OperationNotPermitted",
                    format!(
                        "The instance '{id}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again."
                    ),
                ));
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let inst = self.instance(&env.region, id)?.clone();
            if !matches!(
                inst.state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ) {
                self.begin_shutdown(
                    env,
                    id,
                    InstanceState::ShuttingDown,
                    StateReason::user_shutdown(),
                );
                // A stopped instance has nothing to shut down: AWS shows it terminated
                // almost at once.
                if inst.state == InstanceState::Stopped
                    && let Some(i) = self.instances.get_mut(id)
                {
                    i.transition_ms = 0;
                }
            }
            let current = self.instance(&env.region, id)?.state;
            out.push(StateChange {
                instance_id: id.clone(),
                previous: inst.state,
                current,
            });
        }
        Ok(out)
    }

    /// MonitorInstances (`enabled` true) and UnmonitorInstances: turns CloudWatch
    /// detailed monitoring on or off. Returns each instance with the state AWS answers
    /// with, the transition under way (`pending` or `disabling`); DescribeInstances
    /// shows the settled state (`enabled` or `disabled`) from then on, as the metrics
    /// publisher uses the new period from its next minute. AWS allows this on running
    /// and stopped instances; a terminated one is `IncorrectInstanceState`.
    pub fn set_instance_monitoring(
        &mut self,
        env: &Env,
        ids: &[String],
        enabled: bool,
    ) -> ApiResult<Vec<(String, &'static str)>> {
        if ids.is_empty() {
            return Err(ApiError::missing("InstanceId"));
        }
        self.check_instance_ids(env, ids)?;
        self.settle_all(ids, env.now);
        for id in ids {
            let state = self.instance(&env.region, id)?.state;
            if matches!(
                state,
                InstanceState::Terminated | InstanceState::ShuttingDown
            ) {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{id}' is not in a state from which its monitoring can be changed."
                    ),
                ));
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(i) = self.instances.get_mut(id) {
                i.monitoring = enabled;
            }
            out.push((id.clone(), if enabled { "pending" } else { "disabling" }));
        }
        Ok(out)
    }

    /// RebootInstances: running (or pending) instances only; the state stays `running`.
    pub fn reboot_instances(&mut self, env: &Env, ids: &[String]) -> ApiResult<()> {
        self.check_instance_ids(env, ids)?;
        self.settle_all(ids, env.now);
        for id in ids {
            let state = self.instance(&env.region, id)?.state;
            if !matches!(state, InstanceState::Running | InstanceState::Pending) {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!("The instance '{id}' is not in a state from which it can be rebooted."),
                ));
            }
        }
        for id in ids {
            if let Some(i) = self.instances.get_mut(id) {
                i.reboots += 1;
            }
        }
        Ok(())
    }

    /// What the instance itself does on `shutdown -h now` / `poweroff`: stop or terminate,
    /// as its `InstanceInitiatedShutdownBehavior` says. For the instance runtime.
    pub fn instance_initiated_shutdown(&mut self, env: &Env, id: &str) -> ApiResult<InstanceState> {
        self.settle_instance(id, env.now);
        let inst = self.instance(&env.region, id)?.clone();
        if inst.state != InstanceState::Running {
            return Ok(inst.state);
        }
        let to = if inst.shutdown_behavior == "terminate" {
            InstanceState::ShuttingDown
        } else {
            InstanceState::Stopping
        };
        self.begin_shutdown(env, id, to, StateReason::instance_shutdown());
        if let Some(i) = self.instances.get_mut(id) {
            i.state_transition_reason = String::new();
        }
        Ok(to)
    }

    /// Records the SSH host keys the runtime generated (OpenSSH public lines), so the
    /// console output can print their fingerprints. For the instance runtime.
    pub fn record_host_keys(&mut self, env: &Env, id: &str, keys: Vec<String>) -> ApiResult<()> {
        self.instance(&env.region, id)?;
        if let Some(i) = self.instances.get_mut(id) {
            i.host_keys = keys;
        }
        Ok(())
    }

    /// Appends text to the console (user-data output, service messages); keeps the last
    /// 64 KiB. For the instance runtime.
    pub fn append_console_output(&mut self, env: &Env, id: &str, text: &str) -> ApiResult<()> {
        self.instance(&env.region, id)?;
        if let Some(i) = self.instances.get_mut(id) {
            i.console_extra.push_str(text);
            if i.console_extra.len() > MAX_CONSOLE_BYTES {
                let mut cut = i.console_extra.len() - MAX_CONSOLE_BYTES;
                while !i.console_extra.is_char_boundary(cut) {
                    cut += 1;
                }
                i.console_extra.drain(..cut);
            }
        }
        Ok(())
    }

    /// Replaces the console with the runtime's own boot log (the runtime knows the real
    /// host keys and what user data printed); keeps the last 64 KiB. From then on
    /// GetConsoleOutput shows this text alone. For the instance runtime.
    pub fn set_console_output(&mut self, env: &Env, id: &str, text: &str) -> ApiResult<()> {
        self.instance(&env.region, id)?;
        if let Some(i) = self.instances.get_mut(id) {
            i.console_from_runtime = true;
            i.console_extra.clear();
        }
        self.append_console_output(env, id, text)
    }

    /// The settled view of one instance at `now`.
    pub fn instance_view<'a>(&'a self, inst: &'a Instance, now: Timestamp) -> InstanceView<'a> {
        let (state, state_since) = inst.settled(now);
        let eni = if state == InstanceState::Terminated {
            None
        } else {
            inst.primary_eni
                .as_deref()
                .and_then(|e| self.network_interfaces.get(e))
        };
        let assoc = eni.and_then(|e| e.association.as_ref());
        let public_ip = assoc.map(|a| a.public_ip);
        let public_ip_owner = assoc.map(|a| {
            if a.allocation_id.is_some() {
                self.account.clone()
            } else {
                "amazon".to_string()
            }
        });
        let hostnames = self
            .vpcs
            .get(&inst.vpc_id)
            .is_some_and(|v| v.enable_dns_hostnames);
        let public_dns_name = match public_ip {
            Some(ip) if hostnames => public_dns_name(&inst.region, ip),
            _ => String::new(),
        };
        let groups = eni
            .map(|e| {
                e.groups
                    .iter()
                    .map(|g| {
                        let name = self
                            .security_groups
                            .get(g)
                            .map(|s| s.group_name.clone())
                            .unwrap_or_default();
                        (g.clone(), name)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tags = self
            .tags_of(&inst.id)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        InstanceView {
            instance: inst,
            state,
            state_since,
            image: inst.image(),
            eni,
            public_ip,
            public_ip_owner,
            private_dns_name: if state == InstanceState::Terminated {
                String::new()
            } else {
                inst.private_dns_name()
            },
            public_dns_name,
            groups,
            tags,
        }
    }

    /// DescribeInstances: ids (each must exist), then filters, grouped by reservation in
    /// launch order. `instance-state-name`/`instance-state-code` use the settled state.
    pub fn describe_instances(
        &self,
        env: &Env,
        ids: &[String],
        filters: &[Filter],
    ) -> ApiResult<Vec<(String, Vec<InstanceView<'_>>)>> {
        self.check_instance_ids(env, ids)?;
        let (state_filters, other): (Vec<Filter>, Vec<Filter>) = filters
            .iter()
            .cloned()
            .partition(|f| f.name == "instance-state-name" || f.name == "instance-state-code");
        let rows = self.select(
            &self.instances,
            &env.region,
            ids,
            &other,
            instance_not_found,
        )?;
        let mut views: Vec<InstanceView<'_>> = rows
            .into_iter()
            .filter(|i| !i.expired(env.now))
            .map(|i| self.instance_view(i, env.now))
            .filter(|v| {
                state_filters.iter().all(|f| {
                    let have = if f.name == "instance-state-name" {
                        v.state.name().to_string()
                    } else {
                        v.state.code().to_string()
                    };
                    f.values
                        .iter()
                        .any(|want| crate::model::filter::wildcard(want, &have))
                })
            })
            .collect();
        views.sort_by(|a, b| {
            (
                a.instance.created,
                &a.instance.reservation_id,
                a.instance.ami_launch_index,
            )
                .cmp(&(
                    b.instance.created,
                    &b.instance.reservation_id,
                    b.instance.ami_launch_index,
                ))
        });
        let mut out: Vec<(String, Vec<InstanceView<'_>>)> = Vec::new();
        for v in views {
            match out.last_mut() {
                Some((rid, list)) if *rid == v.instance.reservation_id => list.push(v),
                _ => out.push((v.instance.reservation_id.clone(), vec![v])),
            }
        }
        Ok(out)
    }

    /// DescribeInstanceStatus: running instances only unless `include_all`. Status checks
    /// read `initializing` for one boot delay after the instance reaches `running`, then
    /// `ok` (AWS takes minutes; the shape of the lesson is the same).
    pub fn describe_instance_status(
        &self,
        env: &Env,
        ids: &[String],
        filters: &[Filter],
        include_all: bool,
    ) -> ApiResult<Vec<StatusView<'_>>> {
        self.check_instance_ids(env, ids)?;
        let mut out = Vec::new();
        let mut rows: Vec<&Instance> = if ids.is_empty() {
            self.instances.in_region(&env.region).collect()
        } else {
            ids.iter().filter_map(|id| self.instances.get(id)).collect()
        };
        rows.sort_by(|a, b| {
            (a.created, a.ami_launch_index, &a.id).cmp(&(b.created, b.ami_launch_index, &b.id))
        });
        for inst in rows {
            if inst.expired(env.now) {
                continue;
            }
            let (state, since) = inst.settled(env.now);
            if !include_all && state != InstanceState::Running {
                continue;
            }
            let (instance_status, system_status) = if state == InstanceState::Running {
                if env.now >= since.plus_ms(inst.transition_ms) {
                    ("ok", "ok")
                } else {
                    ("initializing", "initializing")
                }
            } else {
                ("not-applicable", "not-applicable")
            };
            let mut keep = true;
            for f in filters {
                let have: Vec<String> = match f.name.as_str() {
                    "availability-zone" => vec![inst.availability_zone.clone()],
                    "instance-state-name" => vec![state.name().into()],
                    "instance-state-code" => vec![state.code().to_string()],
                    "instance-status.status" => vec![instance_status.into()],
                    "system-status.status" => vec![system_status.into()],
                    "instance-status.reachability" | "system-status.reachability" => {
                        vec![
                            match instance_status {
                                "ok" => "passed",
                                "initializing" => "initializing",
                                _ => "insufficient-data",
                            }
                            .into(),
                        ]
                    }
                    other => {
                        return Err(ApiError::invalid_value(format!(
                            "The filter '{other}' is invalid"
                        )));
                    }
                };
                if !f
                    .values
                    .iter()
                    .any(|w| have.iter().any(|h| crate::model::filter::wildcard(w, h)))
                {
                    keep = false;
                }
            }
            if keep {
                out.push(StatusView {
                    instance: inst,
                    state,
                    instance_status,
                    system_status,
                });
            }
        }
        Ok(out)
    }

    /// GetConsoleOutput: the boot log of the current (or last) boot plus what the runtime
    /// appended, `None` before the first boot completed (AWS returns no output then).
    pub fn console_output(&self, env: &Env, id: &str) -> ApiResult<(Option<String>, Timestamp)> {
        check_instance_id(id)?;
        let inst = self.instance(&env.region, id)?;
        if inst.expired(env.now) {
            return Err(instance_not_found(id));
        }
        let (state, since) = inst.settled(env.now);
        let booted = inst.boots > 0 || state != inst.state && state == InstanceState::Running;
        if !booted {
            return Ok((None, env.now));
        }
        let boot_at = if state == InstanceState::Running {
            since
        } else {
            inst.launch_time.plus_ms(inst.transition_ms)
        };
        let eni = inst
            .primary_eni
            .as_deref()
            .and_then(|e| self.network_interfaces.get(e));
        let cidr = self
            .subnets
            .get(&inst.subnet_id)
            .and_then(|s| s.ipv4_cidr());
        let mut text = if inst.console_from_runtime {
            inst.console_extra.clone()
        } else {
            let mut t = boot_log(inst, eni.map(|e| e.mac.as_str()), cidr, boot_at);
            t.push_str(&inst.console_extra);
            t
        };
        if text.len() > MAX_CONSOLE_BYTES {
            let mut cut = text.len() - MAX_CONSOLE_BYTES;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text.drain(..cut);
        }
        Ok((Some(text), boot_at))
    }

    /// ModifyInstanceAttribute: exactly one attribute per call, as AWS requires.
    /// ModifyInstanceMetadataOptions: changes the metadata options of a running or
    /// stopped instance; the runtime applies them at once (a running instance's metadata
    /// service gains or loses its IPv6 address, IMDSv1 is accepted or refused from the
    /// next request). Values are checked before anything changes.
    pub fn modify_instance_metadata_options(
        &mut self,
        env: &Env,
        id: &str,
        change: MetadataOptionsChange,
    ) -> ApiResult<()> {
        check_instance_id(id)?;
        self.settle_instance(id, env.now);
        let inst = self.instance(&env.region, id)?.clone();
        if matches!(
            inst.state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        ) {
            return Err(ApiError::new(
                "IncorrectInstanceState",
                format!(
                    "The instance '{id}' is not in a state from which its metadata options can be modified."
                ),
            ));
        }
        let flag = |name: &str, v: Option<&str>| -> ApiResult<Option<String>> {
            match v {
                None => Ok(None),
                Some(v @ ("enabled" | "disabled")) => Ok(Some(v.to_string())),
                Some(v) => Err(ApiError::bad_param(name, v)),
            }
        };
        let tokens = match change.http_tokens.as_deref() {
            None => None,
            Some(v @ ("optional" | "required")) => Some(v.to_string()),
            Some(v) => return Err(ApiError::bad_param("HttpTokens", v)),
        };
        let hop_limit = match change.http_put_response_hop_limit {
            None => None,
            Some(n @ 1..=64) => Some(n as u32),
            Some(n) => {
                return Err(ApiError::bad_param(
                    "HttpPutResponseHopLimit",
                    &n.to_string(),
                ));
            }
        };
        let endpoint = flag("HttpEndpoint", change.http_endpoint.as_deref())?;
        let ipv6 = flag("HttpProtocolIpv6", change.http_protocol_ipv6.as_deref())?;
        // Instance tags in the metadata are not served by vpclab: refusing `enabled`
        // beats accepting a setting that would change nothing.
        if flag(
            "InstanceMetadataTags",
            change.instance_metadata_tags.as_deref(),
        )?
        .as_deref()
            == Some("enabled")
        {
            return Err(ApiError::new(
                "Unsupported",
                "InstanceMetadataTags enabled is not supported by vpclab (instance tags are not in the metadata).",
            ));
        }
        if let Some(i) = self.instances.get_mut(id) {
            if let Some(t) = tokens {
                i.http_tokens = t;
            }
            if let Some(h) = hop_limit {
                i.http_put_response_hop_limit = h;
            }
            if let Some(e) = endpoint {
                i.http_endpoint = e;
            }
            if let Some(v) = ipv6 {
                i.http_protocol_ipv6 = v == "enabled";
            }
        }
        Ok(())
    }

    pub fn modify_instance_attribute(
        &mut self,
        env: &Env,
        id: &str,
        change: InstanceAttributeChange,
    ) -> ApiResult<()> {
        check_instance_id(id)?;
        self.settle_instance(id, env.now);
        let inst = self.instance(&env.region, id)?.clone();
        if inst.state == InstanceState::Terminated {
            return Err(ApiError::new(
                "IncorrectInstanceState",
                format!(
                    "The instance '{id}' is not in a state from which its attributes can be modified."
                ),
            ));
        }
        let needs_stopped = |what: &str| -> ApiResult<()> {
            if inst.state != InstanceState::Stopped {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{id}' is not in the 'stopped' state. ({what} can only be changed while it is stopped.)"
                    ),
                ));
            }
            Ok(())
        };
        match change {
            InstanceAttributeChange::InstanceType(t) => {
                needs_stopped("instanceType")?;
                let itype = catalog::instance_type(&t).ok_or_else(|| {
                    ApiError::invalid_value(format!("Invalid value '{t}' for InstanceType."))
                })?;
                if let Some(i) = self.instances.get_mut(id) {
                    i.instance_type = itype.name.to_string();
                }
            }
            InstanceAttributeChange::UserData(u) => {
                needs_stopped("userData")?;
                let trimmed = u.trim().to_string();
                let raw = BASE64.decode(trimmed.as_bytes()).map_err(|_| {
                    ApiError::invalid_value("Invalid BASE64 encoding of user data.")
                })?;
                if raw.len() > MAX_USER_DATA_BYTES {
                    return Err(ApiError::invalid_value(format!(
                        "User data is limited to {MAX_USER_DATA_BYTES} bytes"
                    )));
                }
                if let Some(i) = self.instances.get_mut(id) {
                    i.user_data = if trimmed.is_empty() {
                        None
                    } else {
                        Some(trimmed)
                    };
                }
            }
            InstanceAttributeChange::SourceDestCheck(v) => {
                let eni = inst
                    .primary_eni
                    .clone()
                    .ok_or_else(|| instance_not_found(id))?;
                self.modify_network_interface_attribute(env, &eni, Some(v), None, None)?;
            }
            InstanceAttributeChange::Groups(groups) => {
                let eni = inst
                    .primary_eni
                    .clone()
                    .ok_or_else(|| instance_not_found(id))?;
                self.modify_network_interface_attribute(env, &eni, None, Some(groups), None)?;
            }
            InstanceAttributeChange::DisableApiTermination(v) => {
                if let Some(i) = self.instances.get_mut(id) {
                    i.disable_api_termination = v;
                }
            }
            InstanceAttributeChange::DisableApiStop(v) => {
                if let Some(i) = self.instances.get_mut(id) {
                    i.disable_api_stop = v;
                }
            }
            InstanceAttributeChange::ShutdownBehavior(v) => {
                if v != "stop" && v != "terminate" {
                    return Err(ApiError::bad_param("InstanceInitiatedShutdownBehavior", &v));
                }
                if let Some(i) = self.instances.get_mut(id) {
                    i.shutdown_behavior = v;
                }
            }
        }
        Ok(())
    }

    /// DescribeInstanceAttribute.
    pub fn describe_instance_attribute(
        &self,
        env: &Env,
        id: &str,
        attribute: &str,
    ) -> ApiResult<InstanceAttributeValue> {
        check_instance_id(id)?;
        let inst = self.instance(&env.region, id)?;
        if inst.expired(env.now) {
            return Err(instance_not_found(id));
        }
        let eni = inst
            .primary_eni
            .as_deref()
            .and_then(|e| self.network_interfaces.get(e));
        Ok(match attribute {
            "instanceType" => InstanceAttributeValue::Text(Some(inst.instance_type.clone())),
            "kernel" | "ramdisk" => InstanceAttributeValue::Text(None),
            "userData" => InstanceAttributeValue::Text(inst.user_data.clone()),
            "disableApiTermination" => InstanceAttributeValue::Bool(inst.disable_api_termination),
            "disableApiStop" => InstanceAttributeValue::Bool(inst.disable_api_stop),
            "instanceInitiatedShutdownBehavior" => {
                InstanceAttributeValue::Text(Some(inst.shutdown_behavior.clone()))
            }
            "rootDeviceName" => {
                InstanceAttributeValue::Text(inst.image().map(|i| i.root_device_name.to_string()))
            }
            "sourceDestCheck" => {
                InstanceAttributeValue::Bool(eni.is_none_or(|e| e.source_dest_check))
            }
            "ebsOptimized" => InstanceAttributeValue::Bool(false),
            "enaSupport" => InstanceAttributeValue::Bool(
                catalog::instance_type(&inst.instance_type)
                    .is_some_and(|t| t.ena_support != "unsupported"),
            ),
            "sriovNetSupport" => InstanceAttributeValue::Text(Some("simple".into())),
            "productCodes" => InstanceAttributeValue::ProductCodes,
            "blockDeviceMapping" => InstanceAttributeValue::BlockDevices,
            "groupSet" => InstanceAttributeValue::Groups(
                eni.map(|e| {
                    e.groups
                        .iter()
                        .map(|g| {
                            (
                                g.clone(),
                                self.security_groups
                                    .get(g)
                                    .map(|s| s.group_name.clone())
                                    .unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ),
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter attribute is invalid. Unknown attribute."
                )));
            }
        })
    }

    /// The instances the runtime should know about at `now`, in every region: all that
    /// are not terminated (the runtime runs those whose state is `running`, boots those
    /// that are `pending`, and stops hosts for the others). For the instance runtime,
    /// typically from a `Control::subscribe` callback.
    pub fn runtime_instances(&self, now: Timestamp) -> Vec<RuntimeInstance> {
        let mut out = Vec::new();
        for inst in self.instances.iter() {
            let view = self.instance_view(inst, now);
            if view.state == InstanceState::Terminated {
                continue;
            }
            let image = inst.image();
            out.push(RuntimeInstance {
                account: self.account.clone(),
                region: inst.region.clone(),
                instance_id: inst.id.clone(),
                state: view.state,
                state_since: view.state_since,
                image_id: inst.image_id.clone(),
                os: image.map(|i| i.os),
                default_user: image.map(|i| i.default_user().to_string()),
                instance_type: inst.instance_type.clone(),
                vpc_id: inst.vpc_id.clone(),
                subnet_id: inst.subnet_id.clone(),
                availability_zone: inst.availability_zone.clone(),
                eni_id: view.eni.map(|e| e.id.clone()),
                mac: view.eni.map(|e| e.mac.clone()),
                private_ip: inst.private_ip,
                subnet_cidr: self
                    .subnets
                    .get(&inst.subnet_id)
                    .and_then(|s| s.ipv4_cidr()),
                ipv6_addresses: view
                    .eni
                    .map(|e| e.ipv6_addresses.clone())
                    .unwrap_or_default(),
                subnet_ipv6_cidr: self
                    .subnets
                    .get(&inst.subnet_id)
                    .and_then(|s| s.ipv6_cidrs.first().map(|c| c.cidr)),
                public_ip: view.public_ip,
                security_group_ids: view.groups.iter().map(|(g, _)| g.clone()).collect(),
                security_group_names: view.groups.iter().map(|(_, n)| n.clone()).collect(),
                dns_server: self
                    .vpcs
                    .get(&inst.vpc_id)
                    .map(|v| Ipv4Addr::from(u32::from(v.cidr().network()).wrapping_add(2))),
                dhcp: self.dhcp_settings(&inst.vpc_id),
                subnet_prefix_len: self
                    .subnets
                    .get(&inst.subnet_id)
                    .and_then(|s| s.ipv4_cidr())
                    .map(|c| c.prefix_len()),
                private_dns_name: view.private_dns_name.clone(),
                public_dns_name: view.public_dns_name.clone(),
                key_name: inst.key_name.clone(),
                public_key: inst.public_key.clone(),
                user_data: inst.user_data_bytes(),
                boots: inst.boots
                    + u32::from(
                        inst.state == InstanceState::Pending
                            && view.state == InstanceState::Running,
                    ),
                reboots: inst.reboots,
                launch_time: inst.launch_time,
                http_tokens: inst.http_tokens.clone(),
                http_endpoint: inst.http_endpoint.clone(),
                http_protocol_ipv6: inst.http_protocol_ipv6,
                host_keys: inst.host_keys.clone(),
                volumes: self.runtime_volumes(&inst.id, now),
            });
        }
        out
    }
}

/// `enabled` / `disabled`, as the metadata options are written on the wire.
pub fn enabled_or_disabled(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

/// The fields of one ModifyInstanceMetadataOptions request; `None` keeps the
/// instance's current value ("If no parameter is specified, the existing state is
/// maintained").
#[derive(Clone, Debug, Default)]
pub struct MetadataOptionsChange {
    pub http_tokens: Option<String>,
    pub http_put_response_hop_limit: Option<i64>,
    pub http_endpoint: Option<String>,
    pub http_protocol_ipv6: Option<String>,
    pub instance_metadata_tags: Option<String>,
}

/// One ModifyInstanceAttribute change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceAttributeChange {
    InstanceType(String),
    /// Base64, as sent.
    UserData(String),
    SourceDestCheck(bool),
    Groups(Vec<String>),
    DisableApiTermination(bool),
    DisableApiStop(bool),
    ShutdownBehavior(String),
}

/// One DescribeInstanceAttribute answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceAttributeValue {
    /// `<attr><value>…</value></attr>`; `None` renders an empty element.
    Text(Option<String>),
    Bool(bool),
    Groups(Vec<(String, String)>),
    ProductCodes,
    BlockDevices,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ec2::address::AssociateAddressInput;

    const AL2023: &str = "ami-0ccbe15b62d56cc35";
    const T0: i64 = 1_800_000_000_000;

    fn env(ms: i64) -> Env {
        Env::new("us-east-1", Timestamp(T0 + ms))
    }

    fn world() -> World {
        let mut w = World::new("000000000000");
        w.ensure_region(&env(0)).expect("default VPC");
        w
    }

    fn run(w: &mut World, at: i64, tweak: impl FnOnce(&mut RunRequest)) -> ApiResult<Vec<String>> {
        let mut req = RunRequest {
            image_id: Some(AL2023.into()),
            instance_type: Some("t2.micro".into()),
            min_count: Some(1),
            max_count: Some(1),
            boot_delay_ms: 2_000,
            ..RunRequest::default()
        };
        tweak(&mut req);
        w.run_instances(&env(at), &req).map(|(_, ids)| ids)
    }

    fn public_ip(w: &World, id: &str, at: i64) -> Option<Ipv4Addr> {
        let i = w.instances.get(id).expect("instance");
        w.instance_view(i, Timestamp(T0 + at)).public_ip
    }

    /// A VPC 10.0.0.0/16 with subnet 10.0.1.0/`prefix`; returns the subnet id.
    fn custom_subnet(w: &mut World, prefix: u8) -> String {
        let e = env(0);
        let vpc = w.create_vpc(&e, "10.0.0.0/16", None, &[]).expect("vpc");
        w.create_subnet(&e, &vpc, &format!("10.0.1.0/{prefix}"), None, None, &[])
            .expect("subnet")
    }

    #[test]
    fn instances_take_the_next_free_address_after_the_four_reserved_at_the_start() {
        let mut w = world();
        let subnet = custom_subnet(&mut w, 24);
        let ids = run(&mut w, 0, |r| {
            r.subnet_id = Some(subnet.clone());
            r.max_count = Some(3);
        })
        .expect("run");
        let ips: Vec<String> = ids
            .iter()
            .map(|id| w.instances.get(id).expect("row").private_ip.to_string())
            .collect();
        assert_eq!(ips, ["10.0.1.4", "10.0.1.5", "10.0.1.6"]);
        assert_eq!(
            w.instances.get(&ids[0]).expect("row").private_dns_name(),
            "ip-10-0-1-4.ec2.internal"
        );
    }

    #[test]
    fn pending_becomes_running_when_the_boot_delay_has_passed() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let inst = w.instances.get(&id).expect("row").clone();
        assert_eq!(
            inst.settled(Timestamp(T0 + 1_999)).0,
            InstanceState::Pending
        );
        assert_eq!(
            inst.settled(Timestamp(T0 + 2_000)),
            (InstanceState::Running, Timestamp(T0 + 2_000))
        );
        // The ticker persists the transition and counts the boot.
        assert!(w.instances_due(Timestamp(T0 + 2_000)));
        w.advance_instances(Timestamp(T0 + 2_500));
        let inst = w.instances.get(&id).expect("row");
        assert_eq!((inst.state, inst.boots), (InstanceState::Running, 1));
        assert!(!w.instances_due(Timestamp(T0 + 3_000)));
    }

    #[test]
    fn stop_start_keeps_the_private_address_and_changes_the_automatic_public_one() {
        let mut w = world();
        // The default subnet maps public addresses on launch.
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let private = w.instances.get(&id).expect("row").private_ip;
        let before = public_ip(&w, &id, 3_000).expect("public ip at launch");
        let changes = w
            .stop_instances(&env(3_000), std::slice::from_ref(&id))
            .expect("stop");
        assert_eq!(
            (changes[0].previous, changes[0].current),
            (InstanceState::Running, InstanceState::Stopping)
        );
        assert_eq!(
            public_ip(&w, &id, 3_000),
            None,
            "stopping releases the automatic address"
        );
        w.advance_instances(Timestamp(T0 + 5_000));
        assert_eq!(
            w.instances.get(&id).expect("row").state,
            InstanceState::Stopped
        );
        w.start_instances(&env(6_000), std::slice::from_ref(&id), 2_000)
            .expect("start");
        let after = public_ip(&w, &id, 8_000).expect("public ip after start");
        assert_ne!(
            before, after,
            "AWS assigns a new automatic public address at start"
        );
        assert_eq!(w.instances.get(&id).expect("row").private_ip, private);
        assert_eq!(
            w.instance_view(w.instances.get(&id).expect("row"), Timestamp(T0 + 8_000))
                .state,
            InstanceState::Running
        );
    }

    #[test]
    fn an_elastic_ip_stays_through_stop_and_start() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let (alloc, eip) = w.allocate_address(&env(100), &[]).expect("eip");
        w.associate_address(
            &env(100),
            &AssociateAddressInput {
                allocation_id: Some(alloc),
                instance_id: Some(id.clone()),
                ..AssociateAddressInput::default()
            },
        )
        .expect("associate");
        w.stop_instances(&env(3_000), std::slice::from_ref(&id))
            .expect("stop");
        assert_eq!(public_ip(&w, &id, 3_000), Some(eip));
        w.start_instances(&env(6_000), std::slice::from_ref(&id), 2_000)
            .expect("start");
        assert_eq!(public_ip(&w, &id, 9_000), Some(eip));
        let view = w.instance_view(w.instances.get(&id).expect("row"), Timestamp(T0 + 9_000));
        assert_eq!(view.public_ip_owner.as_deref(), Some("000000000000"));
    }

    #[test]
    fn terminating_frees_the_interface_and_address_and_the_record_stays_an_hour() {
        let mut w = world();
        let subnet = custom_subnet(&mut w, 28);
        let id = run(&mut w, 0, |r| r.subnet_id = Some(subnet.clone()))
            .expect("run")
            .remove(0);
        let eni = w
            .instances
            .get(&id)
            .expect("row")
            .primary_eni
            .clone()
            .expect("eni");
        let ch = w
            .terminate_instances(&env(3_000), std::slice::from_ref(&id))
            .expect("terminate");
        assert_eq!(ch[0].current, InstanceState::ShuttingDown);
        w.advance_instances(Timestamp(T0 + 5_000));
        assert!(
            !w.network_interfaces.contains(&eni),
            "DeleteOnTermination removes the interface"
        );
        assert_eq!(
            w.instances.get(&id).expect("row").state,
            InstanceState::Terminated
        );
        // The freed address is the next one handed out.
        let next = run(&mut w, 6_000, |r| r.subnet_id = Some(subnet.clone()))
            .expect("run")
            .remove(0);
        assert_eq!(
            w.instances.get(&next).expect("row").private_ip.to_string(),
            "10.0.1.4"
        );
        let e = env(5_000 + TERMINATED_VISIBLE_MS - 1);
        assert_eq!(
            w.describe_instances(&e, std::slice::from_ref(&id), &[])
                .expect("visible")
                .len(),
            1
        );
        w.advance_instances(Timestamp(T0 + 5_000 + TERMINATED_VISIBLE_MS));
        assert!(!w.instances.contains(&id));
        let err = w
            .describe_instances(
                &env(5_000 + TERMINATED_VISIBLE_MS),
                std::slice::from_ref(&id),
                &[],
            )
            .expect_err("gone");
        assert_eq!(err.code, "InvalidInstanceID.NotFound");
    }

    #[test]
    fn a_28_subnet_holds_eleven_instances_and_min_count_beyond_that_fails() {
        let mut w = world();
        let subnet = custom_subnet(&mut w, 28);
        let err = run(&mut w, 0, |r| {
            r.subnet_id = Some(subnet.clone());
            r.min_count = Some(12);
            r.max_count = Some(12);
        })
        .expect_err("12 do not fit");
        assert_eq!(err.code, "InsufficientFreeAddressesInSubnet");
        // MaxCount is a ceiling: AWS launches as many as fit when MinCount is met.
        let ids = run(&mut w, 0, |r| {
            r.subnet_id = Some(subnet.clone());
            r.max_count = Some(20);
        })
        .expect("as many as fit");
        assert_eq!(ids.len(), 11);
        let last = w.instances.get(&ids[10]).expect("row").private_ip;
        assert_eq!(
            last.to_string(),
            "10.0.1.14",
            "the broadcast address .15 is reserved"
        );
    }

    #[test]
    fn launch_errors_use_aws_codes() {
        let mut w = world();
        let code = |r: ApiResult<Vec<String>>| r.expect_err("must fail").code.to_string();
        assert_eq!(
            code(run(&mut w, 0, |r| r.image_id =
                Some("ami-0123456789abcdef0".into()))),
            "InvalidAMIID.NotFound"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.image_id = Some("banana".into()))),
            "InvalidAMIID.Malformed"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.image_id = None)),
            "MissingParameter"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.instance_type = Some("t9.huge".into()))),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.key_name = Some("nope".into()))),
            "InvalidKeyPair.NotFound"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.subnet_id =
                Some("subnet-0000000000000000f".into()))),
            "InvalidSubnetID.NotFound"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.user_data = Some("%%%".into()))),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| {
                r.min_count = Some(2);
                r.max_count = Some(2);
                r.private_ip = Some("172.31.0.50".into());
            })),
            "InvalidParameterCombination"
        );
        assert_eq!(
            code(run(&mut w, 0, |r| r.private_ip = Some("172.31.0.1".into()))),
            "InvalidParameterValue"
        );
        assert!(
            w.instances.is_empty(),
            "a failed launch leaves nothing behind"
        );
    }

    #[test]
    fn state_changes_refuse_the_wrong_state() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let ids = std::slice::from_ref(&id);
        assert_eq!(
            w.stop_instances(&env(500), ids).expect_err("pending").code,
            "IncorrectInstanceState"
        );
        w.terminate_instances(&env(3_000), ids).expect("terminate");
        assert_eq!(
            w.start_instances(&env(9_000), ids, 0)
                .expect_err("terminated")
                .code,
            "IncorrectInstanceState"
        );
        assert_eq!(
            w.reboot_instances(&env(9_000), ids)
                .expect_err("terminated")
                .code,
            "IncorrectInstanceState"
        );
        // Terminating again is allowed and reports terminated → terminated.
        let ch = w.terminate_instances(&env(9_000), ids).expect("again");
        assert_eq!(
            (ch[0].previous, ch[0].current),
            (InstanceState::Terminated, InstanceState::Terminated)
        );
        let missing = [
            "i-0123456789abcdef0".to_string(),
            "i-0123456789abcdef1".to_string(),
        ];
        let err = w
            .stop_instances(&env(9_000), &missing)
            .expect_err("missing");
        assert_eq!(err.code, "InvalidInstanceID.NotFound");
        assert!(
            err.message
                .contains("i-0123456789abcdef0, i-0123456789abcdef1")
        );
        assert_eq!(
            w.stop_instances(&env(9_000), &["bogus".into()])
                .expect_err("bad")
                .code,
            "InvalidInstanceID.Malformed"
        );
    }

    #[test]
    fn termination_protection_blocks_terminate_until_it_is_lifted() {
        let mut w = world();
        let id = run(&mut w, 0, |r| r.disable_api_termination = Some(true))
            .expect("run")
            .remove(0);
        let ids = std::slice::from_ref(&id);
        assert_eq!(
            w.terminate_instances(&env(3_000), ids)
                .expect_err("protected")
                .code,
            "OperationNotPermitted"
        );
        w.modify_instance_attribute(
            &env(3_000),
            &id,
            InstanceAttributeChange::DisableApiTermination(false),
        )
        .expect("lift");
        w.terminate_instances(&env(3_000), ids)
            .expect("now allowed");
    }

    #[test]
    fn instance_type_changes_only_while_stopped() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let change = || InstanceAttributeChange::InstanceType("t3.small".into());
        assert_eq!(
            w.modify_instance_attribute(&env(3_000), &id, change())
                .expect_err("running")
                .code,
            "IncorrectInstanceState"
        );
        w.stop_instances(&env(3_000), std::slice::from_ref(&id))
            .expect("stop");
        w.modify_instance_attribute(&env(6_000), &id, change())
            .expect("stopped");
        assert_eq!(w.instances.get(&id).expect("row").instance_type, "t3.small");
    }

    #[test]
    fn public_dns_names_need_enable_dns_hostnames() {
        let mut w = world();
        // Default VPC: hostnames on, public addresses on launch.
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let v = w.instance_view(w.instances.get(&id).expect("row"), Timestamp(T0));
        let ip = v.public_ip.expect("public ip");
        assert_eq!(
            v.public_dns_name,
            format!(
                "ec2-{}.compute-1.amazonaws.com",
                ip.to_string().replace('.', "-")
            )
        );
        // A new VPC has enableDnsHostnames off: a public address but no public name.
        let subnet = custom_subnet(&mut w, 24);
        let id = run(&mut w, 0, |r| {
            r.network_interfaces = vec![NicSpec {
                device_index: Some(0),
                subnet_id: Some(subnet.clone()),
                associate_public_ip: Some(true),
                ..NicSpec::default()
            }];
        })
        .expect("run")
        .remove(0);
        let v = w.instance_view(w.instances.get(&id).expect("row"), Timestamp(T0));
        assert!(v.public_ip.is_some());
        assert_eq!(v.public_dns_name, "");
        assert_eq!(v.private_dns_name, "ip-10-0-1-4.ec2.internal");
    }

    #[test]
    fn other_regions_use_compute_internal_names() {
        let mut w = World::new("000000000000");
        let e = Env::new("eu-west-1", Timestamp(T0));
        w.ensure_region(&e).expect("region");
        let req = RunRequest {
            image_id: Some(AL2023.into()),
            min_count: Some(1),
            max_count: Some(1),
            ..RunRequest::default()
        };
        let (_, ids) = w.run_instances(&e, &req).expect("run");
        let v = w.instance_view(w.instances.get(&ids[0]).expect("row"), Timestamp(T0));
        assert!(
            v.private_dns_name.ends_with(".eu-west-1.compute.internal"),
            "{}",
            v.private_dns_name
        );
        assert!(
            v.public_dns_name
                .ends_with(".eu-west-1.compute.amazonaws.com"),
            "{}",
            v.public_dns_name
        );
    }

    #[test]
    fn a_repeated_client_token_returns_the_first_launch() {
        let mut w = world();
        let a = run(&mut w, 0, |r| r.client_token = Some("tok-1".into())).expect("first");
        let b = run(&mut w, 10, |r| r.client_token = Some("tok-1".into())).expect("retry");
        assert_eq!(a, b);
        assert_eq!(w.instances.len(), 1);
    }

    #[test]
    fn state_filters_see_the_settled_state_between_ticks() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        let running = Filter {
            name: "instance-state-name".into(),
            values: vec!["running".into()],
        };
        assert!(
            w.describe_instances(&env(1_000), &[], std::slice::from_ref(&running))
                .expect("d")
                .is_empty()
        );
        // No tick has run, yet at 2 s the instance is running for every reader.
        let r = w
            .describe_instances(&env(2_000), &[], &[running])
            .expect("d");
        assert_eq!(r[0].1[0].instance.id, id);
    }

    #[test]
    fn console_output_appears_after_boot_and_lists_host_key_fingerprints() {
        let mut w = world();
        let id = run(&mut w, 0, |_| {}).expect("run").remove(0);
        assert_eq!(w.console_output(&env(500), &id).expect("pending").0, None);
        let host = crate::keys::generate_ed25519(&mut rand::rng()).expect("host key");
        w.record_host_keys(&env(600), &id, vec![host.public_key.clone()])
            .expect("record");
        let (text, _) = w.console_output(&env(3_000), &id).expect("running");
        let text = text.expect("output after boot");
        // cloud-init prints `256 SHA256:<unpadded base64> root@host (ED25519)`.
        let unpadded = host.fingerprint.trim_end_matches('=');
        assert!(
            text.contains(&format!(
                "256 SHA256:{unpadded} root@ip-172-31-0-4 (ED25519)"
            )),
            "{text}"
        );
        assert!(text.contains("-----BEGIN SSH HOST KEY KEYS-----"));
        assert!(text.contains("Amazon Linux 2023"));
        // Once the runtime writes its own boot log, that is what the console shows.
        w.set_console_output(&env(3_100), &id, "runtime boot log\n")
            .expect("set");
        let (text, _) = w.console_output(&env(3_200), &id).expect("running");
        assert_eq!(text.as_deref(), Some("runtime boot log\n"));
    }

    #[test]
    fn the_runtime_sees_key_user_data_and_addresses() {
        let mut w = world();
        let key = crate::keys::generate_ed25519(&mut rand::rng()).expect("key");
        w.create_key_pair(&env(0), "lab", &key, &[])
            .expect("key pair");
        let ud = BASE64.encode(b"#!/bin/bash\necho hi\n");
        let id = run(&mut w, 0, |r| {
            r.key_name = Some("lab".into());
            r.user_data = Some(ud.clone());
        })
        .expect("run")
        .remove(0);
        // Deleting the key pair does not change what the instance accepts.
        w.delete_key_pair(&env(10), Some("lab"), None)
            .expect("delete");
        let rt = w.runtime_instances(Timestamp(T0 + 2_000));
        let r = rt.iter().find(|r| r.instance_id == id).expect("listed");
        assert_eq!(r.state, InstanceState::Running);
        assert_eq!(
            r.boots, 1,
            "first boot, even before the ticker persisted it"
        );
        assert_eq!(r.public_key.as_deref(), Some(key.public_key.as_str()));
        assert_eq!(r.user_data.as_deref(), Some(&b"#!/bin/bash\necho hi\n"[..]));
        assert_eq!(r.default_user.as_deref(), Some("ec2-user"));
        assert_eq!(r.os, Some(catalog::Os::AmazonLinux2023));
        assert!(r.public_ip.is_some() && r.mac.is_some() && r.eni_id.is_some());
        assert_eq!(r.http_tokens, "required", "AL2023 images require IMDSv2");
        assert_eq!(r.dns_server, Some(Ipv4Addr::new(172, 31, 0, 2)));
        assert_eq!(r.subnet_prefix_len, Some(20));
        assert_eq!(r.security_group_names, ["default"]);
    }
}
