//! IAM and STS over the AWS Query protocol: `POST /` with a form body
//! (`Action=CreateUser&Version=2010-05-08&UserName=bob`), answered with
//! `<{Action}Response xmlns="…"><{Action}Result>…</{Action}Result><ResponseMetadata>`
//! or `<ErrorResponse><Error><Type>Sender</Type><Code>…`.
//!
//! The router sends requests signed for `iam` and `sts` here. Handlers parse with
//! [`Params`] (`Name.member.N` lists), call one `World` method of `model::iam` through
//! the one door, and render members as the IAM and STS API references name them.
//! Policy documents are answered URL-encoded, as IAM does (the CLI and SDKs decode
//! them). Before any handler runs, [`authz::authorize`] applies the caller's policies
//! when enforcement is on.
//!
//! `keys.rs` is the [`crate::api::sigv4::KeyStore`] that makes IAM access keys and STS
//! sessions work as credentials.

pub mod authz;
pub mod keys;
mod sts;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::query::Params;
use super::sigv4::{Identity, Principal};
use super::xml::{Xml, escape};
use super::{AppState, MAX_BODY};
use crate::model::iam::{self, Holder, policy};
use crate::model::{ApiError, ApiResult, Control, Env, World};

pub const IAM_XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Which of the two Query services a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Svc {
    Iam,
    Sts,
}

impl Svc {
    fn prefix(self) -> &'static str {
        match self {
            Svc::Iam => "iam",
            Svc::Sts => "sts",
        }
    }
    fn xmlns(self) -> &'static str {
        match self {
            Svc::Iam => IAM_XMLNS,
            Svc::Sts => STS_XMLNS,
        }
    }
}

/// One IAM or STS call in progress.
pub struct QCall<'a> {
    pub params: &'a Params,
    pub identity: Identity,
    pub env: Env,
    pub control: &'a mut Control,
    pub state: &'a AppState,
}

impl QCall<'_> {
    fn account(&self) -> String {
        self.identity.account.clone()
    }

    /// The account's IAM state as it is now.
    pub fn world(&mut self) -> ApiResult<Arc<World>> {
        let account = self.account();
        self.control.read(&account, &self.env)
    }

    pub fn mutate<R>(&mut self, f: impl FnOnce(&mut World, &Env) -> ApiResult<R>) -> ApiResult<R> {
        let account = self.account();
        self.control.mutate(&account, &self.env, false, f)
    }

    fn req(&self, name: &str) -> ApiResult<&str> {
        self.params
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| iam::validation(&lower_first(name), "null", "Member must not be null"))
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.params.get(name).filter(|v| !v.is_empty())
    }

    fn tags(&self) -> BTreeMap<String, String> {
        self.params
            .structs("Tags.member")
            .iter()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.to_string(),
                    t.get("Value").unwrap_or("").to_string(),
                ))
            })
            .collect()
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

type Handler = fn(&mut QCall) -> ApiResult<Xml>;

/// Serves one IAM or STS request.
pub async fn endpoint(state: AppState, req: Request, svc: Svc) -> Response {
    let (parts, body) = req.into_parts();
    let (status, body) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => handle(&state, &super::signed_request(&parts), &bytes, svc),
        Err(_) => {
            let e = ApiError::new(
                "RequestEntityTooLarge",
                format!("The request body exceeds the maximum allowed size of {MAX_BODY} bytes."),
            )
            .with_status(413);
            (413, error_body(svc, &e, &state.request_id()))
        }
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

fn error_body(svc: Svc, e: &ApiError, id: &str) -> String {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"{}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
        svc.xmlns(),
        escape(&e.code),
        escape(&e.message)
    )
}

/// Handles one request from its parts; (HTTP status, XML body).
pub fn handle(
    state: &AppState,
    req: &super::sigv4::SignedRequest,
    body: &[u8],
    svc: Svc,
) -> (u16, String) {
    let request_id = state.request_id();
    let mut params = Params::default();
    if let Some(q) = &req.query {
        params.extend_from(q.as_bytes());
    }
    params.extend_from(body);
    let action = params.get("Action").unwrap_or("").to_string();
    match run(state, req, body, &params, &action, svc) {
        Ok(inner) => {
            let name = escape(&action);
            let result = if inner.is_empty() {
                String::new()
            } else {
                format!("<{name}Result>{inner}</{name}Result>")
            };
            (
                200,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{name}Response xmlns=\"{}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{name}Response>",
                    svc.xmlns()
                ),
            )
        }
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(action = %action, code = %e.code, "internal error");
            }
            (e.status, error_body(svc, &e, &request_id))
        }
    }
}

fn run(
    state: &AppState,
    req: &super::sigv4::SignedRequest,
    body: &[u8],
    params: &Params,
    action: &str,
    svc: Svc,
) -> ApiResult<String> {
    let identity = state.authenticate(req, body)?;
    params.check_xml_text()?;
    if action.is_empty() {
        return Err(ApiError::new(
            "MissingAction",
            "The request must contain the parameter Action",
        ));
    }
    let table: &[(&str, Handler)] = match svc {
        Svc::Iam => IAM_ACTIONS,
        Svc::Sts => sts::ACTIONS,
    };
    let handler = table
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, h)| *h)
        .ok_or_else(|| {
            ApiError::new(
                "InvalidAction",
                format!(
                    "Could not find operation {action} for version {}",
                    match svc {
                        Svc::Iam => "2010-05-08",
                        Svc::Sts => "2011-06-15",
                    }
                ),
            )
        })?;
    let env = Env::new(identity.credential.region.clone(), (state.clock)()).with_action(action);
    let mut control = state.lock();
    // GetCallerIdentity needs no permission (STS API reference); AssumeRole weighs the
    // caller's identity policies together with the role's trust policy itself.
    if !(svc == Svc::Sts && matches!(action, "GetCallerIdentity" | "AssumeRole")) {
        let world = control.snapshot(&identity.account);
        let resource = match svc {
            Svc::Iam => {
                let r = authz::iam_resource(world.as_deref(), action, params, &identity.account);
                if r == "*" && (action.contains("AccessKey") || action.contains("LoginProfile")) {
                    authz::own_user_arn(world.as_deref(), &identity).unwrap_or(r)
                } else {
                    r
                }
            }
            Svc::Sts => params
                .get("RoleArn")
                .filter(|_| action == "AssumeRole")
                .unwrap_or("*")
                .to_string(),
        };
        authz::authorize(
            &control,
            state.iam_enforce,
            &identity,
            &format!("{}:{action}", svc.prefix()),
            &resource,
            env.now,
            source_ip(req).as_deref(),
        )
        .map_err(|d| d.query())?;
        // Putting a role into an instance profile hands it to EC2: `iam:PassRole`.
        if action == "AddRoleToInstanceProfile"
            && let Some(r) = params
                .get("RoleName")
                .and_then(|n| world.as_deref()?.role(n).ok())
        {
            authz::authorize_pass_role(
                &control,
                state.iam_enforce,
                &identity,
                &r.arn,
                "ec2.amazonaws.com",
                env.now,
                source_ip(req).as_deref(),
            )
            .map_err(|d| d.query())?;
        }
    }
    let mut call = QCall {
        params,
        identity,
        env,
        control: &mut control,
        state,
    };
    handler(&mut call).map(Xml::finish)
}

