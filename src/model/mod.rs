//! The model: every account's world of EC2 networking resources, the rules AWS applies to
//! them (validation with AWS error codes), id and address allocation, and durable state.
//!
//! It knows nothing of HTTP or XML: `api` parses a request into typed arguments, calls one
//! `World` method inside [`Control::mutate`] (or reads a snapshot with [`Control::read`]),
//! and renders the result. The fabric is fed through [`Control::subscribe`]: every
//! committed change hands subscribers the new immutable `Arc<World>`.
//!
//! # Layout
//!
//! - [`World`]: one account. One [`Table`] per resource kind (`vpcs`, `subnets`, …),
//!   region-aware (every resource carries its region), plus `meta` (the seeded id
//!   allocator and which regions have their default VPC).
//! - [`Control`] (`control.rs`): all worlds + the [`store::Store`]; the one door for
//!   mutations. A mutation runs on a clone of the world; on success the changed rows are
//!   written in ONE SQLite transaction, committed before the caller answers, then the clone
//!   replaces the live world and subscribers are told. On error nothing changes.
//! - One file per resource family (`vpc.rs`, `subnet.rs`, …): the resource struct(s) and
//!   the `impl World` methods for its actions.
//!
//! # Adding a resource type (e.g. key pairs)
//!
//! 1. In a new file `src/model/key_pair.rs`, define `#[derive(Clone, Debug, Serialize,
//!    Deserialize)] pub struct KeyPair { pub id: String, pub region: String, … }` and
//!    `impl Resource for KeyPair { const KIND: &'static str = "key_pair"; fn id(..); fn
//!    region(..) }`. `KIND` is the store's row kind: never rename it.
//! 2. Add `pub mod key_pair;` below and one line `key_pairs: key_pair::KeyPair,` to the
//!    `world_tables!` invocation. Persistence, loading and `World::resource_exists` (used
//!    by CreateTags) then cover it automatically.
//! 3. Write the actions as `impl World { pub fn create_key_pair(&mut self, env: &Env, …) ->
//!    ApiResult<…> }`: validate first with AWS error codes ([`ApiError`]), allocate ids
//!    with [`World::alloc_id`] (`"key-"`), mutate through `self.key_pairs.insert/get_mut/
//!    remove` (that is what marks rows for the store). Use `env.now` for time, never the
//!    clock. Tags live in `self.tags` (see `tags.rs`): call `self.apply_tag_specs(…)`.
//! 4. For Describe filters implement [`Filterable`] for the struct and call
//!    [`World::select`].
//! 5. If the fabric cares, extend the compiler (`compile.rs`, when it exists).

pub mod acm;
pub mod autoscaling;
pub mod change;
pub mod cloudwatch;
pub mod control;
pub mod ec2;
pub mod ecr;
pub mod ecs;
pub mod elb;
pub mod error;
pub mod filter;
pub mod iam;
pub mod lambda;
pub mod logs;
pub mod region;
pub mod route53;
pub mod s3;
pub mod sns;
pub mod ssm;
pub mod store;
pub mod table;
pub mod tags;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use change::{Change, ChangeOp, Commit};
pub use control::{Control, Subscriber};
pub use error::{ApiError, ApiResult};
pub use filter::{Filter, Filterable};
pub use table::{Resource, Table};

/// The account every request maps to unless `--auth strict` maps access keys to accounts.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// Milliseconds since the Unix epoch. The model never reads a clock: the caller passes
/// `Env::now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// ISO 8601 with milliseconds and `Z`, as EC2 renders `createTime`/`launchTime`.
    pub fn iso(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                ms
            ),
            Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
        }
    }

    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// A clock: real time in the daemon, a fixed or stepped one in tests. The model itself
/// never reads it (callers pass [`Env::now`]); the runtime layers share it.
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    })
}

/// The context of one request: which region it addresses, what time it is, and the
/// action it performs (recorded with the changes it commits).
#[derive(Clone, Debug)]
pub struct Env {
    pub region: String,
    pub now: Timestamp,
    /// The API action (`CreateVpc`) or internal action (`vpclab:…`) being performed.
    pub action: String,
    /// `vpclab up --iam enforce`: policies apply in every account, including to what
    /// services do with the roles they are given (S3 replication's role). An account's
    /// own switch ([`World::set_iam_enforce`]) applies as well.
    pub iam_enforce: bool,
}

impl Env {
    pub fn new(region: impl Into<String>, now: Timestamp) -> Self {
        Env {
            region: region.into(),
            now,
            action: String::new(),
            iam_enforce: false,
        }
    }

    /// The same context under the daemon's `--iam enforce` switch.
    pub fn with_iam_enforce(mut self, on: bool) -> Self {
        self.iam_enforce = on;
        self
    }

    /// The same context, naming the action it performs.
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = action.into();
        self
    }
}

