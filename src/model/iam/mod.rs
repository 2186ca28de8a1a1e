//! IAM and STS in the model: users, groups, roles, customer managed policies with
//! versions, inline policies, access keys, login profiles, instance profiles, the
//! account alias, and STS sessions (the temporary credentials of AssumeRole). Global:
//! every row's region is `"global"`, one set per account.
//!
//! Row ids are `user/NAME`, `group/NAME`, `role/NAME`, `instance-profile/NAME` with the
//! name lower-cased (IAM names are unique without regard to case, IAM User Guide "IAM
//! identifiers"), a policy's ARN, an access key's id. Secrets (access keys' secret keys,
//! session tokens, password salts) come from the caller, which draws them at random:
//! the model stays deterministic.
//!
//! [`policy`] parses and evaluates documents (pure); [`managed`] holds the AWS managed
//! policies. Errors carry IAM's codes: `NoSuchEntity` (404), `EntityAlreadyExists`,
//! `DeleteConflict`, `LimitExceeded` (409), `MalformedPolicyDocument`, `ValidationError`
//! (400).

pub mod managed;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// IAM's default quotas (IAM User Guide, "IAM and AWS STS quotas").
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
pub const MAX_POLICY_VERSIONS: usize = 5;
pub const MAX_MANAGED_POLICIES_PER_ENTITY: usize = 10;
pub const MAX_GROUPS_PER_USER: usize = 10;
pub const MAX_ROLES_PER_INSTANCE_PROFILE: usize = 1;
/// AssumeRole's DurationSeconds: 900 seconds up to the role's maximum session
/// duration (3,600 by default, at most 43,200).
pub const MIN_SESSION_SECONDS: i64 = 900;
pub const DEFAULT_SESSION_SECONDS: i64 = 3600;
pub const MAX_ROLE_SESSION_SECONDS: i64 = 43_200;

/// Managed and inline policies of a user, group or role.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Policies {
    /// Attached managed policies, by ARN.
    pub attached: BTreeSet<String>,
    /// Inline policies: name → document.
    pub inline: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginProfile {
    /// PBKDF2-HMAC-SHA256 of the password, hex.
    pub hash: String,
    pub salt: String,
    pub created: i64,
    pub reset_required: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub unique_id: String,
    pub created: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub policies: Policies,
    /// Group ids (`group/name`).
    #[serde(default)]
    pub groups: BTreeSet<String>,
    #[serde(default)]
    pub login: Option<LoginProfile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub unique_id: String,
    pub created: i64,
    #[serde(default)]
    pub policies: Policies,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub unique_id: String,
    pub created: i64,
    /// The trust policy (AssumeRolePolicyDocument).
    pub trust: String,
    #[serde(default)]
    pub description: String,
    pub max_session: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub policies: Policies,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub document: String,
    pub created: i64,
}

/// A customer managed policy (row id: its ARN).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub id: String,
    pub name: String,
    pub path: String,
    pub unique_id: String,
    pub created: i64,
    pub updated: i64,
    #[serde(default)]
    pub description: String,
    pub default_version: u32,
    pub versions: BTreeMap<u32, PolicyVersion>,
    pub next_version: u32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl ManagedPolicy {
    pub fn default_document(&self) -> &str {
        self.versions
            .get(&self.default_version)
            .map_or("", |v| v.document.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    /// The owning user's id (`user/name`).
    pub user: String,
    pub secret: String,
    pub active: bool,
    pub created: i64,
}

/// Temporary credentials from AssumeRole (row id: the `ASIA…` key id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub secret: String,
    pub token: String,
    /// The role's id (`role/name`) and display name.
    pub role: String,
    pub role_name: String,
    pub session_name: String,
    pub expires: i64,
    /// The role's unique id + `:` + session name (AssumedRoleId).
    pub assumed_role_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceProfile {
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub unique_id: String,
    pub created: i64,
    /// Role ids (`role/name`), at most one.
    pub roles: Vec<String>,
}

/// Account-wide IAM settings (the single row `account`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IamAccount {
    pub id: String,
    pub alias: Option<String>,
    /// Whether every call of a non-root principal is checked against its policies.
    #[serde(default)]
    pub enforce: bool,
}

macro_rules! global_resource {
    ($($ty:ty => $kind:literal),* $(,)?) => {
        $(impl Resource for $ty {
            const KIND: &'static str = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn region(&self) -> &str {
                "global"
            }
        })*
    };
}

global_resource! {
    User => "iam_user",
    Group => "iam_group",
    Role => "iam_role",
    ManagedPolicy => "iam_policy",
    AccessKey => "iam_access_key",
    Session => "sts_session",
    InstanceProfile => "iam_instance_profile",
    IamAccount => "iam_account",
}

