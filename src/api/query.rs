//! EC2 Query parameters: the flat `Name=value` map of a form body or query string, and
//! the EC2 protocol's list and structure conventions on top of it: `Name.N` lists,
//! `Name.N.Member` structures, `Filter.N.Name` / `Filter.N.Value.M`, `TagSpecification.N`.

use std::collections::BTreeMap;

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Filter};

/// Most entries a list parameter may have (a guard against absurd indices; AWS's own
/// limits are lower per parameter).
const MAX_LIST: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes (invalid UTF-8 is replaced, never
    /// fatal). Later duplicates win, as on AWS.
    pub fn parse(bytes: &[u8]) -> Params {
        let mut p = Params::default();
        p.extend_from(bytes);
        p
    }

    pub fn extend_from(&mut self, bytes: &[u8]) {
        for (k, v) in form_urlencoded::parse(bytes) {
            self.map.insert(k.into_owned(), v.into_owned());
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Every parameter, in name order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A required parameter (`MissingParameter` otherwise; empty counts as missing).
    pub fn required(&self, key: &str) -> ApiResult<&str> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(key)),
        }
    }

    /// A boolean parameter (`true`/`false`, any case).
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::new(
                "InvalidParameterValue",
                format!("Invalid value '{v}' for {key}: expected true or false."),
            )),
        }
    }

    /// The `Attr.Value` boolean form (ModifyVpcAttribute's `EnableDnsSupport.Value`).
    pub fn bool_value(&self, key: &str) -> ApiResult<Option<bool>> {
        self.bool(&format!("{key}.Value"))
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::new(
                    "InvalidParameterValue",
                    format!("Invalid value '{v}' for {key}: expected an integer."),
                )
            }),
        }
    }

    /// Indices `N` present under `prefix.N[.…]`, ascending.
    fn indices(&self, prefix: &str) -> Vec<u32> {
        let dotted = format!("{prefix}.");
        let mut out: Vec<u32> = self
            .map
            .range(dotted.clone()..)
            .take_while(|(k, _)| k.starts_with(&dotted))
            .filter_map(|(k, _)| k[dotted.len()..].split('.').next()?.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out.truncate(MAX_LIST);
        out
    }

    /// The list `prefix.1`, `prefix.2`, … in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.get(&format!("{prefix}.{n}")).map(str::to_string))
            .collect()
    }

    /// The structures `prefix.N.*`, each as its own `Params` with `prefix.N.` stripped.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        self.indices(prefix)
            .into_iter()
            .map(|n| {
                let p = format!("{prefix}.{n}.");
                Params {
                    map: self
                        .map
                        .range(p.clone()..)
                        .take_while(|(k, _)| k.starts_with(&p))
                        .map(|(k, v)| (k[p.len()..].to_string(), v.clone()))
                        .collect(),
                }
            })
            .filter(|s| !s.map.is_empty())
            .collect()
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> ApiResult<Vec<Filter>> {
        let mut out = Vec::new();
        for s in self.structs("Filter") {
            let name = s
                .get("Name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::missing("Filter.N.Name"))?;
            out.push(Filter {
                name: name.to_string(),
                values: s.list("Value"),
            });
        }
        Ok(out)
    }

    /// `TagSpecification.N.ResourceType` + `TagSpecification.N.Tag.M.Key/Value`.
    pub fn tag_specs(&self) -> ApiResult<Vec<TagSpec>> {
        let mut out = Vec::new();
        for s in self.structs("TagSpecification") {
            let resource_type = s
                .required("ResourceType")
                .map_err(|_| ApiError::missing("TagSpecification.N.ResourceType"))?;
            out.push(TagSpec {
                resource_type: resource_type.to_string(),
                tags: tags_of(&s, "Tag")?,
            });
        }
        Ok(out)
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs (value defaults to empty, as on AWS).
    pub fn tags(&self, prefix: &str) -> ApiResult<Vec<(String, String)>> {
        tags_of(self, prefix)
    }

    /// `Tag.N.Key` with optional `Tag.N.Value` (DeleteTags).
    pub fn tag_keys(&self, prefix: &str) -> ApiResult<Vec<(String, Option<String>)>> {
        self.structs(prefix)
            .into_iter()
            .map(|t| {
                Ok((
                    t.required("Key")
                        .map_err(|_| ApiError::missing("Tag.N.Key"))?
                        .to_string(),
                    t.get("Value").map(str::to_string),
                ))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Refuses any parameter holding a character XML 1.0 cannot carry (C0 controls other
    /// than tab/newline/return, U+FFFE, U+FFFF). Every stored text (tags, descriptions,
    /// names) comes from a parameter and goes back out in XML, where such a character
    /// would make the whole response unreadable; EC2 answers `InvalidParameterValue`.
    pub fn check_xml_text(&self) -> ApiResult<()> {
        for (k, v) in &self.map {
            if let Some(c) = crate::api::xml::first_non_xml_char(k)
                .or_else(|| crate::api::xml::first_non_xml_char(v))
            {
                return Err(ApiError::invalid_value(format!(
                    "Value for parameter {} is invalid: the character U+{:04X} is not allowed.",
                    k, c as u32
                )));
            }
        }
        Ok(())
    }
}

fn tags_of(p: &Params, prefix: &str) -> ApiResult<Vec<(String, String)>> {
    p.structs(prefix)
        .into_iter()
        .map(|t| {
            let key = t.get("Key").ok_or_else(|| ApiError::missing("Tag.N.Key"))?;
            Ok((key.to_string(), t.get("Value").unwrap_or("").to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_follow_index_order_not_text_order() {
        let p = Params::parse(b"VpcId.10=c&VpcId.2=b&VpcId.1=a");
        assert_eq!(p.list("VpcId"), vec!["a", "b", "c"]);
    }

    #[test]
    fn filters_collect_names_and_values() {
        let p = Params::parse(b"Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1&Filter.1.Value.2=vpc-2&Filter.2.Name=tag%3AName&Filter.2.Value.1=web");
        let f = p.filters().unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].values, vec!["vpc-1", "vpc-2"]);
        assert_eq!(f[1].name, "tag:Name");
    }

    #[test]
    fn tag_specifications_parse_with_their_tags() {
        let p = Params::parse(b"TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=lab");
        let s = p.tag_specs().unwrap();
        assert_eq!(s[0].resource_type, "vpc");
        assert_eq!(s[0].tags, vec![("Name".to_string(), "lab".to_string())]);
    }

    #[test]
    fn garbage_form_bytes_do_not_panic() {
        let p = Params::parse(&[0xff, b'=', 0xfe, b'&', b'%', b'Z', b'Z']);
        assert!(p.list("x").is_empty());
    }

    mod props {
        use proptest::prelude::*;

        use super::super::Params;

        /// Parameter names shaped like the EC2 protocol's, indices included (some huge).
        fn name() -> impl Strategy<Value = String> {
            use proptest::sample::select;
            let part = |options: &'static [&'static str]| select(options);
            (
                part(&[
                    "Filter",
                    "Tag",
                    "TagSpecification",
                    "VpcId",
                    "IpPermissions",
                    "MaxResults",
                    "DryRun",
                    "NextToken",
                ]),
                part(&[
                    "",
                    ".1",
                    ".2",
                    ".10",
                    ".0",
                    ".4294967296",
                    ".99999999999999999999",
                    ".x",
                    ".",
                ]),
                part(&[
                    "",
                    ".Name",
                    ".Value",
                    ".Key",
                    ".ResourceType",
                    ".Tag",
                    ".IpRanges",
                ]),
                part(&["", ".1", ".2", ".0", ".-1"]),
                part(&["", ".Key", ".Value", ".CidrIp"]),
            )
                .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any bytes parse, and every accessor answers (a value or an AWS error).
            #[test]
            fn any_form_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                read_everything(&Params::parse(&bytes));
            }

            /// Structured names with any values: lists, structures, filters and tags
            /// never panic.
            #[test]
            fn structured_params_never_panic(
                pairs in proptest::collection::vec((name(), any::<String>()), 0..24)
            ) {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &pairs {
                    form.append_pair(k, v);
                }
                let p = Params::parse(form.finish().as_bytes());
                read_everything(&p);
                // Form encoding round-trips: the last value of each name wins.
                for (k, v) in pairs.iter().rev() {
                    if pairs.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) == Some(v) {
                        prop_assert_eq!(p.get(k), Some(v.as_str()));
                    }
                }
            }
        }

        fn read_everything(p: &Params) {
            let _ = p.filters();
            let _ = p.tag_specs();
            let _ = p.tags("Tag");
            let _ = p.tag_keys("Tag");
            let _ = p.list("VpcId");
            let _ = p.structs("IpPermissions");
            let _ = p.int("MaxResults");
            let _ = p.bool("DryRun");
            let _ = p.bool_value("DryRun");
            let _ = p.required("NextToken");
            let _ = p.check_xml_text();
        }
    }
}
