//! DHCP option set actions: Create/Delete/DescribeDhcpOptions and AssociateDhcpOptions,
//! over [`crate::model::ec2::dhcp`].

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::dhcp::{DhcpOptions, dhcp_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateDhcpOptions", create),
    ("DeleteDhcpOptions", delete),
    ("DescribeDhcpOptions", describe),
    ("AssociateDhcpOptions", associate),
];

fn render(x: &mut Xml, w: &World, d: &DhcpOptions) {
    x.leaf("dhcpOptionsId", &d.id)
        .leaf("ownerId", &w.account)
        .set("dhcpConfigurationSet", d.ordered(), |x, (key, values)| {
            x.leaf("key", key).set("valueSet", values.iter(), |x, v| {
                x.leaf("value", v);
            });
        });
    tag_set(x, w, &d.id);
}

fn create(c: &mut Call) -> ApiResult<Xml> {
    let mut configs = Vec::new();
    for s in c.params.structs("DhcpConfiguration") {
        let key = s
            .get("Key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::missing("DhcpConfiguration.N.Key"))?
            .to_string();
        // Server lists may also come as one comma-separated value (the API reference's
        // form); a domain name keeps its spaces (several search domains).
        let mut values = Vec::new();
        for v in s.list("Value") {
            if key == "domain-name" {
                values.push(v);
            } else {
                values.extend(v.split(',').map(|p| p.trim().to_string()));
            }
        }
        configs.push((key, values));
    }
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_dhcp_options(env, &configs, &specs))?;
    let w = c.read()?;
    let d = w.dhcp_options.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("dhcpOptions", |x| render(x, &w, d));
    Ok(x)
}

fn delete(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("DhcpOptionsId")?.to_string();
    c.mutate(|w, env| w.delete_dhcp_options(env, &id))?;
    Ok(return_true())
}

fn associate(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("DhcpOptionsId")?.to_string();
    let vpc = c.params.required("VpcId")?.to_string();
    c.mutate(|w, env| w.associate_dhcp_options(env, &id, &vpc))?;
    Ok(return_true())
}

fn describe(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("DhcpOptionsId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.dhcp_options,
        &c.env.region,
        &ids,
        &filters,
        dhcp_not_found,
    )?;
    let (page, next) = paginate(c, rows, |d| &d.id)?;
    let mut x = Xml::new();
    x.set("dhcpOptionsSet", page, |x, d| render(x, &w, d));
    x.opt("nextToken", next);
    Ok(x)
}