/// The client's address, as the server recorded it (`aws:SourceIp`).
pub fn source_ip(req: &super::sigv4::SignedRequest) -> Option<String> {
    req.headers
        .iter()
        .find(|(k, _)| k == super::SOURCE_IP_HEADER)
        .map(|(_, v)| v.clone())
}

// ---------------------------------------------------------------------------------------
// Rendering

fn members<T>(
    x: &mut Xml,
    name: &str,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut Xml, T),
) {
    x.node(name, |x| {
        for i in items {
            x.node("member", |x| f(x, i));
        }
    });
}

fn tags(x: &mut Xml, tags: &BTreeMap<String, String>) {
    if !tags.is_empty() {
        members(x, "Tags", tags, |x, (k, v)| {
            x.leaf("Key", k).leaf("Value", v);
        });
    }
}

/// Policy documents are URL-encoded in IAM's answers.
fn encoded(doc: &str) -> String {
    percent_encoding::utf8_percent_encode(doc, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn user(x: &mut Xml, u: &iam::User) {
    x.leaf("Path", &u.path)
        .leaf("UserName", &u.name)
        .leaf("UserId", &u.unique_id)
        .leaf("Arn", &u.arn)
        .leaf("CreateDate", iam::iso(u.created));
    tags(x, &u.tags);
}

fn group(x: &mut Xml, g: &iam::Group) {
    x.leaf("Path", &g.path)
        .leaf("GroupName", &g.name)
        .leaf("GroupId", &g.unique_id)
        .leaf("Arn", &g.arn)
        .leaf("CreateDate", iam::iso(g.created));
}

fn role(x: &mut Xml, r: &iam::Role) {
    x.leaf("Path", &r.path)
        .leaf("RoleName", &r.name)
        .leaf("RoleId", &r.unique_id)
        .leaf("Arn", &r.arn)
        .leaf("CreateDate", iam::iso(r.created))
        .leaf("AssumeRolePolicyDocument", encoded(&r.trust))
        .leaf("MaxSessionDuration", r.max_session);
    if !r.description.is_empty() {
        x.leaf("Description", &r.description);
    }
    tags(x, &r.tags);
}

fn managed_policy(x: &mut Xml, w: &World, p: &iam::ManagedPolicy) {
    x.leaf("PolicyName", &p.name)
        .leaf("PolicyId", &p.unique_id)
        .leaf("Arn", &p.id)
        .leaf("Path", &p.path)
        .leaf("DefaultVersionId", format!("v{}", p.default_version))
        .leaf("AttachmentCount", w.attachment_count(&p.id))
        .leaf("PermissionsBoundaryUsageCount", 0)
        .leaf("IsAttachable", true)
        .leaf("CreateDate", iam::iso(p.created))
        .leaf("UpdateDate", iam::iso(p.updated));
    if !p.description.is_empty() {
        x.leaf("Description", &p.description);
    }
    tags(x, &p.tags);
}

fn aws_policy(x: &mut Xml, w: &World, m: &iam::managed::Managed) {
    let arn = m.arn();
    x.leaf("PolicyName", m.name)
        .leaf("PolicyId", format!("ANPA{:0>17}", m.name.len()))
        .leaf("Arn", &arn)
        .leaf("Path", m.path)
        .leaf("DefaultVersionId", "v1")
        .leaf("AttachmentCount", w.attachment_count(&arn))
        .leaf("PermissionsBoundaryUsageCount", 0)
        .leaf("IsAttachable", true)
        .leaf("Description", m.description)
        .leaf("CreateDate", "2015-02-06T18:39:46Z")
        .leaf("UpdateDate", "2015-02-06T18:39:46Z");
}

fn instance_profile(x: &mut Xml, w: &World, p: &iam::InstanceProfile) {
    x.leaf("Path", &p.path)
        .leaf("InstanceProfileName", &p.name)
        .leaf("InstanceProfileId", &p.unique_id)
        .leaf("Arn", &p.arn)
        .leaf("CreateDate", iam::iso(p.created));
    members(
        x,
        "Roles",
        p.roles.iter().filter_map(|r| w.iam_roles.get(r)),
        role,
    );
}

fn not_truncated(x: &mut Xml) {
    x.leaf("IsTruncated", false);
}

/// A list answer with IAM's paging: at most `MaxItems` members (1 to 1000, 100 when not
/// given), then `IsTruncated` and, when more remain, the `Marker` that asks for them
/// (the CLI follows it by itself; `--page-size` sets `MaxItems`).
fn page<T>(
    c: &QCall,
    x: &mut Xml,
    name: &str,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut Xml, T),
) -> ApiResult<()> {
    let max = match c.params.int("MaxItems")? {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => {
            return Err(ApiError::new(
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
                ),
            ));
        }
    };
    let skip = match c.opt("Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("vpclab-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::new("ValidationError", format!("Invalid Marker: {m}")))?,
    };
    let mut rest = items.into_iter().skip(skip).peekable();
    let mut shown = 0;
    x.node(name, |x| {
        while shown < max {
            let Some(i) = rest.next() else { break };
            x.node("member", |x| f(x, i));
            shown += 1;
        }
    });
    let truncated = rest.peek().is_some();
    x.leaf("IsTruncated", truncated);
    if truncated {
        x.leaf("Marker", format!("vpclab-{}", skip + shown));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// IAM actions

pub const IAM_ACTIONS: &[(&str, Handler)] = &[
    ("CreateUser", create_user),
    ("GetUser", get_user),
    ("ListUsers", list_users),
    ("DeleteUser", delete_user),
    ("TagUser", tag_user),
    ("UntagUser", untag_user),
    ("ListUserTags", list_user_tags),
    ("CreateGroup", create_group),
    ("GetGroup", get_group),
    ("ListGroups", list_groups),
    ("DeleteGroup", delete_group),
    ("AddUserToGroup", add_user_to_group),
    ("RemoveUserFromGroup", remove_user_from_group),
    ("ListGroupsForUser", list_groups_for_user),
    ("CreateRole", create_role),
    ("GetRole", get_role),
    ("ListRoles", list_roles),
    ("DeleteRole", delete_role),
    ("UpdateAssumeRolePolicy", update_assume_role_policy),
    ("TagRole", tag_role),
    ("UntagRole", untag_role),
    ("ListRoleTags", list_role_tags),
    ("CreatePolicy", create_policy),
    ("GetPolicy", get_policy),
    ("ListPolicies", list_policies),
    ("DeletePolicy", delete_policy),
    ("CreatePolicyVersion", create_policy_version),
    ("GetPolicyVersion", get_policy_version),
    ("ListPolicyVersions", list_policy_versions),
    ("DeletePolicyVersion", delete_policy_version),
    ("SetDefaultPolicyVersion", set_default_policy_version),
    ("AttachUserPolicy", |c| attach(c, Holder::User, true)),
    ("DetachUserPolicy", |c| attach(c, Holder::User, false)),
    ("AttachGroupPolicy", |c| attach(c, Holder::Group, true)),
    ("DetachGroupPolicy", |c| attach(c, Holder::Group, false)),
    ("AttachRolePolicy", |c| attach(c, Holder::Role, true)),
    ("DetachRolePolicy", |c| attach(c, Holder::Role, false)),
    ("ListAttachedUserPolicies", |c| {
        list_attached(c, Holder::User)
    }),
    ("ListAttachedGroupPolicies", |c| {
        list_attached(c, Holder::Group)
    }),
    ("ListAttachedRolePolicies", |c| {
        list_attached(c, Holder::Role)
    }),
    ("PutUserPolicy", |c| put_inline(c, Holder::User)),
    ("PutGroupPolicy", |c| put_inline(c, Holder::Group)),
    ("PutRolePolicy", |c| put_inline(c, Holder::Role)),
    ("GetUserPolicy", |c| get_inline(c, Holder::User)),
    ("GetGroupPolicy", |c| get_inline(c, Holder::Group)),
    ("GetRolePolicy", |c| get_inline(c, Holder::Role)),
    ("ListUserPolicies", |c| list_inline(c, Holder::User)),
    ("ListGroupPolicies", |c| list_inline(c, Holder::Group)),
    ("ListRolePolicies", |c| list_inline(c, Holder::Role)),
    ("DeleteUserPolicy", |c| delete_inline(c, Holder::User)),
    ("DeleteGroupPolicy", |c| delete_inline(c, Holder::Group)),
    ("DeleteRolePolicy", |c| delete_inline(c, Holder::Role)),
    ("CreateAccessKey", create_access_key),
    ("ListAccessKeys", list_access_keys),
    ("UpdateAccessKey", update_access_key),
    ("DeleteAccessKey", delete_access_key),
    ("CreateLoginProfile", create_login_profile),
    ("GetLoginProfile", get_login_profile),
    ("UpdateLoginProfile", update_login_profile),
    ("DeleteLoginProfile", delete_login_profile),
    ("CreateInstanceProfile", create_instance_profile),
    ("GetInstanceProfile", get_instance_profile),
    ("ListInstanceProfiles", list_instance_profiles),
    (
        "ListInstanceProfilesForRole",
        list_instance_profiles_for_role,
    ),
    ("DeleteInstanceProfile", delete_instance_profile),
    ("AddRoleToInstanceProfile", add_role_to_instance_profile),
    (
        "RemoveRoleFromInstanceProfile",
        remove_role_from_instance_profile,
    ),
    ("CreateAccountAlias", create_account_alias),
    ("DeleteAccountAlias", delete_account_alias),
    ("ListAccountAliases", list_account_aliases),
    ("GetAccountSummary", get_account_summary),
    ("SimulatePrincipalPolicy", simulate_principal_policy),
    ("SimulateCustomPolicy", simulate_custom_policy),
];

/// Every IAM action vpclab answers (docs, tests).
pub fn iam_action_names() -> Vec<&'static str> {
    IAM_ACTIONS.iter().map(|(a, _)| *a).collect()
}

