//! STS: GetCallerIdentity, AssumeRole (the role's trust policy evaluated; temporary
//! credentials that the IAM key store makes valid until they expire) and
//! DecodeAuthorizationMessage.

use base64::Engine as _;

use super::{QCall, authz, random_secret};
use crate::api::sigv4::Principal;
use crate::api::xml::Xml;
use crate::model::iam::{self, policy};
use crate::model::{ApiError, ApiResult};

pub const ACTIONS: &[(&str, super::Handler)] = &[
    ("GetCallerIdentity", get_caller_identity),
    ("AssumeRole", assume_role),
    ("DecodeAuthorizationMessage", decode_authorization_message),
];

fn get_caller_identity(c: &mut QCall) -> ApiResult<Xml> {
    let account = c.identity.account.clone();
    let w = c.control.snapshot(&account);
    let (arn, user_id) = match (&c.identity.principal, w.as_deref()) {
        (Principal::User(name), Some(w)) => match w.user(name) {
            Ok(u) => (u.arn.clone(), u.unique_id.clone()),
            Err(_) => (format!("arn:aws:iam::{account}:user/{name}"), String::new()),
        },
        (Principal::AssumedRole { role, session }, w) => {
            let id = w
                .and_then(|w| w.role(role).ok().map(|r| r.unique_id.clone()))
                .unwrap_or_default();
            (
                format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
                format!("{id}:{session}"),
            )
        }
        (Principal::User(name), None) => {
            (format!("arn:aws:iam::{account}:user/{name}"), String::new())
        }
        (Principal::Root | Principal::Instructor, _) => {
            (format!("arn:aws:iam::{account}:root"), account.clone())
        }
    };
    let mut x = Xml::new();
    x.leaf("Arn", arn)
        .leaf("UserId", user_id)
        .leaf("Account", account);
    Ok(x)
}

fn access_denied(message: String) -> ApiError {
    ApiError::new("AccessDenied", message).with_status(403)
}

fn assume_role(c: &mut QCall) -> ApiResult<Xml> {
    let role_arn = c.req("RoleArn")?.to_string();
    let session = c.req("RoleSessionName")?.to_string();
    if session.len() < 2
        || session.len() > 64
        || !session
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_+=,.@-".contains(ch))
    {
        return Err(iam::validation(
            "roleSessionName",
            &session,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64",
        ));
    }
    let duration = c
        .params
        .int("DurationSeconds")?
        .unwrap_or(iam::DEFAULT_SESSION_SECONDS);
    if duration < iam::MIN_SESSION_SECONDS {
        return Err(iam::validation(
            "durationSeconds",
            &duration.to_string(),
            "Member must have value greater than or equal to 900",
        ));
    }
    let account = c.identity.account.clone();
    if matches!(c.identity.principal, Principal::Root) && c.state.auth_is_strict() {
        return Err(access_denied(
            "Roles may not be assumed by root accounts.".into(),
        ));
    }
    let w = c.world()?;
    let caller_arn = authz::principal_arn(&w, &account, &c.identity.principal);
    let denied = || {
        access_denied(format!(
            "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ))
    };
    // arn:aws:iam::ACCOUNT:role/PATH/NAME, in the caller's account (cross-account
    // roles would need a second world: docs/fidelity.md).
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[2] != "iam" || !parts[5].starts_with("role/") {
        return Err(iam::validation(
            "roleArn",
            &role_arn,
            "Member must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
        ));
    }
    if parts[4] != account {
        return Err(denied());
    }
    let name = parts[5].rsplit('/').next().unwrap_or("");
    let role = match w.role(name) {
        Ok(r) if r.arn == role_arn => r.clone(),
        _ => return Err(denied()),
    };
    if duration > role.max_session {
        return Err(ApiError::new(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    // The trust policy is the role's resource policy: it must allow the caller.
    let trust = policy::parse(&role.trust, policy::Kind::Trust)?;
    let ctx = authz::context(
        &w,
        &c.identity,
        "sts:AssumeRole",
        &role_arn,
        c.env.now,
        None,
    );
    let decision = policy::evaluate(&ctx, &[], Some(("trust", &trust)));
    if !decision.allowed {
        return Err(denied());
    }
    // Within one account either policy may grant (IAM User Guide, "Cross-account
    // policy evaluation logic" and "Granting a user permissions to switch roles"): a
    // trust policy naming this principal is enough; one naming only the account
    // delegates to the caller's identity policies. An explicit deny in those wins.
    let mut specific_ctx = ctx.clone();
    specific_ctx.account = String::new();
    let names_caller = policy::evaluate(&specific_ctx, &[], Some(("trust", &trust))).allowed;
    if authz::enforced(c.state.iam_enforce, Some(&w), &c.identity.principal) {
        let policies = authz::identity_policies(&w, &c.identity.principal);
        let refs: Vec<(&str, &policy::Policy)> =
            policies.iter().map(|(l, p)| (l.as_str(), &**p)).collect();
        let identity = policy::evaluate(&ctx, &refs, None);
        if identity.explicit_deny.is_some() || !(names_caller || identity.allowed) {
            return Err(authz::denial(&ctx, &identity).query());
        }
    }
    let secret = random_secret(40);
    let mut token_bytes = [0u8; 96];
    rand::Rng::fill(&mut rand::rng(), &mut token_bytes[..]);
    let token = format!(
        "IQoJb3JpZ2luX2Vj{}",
        base64::engine::general_purpose::STANDARD.encode(token_bytes)
    );
    let s = c.mutate(|w, env| w.create_session(env, name, &session, duration, &secret, &token))?;
    let mut x = Xml::new();
    x.node("Credentials", |x| {
        x.leaf("AccessKeyId", &s.id)
            .leaf("SecretAccessKey", &s.secret)
            .leaf("SessionToken", &s.token)
            .leaf("Expiration", iam::iso(s.expires));
    })
    .node("AssumedRoleUser", |x| {
        x.leaf("AssumedRoleId", &s.assumed_role_id).leaf(
            "Arn",
            format!(
                "arn:aws:sts::{account}:assumed-role/{}/{}",
                role.name, s.session_name
            ),
        );
    })
    .leaf("PackedPolicySize", 0);
    Ok(x)
}

fn decode_authorization_message(c: &mut QCall) -> ApiResult<Xml> {
    let message = c.req("EncodedMessage")?;
    let decoded = authz::decode(message, &c.identity.account).ok_or_else(|| {
        ApiError::new(
            "InvalidAuthorizationMessageException",
            "Message is malformed",
        )
    })?;
    let mut x = Xml::new();
    x.leaf("DecodedMessage", decoded);
    Ok(x)
}
