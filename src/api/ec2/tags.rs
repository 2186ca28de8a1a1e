//! Tag actions: CreateTags, DeleteTags, DescribeTags.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::filter::wildcard;
use crate::model::tags::resource_type_of;
use crate::model::{ApiError, ApiResult};

use super::{Handler, return_true};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateTags", create_tags),
    ("DeleteTags", delete_tags),
    ("DescribeTags", describe_tags),
];

fn create_tags(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("ResourceId");
    let tags = c.params.tags("Tag")?;
    if tags.is_empty() {
        return Err(ApiError::missing("Tag"));
    }
    c.mutate(|w, env| w.create_tags(env, &ids, &tags))?;
    Ok(return_true())
}

fn delete_tags(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("ResourceId");
    let tags = c.params.tag_keys("Tag")?;
    c.mutate(|w, _| w.delete_tags(&ids, &tags))?;
    Ok(return_true())
}

fn describe_tags(c: &mut Call) -> ApiResult<Xml> {
    let filters = c.params.filters()?;
    for f in &filters {
        if !matches!(
            f.name.as_str(),
            "key" | "value" | "resource-id" | "resource-type"
        ) && !f.name.starts_with("tag:")
        {
            return Err(ApiError::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        }
    }
    let max = match c.params.int("MaxResults")? {
        None => None,
        Some(n) if (5..=1000).contains(&n) => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
            )));
        }
    };
    // The token is "resource-id key" of the first row of the next page.
    let start = super::next_token(c)?;
    let w = c.read()?;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for set in w.tags.in_region(&c.env.region) {
        let rtype = resource_type_of(&set.id);
        for (k, v) in &set.tags {
            let ok = filters.iter().all(|f| {
                let have: Vec<&str> = match f.name.as_str() {
                    "key" => vec![k.as_str()],
                    "value" => vec![v.as_str()],
                    "resource-id" => vec![set.id.as_str()],
                    "resource-type" => vec![rtype],
                    n => match n.strip_prefix("tag:") {
                        Some(key) if key == k => vec![v.as_str()],
                        _ => vec![],
                    },
                };
                f.values
                    .iter()
                    .any(|want| have.iter().any(|h| wildcard(want, h)))
            });
            if ok {
                rows.push((set.id.clone(), rtype.to_string(), k.clone(), v.clone()));
            }
        }
    }
    if let Some(key) = start {
        rows.retain(|r| format!("{} {}", r.0, r.2) >= key);
    }
    let mut next = None;
    if let Some(m) = max
        && rows.len() > m
    {
        next = Some(super::token::encode(
            "DescribeTags",
            &format!("{} {}", rows[m].0, rows[m].2),
        ));
        rows.truncate(m);
    }
    let mut x = Xml::new();
    x.set("tagSet", rows, |x, (id, rtype, k, v)| {
        x.leaf("resourceId", id)
            .leaf("resourceType", rtype)
            .leaf("key", k)
            .leaf("value", v);
    });
    x.opt("nextToken", next);
    Ok(x)
}