/// The user a key or password action is about: `UserName`, else the caller (IAM
/// answers for the signing user when the parameter is left out).
fn user_param(c: &QCall) -> ApiResult<String> {
    if let Some(n) = c.opt("UserName") {
        return Ok(n.to_string());
    }
    match &c.identity.principal {
        Principal::User(n) => Ok(n.clone()),
        _ => Err(iam::validation(
            "userName",
            "null",
            "Member must not be null (the root user has no access keys vpclab manages)",
        )),
    }
}

fn create_user(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("UserName")?.to_string();
    let path = c.opt("Path").map(str::to_string);
    let tags = c.tags();
    let u = c.mutate(|w, env| w.create_user(env, &name, path.as_deref(), tags))?;
    let mut x = Xml::new();
    x.node("User", |x| user(x, &u));
    Ok(x)
}

fn get_user(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    match c.opt("UserName") {
        Some(n) => {
            let u = w.user(n)?;
            x.node("User", |x| user(x, u));
        }
        None => match &c.identity.principal {
            Principal::User(n) => {
                let u = w.user(n)?;
                x.node("User", |x| user(x, u));
            }
            // The root user (GetUser without a name, signed by root).
            _ => {
                let account = c.account();
                x.node("User", |x| {
                    x.leaf("UserId", &account)
                        .leaf("Arn", format!("arn:aws:iam::{account}:root"))
                        .leaf("CreateDate", iam::iso(0));
                });
            }
        },
    }
    Ok(x)
}

fn path_prefix_ok(c: &QCall, path: &str) -> bool {
    c.opt("PathPrefix").is_none_or(|p| path.starts_with(p))
}

fn list_users(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "Users",
        w.iam_users.iter().filter(|u| path_prefix_ok(c, &u.path)),
        user,
    )?;
    Ok(x)
}

