//! Record values and names as Route 53 carries them: presentation-format values parsed
//! into typed record data (so a change batch with a bad value is refused when it is
//! submitted, not when a query hits it), and the canonical key of a name.

use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

/// Why a record value or name is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RdataError {
    /// A value that does not parse as its record type.
    #[error("invalid {rtype} value {value:?}: {reason}")]
    BadValue {
        /// The record type.
        rtype: RecordType,
        /// The offending value.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A record name outside the zone it is added to.
    #[error("{name} is not in zone {zone}")]
    OutOfZone {
        /// The record's name.
        name: String,
        /// The zone's name.
        zone: String,
    },
}

/// Parses one presentation-format value of `rtype` as Route 53's API carries it.
pub fn parse_rdata(rtype: RecordType, value: &str) -> Result<RData, RdataError> {
    let bad = |reason: String| RdataError::BadValue {
        rtype,
        value: value.to_owned(),
        reason,
    };
    // The zone-file parser treats `;` as a comment and `(`/`)` as line continuation;
    // an empty value would parse to nothing useful. Reject these up front.
    if value.trim().is_empty() {
        return Err(bad("empty value".to_owned()));
    }
    let rdata = RData::try_from_str(rtype, value).map_err(|e| bad(e.to_string()))?;
    if rdata.record_type() != rtype {
        return Err(bad(format!("parsed as {}", rdata.record_type())));
    }
    // What parses must also encode (a TXT string over 255 octets does not): refuse it
    // here rather than fail every answer that would carry it.
    rdata.to_bytes().map_err(|e| bad(e.to_string()))?;
    Ok(rdata)
}

/// The key for a name: lower-case, without the trailing dot, `\052` spelled `*` (Route
/// 53 returns wildcard labels octal-escaped).
pub fn name_key(name: &str) -> String {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut key = trimmed.to_ascii_lowercase();
    if key.contains("\\052") {
        key = key.replace("\\052", "*");
    }
    key
}

/// Whether `key` is `apex` or below it. The root (`""`) contains every name.
pub fn in_domain(key: &str, apex: &str) -> bool {
    if apex.is_empty() {
        return true;
    }
    if key.len() == apex.len() {
        return key == apex;
    }
    key.len() > apex.len()
        && key.ends_with(apex)
        && key.as_bytes()[key.len() - apex.len() - 1] == b'.'
}
