//! IAM instance profile associations (`iip-assoc-…`): which instance profile an
//! instance runs with, and the role's temporary credentials the instance metadata
//! service hands out (`iam/security-credentials/ROLE`).
//!
//! The credentials are ordinary STS sessions (`sts_session` rows, session name = the
//! instance id), so the IAM key store accepts them like AssumeRole's and requests signed
//! with them act as `arn:aws:sts::ACCOUNT:assumed-role/ROLE/i-…`. The model never
//! makes secrets up: the runtime that serves metadata draws them and asks for a session
//! ([`World::refresh_instance_credentials`]) when there is none or the current one has
//! less than [`RENEW_BEFORE_MS`] left. Old sessions stay valid until they expire, as on
//! AWS ("new credentials at least five minutes before the expiration of the old").

use serde::{Deserialize, Serialize};

use super::instance::InstanceState;
use crate::model::iam::InstanceProfile;
use crate::model::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// How long instance credentials last (EC2 issues sessions of about six hours).
pub const SESSION_MS: i64 = 6 * 3600 * 1000;
/// A new session is issued when the current one has less than this left (AWS: at least
/// five minutes before expiry; vpclab renews earlier so a client never sees a gap).
pub const RENEW_BEFORE_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IamProfileAssociation {
    /// `iip-assoc-…`.
    pub id: String,
    pub region: String,
    pub instance_id: String,
    /// The instance profile's row id (`instance-profile/NAME`).
    pub profile: String,
    pub profile_arn: String,
    /// The profile's unique id (`AIPA…`), EC2's `iamInstanceProfile.id`.
    pub profile_unique_id: String,
    pub since: Timestamp,
    /// The newest STS session issued for this association (its `ASIA…` key id).
    #[serde(default)]
    pub session: Option<String>,
}

impl Resource for IamProfileAssociation {
    const KIND: &'static str = "iam_profile_association";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// What the metadata service shows for an instance with a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCredentials {
    pub profile_arn: String,
    pub profile_unique_id: String,
    /// The role's name, `None` when the profile has no role (then there are no
    /// credentials to hand out).
    pub role_name: Option<String>,
    /// `(AccessKeyId, SecretAccessKey, Token, Expiration, LastUpdated)` of the newest
    /// session, when one was issued.
    pub session: Option<(String, String, String, Timestamp, Timestamp)>,
}

impl InstanceCredentials {
    /// Whether the runtime should ask for a new session now.
    pub fn needs_renewal(&self, now: Timestamp) -> bool {
        self.role_name.is_some()
            && self
                .session
                .as_ref()
                .is_none_or(|s| s.3.0 - now.0 < RENEW_BEFORE_MS)
    }
}

/// `IamInstanceProfile.Name` / `IamInstanceProfile.Arn` of a request.
#[derive(Clone, Debug, Default)]
pub struct ProfileSpec {
    pub name: Option<String>,
    pub arn: Option<String>,
}

impl ProfileSpec {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.arn.is_none()
    }
}