fn delete_user(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("UserName")?.to_string();
    c.mutate(|w, env| w.delete_user(env, &name))?;
    Ok(Xml::new())
}

fn tag_keys(c: &QCall) -> Vec<String> {
    c.params.list("TagKeys.member")
}

fn tag_user(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("UserName")?.to_string();
    let tags = c.tags();
    c.mutate(|w, _| w.tag_user(&name, tags))?;
    Ok(Xml::new())
}

fn untag_user(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("UserName")?.to_string();
    let keys = tag_keys(c);
    c.mutate(|w, _| w.untag_user(&name, &keys))?;
    Ok(Xml::new())
}

fn list_user_tags(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let u = w.user(c.req("UserName")?)?;
    let mut x = Xml::new();
    page(c, &mut x, "Tags", &u.tags, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    })?;
    Ok(x)
}

fn create_group(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("GroupName")?.to_string();
    let path = c.opt("Path").map(str::to_string);
    let g = c.mutate(|w, env| w.create_group(env, &name, path.as_deref()))?;
    let mut x = Xml::new();
    x.node("Group", |x| group(x, &g));
    Ok(x)
}

fn get_group(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let g = w.group(c.req("GroupName")?)?;
    let mut x = Xml::new();
    x.node("Group", |x| group(x, g));
    page(c, &mut x, "Users", w.group_members(&g.id), user)?;
    Ok(x)
}

fn list_groups(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "Groups",
        w.iam_groups.iter().filter(|g| path_prefix_ok(c, &g.path)),
        group,
    )?;
    Ok(x)
}

fn delete_group(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("GroupName")?.to_string();
    c.mutate(|w, _| w.delete_group(&name))?;
    Ok(Xml::new())
}

fn add_user_to_group(c: &mut QCall) -> ApiResult<Xml> {
    let g = c.req("GroupName")?.to_string();
    let u = c.req("UserName")?.to_string();
    c.mutate(|w, _| w.add_user_to_group(&g, &u))?;
    Ok(Xml::new())
}

fn remove_user_from_group(c: &mut QCall) -> ApiResult<Xml> {
    let g = c.req("GroupName")?.to_string();
    let u = c.req("UserName")?.to_string();
    c.mutate(|w, _| w.remove_user_from_group(&g, &u))?;
    Ok(Xml::new())
}

fn list_groups_for_user(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let u = w.user(c.req("UserName")?)?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "Groups",
        u.groups.iter().filter_map(|g| w.iam_groups.get(g)),
        group,
    )?;
    Ok(x)
}

fn create_role(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("RoleName")?.to_string();
    let trust = c.req("AssumeRolePolicyDocument")?.to_string();
    let path = c.opt("Path").map(str::to_string);
    let description = c.opt("Description").unwrap_or("").to_string();
    let max = c.params.int("MaxSessionDuration")?;
    let tags = c.tags();
    let r = c.mutate(|w, env| {
        w.create_role(env, &name, path.as_deref(), &trust, &description, max, tags)
    })?;
    let mut x = Xml::new();
    x.node("Role", |x| role(x, &r));
    Ok(x)
}

fn get_role(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let r = w.role(c.req("RoleName")?)?;
    let mut x = Xml::new();
    x.node("Role", |x| role(x, r));
    Ok(x)
}

fn list_roles(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "Roles",
        w.iam_roles.iter().filter(|r| path_prefix_ok(c, &r.path)),
        role,
    )?;
    Ok(x)
}

fn delete_role(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("RoleName")?.to_string();
    c.mutate(|w, _| w.delete_role(&name))?;
    Ok(Xml::new())
}

fn update_assume_role_policy(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("RoleName")?.to_string();
    let doc = c.req("PolicyDocument")?.to_string();
    c.mutate(|w, _| w.update_assume_role_policy(&name, &doc))?;
    Ok(Xml::new())
}

fn tag_role(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("RoleName")?.to_string();
    let tags = c.tags();
    c.mutate(|w, _| w.tag_role(&name, tags))?;
    Ok(Xml::new())
}

fn untag_role(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("RoleName")?.to_string();
    let keys = tag_keys(c);
    c.mutate(|w, _| w.untag_role(&name, &keys))?;
    Ok(Xml::new())
}

fn list_role_tags(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let r = w.role(c.req("RoleName")?)?;
    let mut x = Xml::new();
    page(c, &mut x, "Tags", &r.tags, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    })?;
    Ok(x)
}

fn create_policy(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("PolicyName")?.to_string();
    let doc = c.req("PolicyDocument")?.to_string();
    let path = c.opt("Path").map(str::to_string);
    let description = c.opt("Description").unwrap_or("").to_string();
    let tags = c.tags();
    let p =
        c.mutate(|w, env| w.create_policy(env, &name, path.as_deref(), &doc, &description, tags))?;
    let w = c.world()?;
    let mut x = Xml::new();
    x.node("Policy", |x| managed_policy(x, &w, &p));
    Ok(x)
}

fn get_policy(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let arn = c.req("PolicyArn")?;
    let mut x = Xml::new();
    if let Some(m) = iam::managed::find(arn) {
        x.node("Policy", |x| aws_policy(x, &w, m));
    } else {
        let p = w.customer_policy(arn)?;
        x.node("Policy", |x| managed_policy(x, &w, p));
    }
    Ok(x)
}

fn list_policies(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let scope = c.opt("Scope").unwrap_or("All");
    if !["All", "AWS", "Local"].contains(&scope) {
        return Err(iam::validation(
            "scope",
            scope,
            "Member must satisfy enum value set: [All, AWS, Local]",
        ));
    }
    let only_attached = c.params.bool("OnlyAttached")?.unwrap_or(false);
    let aws = iam::managed::MANAGED
        .iter()
        .filter(|m| scope != "Local" && !(only_attached && w.attachment_count(&m.arn()) == 0))
        .map(Listed::Aws);
    let own = w
        .iam_policies
        .iter()
        .filter(|p| {
            scope != "AWS"
                && !(only_attached && w.attachment_count(&p.id) == 0)
                && path_prefix_ok(c, &p.path)
        })
        .map(Listed::Own);
    let mut x = Xml::new();
    page(c, &mut x, "Policies", aws.chain(own), |x, p| match p {
        Listed::Aws(m) => aws_policy(x, &w, m),
        Listed::Own(p) => managed_policy(x, &w, p),
    })?;
    Ok(x)
}