/// Per-world bookkeeping, stored as the single row `"world"` of kind `meta`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    /// Seed of the id allocator (derived from the account id, so ids are reproducible).
    pub seed: u64,
    /// How many ids were handed out.
    pub counter: u64,
    /// Regions whose default VPC exists (created on the account's first use of a region).
    pub regions: BTreeSet<String>,
    /// The default DHCP options set of each region (rendered as `dhcpOptionsId`).
    pub dhcp_options: BTreeMap<String, String>,
    /// Set when this row was recreated for a world that already held resources (a
    /// damaged store): its counter restarted, so its ids may repeat stored ones and each
    /// one is checked against every table, for good (stored only when set).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
}

impl Resource for Meta {
    const KIND: &'static str = "meta";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        "global"
    }
}

const META_ID: &str = "world";

/// The store kind of the [`Meta`] row.
pub(crate) const META_KIND: &str = <Meta as Resource>::KIND;

/// The `'static` name of a resource kind this build knows (for changes read back from
/// the store).
pub(crate) fn known_kind(kind: &str) -> Option<&'static str> {
    World::static_kind(kind)
}

/// Declares [`World`] with one [`Table`] per resource kind, and the generic code that
/// persists, loads and searches all of them. Adding a kind is one line here.
macro_rules! world_tables {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// One account's resources, in every region it used.
        #[derive(Clone, Debug)]
        pub struct World {
            /// The 12-digit account id (`ownerId` in responses).
            pub account: String,
            pub meta: Table<Meta>,
            $(pub $field: Table<$ty>,)*
        }

        impl World {
            fn empty(account: &str) -> World {
                World { account: account.to_string(), meta: Table::default(), $($field: Table::default(),)* }
            }

            /// The rows changed since the last call, each with its kind.
            pub(crate) fn take_changes(&mut self) -> Result<Vec<(&'static str, table::RowWrite)>, serde_json::Error> {
                let mut out = Vec::new();
                for w in self.meta.take_changes()? {
                    out.push((<Meta as Resource>::KIND, w));
                }
                $(for w in self.$field.take_changes()? {
                    out.push((<$ty as Resource>::KIND, w));
                })*
                Ok(out)
            }

            /// Every row as a `Created` change: how a stored world is announced to a new
            /// subscriber.
            pub fn all_rows(&self) -> Vec<Change> {
                let mut out = Vec::new();
                $(for r in self.$field.iter() {
                    out.push(Change { kind: <$ty as Resource>::KIND, id: r.id().to_string(), op: ChangeOp::Created });
                })*
                out
            }

            pub(crate) fn has_changes(&self) -> bool {
                self.meta.has_changes() $(|| self.$field.has_changes())*
            }

            /// Loads one stored row; `Ok(false)` for a kind this build does not know
            /// (a newer state dir): it is skipped, not fatal.
            pub(crate) fn load_row(&mut self, kind: &str, body: &str) -> Result<bool, serde_json::Error> {
                if kind == <Meta as Resource>::KIND {
                    self.meta.load(body)?;
                    return Ok(true);
                }
                $(if kind == <$ty as Resource>::KIND {
                    self.$field.load(body)?;
                    return Ok(true);
                })*
                Ok(false)
            }

            /// The `'static` kind name for a stored kind string, if this build knows it.
            pub(crate) fn static_kind(kind: &str) -> Option<&'static str> {
                $(if kind == <$ty as Resource>::KIND {
                    return Some(<$ty as Resource>::KIND);
                })*
                None
            }

            /// Whether any resource of any kind has this id (CreateTags' existence check).
            pub fn resource_exists(&self, id: &str) -> bool {
                false $(|| self.$field.contains(id))*
            }

            /// Whether the world holds any resource at all.
            fn holds_resources(&self) -> bool {
                false $(|| !self.$field.is_empty())*
            }

            /// Resource counts per kind in one region (for `vpclab status`).
            pub fn summary(&self, region: &str) -> BTreeMap<&'static str, usize> {
                let mut out = BTreeMap::new();
                $(out.insert(<$ty as Resource>::KIND, self.$field.in_region(region).count());)*
                out
            }
        }
    };
}

