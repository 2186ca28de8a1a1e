//! EC2 Query actions, one module per resource family, each exporting
//! `pub const ACTIONS: &[(&str, Handler)]`; [`ACTION_GROUPS`] lists the modules. Shared
//! rendering (tag sets, `return true`) and pagination live here.

mod address;
mod dhcp;
mod eigw;
mod eni;
mod flow_log;
mod iam_profile;
mod igw;
mod image;
mod insights;
mod instance;
mod key_pair;
mod launch_template;
mod nacl;
mod peering;
mod prefix_list;
mod region;
mod route_table;
mod sg;
mod subnet;
mod tags;
mod tgw;
pub mod token;
pub use iam_profile::passed_roles;
mod volume;
mod vpc;
mod vpc_endpoint;

use crate::model::{ApiError, ApiResult, World};

use super::Call;
use super::xml::Xml;

/// An action handler: parse `c.params`, call the model, return the response's children.
pub type Handler = fn(&mut Call<'_>) -> ApiResult<Xml>;

/// Every module's action table. Add a module's `ACTIONS` here.
pub const ACTION_GROUPS: &[&[(&str, Handler)]] = &[
    vpc::ACTIONS,
    dhcp::ACTIONS,
    subnet::ACTIONS,
    route_table::ACTIONS,
    igw::ACTIONS,
    eigw::ACTIONS,
    address::ACTIONS,
    nacl::ACTIONS,
    sg::ACTIONS,
    eni::ACTIONS,
    launch_template::ACTIONS,
    peering::ACTIONS,
    tgw::ACTIONS,
    prefix_list::ACTIONS,
    vpc_endpoint::ACTIONS,
    flow_log::ACTIONS,
    insights::ACTIONS,
    tags::ACTIONS,
    region::ACTIONS,
    key_pair::ACTIONS,
    instance::ACTIONS,
    iam_profile::ACTIONS,
    image::ACTIONS,
    volume::ACTIONS,
];

/// The handler of an action name.
pub fn find(action: &str) -> Option<Handler> {
    ACTION_GROUPS
        .iter()
        .flat_map(|g| g.iter())
        .find(|(name, _)| *name == action)
        .map(|(_, h)| *h)
}

/// Every supported action name, sorted (for docs and tests).
pub fn action_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ACTION_GROUPS
        .iter()
        .flat_map(|g| g.iter())
        .map(|(n, _)| *n)
        .collect();
    v.sort_unstable();
    v
}

/// `<tagSet>` of a resource (omitted when it has no tags, as AWS does).
pub fn tag_set(x: &mut Xml, world: &World, id: &str) {
    if let Some(tags) = world.tags_of(id)
        && !tags.is_empty()
    {
        x.set("tagSet", tags, |x, (k, v)| {
            x.leaf("key", k).leaf("value", v);
        });
    }
}

/// `<return>true</return>`, the body of most mutating actions.
pub fn return_true() -> Xml {
    let mut x = Xml::new();
    x.leaf("return", "true");
    x
}

/// `MaxResults` / `NextToken` over rows already in id order: the token names the id of
/// the first row of the next page ([`token`]), so deletes between pages do not shift
/// results; a token this server did not hand out is `InvalidParameterValue`. Returns the
/// page and the next token. AWS bounds MaxResults per action; 5–1000 is the common range.
pub fn paginate<'a, T>(
    c: &Call<'_>,
    rows: Vec<&'a T>,
    id_of: impl Fn(&T) -> &str,
) -> ApiResult<(Vec<&'a T>, Option<String>)> {
    let max = match c.params.int("MaxResults")? {
        None => None,
        Some(n) if (5..=1000).contains(&n) => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
            )));
        }
    };
    let action = c.params.get("Action").unwrap_or_default();
    let start = match next_token(c)? {
        None => 0,
        Some(key) => rows
            .iter()
            .position(|r| id_of(r) >= key.as_str())
            .unwrap_or(rows.len()),
    };
    let rest: Vec<&'a T> = rows.into_iter().skip(start).collect();
    match max {
        Some(m) if rest.len() > m => {
            let next = token::encode(action, id_of(rest[m]));
            Ok((rest.into_iter().take(m).collect(), Some(next)))
        }
        _ => Ok((rest, None)),
    }
}

/// The position a request's `NextToken` names, checked ([`token::decode`]). An empty
/// token counts as none, as the CLI's paginators never send one.
pub fn next_token(c: &Call<'_>) -> ApiResult<Option<String>> {
    match c.params.get("NextToken") {
        None | Some("") => Ok(None),
        Some(tok) => token::decode(c.params.get("Action").unwrap_or_default(), tok).map(Some),
    }
}

/// A bool as EC2 XML spells it.
pub fn tf(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}