/// One row of ListPolicies: an AWS managed policy or one of the account's own.
enum Listed<'a> {
    Aws(&'a iam::managed::Managed),
    Own(&'a iam::ManagedPolicy),
}

fn delete_policy(c: &mut QCall) -> ApiResult<Xml> {
    let arn = c.req("PolicyArn")?.to_string();
    if arn.starts_with("arn:aws:iam::aws:") {
        return Err(
            ApiError::new("AccessDenied", "AWS managed policies cannot be deleted.")
                .with_status(403),
        );
    }
    c.mutate(|w, _| w.delete_policy(&arn))?;
    Ok(Xml::new())
}

fn version_param(c: &QCall) -> ApiResult<u32> {
    let v = c.req("VersionId")?;
    v.strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            iam::validation(
                "versionId",
                v,
                "Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?",
            )
        })
}

fn create_policy_version(c: &mut QCall) -> ApiResult<Xml> {
    let arn = c.req("PolicyArn")?.to_string();
    let doc = c.req("PolicyDocument")?.to_string();
    let default = c.params.bool("SetAsDefault")?.unwrap_or(false);
    let v = c.mutate(|w, env| w.create_policy_version(env, &arn, &doc, default))?;
    let w = c.world()?;
    let p = w.customer_policy(&arn)?;
    let mut x = Xml::new();
    x.node("PolicyVersion", |x| {
        x.leaf("VersionId", format!("v{v}"))
            .leaf("IsDefaultVersion", p.default_version == v)
            .leaf("CreateDate", iam::iso(c.env.now.0));
    });
    Ok(x)
}

fn get_policy_version(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let arn = c.req("PolicyArn")?;
    let v = version_param(c)?;
    let mut x = Xml::new();
    if let Some(m) = iam::managed::find(arn) {
        if v != 1 {
            return Err(iam::not_found(format!(
                "Policy {arn} version v{v} does not exist."
            )));
        }
        x.node("PolicyVersion", |x| {
            x.leaf("Document", encoded(m.document))
                .leaf("VersionId", "v1")
                .leaf("IsDefaultVersion", true)
                .leaf("CreateDate", "2015-02-06T18:39:46Z");
        });
        return Ok(x);
    }
    let p = w.customer_policy(arn)?;
    let ver = p
        .versions
        .get(&v)
        .ok_or_else(|| iam::not_found(format!("Policy {arn} version v{v} does not exist.")))?;
    x.node("PolicyVersion", |x| {
        x.leaf("Document", encoded(&ver.document))
            .leaf("VersionId", format!("v{v}"))
            .leaf("IsDefaultVersion", p.default_version == v)
            .leaf("CreateDate", iam::iso(ver.created));
    });
    Ok(x)
}

fn list_policy_versions(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let arn = c.req("PolicyArn")?;
    let mut x = Xml::new();
    if iam::managed::find(arn).is_some() {
        members(&mut x, "Versions", [()], |x, _| {
            x.leaf("VersionId", "v1")
                .leaf("IsDefaultVersion", true)
                .leaf("CreateDate", "2015-02-06T18:39:46Z");
        });
    } else {
        let p = w.customer_policy(arn)?;
        // Newest first, as IAM lists them.
        members(
            &mut x,
            "Versions",
            p.versions.iter().rev(),
            |x, (v, ver)| {
                x.leaf("VersionId", format!("v{v}"))
                    .leaf("IsDefaultVersion", p.default_version == *v)
                    .leaf("CreateDate", iam::iso(ver.created));
            },
        );
    }
    not_truncated(&mut x);
    Ok(x)
}

fn delete_policy_version(c: &mut QCall) -> ApiResult<Xml> {
    let arn = c.req("PolicyArn")?.to_string();
    let v = version_param(c)?;
    c.mutate(|w, _| w.delete_policy_version(&arn, v))?;
    Ok(Xml::new())
}

fn set_default_policy_version(c: &mut QCall) -> ApiResult<Xml> {
    let arn = c.req("PolicyArn")?.to_string();
    let v = version_param(c)?;
    c.mutate(|w, env| w.set_default_policy_version(env, &arn, v))?;
    Ok(Xml::new())
}

fn holder_param(h: Holder) -> &'static str {
    match h {
        Holder::User => "UserName",
        Holder::Group => "GroupName",
        Holder::Role => "RoleName",
    }
}

fn attach(c: &mut QCall, h: Holder, on: bool) -> ApiResult<Xml> {
    let name = c.req(holder_param(h))?.to_string();
    let arn = c.req("PolicyArn")?.to_string();
    c.mutate(|w, _| {
        if on {
            w.attach_policy(h, &name, &arn)
        } else {
            w.detach_policy(h, &name, &arn)
        }
    })?;
    Ok(Xml::new())
}

fn policy_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn list_attached(c: &mut QCall, h: Holder) -> ApiResult<Xml> {
    let w = c.world()?;
    let p = w.policies_of(h, c.req(holder_param(h))?)?;
    let mut x = Xml::new();
    page(c, &mut x, "AttachedPolicies", &p.attached, |x, arn| {
        x.leaf("PolicyName", policy_name_of(arn))
            .leaf("PolicyArn", arn);
    })?;
    Ok(x)
}

fn put_inline(c: &mut QCall, h: Holder) -> ApiResult<Xml> {
    let name = c.req(holder_param(h))?.to_string();
    let pname = c.req("PolicyName")?.to_string();
    let doc = c.req("PolicyDocument")?.to_string();
    c.mutate(|w, _| w.put_inline_policy(h, &name, &pname, &doc))?;
    Ok(Xml::new())
}

fn get_inline(c: &mut QCall, h: Holder) -> ApiResult<Xml> {
    let w = c.world()?;
    let holder = c.req(holder_param(h))?;
    let pname = c.req("PolicyName")?;
    let doc = w.policies_of(h, holder)?.inline.get(pname).ok_or_else(|| {
        iam::not_found(format!(
            "The {} policy with name {pname} cannot be found.",
            h.word()
        ))
    })?;
    let mut x = Xml::new();
    x.leaf(holder_param(h), holder)
        .leaf("PolicyName", pname)
        .leaf("PolicyDocument", encoded(doc));
    Ok(x)
}