impl World {
    /// The instance profile a request names, with EC2's errors for a wrong one.
    pub fn resolve_instance_profile(&self, spec: &ProfileSpec) -> ApiResult<InstanceProfile> {
        match (&spec.arn, &spec.name) {
            (Some(arn), _) => self
                .iam_instance_profiles
                .iter()
                .find(|p| &p.arn == arn)
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_value(format!(
                        "Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
                    ))
                }),
            (None, Some(name)) => self.instance_profile(name).cloned().map_err(|_| {
                ApiError::invalid_value(format!(
                    "Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
                ))
            }),
            (None, None) => Err(ApiError::missing("IamInstanceProfile")),
        }
    }

    /// The association of an instance, if any.
    pub fn profile_association_of(&self, instance_id: &str) -> Option<&IamProfileAssociation> {
        self.iam_profile_associations
            .iter()
            .find(|a| a.instance_id == instance_id)
    }

    /// AssociateIamInstanceProfile (and RunInstances' `IamInstanceProfile`): one
    /// profile per instance, the instance running or stopped (or just launched).
    pub fn associate_iam_instance_profile(
        &mut self,
        env: &Env,
        instance_id: &str,
        spec: &ProfileSpec,
    ) -> ApiResult<String> {
        let inst = self.instance(&env.region, instance_id)?;
        let (state, _) = inst.settled(env.now);
        if matches!(
            state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        ) {
            return Err(ApiError::new(
                "IncorrectInstanceState",
                format!("The instance '{instance_id}' is not in a valid state for this operation."),
            ));
        }
        let profile = self.resolve_instance_profile(spec)?;
        if self.profile_association_of(instance_id).is_some() {
            return Err(ApiError::new(
                "IncorrectState",
                format!("There is an existing association for instance {instance_id}"),
            ));
        }
        let id = self.alloc_id("iip-assoc");
        self.iam_profile_associations.insert(IamProfileAssociation {
            id: id.clone(),
            region: env.region.clone(),
            instance_id: instance_id.to_string(),
            profile: profile.id.clone(),
            profile_arn: profile.arn.clone(),
            profile_unique_id: profile.unique_id.clone(),
            since: env.now,
            session: None,
        });
        Ok(id)
    }

    fn association(&self, env: &Env, id: &str) -> ApiResult<IamProfileAssociation> {
        self.iam_profile_associations
            .get(id)
            .filter(|a| a.region == env.region)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidAssociationID.NotFound",
                    format!("An association with ID {id} does not exist."),
                )
            })
    }

    /// ReplaceIamInstanceProfileAssociation: the instance gets another profile (a new
    /// association id); credentials of the old role are no longer handed out.
    pub fn replace_iam_instance_profile_association(
        &mut self,
        env: &Env,
        association_id: &str,
        spec: &ProfileSpec,
    ) -> ApiResult<String> {
        let old = self.association(env, association_id)?;
        let profile = self.resolve_instance_profile(spec)?;
        self.iam_profile_associations.remove(association_id);
        let id = self.alloc_id("iip-assoc");
        self.iam_profile_associations.insert(IamProfileAssociation {
            id: id.clone(),
            region: env.region.clone(),
            instance_id: old.instance_id,
            profile: profile.id.clone(),
            profile_arn: profile.arn.clone(),
            profile_unique_id: profile.unique_id.clone(),
            since: env.now,
            session: None,
        });
        Ok(id)
    }

    /// DisassociateIamInstanceProfile: returns the association as it was. Sessions
    /// already issued stay valid until they expire, as on AWS.
    pub fn disassociate_iam_instance_profile(
        &mut self,
        env: &Env,
        association_id: &str,
    ) -> ApiResult<IamProfileAssociation> {
        let a = self.association(env, association_id)?;
        self.iam_profile_associations.remove(association_id);
        Ok(a)
    }

    /// What the metadata service of `instance_id` shows under `iam/`.
    pub fn instance_credentials(&self, instance_id: &str) -> Option<InstanceCredentials> {
        let a = self.profile_association_of(instance_id)?;
        let role_name = self
            .iam_instance_profiles
            .get(&a.profile)
            .and_then(|p| p.roles.first())
            .and_then(|r| self.iam_roles.get(r))
            .map(|r| r.name.clone());
        let session = a
            .session
            .as_deref()
            .and_then(|s| self.sts_sessions.get(s))
            .filter(|s| Some(&s.role_name) == role_name.as_ref())
            .map(|s| {
                (
                    s.id.clone(),
                    s.secret.clone(),
                    s.token.clone(),
                    Timestamp(s.expires),
                    Timestamp(s.expires - SESSION_MS),
                )
            });
        Some(InstanceCredentials {
            profile_arn: a.profile_arn.clone(),
            profile_unique_id: a.profile_unique_id.clone(),
            role_name,
            session,
        })
    }

    /// Issues a new session of the profile's role for the instance (the runtime draws
    /// `secret` and `token`). Does nothing when no renewal is due, so two racing
    /// requests issue one session.
    pub fn refresh_instance_credentials(
        &mut self,
        env: &Env,
        instance_id: &str,
        secret: &str,
        token: &str,
    ) -> ApiResult<()> {
        let Some(creds) = self.instance_credentials(instance_id) else {
            return Ok(());
        };
        if !creds.needs_renewal(env.now) {
            return Ok(());
        }
        let Some(role) = creds.role_name else {
            return Ok(());
        };
        let session =
            self.create_session(env, &role, instance_id, SESSION_MS / 1000, secret, token)?;
        let Some(mut a) = self.profile_association_of(instance_id).cloned() else {
            return Ok(());
        };
        a.session = Some(session.id);
        self.iam_profile_associations.insert(a);
        Ok(())
    }
}