pub const ACCOUNT_ROW: &str = "account";

/// A user, group or role: who policies attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    User,
    Group,
    Role,
}

impl Holder {
    pub fn word(self) -> &'static str {
        match self {
            Holder::User => "user",
            Holder::Group => "group",
            Holder::Role => "role",
        }
    }
}

pub fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new("NoSuchEntity", message).with_status(404)
}

fn exists(message: impl Into<String>) -> ApiError {
    ApiError::new("EntityAlreadyExists", message).with_status(409)
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new("DeleteConflict", message).with_status(409)
}

fn limit(quota: &str, n: usize) -> ApiError {
    ApiError::new(
        "LimitExceeded",
        format!("Cannot exceed quota for {quota}: {n}"),
    )
    .with_status(409)
}

pub fn validation(member: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::new(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// IAM names: `[\w+=,.@-]+`, 1 to `max` characters.
pub fn check_name(member: &str, name: &str, max: usize) -> ApiResult<()> {
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if name.is_empty() || !ok {
        return Err(validation(
            member,
            name,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    if name.chars().count() > max {
        return Err(validation(
            member,
            name,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Paths: `/` or `/…/`, printable ASCII, at most 512 characters.
pub fn check_path(path: &str) -> ApiResult<()> {
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !ok {
        return Err(validation(
            "path",
            path,
            "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
        ));
    }
    Ok(())
}

fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}/{}", name.to_ascii_lowercase())
}

/// A policy ARN's check: customer policies must exist, AWS managed ones must be known.
fn policy_document(w: &World, arn: &str) -> Option<String> {
    if let Some(m) = managed::find(arn) {
        return Some(m.document.to_string());
    }
    w.iam_policies
        .get(arn)
        .map(|p| p.default_document().to_string())
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) of a console password, 10,000 rounds, hex.
pub fn hash_password(password: &str, salt: &str) -> String {
    use hmac::Mac;
    type H = hmac::Hmac<sha2::Sha256>;
    let prf = || <H as Mac>::new_from_slice(password.as_bytes()).expect("HMAC takes any key");
    let mut m = prf();
    m.update(salt.as_bytes());
    m.update(&1u32.to_be_bytes());
    let mut u = m.finalize().into_bytes();
    let mut out = u;
    for _ in 1..10_000 {
        let mut m = prf();
        m.update(&u);
        u = m.finalize().into_bytes();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    hex::encode(out)
}

/// IAM's default password policy: at least 8 characters and three of the four kinds
/// (upper case, lower case, digits, symbols).
fn check_password(password: &str) -> ApiResult<()> {
    let kinds = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if password.chars().count() < 8 || kinds.iter().filter(|k| **k).count() < 3 {
        return Err(ApiError::new(
            "PasswordPolicyViolation",
            "Password does not conform to the account password policy: at least 8 characters and three of upper case, lower case, numbers and symbols.",
        ));
    }
    Ok(())
}

/// Policy documents arrive URL-decoded; checks size and syntax for an identity policy.
pub fn check_identity_document(doc: &str) -> ApiResult<policy::Policy> {
    if doc.chars().count() > policy::MAX_POLICY_CHARS {
        return Err(ApiError::new(
            "LimitExceeded",
            format!(
                "Cannot exceed quota for PolicySize: {}",
                policy::MAX_POLICY_CHARS
            ),
        )
        .with_status(409));
    }
    policy::parse(doc, policy::Kind::Identity)
}

impl World {
    fn unique_id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut bits = self.alloc_bits() ^ self.alloc_bits().rotate_left(29);
        let mut out = prefix.to_string();
        for _ in 0..17 {
            out.push(ALPHABET[(bits & 31) as usize] as char);
            bits = bits.rotate_right(5) ^ 0x9E37_79B9;
        }
        out
    }

    /// An access key id (`AKIA…`, `ASIA…`: 20 characters).
    pub fn alloc_access_key_id(&mut self, prefix: &str) -> String {
        let mut id = self.unique_id(prefix);
        id.truncate(20);
        id
    }

    pub fn iam_account(&self) -> IamAccount {
        self.iam_accounts
            .get(ACCOUNT_ROW)
            .cloned()
            .unwrap_or_else(|| IamAccount {
                id: ACCOUNT_ROW.into(),
                ..IamAccount::default()
            })
    }

    pub fn user(&self, name: &str) -> ApiResult<&User> {
        self.iam_users
            .get(&key("user", name))
            .ok_or_else(|| not_found(format!("The user with name {name} cannot be found.")))
    }

    pub fn group(&self, name: &str) -> ApiResult<&Group> {
        self.iam_groups
            .get(&key("group", name))
            .ok_or_else(|| not_found(format!("The group with name {name} cannot be found.")))
    }

    pub fn role(&self, name: &str) -> ApiResult<&Role> {
        self.iam_roles
            .get(&key("role", name))
            .ok_or_else(|| not_found(format!("The role with name {name} cannot be found.")))
    }

    pub fn instance_profile(&self, name: &str) -> ApiResult<&InstanceProfile> {
        self.iam_instance_profiles
            .get(&key("instance-profile", name))
            .ok_or_else(|| not_found(format!("Instance Profile {name} cannot be found.")))
    }

    pub fn customer_policy(&self, arn: &str) -> ApiResult<&ManagedPolicy> {
        self.iam_policies
            .get(arn)
            .ok_or_else(|| not_found(format!("Policy {arn} was not found.")))
    }

    // -- users --------------------------------------------------------------------------

    pub fn create_user(
        &mut self,
        env: &Env,
        name: &str,
        path: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<User> {
        check_name("userName", name, 64)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        let id = key("user", name);
        if self.iam_users.contains(&id) {
            return Err(exists(format!("User with name {name} already exists.")));
        }
        let user = User {
            id,
            name: name.to_string(),
            path: path.to_string(),
            arn: format!("arn:aws:iam::{}:user{path}{name}", self.account),
            unique_id: self.unique_id("AIDA"),
            created: env.now.0,
            tags,
            policies: Policies::default(),
            groups: BTreeSet::new(),
            login: None,
        };
        self.iam_users.insert(user.clone());
        Ok(user)
    }

    pub fn delete_user(&mut self, _env: &Env, name: &str) -> ApiResult<()> {
        let u = self.user(name)?;
        let id = u.id.clone();
        if self.iam_access_keys.iter().any(|k| k.user == id) {
            return Err(conflict(
                "Cannot delete entity, must delete access keys first.",
            ));
        }
        if u.login.is_some() {
            return Err(conflict(
                "Cannot delete entity, must delete login profile first.",
            ));
        }
        if !u.policies.attached.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must detach all policies first.",
            ));
        }
        if !u.policies.inline.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must delete policies first.",
            ));
        }
        if !u.groups.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must remove user from all groups first.",
            ));
        }
        self.iam_users.remove(&id);
        Ok(())
    }

    pub fn tag_user(&mut self, name: &str, tags: BTreeMap<String, String>) -> ApiResult<()> {
        let id = self.user(name)?.id.clone();
        let u = self.iam_users.get_mut(&id).expect("checked above");
        u.tags.extend(tags);
        if u.tags.len() > 50 {
            return Err(limit("TagsPerUser", 50));
        }
        Ok(())
    }

    pub fn untag_user(&mut self, name: &str, keys: &[String]) -> ApiResult<()> {
        let id = self.user(name)?.id.clone();
        let u = self.iam_users.get_mut(&id).expect("checked above");
        for k in keys {
            u.tags.remove(k);
        }
        Ok(())
    }

    pub fn tag_role(&mut self, name: &str, tags: BTreeMap<String, String>) -> ApiResult<()> {
        let id = self.role(name)?.id.clone();
        let r = self.iam_roles.get_mut(&id).expect("checked above");
        r.tags.extend(tags);
        if r.tags.len() > 50 {
            return Err(limit("TagsPerRole", 50));
        }
        Ok(())
    }

    pub fn untag_role(&mut self, name: &str, keys: &[String]) -> ApiResult<()> {
        let id = self.role(name)?.id.clone();
        let r = self.iam_roles.get_mut(&id).expect("checked above");
        for k in keys {
            r.tags.remove(k);
        }
        Ok(())
    }

    // -- groups -------------------------------------------------------------------------

    pub fn create_group(&mut self, env: &Env, name: &str, path: Option<&str>) -> ApiResult<Group> {
        check_name("groupName", name, 128)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        let id = key("group", name);
        if self.iam_groups.contains(&id) {
            return Err(exists(format!("Group with name {name} already exists.")));
        }
        let g = Group {
            id,
            name: name.to_string(),
            path: path.to_string(),
            arn: format!("arn:aws:iam::{}:group{path}{name}", self.account),
            unique_id: self.unique_id("AGPA"),
            created: env.now.0,
            policies: Policies::default(),
        };
        self.iam_groups.insert(g.clone());
        Ok(g)
    }

    pub fn delete_group(&mut self, name: &str) -> ApiResult<()> {
        let g = self.group(name)?;
        let id = g.id.clone();
        if self.iam_users.iter().any(|u| u.groups.contains(&id)) {
            return Err(conflict(
                "Cannot delete entity, must remove users from group first.",
            ));
        }
        if !g.policies.attached.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must detach all policies first.",
            ));
        }
        if !g.policies.inline.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must delete policies first.",
            ));
        }
        self.iam_groups.remove(&id);
        Ok(())
    }

    pub fn add_user_to_group(&mut self, group: &str, user: &str) -> ApiResult<()> {
        let gid = self.group(group)?.id.clone();
        let uid = self.user(user)?.id.clone();
        let u = self.iam_users.get_mut(&uid).expect("checked above");
        u.groups.insert(gid);
        if u.groups.len() > MAX_GROUPS_PER_USER {
            return Err(limit("GroupsPerUser", MAX_GROUPS_PER_USER));
        }
        Ok(())
    }

    pub fn remove_user_from_group(&mut self, group: &str, user: &str) -> ApiResult<()> {
        let gid = self.group(group)?.id.clone();
        let uid = self.user(user)?.id.clone();
        let u = self.iam_users.get_mut(&uid).expect("checked above");
        if !u.groups.remove(&gid) {
            return Err(not_found(format!(
                "The user with name {user} cannot be found in group {group}."
            )));
        }
        Ok(())
    }

    /// The members of a group, in name order.
    pub fn group_members(&self, group_id: &str) -> Vec<&User> {
        self.iam_users
            .iter()
            .filter(|u| u.groups.contains(group_id))
            .collect()
    }

    // -- roles --------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn create_role(
        &mut self,
        env: &Env,
        name: &str,
        path: Option<&str>,
        trust: &str,
        description: &str,
        max_session: Option<i64>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<Role> {
        check_name("roleName", name, 64)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        policy::parse(trust, policy::Kind::Trust)?;
        let max_session = max_session.unwrap_or(DEFAULT_SESSION_SECONDS);
        if !(DEFAULT_SESSION_SECONDS..=MAX_ROLE_SESSION_SECONDS).contains(&max_session) {
            return Err(validation(
                "maxSessionDuration",
                &max_session.to_string(),
                "Member must have value between 3600 and 43200",
            ));
        }
        let id = key("role", name);
        if self.iam_roles.contains(&id) {
            return Err(exists(format!("Role with name {name} already exists.")));
        }
        let r = Role {
            id,
            name: name.to_string(),
            path: path.to_string(),
            arn: format!("arn:aws:iam::{}:role{path}{name}", self.account),
            unique_id: self.unique_id("AROA"),
            created: env.now.0,
            trust: trust.to_string(),
            description: description.to_string(),
            max_session,
            tags,
            policies: Policies::default(),
        };
        self.iam_roles.insert(r.clone());
        Ok(r)
    }

    pub fn update_assume_role_policy(&mut self, name: &str, trust: &str) -> ApiResult<()> {
        policy::parse(trust, policy::Kind::Trust)?;
        let id = self.role(name)?.id.clone();
        self.iam_roles.get_mut(&id).expect("checked above").trust = trust.to_string();
        Ok(())
    }

    pub fn delete_role(&mut self, name: &str) -> ApiResult<()> {
        let r = self.role(name)?;
        let id = r.id.clone();
        if self
            .iam_instance_profiles
            .iter()
            .any(|p| p.roles.contains(&id))
        {
            return Err(conflict(
                "Cannot delete entity, must remove roles from instance profile first.",
            ));
        }
        if !r.policies.attached.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must detach all policies first.",
            ));
        }
        if !r.policies.inline.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must delete policies first.",
            ));
        }
        self.iam_roles.remove(&id);
        Ok(())
    }

    // -- attached and inline policies ---------------------------------------------------

    fn policies_mut(&mut self, holder: Holder, name: &str) -> ApiResult<&mut Policies> {
        Ok(match holder {
            Holder::User => {
                let id = self.user(name)?.id.clone();
                &mut self.iam_users.get_mut(&id).expect("checked").policies
            }
            Holder::Group => {
                let id = self.group(name)?.id.clone();
                &mut self.iam_groups.get_mut(&id).expect("checked").policies
            }
            Holder::Role => {
                let id = self.role(name)?.id.clone();
                &mut self.iam_roles.get_mut(&id).expect("checked").policies
            }
        })
    }

    pub fn policies_of(&self, holder: Holder, name: &str) -> ApiResult<&Policies> {
        Ok(match holder {
            Holder::User => &self.user(name)?.policies,
            Holder::Group => &self.group(name)?.policies,
            Holder::Role => &self.role(name)?.policies,
        })
    }

    pub fn attach_policy(&mut self, holder: Holder, name: &str, arn: &str) -> ApiResult<()> {
        if policy_document(self, arn).is_none() {
            return Err(not_found(format!(
                "Policy {arn} does not exist or is not attachable."
            )));
        }
        let p = self.policies_mut(holder, name)?;
        p.attached.insert(arn.to_string());
        if p.attached.len() > MAX_MANAGED_POLICIES_PER_ENTITY {
            let quota = match holder {
                Holder::User => "PoliciesPerUser",
                Holder::Group => "PoliciesPerGroup",
                Holder::Role => "PoliciesPerRole",
            };
            return Err(limit(quota, MAX_MANAGED_POLICIES_PER_ENTITY));
        }
        Ok(())
    }

    pub fn detach_policy(&mut self, holder: Holder, name: &str, arn: &str) -> ApiResult<()> {
        let p = self.policies_mut(holder, name)?;
        if !p.attached.remove(arn) {
            return Err(not_found(format!("Policy {arn} was not found.")));
        }
        Ok(())
    }

    pub fn put_inline_policy(
        &mut self,
        holder: Holder,
        name: &str,
        policy_name: &str,
        doc: &str,
    ) -> ApiResult<()> {
        check_name("policyName", policy_name, 128)?;
        check_identity_document(doc)?;
        let p = self.policies_mut(holder, name)?;
        p.inline.insert(policy_name.to_string(), doc.to_string());
        Ok(())
    }

    pub fn delete_inline_policy(
        &mut self,
        holder: Holder,
        name: &str,
        policy_name: &str,
    ) -> ApiResult<()> {
        let p = self.policies_mut(holder, name)?;
        if p.inline.remove(policy_name).is_none() {
            return Err(not_found(format!(
                "The {} policy with name {policy_name} cannot be found.",
                holder.word()
            )));
        }
        Ok(())
    }

    // -- customer managed policies -------------------------------------------------------

    pub fn create_policy(
        &mut self,
        env: &Env,
        name: &str,
        path: Option<&str>,
        doc: &str,
        description: &str,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<ManagedPolicy> {
        check_name("policyName", name, 128)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        check_identity_document(doc)?;
        // Names are unique in the account whatever the path.
        if self
            .iam_policies
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(name))
        {
            return Err(exists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        let p = ManagedPolicy {
            id: format!("arn:aws:iam::{}:policy{path}{name}", self.account),
            name: name.to_string(),
            path: path.to_string(),
            unique_id: self.unique_id("ANPA"),
            created: env.now.0,
            updated: env.now.0,
            description: description.to_string(),
            default_version: 1,
            versions: BTreeMap::from([(
                1,
                PolicyVersion {
                    document: doc.to_string(),
                    created: env.now.0,
                },
            )]),
            next_version: 2,
            tags,
        };
        self.iam_policies.insert(p.clone());
        Ok(p)
    }

    /// How many users, groups and roles a managed policy is attached to.
    pub fn attachment_count(&self, arn: &str) -> usize {
        self.iam_users
            .iter()
            .filter(|u| u.policies.attached.contains(arn))
            .count()
            + self
                .iam_groups
                .iter()
                .filter(|g| g.policies.attached.contains(arn))
                .count()
            + self
                .iam_roles
                .iter()
                .filter(|r| r.policies.attached.contains(arn))
                .count()
    }

    pub fn delete_policy(&mut self, arn: &str) -> ApiResult<()> {
        self.customer_policy(arn)?;
        if self.attachment_count(arn) > 0 {
            return Err(conflict("Cannot delete a policy attached to entities."));
        }
        let p = self.customer_policy(arn)?;
        if p.versions.len() > 1 {
            return Err(conflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
            ));
        }
        self.iam_policies.remove(arn);
        Ok(())
    }

    pub fn create_policy_version(
        &mut self,
        env: &Env,
        arn: &str,
        doc: &str,
        set_default: bool,
    ) -> ApiResult<u32> {
        check_identity_document(doc)?;
        self.customer_policy(arn)?;
        let p = self.iam_policies.get_mut(arn).expect("checked above");
        if p.versions.len() >= MAX_POLICY_VERSIONS {
            return Err(limit("PolicyVersionsPerPolicy", MAX_POLICY_VERSIONS));
        }
        let v = p.next_version;
        p.next_version += 1;
        p.versions.insert(
            v,
            PolicyVersion {
                document: doc.to_string(),
                created: env.now.0,
            },
        );
        if set_default {
            p.default_version = v;
        }
        p.updated = env.now.0;
        Ok(v)
    }

    pub fn delete_policy_version(&mut self, arn: &str, version: u32) -> ApiResult<()> {
        self.customer_policy(arn)?;
        let p = self.iam_policies.get_mut(arn).expect("checked above");
        if !p.versions.contains_key(&version) {
            return Err(not_found(format!(
                "Policy {arn} version v{version} does not exist or is not deletable."
            )));
        }
        if p.default_version == version {
            return Err(conflict("Cannot delete the default version of a policy."));
        }
        p.versions.remove(&version);
        Ok(())
    }

    pub fn set_default_policy_version(
        &mut self,
        env: &Env,
        arn: &str,
        version: u32,
    ) -> ApiResult<()> {
        self.customer_policy(arn)?;
        let p = self.iam_policies.get_mut(arn).expect("checked above");
        if !p.versions.contains_key(&version) {
            return Err(not_found(format!(
                "Policy {arn} version v{version} does not exist."
            )));
        }
        p.default_version = version;
        p.updated = env.now.0;
        Ok(())
    }

    // -- access keys and login profiles ---------------------------------------------------

    pub fn create_access_key(
        &mut self,
        env: &Env,
        user: &str,
        secret: &str,
    ) -> ApiResult<AccessKey> {
        let uid = self.user(user)?.id.clone();
        if self
            .iam_access_keys
            .iter()
            .filter(|k| k.user == uid)
            .count()
            >= MAX_ACCESS_KEYS_PER_USER
        {
            return Err(limit("AccessKeysPerUser", MAX_ACCESS_KEYS_PER_USER));
        }
        let k = AccessKey {
            id: self.alloc_access_key_id("AKIA"),
            user: uid,
            secret: secret.to_string(),
            active: true,
            created: env.now.0,
        };
        self.iam_access_keys.insert(k.clone());
        Ok(k)
    }

    fn own_key(&self, user: &str, key_id: &str) -> ApiResult<&AccessKey> {
        let uid = self.user(user)?.id.clone();
        match self.iam_access_keys.get(key_id) {
            Some(k) if k.user == uid => Ok(k),
            _ => Err(not_found(format!(
                "The Access Key with id {key_id} cannot be found."
            ))),
        }
    }

    pub fn delete_access_key(&mut self, user: &str, key_id: &str) -> ApiResult<()> {
        self.own_key(user, key_id)?;
        self.iam_access_keys.remove(key_id);
        Ok(())
    }

    pub fn update_access_key(&mut self, user: &str, key_id: &str, active: bool) -> ApiResult<()> {
        self.own_key(user, key_id)?;
        self.iam_access_keys
            .get_mut(key_id)
            .expect("checked")
            .active = active;
        Ok(())
    }

    pub fn access_keys_of(&self, user_id: &str) -> Vec<&AccessKey> {
        self.iam_access_keys
            .iter()
            .filter(|k| k.user == user_id)
            .collect()
    }

    pub fn create_login_profile(
        &mut self,
        env: &Env,
        user: &str,
        password: &str,
        salt: &str,
        reset_required: bool,
    ) -> ApiResult<()> {
        let uid = self.user(user)?.id.clone();
        if self.iam_users.get(&uid).is_some_and(|u| u.login.is_some()) {
            return Err(exists(format!(
                "Login Profile for user {user} already exists."
            )));
        }
        check_password(password)?;
        self.iam_users.get_mut(&uid).expect("checked").login = Some(LoginProfile {
            hash: hash_password(password, salt),
            salt: salt.to_string(),
            created: env.now.0,
            reset_required,
        });
        Ok(())
    }

    pub fn update_login_profile(
        &mut self,
        user: &str,
        password: Option<(&str, &str)>,
        reset_required: Option<bool>,
    ) -> ApiResult<()> {
        let uid = self.user(user)?.id.clone();
        if let Some((pw, _)) = password {
            check_password(pw)?;
        }
        let u = self.iam_users.get_mut(&uid).expect("checked");
        let Some(login) = u.login.as_mut() else {
            return Err(not_found(format!(
                "Login Profile for User {user} cannot be found."
            )));
        };
        if let Some((pw, salt)) = password {
            login.hash = hash_password(pw, salt);
            login.salt = salt.to_string();
        }
        if let Some(r) = reset_required {
            login.reset_required = r;
        }
        Ok(())
    }

    pub fn delete_login_profile(&mut self, user: &str) -> ApiResult<()> {
        let uid = self.user(user)?.id.clone();
        let u = self.iam_users.get_mut(&uid).expect("checked");
        if u.login.take().is_none() {
            return Err(not_found(format!(
                "Login Profile for User {user} cannot be found."
            )));
        }
        Ok(())
    }

    /// Whether `password` is the user's console password.
    pub fn check_login(&self, user: &str, password: &str) -> bool {
        self.user(user)
            .ok()
            .and_then(|u| u.login.as_ref())
            .is_some_and(|l| {
                let h = hash_password(password, &l.salt);
                h.len() == l.hash.len() && h.bytes().zip(l.hash.bytes()).all(|(a, b)| a == b)
            })
    }

    // -- instance profiles ---------------------------------------------------------------

    pub fn create_instance_profile(
        &mut self,
        env: &Env,
        name: &str,
        path: Option<&str>,
    ) -> ApiResult<InstanceProfile> {
        check_name("instanceProfileName", name, 128)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        let id = key("instance-profile", name);
        if self.iam_instance_profiles.contains(&id) {
            return Err(exists(format!("Instance Profile {name} already exists.")));
        }
        let p = InstanceProfile {
            id,
            name: name.to_string(),
            path: path.to_string(),
            arn: format!("arn:aws:iam::{}:instance-profile{path}{name}", self.account),
            unique_id: self.unique_id("AIPA"),
            created: env.now.0,
            roles: Vec::new(),
        };
        self.iam_instance_profiles.insert(p.clone());
        Ok(p)
    }

    pub fn delete_instance_profile(&mut self, name: &str) -> ApiResult<()> {
        let p = self.instance_profile(name)?;
        if !p.roles.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must remove roles from instance profile first.",
            ));
        }
        let id = p.id.clone();
        self.iam_instance_profiles.remove(&id);
        Ok(())
    }

    pub fn add_role_to_instance_profile(&mut self, profile: &str, role: &str) -> ApiResult<()> {
        let pid = self.instance_profile(profile)?.id.clone();
        let rid = self.role(role)?.id.clone();
        let p = self.iam_instance_profiles.get_mut(&pid).expect("checked");
        if p.roles.contains(&rid) {
            return Err(exists(format!(
                "Role {role} is already in instance profile {profile}."
            )));
        }
        if p.roles.len() >= MAX_ROLES_PER_INSTANCE_PROFILE {
            return Err(limit(
                "InstanceSessionsPerInstanceProfile",
                MAX_ROLES_PER_INSTANCE_PROFILE,
            ));
        }
        p.roles.push(rid);
        Ok(())
    }

    pub fn remove_role_from_instance_profile(
        &mut self,
        profile: &str,
        role: &str,
    ) -> ApiResult<()> {
        let pid = self.instance_profile(profile)?.id.clone();
        let rid = self.role(role)?.id.clone();
        let p = self.iam_instance_profiles.get_mut(&pid).expect("checked");
        let before = p.roles.len();
        p.roles.retain(|r| *r != rid);
        if p.roles.len() == before {
            return Err(not_found(format!(
                "The role with name {role} cannot be found in instance profile {profile}."
            )));
        }
        Ok(())
    }

    // -- account --------------------------------------------------------------------------

    pub fn create_account_alias(&mut self, alias: &str) -> ApiResult<()> {
        let ok = (3..=63).contains(&alias.len())
            && alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !alias.starts_with('-')
            && !alias.ends_with('-');
        if !ok {
            return Err(validation(
                "accountAlias",
                alias,
                "Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$",
            ));
        }
        let mut a = self.iam_account();
        if a.alias.as_deref() == Some(alias) {
            return Err(exists(format!("The account alias {alias} already exists.")));
        }
        a.alias = Some(alias.to_string());
        self.iam_accounts.insert(a);
        Ok(())
    }

    pub fn delete_account_alias(&mut self, alias: &str) -> ApiResult<()> {
        let mut a = self.iam_account();
        if a.alias.as_deref() != Some(alias) {
            return Err(not_found(format!(
                "The account alias {alias} cannot be found."
            )));
        }
        a.alias = None;
        self.iam_accounts.insert(a);
        Ok(())
    }

    /// Switches policy enforcement for this account (a lab's setup, `vpclab up --iam
    /// enforce` applies it to every account).
    pub fn set_iam_enforce(&mut self, on: bool) {
        let mut a = self.iam_account();
        if a.enforce != on {
            a.enforce = on;
            self.iam_accounts.insert(a);
        }
    }

    // -- STS -------------------------------------------------------------------------------

    /// Records AssumeRole's credentials; expired sessions are dropped on the way.
    pub fn create_session(
        &mut self,
        env: &Env,
        role: &str,
        session_name: &str,
        duration_s: i64,
        secret: &str,
        token: &str,
    ) -> ApiResult<Session> {
        let r = self.role(role)?.clone();
        let expired: Vec<String> = self
            .sts_sessions
            .iter()
            .filter(|s| s.expires <= env.now.0)
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.sts_sessions.remove(&id);
        }
        let s = Session {
            id: self.alloc_access_key_id("ASIA"),
            secret: secret.to_string(),
            token: token.to_string(),
            role: r.id.clone(),
            role_name: r.name.clone(),
            session_name: session_name.to_string(),
            expires: env.now.plus_ms(duration_s * 1000).0,
            assumed_role_id: format!("{}:{session_name}", r.unique_id),
        };
        self.sts_sessions.insert(s.clone());
        Ok(s)
    }

    // -- evaluation inputs -------------------------------------------------------------------

    /// The identity policies of a user (its own and its groups'), each labelled with
    /// the policy's ARN or `user/NAME/inline/POLICY`.
    pub fn user_policy_documents(&self, name: &str) -> Vec<(String, String)> {
        let Ok(u) = self.user(name) else {
            return Vec::new();
        };
        let mut out = self.documents_of(&format!("user/{}", u.name), &u.policies);
        for gid in &u.groups {
            if let Some(g) = self.iam_groups.get(gid) {
                out.extend(self.documents_of(&format!("group/{}", g.name), &g.policies));
            }
        }
        out
    }

    /// The identity policies of a role.
    pub fn role_policy_documents(&self, name: &str) -> Vec<(String, String)> {
        match self.role(name) {
            Ok(r) => self.documents_of(&format!("role/{}", r.name), &r.policies),
            Err(_) => Vec::new(),
        }
    }

    fn documents_of(&self, label: &str, p: &Policies) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = p
            .attached
            .iter()
            .filter_map(|arn| Some((arn.clone(), policy_document(self, arn)?)))
            .collect();
        out.extend(
            p.inline
                .iter()
                .map(|(n, d)| (format!("{label}/inline/{n}"), d.clone())),
        );
        out
    }
}