fn list_inline(c: &mut QCall, h: Holder) -> ApiResult<Xml> {
    let w = c.world()?;
    let p = w.policies_of(h, c.req(holder_param(h))?)?;
    let mut x = Xml::new();
    page(c, &mut x, "PolicyNames", p.inline.keys(), |x, n| {
        x.raw(&escape(n));
    })?;
    Ok(x)
}

fn delete_inline(c: &mut QCall, h: Holder) -> ApiResult<Xml> {
    let name = c.req(holder_param(h))?.to_string();
    let pname = c.req("PolicyName")?.to_string();
    c.mutate(|w, _| w.delete_inline_policy(h, &name, &pname))?;
    Ok(Xml::new())
}

/// A secret drawn at random (never from the model's seeded allocator).
pub(crate) fn random_secret(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn create_access_key(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let secret = random_secret(40);
    let k = c.mutate(|w, env| w.create_access_key(env, &name, &secret))?;
    let w = c.world()?;
    let uname = w
        .iam_users
        .get(&k.user)
        .map(|u| u.name.clone())
        .unwrap_or(name);
    let mut x = Xml::new();
    x.node("AccessKey", |x| {
        x.leaf("UserName", &uname)
            .leaf("AccessKeyId", &k.id)
            .leaf("Status", "Active")
            .leaf("SecretAccessKey", &k.secret)
            .leaf("CreateDate", iam::iso(k.created));
    });
    Ok(x)
}

fn list_access_keys(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let w = c.world()?;
    let u = w.user(&name)?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "AccessKeyMetadata",
        w.access_keys_of(&u.id),
        |x, k| {
            x.leaf("UserName", &u.name)
                .leaf("AccessKeyId", &k.id)
                .leaf("Status", if k.active { "Active" } else { "Inactive" })
                .leaf("CreateDate", iam::iso(k.created));
        },
    )?;
    Ok(x)
}

fn update_access_key(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let id = c.req("AccessKeyId")?.to_string();
    let active = match c.req("Status")? {
        "Active" => true,
        "Inactive" => false,
        other => {
            return Err(iam::validation(
                "status",
                other,
                "Member must satisfy enum value set: [Active, Inactive]",
            ));
        }
    };
    c.mutate(|w, _| w.update_access_key(&name, &id, active))?;
    Ok(Xml::new())
}

fn delete_access_key(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let id = c.req("AccessKeyId")?.to_string();
    c.mutate(|w, _| w.delete_access_key(&name, &id))?;
    Ok(Xml::new())
}

fn login_xml(x: &mut Xml, name: &str, l: &iam::LoginProfile) {
    x.node("LoginProfile", |x| {
        x.leaf("UserName", name)
            .leaf("CreateDate", iam::iso(l.created))
            .leaf("PasswordResetRequired", l.reset_required);
    });
}

fn create_login_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let password = c.req("Password")?.to_string();
    let reset = c.params.bool("PasswordResetRequired")?.unwrap_or(false);
    let salt = random_secret(16);
    c.mutate(|w, env| w.create_login_profile(env, &name, &password, &salt, reset))?;
    let w = c.world()?;
    let u = w.user(&name)?;
    let mut x = Xml::new();
    if let Some(l) = &u.login {
        login_xml(&mut x, &u.name, l);
    }
    Ok(x)
}

fn get_login_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let w = c.world()?;
    let u = w.user(&name)?;
    let l = u
        .login
        .as_ref()
        .ok_or_else(|| iam::not_found(format!("Login Profile for User {name} cannot be found.")))?;
    let mut x = Xml::new();
    login_xml(&mut x, &u.name, l);
    Ok(x)
}

fn update_login_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    let password = c.opt("Password").map(str::to_string);
    let reset = c.params.bool("PasswordResetRequired")?;
    let salt = random_secret(16);
    c.mutate(|w, _| {
        w.update_login_profile(
            &name,
            password.as_deref().map(|p| (p, salt.as_str())),
            reset,
        )
    })?;
    Ok(Xml::new())
}

fn delete_login_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = user_param(c)?;
    c.mutate(|w, _| w.delete_login_profile(&name))?;
    Ok(Xml::new())
}

fn create_instance_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("InstanceProfileName")?.to_string();
    let path = c.opt("Path").map(str::to_string);
    let p = c.mutate(|w, env| w.create_instance_profile(env, &name, path.as_deref()))?;
    let w = c.world()?;
    let mut x = Xml::new();
    x.node("InstanceProfile", |x| instance_profile(x, &w, &p));
    Ok(x)
}

fn get_instance_profile(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let p = w.instance_profile(c.req("InstanceProfileName")?)?;
    let mut x = Xml::new();
    x.node("InstanceProfile", |x| instance_profile(x, &w, p));
    Ok(x)
}

fn list_instance_profiles(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "InstanceProfiles",
        w.iam_instance_profiles
            .iter()
            .filter(|p| path_prefix_ok(c, &p.path)),
        |x, p| instance_profile(x, &w, p),
    )?;
    Ok(x)
}

fn list_instance_profiles_for_role(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let r = w.role(c.req("RoleName")?)?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "InstanceProfiles",
        w.iam_instance_profiles
            .iter()
            .filter(|p| p.roles.contains(&r.id)),
        |x, p| instance_profile(x, &w, p),
    )?;
    Ok(x)
}

fn delete_instance_profile(c: &mut QCall) -> ApiResult<Xml> {
    let name = c.req("InstanceProfileName")?.to_string();
    c.mutate(|w, _| w.delete_instance_profile(&name))?;
    Ok(Xml::new())
}

fn add_role_to_instance_profile(c: &mut QCall) -> ApiResult<Xml> {
    let p = c.req("InstanceProfileName")?.to_string();
    let r = c.req("RoleName")?.to_string();
    c.mutate(|w, _| w.add_role_to_instance_profile(&p, &r))?;
    Ok(Xml::new())
}

fn remove_role_from_instance_profile(c: &mut QCall) -> ApiResult<Xml> {
    let p = c.req("InstanceProfileName")?.to_string();
    let r = c.req("RoleName")?.to_string();
    c.mutate(|w, _| w.remove_role_from_instance_profile(&p, &r))?;
    Ok(Xml::new())
}

fn create_account_alias(c: &mut QCall) -> ApiResult<Xml> {
    let alias = c.req("AccountAlias")?.to_string();
    c.mutate(|w, _| w.create_account_alias(&alias))?;
    Ok(Xml::new())
}

