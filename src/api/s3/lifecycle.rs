//! PutBucketLifecycleConfiguration's XML read into the model's [`LifecycleRule`]s, and
//! the lifecycle headers of object responses (`x-amz-expiration`, `x-amz-abort-date`,
//! `x-amz-abort-rule-id`). What a rule selects and when it is due is the model's
//! (`model::s3::lifecycle`); this module checks the document's shape, answering as S3
//! does: `MalformedXML` for what does not validate against the schema, `InvalidArgument`
//! for a number that must be positive or a date that must be a midnight, and
//! `InvalidRequest` for combinations S3 refuses.

use super::xml_read::Element;
use super::{Out, http_date, malformed_xml, parse_iso_ms, parse_xml};
use crate::model::ApiResult;
use crate::model::s3::{Bucket, LifecycleRule, Version};
use crate::model::{ApiError, s3 as m};

fn invalid_argument(message: &str) -> ApiError {
    ApiError::new("InvalidArgument", message)
}

fn invalid_request(message: &str) -> ApiError {
    ApiError::new("InvalidRequest", message)
}

/// A positive count (`Days`, `NoncurrentDays` …): not a number does not validate
/// (`MalformedXML`); zero or less is refused with S3's message.
fn positive(text: &str, message: &str) -> ApiResult<u32> {
    let n: i64 = text.trim().parse().map_err(|_| malformed_xml())?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid_argument(message))
}

fn size(text: &str) -> ApiResult<u64> {
    text.trim().parse().map_err(|_| malformed_xml())
}

/// The rule-level filter: the legacy `Prefix` or a `Filter` holding one of `Prefix`,
/// `Tag`, `ObjectSizeGreaterThan`, `ObjectSizeLessThan` or `And` (the API reference's
/// `LifecycleRuleFilter`: "exactly one of").
fn read_filter(filter: &Element, rule: &mut LifecycleRule) -> ApiResult<()> {
    const ONE_OF: [&str; 5] = [
        "Prefix",
        "Tag",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
        "And",
    ];
    if filter
        .children
        .iter()
        .filter(|c| ONE_OF.contains(&c.name.as_str()))
        .count()
        > 1
    {
        return Err(malformed_xml());
    }
    let scope = filter.child("And").unwrap_or(filter);
    if scope.children_named("Prefix").count() > 1 {
        return Err(malformed_xml());
    }
    if let Some(p) = scope.child("Prefix") {
        rule.prefix = p.text.clone();
    }
    for t in scope.children_named("Tag") {
        let key = t.text_of("Key").ok_or_else(malformed_xml)?;
        let value = t.child("Value").map(|v| v.text.clone()).unwrap_or_default();
        if rule.tags.insert(key.to_string(), value).is_some() {
            return Err(invalid_request("Duplicate Tag Keys are not allowed."));
        }
    }
    if let Some(n) = scope.text_of("ObjectSizeGreaterThan") {
        rule.size_greater_than = Some(size(n)?);
    }
    if let Some(n) = scope.text_of("ObjectSizeLessThan") {
        rule.size_less_than = Some(size(n)?);
    }
    Ok(())
}

/// A count that may be zero (a transition's `Days` / `NoncurrentDays`).
fn non_negative(text: &str, message: &str) -> ApiResult<u32> {
    let n: i64 = text.trim().parse().map_err(|_| malformed_xml())?;
    u32::try_from(n).map_err(|_| invalid_argument(message))
}

/// A `Date`: ISO 8601, and "The time is always midnight UTC."
fn midnight(text: &str) -> ApiResult<i64> {
    let ms = parse_iso_ms(text).ok_or_else(malformed_xml)?;
    if ms.rem_euclid(86_400_000) != 0 {
        return Err(invalid_argument("'Date' must be at midnight GMT"));
    }
    Ok(ms)
}

/// A transition's `StorageClass`: one of the classes the API reference lists for
/// `Transition` / `NoncurrentVersionTransition` (not STANDARD, not REDUCED_REDUNDANCY).
fn transition_class(t: &Element, action: &str) -> ApiResult<m::StorageClass> {
    use m::StorageClass as C;
    let name = t.text_of("StorageClass").ok_or_else(malformed_xml)?;
    match C::parse(name) {
        Ok(C::Standard | C::ReducedRedundancy) => Err(invalid_argument(&format!(
            "'StorageClass' {name} is not supported for {action} action"
        ))),
        Ok(c) => Ok(c),
        Err(_) => Err(malformed_xml()),
    }
}

