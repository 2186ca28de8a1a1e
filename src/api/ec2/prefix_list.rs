//! Prefix-list actions. Over the AWS-managed lists of the Region
//! ([`crate::model::ec2::prefix_list`], whose CIDRs are the addresses the in-world
//! resolver gives the service's regional endpoint): DescribePrefixLists. Over both those
//! and the account's customer-managed lists: DescribeManagedPrefixLists and
//! GetManagedPrefixListEntries. Over customer-managed lists only: Create/Modify/
//! DeleteManagedPrefixList, RestoreManagedPrefixListVersion and
//! GetManagedPrefixListAssociations.

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::prefix_list::{
    ManagedPrefixList, PrefixList, PrefixListChange, managed_prefix_lists, prefix_list_not_found,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("DescribePrefixLists", describe_prefix_lists),
    ("DescribeManagedPrefixLists", describe_managed_prefix_lists),
    ("GetManagedPrefixListEntries", get_entries),
    ("CreateManagedPrefixList", create),
    ("ModifyManagedPrefixList", modify),
    ("DeleteManagedPrefixList", delete),
    ("RestoreManagedPrefixListVersion", restore),
    ("GetManagedPrefixListAssociations", associations),
];

/// The Region's AWS-managed lists, filtered by `PrefixListId.N` and `Filter.N`.
fn select(c: &mut Call) -> ApiResult<Vec<ManagedPrefixList>> {
    let ids = c.params.list("PrefixListId");
    let filters = c.params.filters()?;
    let region = c.env.region.clone();
    let all = managed_prefix_lists(&region);
    for id in &ids {
        if !all.iter().any(|p| &p.id == id) {
            return Err(prefix_list_not_found(id));
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

/// A list as DescribeManagedPrefixLists shows it, of either owner.
enum Listed<'a> {
    Aws(ManagedPrefixList),
    Own(&'a PrefixList),
}

impl Listed<'_> {
    fn id(&self) -> &str {
        match self {
            Listed::Aws(p) => &p.id,
            Listed::Own(p) => &p.id,
        }
    }
}

fn render_list(x: &mut Xml, w: &World, region: &str, l: &Listed) {
    match l {
        Listed::Aws(p) => {
            x.leaf("prefixListId", &p.id)
                .leaf("addressFamily", "IPv4")
                .leaf("state", "create-complete")
                .leaf(
                    "prefixListArn",
                    format!("arn:aws:ec2:{region}:aws:prefix-list/{}", p.id),
                )
                .leaf("prefixListName", &p.name)
                .leaf("ownerId", "AWS");
        }
        Listed::Own(p) => render_own(x, w, p, &p.state),
    }
}

fn render_own(x: &mut Xml, w: &World, p: &PrefixList, state: &str) {
    x.leaf("prefixListId", &p.id)
        .leaf("addressFamily", "IPv4")
        .leaf("state", state)
        .leaf("prefixListArn", p.arn(&w.account))
        .leaf("prefixListName", &p.name)
        .leaf("maxEntries", p.max_entries)
        .leaf("version", p.version());
    tag_set(x, w, &p.id);
    x.leaf("ownerId", &w.account);
}

fn describe_managed_prefix_lists(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("PrefixListId");
    let filters = c.params.filters()?;
    let region = c.env.region.clone();
    let w = c.read()?;
    let aws = managed_prefix_lists(&region);
    for id in &ids {
        if !aws.iter().any(|p| &p.id == id) {
            w.prefix_list(&region, id)?;
        }
    }
    let mut rows: Vec<Listed> = Vec::new();
    for p in aws {
        if (ids.is_empty() || ids.contains(&p.id))
            && crate::model::filter::matches_all(&w, &p, &filters)?
        {
            rows.push(Listed::Aws(p));
        }
    }
    let own_ids: Vec<String> = ids
        .iter()
        .filter(|i| w.prefix_lists.contains(i))
        .cloned()
        .collect();
    if ids.is_empty() || !own_ids.is_empty() {
        for p in w.select(
            &w.prefix_lists,
            &region,
            &own_ids,
            &filters,
            prefix_list_not_found,
        )? {
            rows.push(Listed::Own(p));
        }
    }
    // Pages are cut by id, so the rows go in id order.
    rows.sort_by(|a, b| a.id().cmp(b.id()));
    let (page, next) = paginate(c, rows.iter().collect(), |l| l.id())?;
    let mut x = Xml::new();
    x.set("prefixListSet", page, |x, l| render_list(x, &w, &region, l));
    x.opt("nextToken", next);
    Ok(x)
}

fn get_entries(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let target = c.params.int("TargetVersion")?;
    let region = c.env.region.clone();
    let w = c.read()?;
    let entries: Vec<(String, Option<String>)> = match managed_prefix_lists(&region)
        .into_iter()
        .find(|p| p.id == id)
    {
        Some(p) => p.cidrs.iter().map(|c| (c.to_string(), None)).collect(),
        None => {
            let p = w.prefix_list(&region, &id)?;
            let at = match target {
                None => Some(p.entries()),
                Some(v) => u64::try_from(v).ok().and_then(|v| p.entries_at(v)),
            };
            at.ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "The prefix list {id} has no version {}.",
                    target.unwrap_or_default()
                ))
            })?
            .iter()
            .map(|e| (e.cidr.to_string(), e.description.clone()))
            .collect()
        }
    };
    let mut x = Xml::new();
    x.set("entrySet", &entries, |x, (c, d)| {
        x.leaf("cidr", c).opt("description", d.as_deref());
    });
    Ok(x)
}

