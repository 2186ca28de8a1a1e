//! Describe filters (`Filter.N.Name` / `Filter.N.Value.M`) as EC2 applies them: a row
//! matches when every filter matches (AND), a filter matches when any of its values
//! matches any of the row's values for that name (OR); values may use `*` and `?`
//! wildcards. `tag:<key>`, `tag-key` and `tag-value` work for every taggable kind; the
//! other names come from each kind's [`Filterable`] impl. An unknown name is an
//! `InvalidParameterValue`, as on AWS.

use super::{ApiError, ApiResult, Resource, World};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// The values a resource has for a filter name; `None` means "no such filter for this
/// kind" (an error), `Some(vec![])` means "this resource has no value" (no match).
pub trait Filterable {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>>;
}

/// Renders a boolean the way filter values spell it.
pub fn b(v: bool) -> String {
    if v { "true".into() } else { "false".into() }
}

pub(crate) fn matches_all<T: Resource + Filterable>(
    world: &World,
    row: &T,
    filters: &[Filter],
) -> ApiResult<bool> {
    for f in filters {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            world
                .tags_of(row.id())
                .and_then(|t| t.get(key).cloned())
                .into_iter()
                .collect()
        } else if f.name == "tag-key" {
            world
                .tags_of(row.id())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()
        } else if f.name == "tag-value" {
            world
                .tags_of(row.id())
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default()
        } else {
            match row.filter_values(world, &f.name) {
                Some(v) => v,
                None => {
                    return Err(ApiError::invalid_value(format!(
                        "The filter '{}' is invalid",
                        f.name
                    )));
                }
            }
        };
        if !f
            .values
            .iter()
            .any(|want| have.iter().any(|h| wildcard(want, h)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// EC2 filter wildcards: `*` matches any run of characters, `?` exactly one; `\` escapes.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `*` (linear-ish, no recursion, so a
    // hostile pattern cannot blow the stack).
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '\\' && pi + 1 < p.len() && p[pi + 1] == t[ti] {
            pi += 2;
            ti += 1;
        } else if pi < p.len()
            && p[pi] != '\\'
            && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti]))
        {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn filter_values_support_star_and_question_mark_wildcards() {
        assert!(wildcard("web-*", "web-1"));
        assert!(wildcard("*", ""));
        assert!(wildcard("10.0.?.0/24", "10.0.1.0/24"));
        assert!(!wildcard("10.0.?.0/24", "10.0.10.0/24"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
    }
}
