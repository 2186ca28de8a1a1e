//! Put/Get/DeleteBucketReplication: the XML of S3's `ReplicationConfiguration` read into
//! [`crate::model::s3::replication::ReplicationConfig`] and written back. The model
//! validates the rules and the destinations and makes the replicas; this module also
//! gives the model what it cannot make itself, a second blob with a version's bytes
//! ([`replicate`]). Under IAM enforcement the model evaluates the configuration's role
//! at replication time; the caller's `iam:PassRole` on that role is asked by the S3
//! entry point (`mod.rs`), next to the other authorization, before PutBucketReplication
//! runs.

use std::collections::BTreeMap;

use super::{Out, blob::BlobStore, malformed_xml, parse_xml};
use crate::api::xml::Xml;
use crate::api::xml::read::Element;
use crate::model::s3::replication::{Destination, Filter, ReplicationConfig, Rule};
use crate::model::{ApiResult, Env, World};

/// `Enabled` / `Disabled` of a `<…><Status>` element; anything else is not the schema.
fn status_of(e: &Element) -> ApiResult<bool> {
    match e.text_of("Status") {
        Some("Enabled") => Ok(true),
        Some("Disabled") => Ok(false),
        _ => Err(malformed_xml()),
    }
}

fn tag_of(e: &Element) -> ApiResult<(String, String)> {
    let k = e.text_of("Key").ok_or_else(malformed_xml)?;
    let v = e.text_of("Value").ok_or_else(malformed_xml)?;
    Ok((k.to_string(), v.to_string()))
}

fn filter_of(rule: &Element) -> ApiResult<Filter> {
    let Some(f) = rule.child("Filter") else {
        // The V1 schema: `<Prefix>` under `<Rule>` (absent: every key).
        let prefix = rule
            .child("Prefix")
            .map(|p| p.text.clone())
            .unwrap_or_default();
        return Ok(Filter::V1Prefix(prefix));
    };
    if rule.child("Prefix").is_some() {
        return Err(malformed_xml());
    }
    let (prefix, tag, and) = (f.child("Prefix"), f.child("Tag"), f.child("And"));
    let given = [prefix.is_some(), tag.is_some(), and.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(malformed_xml());
    }
    if let Some(t) = tag {
        let (k, v) = tag_of(t)?;
        return Ok(Filter::Tag(k, v));
    }
    if let Some(a) = and {
        let mut tags = BTreeMap::new();
        for t in a.children_named("Tag") {
            let (k, v) = tag_of(t)?;
            tags.insert(k, v);
        }
        let prefix = a
            .child("Prefix")
            .map(|p| p.text.clone())
            .unwrap_or_default();
        return Ok(Filter::And { prefix, tags });
    }
    Ok(Filter::Prefix(
        prefix.map(|p| p.text.clone()).unwrap_or_default(),
    ))
}

fn rule_of(e: &Element, n: usize) -> ApiResult<Rule> {
    let dest = e.child("Destination").ok_or_else(malformed_xml)?;
    let bucket_arn = dest
        .text_of("Bucket")
        .filter(|b| !b.is_empty())
        .ok_or_else(malformed_xml)?
        .to_string();
    let priority = match e.text_of("Priority") {
        None => None,
        Some(p) => Some(p.parse::<i64>().map_err(|_| malformed_xml())?),
    };
    let id = e
        .text_of("ID")
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        // S3 makes up an id when none is given.
        .unwrap_or_else(|| format!("vpclab-replication-rule-{n}"));
    Ok(Rule {
        id,
        priority,
        enabled: status_of(e)?,
        filter: filter_of(e)?,
        delete_marker_replication: e
            .child("DeleteMarkerReplication")
            .map(|d| {
                // `<DeleteMarkerReplication/>` without a status is Disabled.
                if d.child("Status").is_none() {
                    Ok(false)
                } else {
                    status_of(d)
                }
            })
            .transpose()?,
        existing_object_replication: e
            .child("ExistingObjectReplication")
            .map(status_of)
            .transpose()?,
        destination: Destination {
            bucket_arn,
            storage_class: dest.text_of("StorageClass").map(str::to_string),
            account: dest.text_of("Account").map(str::to_string),
        },
    })
}

/// Reads a PutBucketReplication body (`MalformedXML` for anything off the schema).
pub(super) fn parse(body: &[u8]) -> ApiResult<ReplicationConfig> {
    let doc = parse_xml(body)?;
    if doc.name != "ReplicationConfiguration" {
        return Err(malformed_xml());
    }
    let role = doc.text_of("Role").ok_or_else(malformed_xml)?.to_string();
    let rules = doc
        .children_named("Rule")
        .enumerate()
        .map(|(i, r)| rule_of(r, i + 1))
        .collect::<ApiResult<Vec<_>>>()?;
    let config = ReplicationConfig { role, rules };
    config.check()?;
    Ok(config)
}

fn status(enabled: bool) -> &'static str {
    if enabled { "Enabled" } else { "Disabled" }
}

fn tag(x: &mut Xml, k: &str, v: &str) {
    x.node("Tag", |x| {
        x.leaf("Key", k).leaf("Value", v);
    });
}

/// GetBucketReplication's document.
pub(super) fn render(c: &ReplicationConfig) -> Out {
    Out::xml("ReplicationConfiguration", |x| {
        x.leaf("Role", &c.role);
        for r in &c.rules {
            x.node("Rule", |x| {
                x.leaf("ID", &r.id);
                match &r.filter {
                    Filter::V1Prefix(p) => {
                        x.leaf("Prefix", p);
                    }
                    f => {
                        x.leaf("Priority", r.priority.unwrap_or(0));
                        x.node("Filter", |x| match f {
                            Filter::Tag(k, v) => tag(x, k, v),
                            Filter::And { prefix, tags } => {
                                x.node("And", |x| {
                                    x.leaf("Prefix", prefix);
                                    for (k, v) in tags {
                                        tag(x, k, v);
                                    }
                                });
                            }
                            Filter::Prefix(p) | Filter::V1Prefix(p) => {
                                x.leaf("Prefix", p);
                            }
                        });
                    }
                }
                x.leaf("Status", status(r.enabled));
                if let Some(e) = r.existing_object_replication {
                    x.node("ExistingObjectReplication", |x| {
                        x.leaf("Status", status(e));
                    });
                }
                x.node("Destination", |x| {
                    x.leaf("Bucket", &r.destination.bucket_arn);
                    x.opt("Account", r.destination.account.as_deref());
                    x.opt("StorageClass", r.destination.storage_class.as_deref());
                });
                if let Some(d) = r.delete_marker_replication {
                    x.node("DeleteMarkerReplication", |x| {
                        x.leaf("Status", status(d));
                    });
                }
            });
        }
    })
}

/// Replicates the version just written, inside the caller's commit: the model decides
/// where it goes; each replica gets its own blob, a hard link to the source's file
/// (a copy where the file system has no hard links), so either version can be deleted
/// without touching the other's bytes. The new blob names are added to `linked`: the
/// caller deletes them if the commit fails (a crash before the commit leaves them for
/// the start-up sweep).
pub(super) fn replicate(
    w: &mut World,
    env: &Env,
    blobs: &BlobStore,
    bucket: &str,
    key: &str,
    version_id: &str,
    linked: &mut Vec<String>,
) {
    w.replicate_version(env, bucket, key, version_id, &mut |source| {
        let name = blobs.link(source).ok()?;
        linked.push(name.clone());
        Some(name)
    });
}
