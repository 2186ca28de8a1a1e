//! Prefix-list actions: DescribePrefixLists, DescribeManagedPrefixLists,
//! GetManagedPrefixListEntries, over the AWS-managed lists of the Region
//! ([`crate::model::ec2::prefix_list`]). Their CIDRs are the addresses the in-world
//! resolver gives the service's regional endpoint.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::prefix_list::{ManagedPrefixList, managed_prefix_lists};
use crate::model::{ApiError, ApiResult};

use super::{Handler, paginate};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("DescribePrefixLists", describe_prefix_lists),
    ("DescribeManagedPrefixLists", describe_managed_prefix_lists),
    ("GetManagedPrefixListEntries", get_entries),
];

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidPrefixListID.NotFound",
        format!("The prefix list ID '{id}' does not exist"),
    )
}

/// The Region's lists, filtered by `PrefixListId.N` and `Filter.N`.
fn select(c: &mut Call) -> ApiResult<Vec<ManagedPrefixList>> {
    let ids = c.params.list("PrefixListId");
    let filters = c.params.filters()?;
    let region = c.env.region.clone();
    let all = managed_prefix_lists(&region);
    for id in &ids {
        if !all.iter().any(|p| &p.id == id) {
            return Err(not_found(id));
        }
    }
    let w = c.read()?;
    let mut out = Vec::new();
    for p in all {
        if (ids.is_empty() || ids.contains(&p.id))
            && crate::model::filter::matches_all(&w, &p, &filters)?
        {
            out.push(p);
        }
    }
    Ok(out)
}

fn describe_prefix_lists(c: &mut Call) -> ApiResult<Xml> {
    let rows = select(c)?;
    let (page, next) = paginate(c, rows.iter().collect(), |p| &p.id)?;
    let mut x = Xml::new();
    x.set("prefixListSet", page, |x, p| {
        x.leaf("prefixListId", &p.id)
            .leaf("prefixListName", &p.name)
            .set("cidrSet", &p.cidrs, |x, c| {
                x.text(c);
            });
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn describe_managed_prefix_lists(c: &mut Call) -> ApiResult<Xml> {
    let rows = select(c)?;
    let (page, next) = paginate(c, rows.iter().collect(), |p| &p.id)?;
    let region = c.env.region.clone();
    let mut x = Xml::new();
    x.set("prefixListSet", page, |x, p| {
        x.leaf("prefixListId", &p.id)
            .leaf("addressFamily", "IPv4")
            .leaf("state", "create-complete")
            .leaf(
                "prefixListArn",
                format!("arn:aws:ec2:{region}:aws:prefix-list/{}", p.id),
            )
            .leaf("prefixListName", &p.name)
            .leaf("ownerId", "AWS");
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn get_entries(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let region = c.env.region.clone();
    let list = managed_prefix_lists(&region)
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| not_found(&id))?;
    let mut x = Xml::new();
    x.set("entrySet", &list.cidrs, |x, c| {
        x.leaf("cidr", c);
    });
    Ok(x)
}
