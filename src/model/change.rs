//! Typed change events: what one committed mutation did, resource by resource.
//!
//! Every commit of the [`Control`](super::Control) yields a [`Commit`]: the account, the
//! action that caused it (`CreateVpc`, `ChangeResourceRecordSets`, `vpclab:Tick` …), the
//! time, and one [`Change`] per resource row it created, modified or deleted. The commit
//! is stored in the same SQLite transaction as the rows (tables `commits` and `changes`),
//! then handed to subscribers in commit order. Subscribers use it to do only the work a
//! change needs (the fabric recompiles only when a networking resource changed, the DNS
//! view only when a name can have changed); labs, the console and an audit trail read
//! the same events.
//!
//! When a subscriber registers, every stored world is announced as one commit of action
//! [`LOAD_ACTION`] in which every row is `Created`: from a subscriber's point of view
//! the world has just appeared.

use serde::Serialize;

use super::Timestamp;

/// The action of the synthetic commit that announces a stored world to a new subscriber.
pub const LOAD_ACTION: &str = "vpclab:Load";
/// The action of commits made by the daemon's ticker (time-driven state transitions).
pub const TICK_ACTION: &str = "vpclab:Tick";

/// What happened to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ChangeOp {
    Created,
    Modified,
    Deleted,
}

impl ChangeOp {
    /// The word stored in the `changes` table.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Modified => "modified",
            ChangeOp::Deleted => "deleted",
        }
    }
}

/// One resource a commit touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The resource kind: a [`Resource::KIND`](super::Resource::KIND) (`"vpc"`, …).
    pub kind: &'static str,
    pub id: String,
    pub op: ChangeOp,
}

/// One committed mutation of one account's world.
#[derive(Clone, Debug, Serialize)]
pub struct Commit {
    /// The store's sequence number of this commit (0 for [`LOAD_ACTION`] announcements),
    /// increasing across the daemon's whole life, restarts included.
    pub seq: u64,
    pub account: String,
    /// The API action (or `vpclab:…` internal action) that made the change.
    pub action: String,
    pub at: Timestamp,
    pub changes: Vec<Change>,
}

impl Commit {
    /// Whether any change is of one of these kinds.
    pub fn touches(&self, kinds: &[&str]) -> bool {
        self.changes.iter().any(|c| kinds.contains(&c.kind))
    }

    /// The changes of one kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Change> + 'a {
        self.changes.iter().filter(move |c| c.kind == kind)
    }

    /// Whether this is the announcement of a stored world to a new subscriber.
    pub fn is_load(&self) -> bool {
        self.action == LOAD_ACTION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_and_of_kind_select_by_resource_kind() {
        let c = Commit {
            seq: 7,
            account: "000000000000".into(),
            action: "CreateVpc".into(),
            at: Timestamp(0),
            changes: vec![
                Change {
                    kind: "vpc",
                    id: "vpc-1".into(),
                    op: ChangeOp::Created,
                },
                Change {
                    kind: "tags",
                    id: "vpc-1".into(),
                    op: ChangeOp::Modified,
                },
            ],
        };
        assert!(c.touches(&["subnet", "vpc"]));
        assert!(!c.touches(&["hosted_zone"]));
        assert_eq!(c.of_kind("vpc").count(), 1);
        assert!(!c.is_load());
    }
}