/// Objects must stay 30 days before STANDARD_IA or ONEZONE_IA ("Constraints and
/// considerations for transitions").
fn min_ia_days(days: u32, class: m::StorageClass, what: &str) -> ApiResult<()> {
    use m::StorageClass as C;
    if matches!(class, C::StandardIa | C::OnezoneIa) && days < 30 {
        return Err(invalid_argument(&format!(
            "{what} action must be greater than or equal to 30 for storageClass '{}'",
            class.name()
        )));
    }
    Ok(())
}

/// `Expiration`: exactly one of `Date`, `Days` and `ExpiredObjectDeleteMarker` (the
/// API reference's `LifecycleExpiration`: the marker "cannot be specified with Days or
/// Date").
fn read_expiration(e: &Element, rule: &mut LifecycleRule) -> ApiResult<()> {
    let given = ["Date", "Days", "ExpiredObjectDeleteMarker"]
        .iter()
        .filter(|n| e.child(n).is_some())
        .count();
    if given != 1 {
        return Err(malformed_xml());
    }
    if let Some(d) = e.text_of("Days") {
        rule.expiration_days = Some(positive(
            d,
            "'Days' for Expiration action must be a positive integer",
        )?);
    }
    if let Some(d) = e.text_of("Date") {
        rule.expiration_date = Some(midnight(d)?);
    }
    if let Some(m) = e.text_of("ExpiredObjectDeleteMarker") {
        rule.expired_object_delete_marker = match m {
            "true" => true,
            "false" => false,
            _ => return Err(malformed_xml()),
        };
    }
    Ok(())
}

/// Reads a lifecycle configuration. A configuration whose first rule has a `Filter` is
/// "Lifecycle V2": its rules may not use the legacy rule-level `Prefix`, and a V1 one
/// may not use `Filter` or `NewerNoncurrentVersions`.
pub fn parse(body: &[u8]) -> ApiResult<Vec<LifecycleRule>> {
    let doc = parse_xml(body)?;
    let rules: Vec<&Element> = doc.children_named("Rule").collect();
    let Some(first) = rules.first() else {
        return Err(malformed_xml());
    };
    let v2 = first.child("Filter").is_some();
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let mut rule = LifecycleRule {
            id: r
                .text_of("ID")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            ..LifecycleRule::default()
        };
        rule.enabled = match r.text_of("Status") {
            Some("Enabled") => true,
            Some("Disabled") => false,
            _ => return Err(malformed_xml()),
        };
        match (r.child("Prefix"), r.child("Filter")) {
            (Some(_), Some(_)) | (None, None) => return Err(malformed_xml()),
            (Some(_), None) if v2 => {
                return Err(invalid_request(
                    "Base level prefix cannot be used in Lifecycle V2, prefixes are only supported in the Filter.",
                ));
            }
            (None, Some(_)) if !v2 => {
                return Err(invalid_request(
                    "Filter element can only be used in Lifecycle V2.",
                ));
            }
            (Some(p), None) => rule.prefix = p.text.clone(),
            (None, Some(f)) => read_filter(f, &mut rule)?,
        }
        let mut actions = 0;
        if let Some(e) = r.child("Expiration") {
            read_expiration(e, &mut rule)?;
            actions += 1;
        }
        if let Some(n) = r.child("NoncurrentVersionExpiration") {
            let days = n.text_of("NoncurrentDays").ok_or_else(malformed_xml)?;
            rule.noncurrent_days = Some(positive(
                days,
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            )?);
            if let Some(k) = n.text_of("NewerNoncurrentVersions") {
                if !v2 {
                    return Err(invalid_request(
                        "NewerNoncurrentVersions element can only be used in Lifecycle V2.",
                    ));
                }
                rule.newer_noncurrent_versions = Some(positive(
                    k,
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer",
                )?);
            }
            actions += 1;
        }
        if let Some(a) = r.child("AbortIncompleteMultipartUpload") {
            let days = a.text_of("DaysAfterInitiation").ok_or_else(malformed_xml)?;
            rule.abort_days = Some(positive(
                days,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )?);
            actions += 1;
        }
        for t in r.children_named("Transition") {
            let class = transition_class(t, "Transition")?;
            let (days, date) = (t.text_of("Days"), t.text_of("Date"));
            let mut tr = m::lifecycle::Transition {
                days: None,
                date: None,
                class,
            };
            match (days, date) {
                (Some(d), None) => {
                    let n = non_negative(d, "'Days' in Transition action must be nonnegative")?;
                    min_ia_days(n, class, "'Days' in Transition")?;
                    tr.days = Some(n);
                }
                (None, Some(d)) => tr.date = Some(midnight(d)?),
                _ => return Err(malformed_xml()),
            }
            rule.transitions.push(tr);
            actions += 1;
        }
        for t in r.children_named("NoncurrentVersionTransition") {
            let class = transition_class(t, "NoncurrentVersionTransition")?;
            let d = t.text_of("NoncurrentDays").ok_or_else(malformed_xml)?;
            let days = non_negative(
                d,
                "'NoncurrentDays' in NoncurrentVersionTransition action must be nonnegative",
            )?;
            min_ia_days(
                days,
                class,
                "'NoncurrentDays' in NoncurrentVersionTransition",
            )?;
            let newer = match t.text_of("NewerNoncurrentVersions") {
                Some(_) if !v2 => {
                    return Err(invalid_request(
                        "NewerNoncurrentVersions element can only be used in Lifecycle V2.",
                    ));
                }
                Some(k) => Some(positive(
                    k,
                    "'NewerNoncurrentVersions' for NoncurrentVersionTransition action must be a positive integer",
                )?),
                None => None,
            };
            rule.noncurrent_transitions
                .push(m::lifecycle::NoncurrentTransition { days, newer, class });
            actions += 1;
        }
        if actions == 0 {
            return Err(invalid_request(
                "At least one action needs to be specified in a rule",
            ));
        }
        out.push(rule);
    }
    m::lifecycle::check_rules(&out)?;
    Ok(out)
}