world_tables! {
    vpcs: ec2::vpc::Vpc,
    dhcp_options: ec2::dhcp::DhcpOptions,
    subnets: ec2::subnet::Subnet,
    route_tables: ec2::route_table::RouteTable,
    internet_gateways: ec2::igw::InternetGateway,
    addresses: ec2::address::Address,
    nat_gateways: ec2::nat::NatGateway,
    network_acls: ec2::nacl::NetworkAcl,
    security_groups: ec2::sg::SecurityGroup,
    key_pairs: ec2::key_pair::KeyPair,
    instances: ec2::instance::Instance,
    network_interfaces: ec2::eni::NetworkInterface,
    tags: tags::TagSet,
    hosted_zones: route53::HostedZone,
    route53_changes: route53::Change,
    health_checks: route53::health::HealthCheck,
    flow_logs: ec2::flow_log::FlowLog,
    network_insights_paths: ec2::insights::NetworkInsightsPath,
    network_insights_analyses: ec2::insights::NetworkInsightsAnalysis,
    log_groups: logs::LogGroup,
    log_streams: logs::LogStream,
    iam_users: iam::User,
    iam_groups: iam::Group,
    iam_roles: iam::Role,
    iam_policies: iam::ManagedPolicy,
    iam_access_keys: iam::AccessKey,
    sts_sessions: iam::Session,
    iam_instance_profiles: iam::InstanceProfile,
    iam_profile_associations: ec2::iam_profile::IamProfileAssociation,
    iam_accounts: iam::IamAccount,
    buckets: s3::Bucket,
    s3_objects: s3::S3Object,
    s3_uploads: s3::Upload,
    metrics: cloudwatch::Metric,
    dashboards: cloudwatch::Dashboard,
    alarms: cloudwatch::alarm::Alarm,
    sns_topics: sns::Topic,
    sns_subscriptions: sns::Subscription,
    sns_mail: sns::Mail,
    ssm_parameters: ssm::Parameter,
    elb_load_balancers: elb::LoadBalancer,
    elb_target_groups: elb::TargetGroup,
    elb_listeners: elb::Listener,
    launch_templates: ec2::launch_template::LaunchTemplate,
    autoscaling_groups: autoscaling::Group,
    ecs_clusters: ecs::Cluster,
    ecs_task_definitions: ecs::TaskDefinition,
    ecs_tasks: ecs::Task,
    ecs_services: ecs::Service,
    ecr_repositories: ecr::Repository,
    vpc_peering_connections: ec2::peering::VpcPeeringConnection,
    egress_only_internet_gateways: ec2::ipv6::EgressOnlyInternetGateway,
    vpc_endpoints: ec2::vpc_endpoint::VpcEndpoint,
    prefix_lists: ec2::prefix_list::PrefixList,
    lambda_functions: lambda::Function,
    lambda_events: lambda::PendingEvent,
    volumes: ec2::volume::Volume,
    snapshots: ec2::volume::Snapshot,
    acm_certificates: acm::Certificate,
    transit_gateways: ec2::tgw::TransitGateway,
    transit_gateway_attachments: ec2::tgw::TransitGatewayAttachment,
    transit_gateway_route_tables: ec2::tgw::TransitGatewayRouteTable,
}

/// A 64-bit mixer (splitmix64's finaliser): turns a counter into well-spread id bits.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl World {
    /// A new, empty world for `account`. Regions get their default VPC on first use
    /// ([`World::ensure_region`]).
    pub fn new(account: &str) -> World {
        let mut w = World::empty(account);
        w.ensure_meta();
        w
    }

    /// Makes sure the `meta` row exists (a freshly loaded world always has it, but a
    /// damaged store must not panic the daemon).
    pub(crate) fn ensure_meta(&mut self) {
        if !self.meta.contains(META_ID) {
            let seed = self.account.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            let repaired = self.holds_resources();
            self.meta.insert(Meta {
                id: META_ID.to_string(),
                seed,
                counter: 0,
                regions: BTreeSet::new(),
                dhcp_options: BTreeMap::new(),
                repaired,
            });
        }
    }

    pub fn meta(&self) -> Option<&Meta> {
        self.meta.get(META_ID)
    }

    fn next_bits(&mut self) -> (u64, u64) {
        self.ensure_meta();
        let meta = self
            .meta
            .get_mut(META_ID)
            .expect("ensure_meta inserted the meta row");
        meta.counter += 1;
        let n = meta.counter;
        (
            mix64(meta.seed ^ n),
            mix64(meta.seed.rotate_left(17) ^ n.wrapping_mul(31)),
        )
    }

    /// A fresh AWS-shaped id: `prefix` + `-` + 17 lowercase hex digits, from the world's
    /// seeded allocator (so the same requests give the same ids), unique in this world.
    pub fn alloc_id(&mut self, prefix: &str) -> String {
        loop {
            let (a, b) = self.next_bits();
            let id = format!("{prefix}-{a:016x}{:x}", b & 0xf);
            if !self.id_taken(&id) {
                return id;
            }
        }
    }

    /// A number that grows with every allocation in this world (S3 event sequencers).
    pub fn next_serial(&mut self) -> u64 {
        self.next_bits();
        self.meta.get(META_ID).map_or(0, |m| m.counter)
    }

    /// Deterministic bits for other allocators (MAC addresses, public IPs).
    pub fn alloc_bits(&mut self) -> u64 {
        self.next_bits().0
    }

    fn id_taken(&self, id: &str) -> bool {
        // The first 64 bits of an id are `mix64(seed ^ counter)`, a bijection of a
        // counter that only grows and is committed with every row it named: ids of one
        // world never repeat, and checking each new one against all ~50 tables was a
        // tenth of CreateVpc's time (issue 9). Only a meta row recreated over stored
        // resources restarts the counter; that world checks every id exactly.
        // (Association and rule ids live inside resources and share the allocator.)
        let repaired = self.meta.get(META_ID).is_some_and(|m| m.repaired);
        if repaired {
            return self.resource_exists(id);
        }
        debug_assert!(!self.resource_exists(id), "the allocator repeated {id}");
        false
    }

    /// Generic Describe: the rows of `table` in the request's region, restricted to
    /// `ids` (each must exist, else `not_found`) and to `filters` (AND across filters, OR
    /// across values, `*`/`?` wildcards, `tag:K`/`tag-key`/`tag-value` for every kind).
    pub fn select<'a, T: Resource + Filterable>(
        &'a self,
        table: &'a Table<T>,
        region: &str,
        ids: &[String],
        filters: &[Filter],
        not_found: fn(&str) -> ApiError,
    ) -> ApiResult<Vec<&'a T>> {
        for id in ids {
            match table.get(id) {
                Some(r) if r.region() == region => {}
                _ => return Err(not_found(id)),
            }
        }
        let mut out = Vec::new();
        let rows: Box<dyn Iterator<Item = &T>> = if ids.is_empty() {
            Box::new(table.in_region(region))
        } else {
            let set: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            Box::new(
                table
                    .in_region(region)
                    .filter(move |r| set.contains(r.id())),
            )
        };
        for row in rows {
            if filter::matches_all(self, row, filters)? {
                out.push(row);
            }
        }
        Ok(out)
    }
}

