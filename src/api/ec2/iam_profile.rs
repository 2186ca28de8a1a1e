//! IAM instance profile associations: AssociateIamInstanceProfile,
//! DescribeIamInstanceProfileAssociations, ReplaceIamInstanceProfileAssociation,
//! DisassociateIamInstanceProfile. RunInstances' `IamInstanceProfile` goes through the
//! same model call ([`crate::model::ec2::iam_profile`]).

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::iam_profile::{IamProfileAssociation, ProfileSpec};
use crate::model::ec2::instance::InstanceState;
use crate::model::filter::wildcard;
use crate::model::{ApiError, ApiResult, World};

use super::Handler;

pub const ACTIONS: &[(&str, Handler)] = &[
    ("AssociateIamInstanceProfile", associate),
    ("DescribeIamInstanceProfileAssociations", describe),
    ("ReplaceIamInstanceProfileAssociation", replace),
    ("DisassociateIamInstanceProfile", disassociate),
];

/// `IamInstanceProfile.Name` / `.Arn` (empty values count as absent).
pub fn profile_spec(c: &Call) -> ProfileSpec {
    spec_of(c.params)
}

fn spec_of(params: &crate::api::query::Params) -> ProfileSpec {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    ProfileSpec {
        name: get("IamInstanceProfile.Name"),
        arn: get("IamInstanceProfile.Arn"),
    }
}

/// The role ARNs a call that names an instance profile passes to EC2, for the
/// `iam:PassRole` gate (an unknown profile passes none: the handler reports it).
pub fn passed_roles(
    control: &crate::model::control::Control,
    account: &str,
    params: &crate::api::query::Params,
) -> Vec<String> {
    let spec = spec_of(params);
    if spec.is_empty() {
        return Vec::new();
    }
    control
        .snapshot(account)
        .map(|w| crate::api::iam::authz::instance_profile_roles(&w, &spec))
        .unwrap_or_default()
}

fn render(x: &mut Xml, a: &IamProfileAssociation, state: &str) {
    x.leaf("associationId", &a.id)
        .leaf("instanceId", &a.instance_id)
        .node("iamInstanceProfile", |x| {
            x.leaf("arn", &a.profile_arn)
                .leaf("id", &a.profile_unique_id);
        })
        .leaf("state", state)
        .leaf("timestamp", a.since.iso());
}

fn answer(w: &World, id: &str, state: &str) -> ApiResult<Xml> {
    let a = w
        .iam_profile_associations
        .get(id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("iamInstanceProfileAssociation", |x| render(x, a, state));
    Ok(x)
}

fn associate(c: &mut Call) -> ApiResult<Xml> {
    let instance = c.params.required("InstanceId")?.to_string();
    let spec = profile_spec(c);
    let id = c.mutate(|w, env| w.associate_iam_instance_profile(env, &instance, &spec))?;
    let w = c.read()?;
    answer(&w, &id, "associating")
}

fn replace(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let spec = profile_spec(c);
    if spec.is_empty() {
        return Err(ApiError::missing("IamInstanceProfile"));
    }
    let id = c.mutate(|w, env| w.replace_iam_instance_profile_association(env, &assoc, &spec))?;
    let w = c.read()?;
    answer(&w, &id, "associating")
}

fn disassociate(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let a = c.mutate(|w, env| w.disassociate_iam_instance_profile(env, &assoc))?;
    let mut x = Xml::new();
    x.node("iamInstanceProfileAssociation", |x| {
        render(x, &a, "disassociating")
    });
    Ok(x)
}

fn describe(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("AssociationId");
    let filters = c.params.filters()?;
    for f in &filters {
        if f.name != "instance-id" && f.name != "state" {
            return Err(ApiError::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        }
    }
    let w = c.read()?;
    for id in &ids {
        if w.iam_profile_associations
            .get(id)
            .is_none_or(|a| a.region != c.env.region)
        {
            return Err(ApiError::new(
                "InvalidAssociationID.NotFound",
                format!("An association with ID {id} does not exist."),
            ));
        }
    }
    let now = c.env.now;
    let rows: Vec<&IamProfileAssociation> = w
        .iam_profile_associations
        .in_region(&c.env.region)
        .filter(|a| ids.is_empty() || ids.contains(&a.id))
        // A terminated instance's profile is released.
        .filter(|a| {
            w.instances
                .get(&a.instance_id)
                .is_some_and(|i| i.settled(now).0 != InstanceState::Terminated)
        })
        .filter(|a| {
            filters.iter().all(|f| {
                let value = match f.name.as_str() {
                    "instance-id" => a.instance_id.as_str(),
                    _ => "associated",
                };
                f.values.iter().any(|v| wildcard(v, value))
            })
        })
        .collect();
    let mut x = Xml::new();
    x.set("iamInstanceProfileAssociationSet", rows, |x, a| {
        render(x, a, "associated")
    });
    Ok(x)
}