/// The header naming the configuration's default transition minimum, on
/// PutBucketLifecycleConfiguration's request and on both answers.
pub const TRANSITION_MINIMUM_HEADER: &str = "x-amz-transition-default-minimum-object-size";

/// PutBucketLifecycleConfiguration's `x-amz-transition-default-minimum-object-size`
/// (`all_storage_classes_128K` when absent, S3's default since September 2024).
pub fn transition_minimum(req: &super::S3Req) -> ApiResult<m::lifecycle::TransitionMinimum> {
    match req.headers.get(TRANSITION_MINIMUM_HEADER) {
        None => Ok(m::lifecycle::TransitionMinimum::default()),
        Some(v) => m::lifecycle::TransitionMinimum::parse(v.to_str().unwrap_or("").trim()),
    }
}

/// Adds the configuration's default transition minimum to an answer.
pub fn with_transition_minimum(out: Out, minimum: m::lifecycle::TransitionMinimum) -> Out {
    out.header(TRANSITION_MINIMUM_HEADER, minimum.name())
}

/// `expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="…"` (the rule ID URL-encoded,
/// as the PutObject / GetObject / HeadObject references say).
fn expiration_value(at: i64, rule_id: &str) -> String {
    format!(
        "expiry-date=\"{}\", rule-id=\"{}\"",
        http_date(at),
        super::url_encode(rule_id)
    )
}

/// Adds `x-amz-expiration` when a rule of the bucket will expire this current version.
pub fn expiration_header(out: Out, b: &Bucket, key: &str, v: &Version) -> Out {
    match b.expiration_of(key, v) {
        Some((at, id)) => out.header("x-amz-expiration", expiration_value(at, id)),
        None => out,
    }
}

