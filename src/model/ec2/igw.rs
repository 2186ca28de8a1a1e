//! Internet gateways: Create/Delete/Attach/DetachInternetGateway and their filters. AWS
//! rules: a gateway attaches to at most one VPC and a VPC has at most one gateway
//! (`Resource.AlreadyAssociated`); an attached gateway cannot be deleted
//! (`DependencyViolation`); a gateway cannot be detached while the VPC has public
//! addresses mapped (`DependencyViolation`).

use serde::{Deserialize, Serialize};

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InternetGateway {
    pub id: String,
    pub region: String,
    pub attached_vpc: Option<String>,
}

impl Resource for InternetGateway {
    const KIND: &'static str = "internet_gateway";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for InternetGateway {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "internet-gateway-id" => vec![self.id.clone()],
            "attachment.vpc-id" => self.attached_vpc.clone().into_iter().collect(),
            // AWS reports an attached gateway's attachment state as `available`.
            "attachment.state" => self
                .attached_vpc
                .as_ref()
                .map(|_| "available".to_string())
                .into_iter()
                .collect(),
            "owner-id" => vec![world.account.clone()],
            _ => return None,
        })
    }
}

pub fn igw_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidInternetGatewayID.NotFound",
        "internetGateway ID",
        id,
    )
}

impl World {
    pub fn internet_gateway(&self, region: &str, id: &str) -> ApiResult<&InternetGateway> {
        match self.internet_gateways.get(id) {
            Some(g) if g.region == region => Ok(g),
            _ => Err(igw_not_found(id)),
        }
    }

    /// The gateway attached to a VPC, if any.
    pub fn igw_of_vpc(&self, vpc_id: &str) -> Option<&InternetGateway> {
        self.internet_gateways
            .iter()
            .find(|g| g.attached_vpc.as_deref() == Some(vpc_id))
    }

    pub fn create_internet_gateway(&mut self, env: &Env, specs: &[TagSpec]) -> ApiResult<String> {
        World::check_tag_specs(specs, &["internet-gateway"])?;
        let id = self.alloc_id("igw");
        self.internet_gateways.insert(InternetGateway {
            id: id.clone(),
            region: env.region.clone(),
            attached_vpc: None,
        });
        self.apply_tag_specs(env, &id, "internet-gateway", specs)?;
        Ok(id)
    }

    pub fn delete_internet_gateway(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let igw = self.internet_gateway(&env.region, id)?;
        if igw.attached_vpc.is_some() {
            return Err(ApiError::dependency(format!(
                "The internetGateway '{id}' has dependencies and cannot be deleted."
            )));
        }
        self.internet_gateways.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    pub fn attach_internet_gateway(&mut self, env: &Env, id: &str, vpc_id: &str) -> ApiResult<()> {
        let igw = self.internet_gateway(&env.region, id)?.clone();
        self.vpc(&env.region, vpc_id)?;
        if let Some(v) = &igw.attached_vpc {
            return Err(ApiError::new(
                "Resource.AlreadyAssociated",
                format!("resource {id} is already attached to network {v}"),
            ));
        }
        if let Some(other) = self.igw_of_vpc(vpc_id) {
            return Err(ApiError::new(
                "Resource.AlreadyAssociated",
                format!(
                    "network {vpc_id} already has an internet gateway attached ({})",
                    other.id
                ),
            ));
        }
        if let Some(g) = self.internet_gateways.get_mut(id) {
            g.attached_vpc = Some(vpc_id.to_string());
        }
        Ok(())
    }

    pub fn detach_internet_gateway(&mut self, env: &Env, id: &str, vpc_id: &str) -> ApiResult<()> {
        let igw = self.internet_gateway(&env.region, id)?.clone();
        self.vpc(&env.region, vpc_id)?;
        if igw.attached_vpc.as_deref() != Some(vpc_id) {
            return Err(ApiError::new(
                "Gateway.NotAttached",
                format!("resource {id} is not attached to network {vpc_id}"),
            ));
        }
        if self
            .network_interfaces
            .iter()
            .any(|e| e.vpc_id == vpc_id && e.association.is_some())
        {
            return Err(ApiError::dependency(format!(
                "Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
            )));
        }
        if let Some(g) = self.internet_gateways.get_mut(id) {
            g.attached_vpc = None;
        }
        Ok(())
    }
}