/// A timestamp as IAM renders it (ISO 8601, UTC).
pub fn iso(ms: i64) -> String {
    Timestamp(ms).iso()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_764_547_200_000))
    }

    #[test]
    fn names_are_unique_without_regard_to_case_and_deletes_need_a_clean_entity() {
        let mut w = World::new("123456789012");
        let u = w.create_user(&env(), "Bob", None, BTreeMap::new()).unwrap();
        assert_eq!(u.arn, "arn:aws:iam::123456789012:user/Bob");
        assert!(u.unique_id.starts_with("AIDA") && u.unique_id.len() == 21);
        assert_eq!(
            w.create_user(&env(), "bob", None, BTreeMap::new())
                .unwrap_err()
                .code,
            "EntityAlreadyExists"
        );
        w.create_access_key(&env(), "bob", "s1").unwrap();
        w.create_access_key(&env(), "bob", "s2").unwrap();
        assert_eq!(
            w.create_access_key(&env(), "bob", "s3").unwrap_err().code,
            "LimitExceeded"
        );
        assert_eq!(
            w.delete_user(&env(), "bob").unwrap_err().code,
            "DeleteConflict"
        );
        assert_eq!(w.user("nobody").unwrap_err().status, 404);
        assert_eq!(
            check_name("userName", "a b", 64).unwrap_err().code,
            "ValidationError"
        );
    }

    #[test]
    fn policy_versions_stop_at_five_and_the_default_cannot_be_deleted() {
        let mut w = World::new("123456789012");
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
        let p = w
            .create_policy(&env(), "p", None, doc, "", BTreeMap::new())
            .unwrap();
        for _ in 0..4 {
            w.create_policy_version(&env(), &p.id, doc, false).unwrap();
        }
        assert_eq!(
            w.create_policy_version(&env(), &p.id, doc, false)
                .unwrap_err()
                .code,
            "LimitExceeded"
        );
        assert_eq!(
            w.delete_policy_version(&p.id, 1).unwrap_err().code,
            "DeleteConflict"
        );
        w.set_default_policy_version(&env(), &p.id, 3).unwrap();
        w.delete_policy_version(&p.id, 1).unwrap();
        w.create_policy_version(&env(), &p.id, doc, true).unwrap();
        assert_eq!(w.customer_policy(&p.id).unwrap().default_version, 6);
    }

    #[test]
    fn passwords_are_hashed_and_checked() {
        let mut w = World::new("123456789012");
        w.create_user(&env(), "amy", None, BTreeMap::new()).unwrap();
        assert_eq!(
            w.create_login_profile(&env(), "amy", "short", "salt", false)
                .unwrap_err()
                .code,
            "PasswordPolicyViolation"
        );
        w.create_login_profile(&env(), "amy", "Correct-Horse-9", "salt", false)
            .unwrap();
        let stored = &w.user("amy").unwrap().login.as_ref().unwrap().hash;
        assert!(!stored.contains("Correct"));
        assert!(w.check_login("amy", "Correct-Horse-9"));
        assert!(!w.check_login("amy", "Correct-Horse-8"));
    }
}