/// Adds `x-amz-abort-date` and `x-amz-abort-rule-id` when a rule will abort this
/// upload (CreateMultipartUpload and ListParts).
pub fn abort_headers(out: Out, b: &Bucket, key: &str, initiated: i64) -> Out {
    match b.abort_date_of(key, initiated) {
        Some((at, id)) => out
            .header("x-amz-abort-date", http_date(at))
            .header("x-amz-abort-rule-id", id.to_string()),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(xml: &str) -> String {
        parse(xml.as_bytes())
            .err()
            .map(|e| e.code.to_string())
            .unwrap_or_default()
    }

    fn doc(rules: &str) -> String {
        format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>")
    }

    #[test]
    fn filters_and_actions_are_read() {
        let rules = parse(
            doc(
                "<Rule><ID>a</ID><Status>Enabled</Status><Filter><And><Prefix>logs/</Prefix>\
                 <Tag><Key>k</Key><Value>v</Value></Tag><Tag><Key>e</Key></Tag>\
                 <ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter>\
                 <Expiration><Days>3</Days></Expiration>\
                 <NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>\
                 <NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration>\
                 </Rule>",
            )
            .as_bytes(),
        )
        .expect("valid");
        let r = &rules[0];
        assert_eq!(r.prefix, "logs/");
        assert_eq!(r.tags.get("k").map(String::as_str), Some("v"));
        assert_eq!(r.tags.get("e").map(String::as_str), Some(""));
        assert_eq!(r.size_greater_than, Some(10));
        assert_eq!(
            (
                r.expiration_days,
                r.noncurrent_days,
                r.newer_noncurrent_versions
            ),
            (Some(3), Some(2), Some(1))
        );
    }

    #[test]
    fn bad_documents_get_s3s_error_codes() {
        let exp = |inner: &str| {
            doc(&format!(
                "<Rule><Status>Enabled</Status><Filter/>{inner}</Rule>"
            ))
        };
        assert_eq!(
            code(&exp(
                "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
            )),
            "MalformedXML"
        );
        assert_eq!(
            code(&exp("<Expiration><Days>0</Days></Expiration>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&exp(
                "<Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>"
            )),
            "InvalidArgument"
        );
        assert_eq!(code(&exp("")), "InvalidRequest");
        assert_eq!(
            code(&doc(
                "<Rule><Status>On</Status><Filter/><Expiration><Days>1</Days></Expiration></Rule>"
            )),
            "MalformedXML"
        );
        assert_eq!(
            code(&doc(
                "<Rule><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
            )),
            "MalformedXML"
        );
        assert_eq!(
            code(&doc(
                "<Rule><Status>Enabled</Status><Filter><Prefix>a</Prefix><Tag><Key>k</Key></Tag></Filter><Expiration><Days>1</Days></Expiration></Rule>"
            )),
            "MalformedXML"
        );
        assert_eq!(
            code(&exp(
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
            )),
            "InvalidArgument"
        );
        assert_eq!(code("not xml"), "MalformedXML");
    }

    #[test]
    fn transitions_are_read_and_checked() {
        use crate::model::s3::StorageClass as C;
        let rules = parse(
            doc("<Rule><Status>Enabled</Status><Filter><Prefix>logs/</Prefix></Filter>\
                 <Transition><Days>30</Days><StorageClass>STANDARD_IA</StorageClass></Transition>\
                 <Transition><Date>2030-01-01T00:00:00Z</Date><StorageClass>GLACIER</StorageClass></Transition>\
                 <NoncurrentVersionTransition><NoncurrentDays>0</NoncurrentDays>\
                 <NewerNoncurrentVersions>2</NewerNoncurrentVersions>\
                 <StorageClass>DEEP_ARCHIVE</StorageClass></NoncurrentVersionTransition></Rule>")
            .as_bytes(),
        )
        .expect("parse");
        let r = &rules[0];
        assert_eq!(r.transitions.len(), 2);
        assert_eq!(
            (r.transitions[0].days, r.transitions[0].class),
            (Some(30), C::StandardIa)
        );
        assert!(r.transitions[1].date.is_some());
        let n = &r.noncurrent_transitions[0];
        assert_eq!((n.days, n.newer, n.class), (0, Some(2), C::DeepArchive));
        let tr = |inner: &str| {
            code(&doc(&format!(
                "<Rule><Status>Enabled</Status><Filter/><Transition>{inner}</Transition></Rule>"
            )))
        };
        assert_eq!(
            tr("<Days>29</Days><StorageClass>STANDARD_IA</StorageClass>"),
            "InvalidArgument"
        );
        assert_eq!(
            tr("<Days>1</Days><StorageClass>ONEZONE_IA</StorageClass>"),
            "InvalidArgument"
        );
        assert_eq!(
            tr("<Days>1</Days><StorageClass>STANDARD</StorageClass>"),
            "InvalidArgument"
        );
        assert_eq!(
            tr("<Days>1</Days><StorageClass>COLD</StorageClass>"),
            "MalformedXML"
        );
        assert_eq!(tr("<StorageClass>GLACIER</StorageClass>"), "MalformedXML");
    }
}