fn delete_account_alias(c: &mut QCall) -> ApiResult<Xml> {
    let alias = c.req("AccountAlias")?.to_string();
    c.mutate(|w, _| w.delete_account_alias(&alias))?;
    Ok(Xml::new())
}

fn list_account_aliases(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let mut x = Xml::new();
    page(
        c,
        &mut x,
        "AccountAliases",
        w.iam_account().alias,
        |x, a| {
            x.raw(&escape(&a));
        },
    )?;
    Ok(x)
}

fn get_account_summary(c: &mut QCall) -> ApiResult<Xml> {
    let w = c.world()?;
    let attached: usize = w
        .iam_policies
        .iter()
        .filter(|p| w.attachment_count(&p.id) > 0)
        .count();
    let versions: usize = w.iam_policies.iter().map(|p| p.versions.len()).sum();
    let entries: Vec<(&str, usize)> = vec![
        ("Users", w.iam_users.iter().count()),
        ("UsersQuota", 5000),
        ("Groups", w.iam_groups.iter().count()),
        ("GroupsQuota", 300),
        ("Roles", w.iam_roles.iter().count()),
        ("RolesQuota", 1000),
        ("Policies", w.iam_policies.iter().count()),
        ("PoliciesQuota", 1500),
        ("PolicyVersionsInUse", versions),
        ("PolicyVersionsInUseQuota", 10000),
        (
            "AttachedPoliciesPerUserQuota",
            iam::MAX_MANAGED_POLICIES_PER_ENTITY,
        ),
        (
            "AttachedPoliciesPerGroupQuota",
            iam::MAX_MANAGED_POLICIES_PER_ENTITY,
        ),
        (
            "AttachedPoliciesPerRoleQuota",
            iam::MAX_MANAGED_POLICIES_PER_ENTITY,
        ),
        ("GroupsPerUserQuota", iam::MAX_GROUPS_PER_USER),
        ("AccessKeysPerUserQuota", iam::MAX_ACCESS_KEYS_PER_USER),
        ("InstanceProfiles", w.iam_instance_profiles.iter().count()),
        ("InstanceProfilesQuota", 1000),
        ("ServerCertificates", 0),
        ("MFADevices", 0),
        ("AccountMFAEnabled", 0),
        ("AccountAccessKeysPresent", 0),
        ("AccountSigningCertificatesPresent", 0),
        ("Providers", 0),
        ("PolicySizeQuota", policy::MAX_POLICY_CHARS),
        ("VersionsPerPolicyQuota", iam::MAX_POLICY_VERSIONS),
        ("GlobalEndpointTokenVersion", 1),
    ];
    let _ = attached;
    let mut x = Xml::new();
    x.node("SummaryMap", |x| {
        for (k, v) in entries {
            x.node("entry", |x| {
                x.leaf("key", k).leaf("value", v);
            });
        }
    });
    Ok(x)
}

// -- the policy simulator ----------------------------------------------------------------

fn simulate(
    c: &mut QCall,
    principal: Option<(&Principal, Vec<(String, policy::Policy)>)>,
    extra: Vec<(String, policy::Policy)>,
) -> ApiResult<Xml> {
    let actions = c.params.list("ActionNames.member");
    if actions.is_empty() {
        return Err(iam::validation(
            "actionNames",
            "null",
            "Member must not be null",
        ));
    }
    let mut resources = c.params.list("ResourceArns.member");
    if resources.is_empty() {
        resources.push("*".to_string());
    }
    let w = c.world()?;
    let (principal, mut policies) = match principal {
        Some((p, pol)) => (p.clone(), pol),
        None => (Principal::Root, Vec::new()),
    };
    policies.extend(extra);
    let identity = Identity {
        account: c.account(),
        principal: principal.clone(),
        credential: c.identity.credential.clone(),
    };
    let refs: Vec<(&str, &policy::Policy)> =
        policies.iter().map(|(l, p)| (l.as_str(), p)).collect();
    let entries = c.params.structs("ContextEntries.member");
    let mut x = Xml::new();
    x.node("EvaluationResults", |x| {
        for action in &actions {
            for resource in &resources {
                let mut ctx = authz::context(&w, &identity, action, resource, c.env.now, None);
                if matches!(principal, Principal::Root) {
                    ctx.principal_arn = String::new();
                }
                for e in &entries {
                    if let Some(k) = e.get("ContextKeyName") {
                        ctx.set_many(k, e.list("ContextKeyValues.member"));
                    }
                }
                let d = policy::evaluate(&ctx, &refs, None);
                let decision = if d.explicit_deny.is_some() {
                    "explicitDeny"
                } else if d.allowed {
                    "allowed"
                } else {
                    "implicitDeny"
                };
                x.node("member", |x| {
                    x.leaf("EvalActionName", action)
                        .leaf("EvalResourceName", resource)
                        .leaf("EvalDecision", decision);
                    members(
                        x,
                        "MatchedStatements",
                        d.matched
                            .iter()
                            .filter(|m| m.allow == d.allowed || !m.allow),
                        |x, m| {
                            x.leaf("SourcePolicyId", &m.policy).leaf(
                                "SourcePolicyType",
                                if m.policy.starts_with("arn:") {
                                    "IAM Policy"
                                } else {
                                    "user"
                                },
                            );
                        },
                    );
                    members(x, "MissingContextValues", Vec::<String>::new(), |_, _| {});
                });
            }
        }
    });
    not_truncated(&mut x);
    Ok(x)
}

fn input_policies(c: &QCall) -> ApiResult<Vec<(String, policy::Policy)>> {
    c.params
        .list("PolicyInputList.member")
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            Ok((
                format!("PolicyInputList.{}", i + 1),
                policy::parse(doc, policy::Kind::Identity)?,
            ))
        })
        .collect()
}