/// Parses an IPv4 CIDR the way EC2 does for its `CidrBlock` parameters: dotted quad,
/// prefix length, no host bits set.
pub fn parse_cidr(param: &str, value: &str) -> ApiResult<ipnet::Ipv4Net> {
    let net: ipnet::Ipv4Net = value.trim().parse().map_err(|_| {
        ApiError::invalid_value(format!(
            "Value ({value}) for parameter {param} is invalid. This is not a valid CIDR block."
        ))
    })?;
    if net.trunc() != net {
        return Err(ApiError::invalid_value(format!(
            "Value ({value}) for parameter {param} is invalid. This is not a valid CIDR block."
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_aws_shaped_and_deterministic_per_account() {
        let mut a = World::new("000000000000");
        let mut b = World::new("000000000000");
        let id = a.alloc_id("vpc");
        assert_eq!(id.len(), "vpc-".len() + 17);
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(id, b.alloc_id("vpc"));
        assert_ne!(id, a.alloc_id("vpc"));
        let mut c = World::new("111111111111");
        assert_ne!(id, c.alloc_id("vpc"));
    }

    #[test]
    fn a_meta_row_recreated_over_stored_resources_never_hands_out_their_ids() {
        let env = Env::new("us-east-1", Timestamp(1_700_000_000_000));
        let mut w = World::new("000000000000");
        let vpc = w.create_vpc(&env, "10.0.0.0/16", None, &[]).unwrap();
        // A damaged store: the allocator's row is gone, its counter starts again.
        w.meta.remove(META_ID);
        w.ensure_meta();
        assert!(w.meta().is_some_and(|m| m.repaired));
        let fresh = w.alloc_id("vpc");
        assert_ne!(
            fresh, vpc,
            "the first id of the restarted counter was skipped"
        );
        // The mark is stored with the row, so a reload keeps checking.
        let body = serde_json::to_string(w.meta().unwrap()).unwrap();
        assert!(serde_json::from_str::<Meta>(&body).unwrap().repaired);
        // An intact row stores no mark.
        let body = serde_json::to_string(World::new("000000000000").meta().unwrap()).unwrap();
        assert!(!body.contains("repaired"), "{body}");
    }

    #[test]
    fn timestamps_render_as_ec2_iso8601() {
        assert_eq!(Timestamp(0).iso(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_700_000_000_123).iso(),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn cidr_with_host_bits_is_invalid_parameter_value() {
        assert!(parse_cidr("CidrBlock", "10.0.0.0/16").is_ok());
        assert_eq!(
            parse_cidr("CidrBlock", "10.0.0.1/16").unwrap_err().code,
            "InvalidParameterValue"
        );
        assert_eq!(
            parse_cidr("CidrBlock", "banana").unwrap_err().code,
            "InvalidParameterValue"
        );
    }
}

/// Serde for `Ipv4Net` as its text form (`"10.0.0.0/16"`), without enabling ipnet's serde
/// feature workspace-wide.
pub mod cidr_serde {
    use ipnet::Ipv4Net;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