/// `Entry.N` / `AddEntry.N`: (Cidr, Description).
fn entries(p: &Params, prefix: &str) -> ApiResult<Vec<(String, Option<String>)>> {
    p.structs(prefix)
        .iter()
        .map(|e| {
            Ok((
                e.required("Cidr")
                    .map_err(|_| ApiError::missing(&format!("{prefix}.N.Cidr")))?
                    .to_string(),
                e.get("Description").map(str::to_string),
            ))
        })
        .collect()
}

/// The `<prefixList>` answer of the mutating actions.
fn answer(c: &mut Call, id: &str) -> ApiResult<Xml> {
    let w = c.read()?;
    let p = w.prefix_lists.get(id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("prefixList", |x| render_own(x, &w, p, &p.state));
    Ok(x)
}

fn create(c: &mut Call) -> ApiResult<Xml> {
    let name = c.params.required("PrefixListName")?.to_string();
    let max = c
        .params
        .int("MaxEntries")?
        .ok_or_else(|| ApiError::missing("MaxEntries"))?;
    let family = c.params.required("AddressFamily")?.to_string();
    let list = entries(c.params, "Entry")?;
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_prefix_list(env, &name, max, &family, &list, &specs))?;
    answer(c, &id)
}

fn modify(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let change = PrefixListChange {
        current_version: c.params.int("CurrentVersion")?,
        name: c.params.get("PrefixListName").map(str::to_string),
        add: entries(c.params, "AddEntry")?,
        remove: entries(c.params, "RemoveEntry")?
            .into_iter()
            .map(|(cidr, _)| cidr)
            .collect(),
        max_entries: c.params.int("MaxEntries")?,
    };
    c.mutate(|w, env| w.modify_prefix_list(env, &id, &change))?;
    answer(c, &id)
}

fn restore(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let previous = c
        .params
        .int("PreviousVersion")?
        .ok_or_else(|| ApiError::missing("PreviousVersion"))?;
    let current = c
        .params
        .int("CurrentVersion")?
        .ok_or_else(|| ApiError::missing("CurrentVersion"))?;
    c.mutate(|w, env| w.restore_prefix_list_version(env, &id, previous, current))?;
    answer(c, &id)
}

fn delete(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let region = c.env.region.clone();
    let before = c.read()?.prefix_list(&region, &id)?.clone();
    c.mutate(|w, env| w.delete_prefix_list(env, &id))?;
    let w = c.read()?;
    let mut x = Xml::new();
    x.node("prefixList", |x| {
        render_own(x, &w, &before, "delete-complete")
    });
    Ok(x)
}

fn associations(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("PrefixListId")?.to_string();
    let region = c.env.region.clone();
    let w = c.read()?;
    w.prefix_list(&region, &id)?;
    let rows = w.prefix_list_associations(&id);
    let (page, next) = paginate(c, rows.iter().collect(), |a| &a.resource_id)?;
    let mut x = Xml::new();
    x.set("prefixListAssociationSet", page, |x, a| {
        x.leaf("resourceId", &a.resource_id)
            .leaf("resourceOwner", &a.resource_owner);
    });
    x.opt("nextToken", next);
    Ok(x)
}