fn simulate_principal_policy(c: &mut QCall) -> ApiResult<Xml> {
    let arn = c.req("PolicySourceArn")?.to_string();
    let w = c.world()?;
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    let name = resource.rsplit('/').next().unwrap_or("");
    let (principal, docs) = if resource.starts_with("user/") {
        w.user(name)?;
        (
            Principal::User(name.to_string()),
            w.user_policy_documents(name),
        )
    } else if resource.starts_with("role/") {
        w.role(name)?;
        (
            Principal::AssumedRole {
                role: name.to_string(),
                session: "simulation".to_string(),
            },
            w.role_policy_documents(name),
        )
    } else if resource.starts_with("group/") {
        let g = w.group(name)?;
        let docs = g
            .policies
            .attached
            .iter()
            .filter_map(|a| {
                Some((
                    a.clone(),
                    iam::managed::find(a)
                        .map(|m| m.document.to_string())
                        .or_else(|| {
                            w.iam_policies
                                .get(a)
                                .map(|p| p.default_document().to_string())
                        })?,
                ))
            })
            .chain(
                g.policies
                    .inline
                    .iter()
                    .map(|(n, d)| (format!("group/{}/inline/{n}", g.name), d.clone())),
            )
            .collect();
        (Principal::User(String::new()), docs)
    } else {
        return Err(ApiError::new(
            "InvalidInput",
            format!("Invalid ARN: {arn}: expected a user, group or role."),
        ));
    };
    let parsed = docs
        .into_iter()
        .filter_map(|(l, d)| Some((l, policy::parse(&d, policy::Kind::Identity).ok()?)))
        .collect();
    let extra = input_policies(c)?;
    simulate(c, Some((&principal, parsed)), extra)
}

fn simulate_custom_policy(c: &mut QCall) -> ApiResult<Xml> {
    let extra = input_policies(c)?;
    if extra.is_empty() {
        return Err(iam::validation(
            "policyInputList",
            "null",
            "Member must not be null",
        ));
    }
    let who = Principal::User(String::new());
    simulate(c, Some((&who, Vec::new())), extra)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::api::sigv4::{AccessKey, AuthMode, KeyFile, KeyRing, SignedRequest, sign};
    use crate::model::Timestamp;

    const T0: i64 = 1_764_547_200_000;
    const ACCOUNT: &str = "123456789012";

    struct Rig {
        state: AppState,
        now: Arc<AtomicI64>,
        _dir: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().expect("tmp");
        let mut control =
            Control::open(&crate::model::store::StorePaths::scratch(dir.path())).expect("state");
        let keys = keys::IamKeys::new();
        control.subscribe(keys.subscriber());
        let ring = KeyRing::new(KeyFile { keys: vec![root()] }).with_store(keys);
        let now = Arc::new(AtomicI64::new(T0));
        let clock_now = now.clone();
        let clock: crate::model::Clock =
            Arc::new(move || Timestamp(clock_now.load(Ordering::Relaxed)));
        let state = AppState::new(Arc::new(Mutex::new(control)), clock)
            .with_auth(AuthMode::Strict(Arc::new(ring)))
            .with_iam_enforce(true);
        Rig {
            state,
            now,
            _dir: dir,
        }
    }

    fn root() -> AccessKey {
        AccessKey {
            access_key: "AKIAROOT000000000000".into(),
            secret_key: "root-secret".into(),
            account: ACCOUNT.into(),
        }
    }

    /// One signed call at the rig's time; (status, body).
    fn call(r: &Rig, svc: Svc, key: &AccessKey, token: Option<&str>, form: &str) -> (u16, String) {
        let mut req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: vec![("host".into(), "127.0.0.1:4566".into())],
        };
        if let Some(t) = token {
            req.headers.push(("x-amz-security-token".into(), t.into()));
        }
        let now = Timestamp(r.now.load(Ordering::Relaxed));
        sign(
            &mut req,
            form.as_bytes(),
            key,
            "us-east-1",
            svc.prefix(),
            now,
        );
        handle(&r.state, &req, form.as_bytes(), svc)
    }

    fn text(xml: &str, tag: &str) -> String {
        xml.split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_else(|| panic!("no {tag} in {xml}"))
            .to_string()
    }

    fn enc(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    /// Issue 15: AssumeRole credentials work until their expiry, then answer
    /// ExpiredToken; the user's own key keeps working.
    #[test]
    fn issue15_assumed_role_credentials_expire() {
        let r = rig();
        let ok = |svc, key: &AccessKey, token: Option<&str>, form: &str| {
            let (status, body) = call(&r, svc, key, token, form);
            assert_eq!(status, 200, "{form}: {body}");
            body
        };
        ok(Svc::Iam, &root(), None, "Action=CreateUser&UserName=dev");
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/dev"}},"Action":"sts:AssumeRole"}}}}"#
        );
        ok(
            Svc::Iam,
            &root(),
            None,
            &format!(
                "Action=CreateRole&RoleName=r&AssumeRolePolicyDocument={}",
                enc(&trust)
            ),
        );
        let created = ok(
            Svc::Iam,
            &root(),
            None,
            "Action=CreateAccessKey&UserName=dev",
        );
        let dev = AccessKey {
            access_key: text(&created, "AccessKeyId"),
            secret_key: text(&created, "SecretAccessKey"),
            account: ACCOUNT.into(),
        };
        // The trust policy names dev itself, so no identity policy is needed.
        let assumed = ok(
            Svc::Sts,
            &dev,
            None,
            &format!(
                "Action=AssumeRole&RoleArn={}&RoleSessionName=ss&DurationSeconds=900",
                enc(&format!("arn:aws:iam::{ACCOUNT}:role/r"))
            ),
        );
        let session = AccessKey {
            access_key: text(&assumed, "AccessKeyId"),
            secret_key: text(&assumed, "SecretAccessKey"),
            account: ACCOUNT.into(),
        };
        let token = text(&assumed, "SessionToken");
        let me = ok(Svc::Sts, &session, Some(&token), "Action=GetCallerIdentity");
        assert_eq!(
            text(&me, "Arn"),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/r/ss")
        );
        r.now.store(T0 + 900_000, Ordering::Relaxed);
        let (status, body) = call(
            &r,
            Svc::Sts,
            &session,
            Some(&token),
            "Action=GetCallerIdentity",
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("<Code>ExpiredToken</Code>"), "{body}");
        ok(Svc::Sts, &dev, None, "Action=GetCallerIdentity");
    }

    /// Every IAM action answers a request without its parameters with an AWS error,
    /// never a panic or a 500.
    #[test]
    fn every_iam_action_without_parameters_gets_an_aws_error_or_an_answer() {
        let r = rig();
        for action in iam_action_names() {
            let (status, body) = call(&r, Svc::Iam, &root(), None, &format!("Action={action}"));
            assert!(status < 500, "{action}: {body}");
            crate::api::xml::read::parse(body.as_bytes()).expect("well-formed XML");
        }
    }
}
