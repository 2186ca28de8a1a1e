//! `Control`: every account's live world, the store, and the subscribers. It is the one
//! door through which state changes: [`Control::mutate`] runs a model function on a clone
//! of the world, writes the changed rows and the typed change events of the commit in one
//! SQLite transaction, and only then swaps the clone in and hands subscribers the
//! [`Commit`] with the new immutable snapshot, in commit order.
//!
//! Callers share it as `Arc<std::sync::Mutex<Control>>`; nothing inside awaits, so a
//! std mutex is right (mutations are serialised per daemon, as a simple and obviously
//! consistent order).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::change::{Commit, LOAD_ACTION, TICK_ACTION};
use super::store::{Store, StoreError, StorePaths};
use super::{ApiError, ApiResult, Env, Timestamp, World};

/// Called after every committed change with what changed and the account's new world.
/// Subscribers run under the control's lock, in registration order: they must be quick
/// (hand heavy work to a task).
pub type Subscriber = Box<dyn Fn(&Commit, &Arc<World>) + Send + Sync>;

pub struct Control {
    store: Store,
    worlds: BTreeMap<String, Arc<World>>,
    subscribers: Vec<Subscriber>,
}

impl Control {
    /// Opens the state directory (taking its lock) and loads every stored world.
    pub fn open(paths: &StorePaths) -> Result<Control, StoreError> {
        Control::load(Store::open(paths)?)
    }

    /// Loads every stored world from a database another daemon may be using, read-only
    /// (for `vpclab status`); a mutation on it fails.
    pub fn open_read_only(paths: &StorePaths) -> Result<Control, StoreError> {
        Control::load(Store::open_read_only(paths)?)
    }

    fn load(store: Store) -> Result<Control, StoreError> {
        let mut worlds: BTreeMap<String, World> = BTreeMap::new();
        for row in store.load_all()? {
            let world = worlds
                .entry(row.account.clone())
                .or_insert_with(|| World::empty_for_load(&row.account));
            match world.load_row(&row.kind, &row.body) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(kind = %row.kind, id = %row.id, "skipping a stored row of unknown kind")
                }
                Err(source) => {
                    return Err(StoreError::Corrupt {
                        kind: row.kind,
                        id: row.id,
                        source,
                    });
                }
            }
        }
        let worlds = worlds
            .into_iter()
            .map(|(account, mut w)| {
                w.ensure_meta();
                // Loading marks nothing dirty except a repaired meta row; keep that change
                // pending so the next mutation writes it.
                (account, Arc::new(w))
            })
            .collect();
        Ok(Control {
            store,
            worlds,
            subscribers: Vec::new(),
        })
    }

    pub fn state_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Registers a subscriber; it is called at once for every loaded world, as a commit
    /// of action [`LOAD_ACTION`] creating every row (so the fabric can be rebuilt from the
    /// stored state), then after every committed change.
    pub fn subscribe(&mut self, sub: Subscriber) {
        for (account, world) in &self.worlds {
            let load = Commit {
                seq: 0,
                account: account.clone(),
                action: LOAD_ACTION.to_string(),
                at: Timestamp::default(),
                changes: world.all_rows(),
            };
            sub(&load, world);
        }
        self.subscribers.push(sub);
    }

    /// The stored commits after sequence number `after`, oldest first (at most `limit`).
    pub fn commits_since(&self, after: u64, limit: usize) -> Result<Vec<Commit>, StoreError> {
        self.store.commits_since(after, limit)
    }

    /// Appends entry `seq` to the journal `stream` (see [`Store::journal_append`]).
    pub fn journal_append(&self, stream: &str, seq: u64, body: &str) -> Result<(), StoreError> {
        self.store.journal_append(stream, seq, body)
    }

    /// Every entry of the journal `stream`, oldest first.
    pub fn journal(&self, stream: &str) -> Result<Vec<(u64, String)>, StoreError> {
        self.store.journal(stream)
    }

    /// The stored rows of `account`'s world (see [`Store::rows_of`]).
    pub fn export_rows(&self, account: &str) -> Result<Vec<super::store::Row>, StoreError> {
        self.store.rows_of(account)
    }

    /// The accounts that have a world.
    pub fn accounts(&self) -> Vec<String> {
        self.worlds.keys().cloned().collect()
    }

    /// The current snapshot of an account's world, if it has one.
    pub fn snapshot(&self, account: &str) -> Option<Arc<World>> {
        self.worlds.get(account).cloned()
    }

    /// A read-only view for a request: makes sure the account exists and the region has
    /// its default VPC (a write the first time, as AWS accounts come with it), then
    /// returns the snapshot.
    pub fn read(&mut self, account: &str, env: &Env) -> ApiResult<Arc<World>> {
        let needs_init = match self.worlds.get(account) {
            Some(w) => !w.region_ready(&env.region),
            None => true,
        };
        if needs_init {
            self.mutate(account, env, false, |_, _| Ok(()))?;
        }
        self.worlds
            .get(account)
            .cloned()
            .ok_or_else(ApiError::internal)
    }

    /// The one door for changes. Runs `f` on a copy of the account's world (after making
    /// sure the region has its default VPC). If `f` fails, nothing changes. If `dry_run`,
    /// nothing is committed and a successful `f` becomes `DryRunOperation`. Otherwise the
    /// changed rows are committed in one transaction, then the copy becomes the live world
    /// and subscribers are told.
    pub fn mutate<R>(
        &mut self,
        account: &str,
        env: &Env,
        dry_run: bool,
        f: impl FnOnce(&mut World, &Env) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut next = match self.worlds.get(account) {
            Some(w) => World::clone(w),
            None => World::new(account),
        };
        next.ensure_region(env)?;
        let out = f(&mut next, env)?;
        if dry_run {
            return Err(ApiError::dry_run_ok());
        }
        self.commit(account, &env.action, env.now, next)?;
        Ok(out)
    }

    /// Commits `next` as the account's world: its changed rows and their change events in
    /// one transaction, then the swap and the subscribers. A mutation that changed nothing
    /// commits nothing and tells no one.
    fn commit(
        &mut self,
        account: &str,
        action: &str,
        at: Timestamp,
        mut next: World,
    ) -> ApiResult<()> {
        if !next.has_changes() {
            return Ok(());
        }
        let rows = next.take_changes().map_err(|e| {
            tracing::error!(error = %e, "could not serialise the world");
            ApiError::internal()
        })?;
        let action = if action.is_empty() {
            "vpclab:Unnamed"
        } else {
            action
        };
        let seq = self.store.commit(account, action, at, &rows).map_err(|e| {
            tracing::error!(error = %e, "could not commit a mutation");
            ApiError::internal()
        })?;
        let commit = Commit {
            seq,
            account: account.to_string(),
            action: action.to_string(),
            at,
            changes: rows
                .into_iter()
                .filter(|(kind, _)| *kind != super::META_KIND)
                .map(|(kind, w)| super::Change {
                    kind,
                    id: w.id,
                    op: w.op,
                })
                .collect(),
        };
        let next = Arc::new(next);
        self.worlds.insert(account.to_string(), next.clone());
        for sub in &self.subscribers {
            sub(&commit, &next);
        }
        Ok(())
    }

    /// Advances time-driven states (NAT gateways pending → available, …) in every world;
    /// commits and notifies only worlds that changed, then applies the store's row log.
    /// Called by the daemon's ticker.
    pub fn tick(&mut self, now: Timestamp) {
        let accounts: Vec<String> = self.worlds.keys().cloned().collect();
        for account in accounts {
            let Some(w) = self.worlds.get(&account) else {
                continue;
            };
            if !w.has_due_transitions(now) {
                continue;
            }
            let mut next = World::clone(w);
            next.advance(now);
            if let Err(e) = self.commit(&account, TICK_ACTION, now, next) {
                tracing::error!(code = %e.code, "tick could not commit");
            }
        }
        // Between requests: the commits' logged rows move into their table, in one
        // batch (see `store.rs`).
        self.store.settle();
    }
}

impl World {
    fn empty_for_load(account: &str) -> World {
        World::empty(account)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::store::StoreError;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    fn paths(dir: &Path) -> StorePaths {
        StorePaths {
            dir: dir.to_path_buf(),
            db: dir.join("test.db"),
            lock: dir.join("test.lock"),
        }
    }

    #[test]
    fn committed_changes_survive_a_reopen_and_failed_ones_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let vpc = {
            let mut c = Control::open(&paths(dir.path())).unwrap();
            let vpc = c
                .mutate("000000000000", &env(), false, |w, e| {
                    w.create_vpc(e, "10.0.0.0/16", None, &[])
                })
                .unwrap();
            // A mutation that changes the world and then fails must change nothing.
            let err = c
                .mutate("000000000000", &env(), false, |w, e| {
                    w.create_vpc(e, "10.1.0.0/16", None, &[])?;
                    w.create_subnet(e, "vpc-nope", "10.1.0.0/24", None, None, &[])
                })
                .unwrap_err();
            assert_eq!(err.code, "InvalidVpcID.NotFound");
            let dry = c
                .mutate("000000000000", &env(), true, |w, e| {
                    w.create_vpc(e, "10.2.0.0/16", None, &[])
                })
                .unwrap_err();
            assert_eq!(dry.code, "DryRunOperation");
            vpc
        };
        let c = Control::open(&paths(dir.path())).unwrap();
        let w = c.snapshot("000000000000").unwrap();
        assert!(w.vpcs.get(&vpc).is_some());
        let cidrs: Vec<String> = w.vpcs.iter().map(|v| v.cidr().to_string()).collect();
        assert_eq!(cidrs.len(), 2, "default VPC + the committed one: {cidrs:?}");
        assert!(
            !cidrs.contains(&"10.1.0.0/16".to_string())
                && !cidrs.contains(&"10.2.0.0/16".to_string())
        );
        // The allocator continues where it stopped: no id is handed out twice.
        let mut w2 = World::clone(&w);
        let next = w2.alloc_id("vpc");
        assert!(w.vpcs.get(&next).is_none());
    }

    #[test]
    fn each_commit_is_stored_and_delivered_with_its_typed_changes_in_order() {
        use std::sync::Mutex as StdMutex;

        use crate::model::{ChangeOp, Commit};

        let dir = tempfile::tempdir().unwrap();
        let seen: Arc<StdMutex<Vec<Commit>>> = Arc::default();
        let vpc = {
            let mut c = Control::open(&paths(dir.path())).unwrap();
            let sink = seen.clone();
            c.subscribe(Box::new(move |commit, _| {
                sink.lock().unwrap().push(commit.clone());
            }));
            let vpc = c
                .mutate(
                    "000000000000",
                    &env().with_action("CreateVpc"),
                    false,
                    |w, e| w.create_vpc(e, "10.0.0.0/16", None, &[]),
                )
                .unwrap();
            // A mutation that writes nothing is not a commit.
            c.mutate(
                "000000000000",
                &env().with_action("DescribeVpcs"),
                false,
                |_, _| Ok(()),
            )
            .unwrap();
            c.mutate(
                "000000000000",
                &env().with_action("DeleteVpc"),
                false,
                |w, e| w.delete_vpc(e, &vpc),
            )
            .unwrap();
            vpc
        };
        let seen = seen.lock().unwrap().clone();
        let actions: Vec<&str> = seen.iter().map(|c| c.action.as_str()).collect();
        // The first read of an account creates its default VPC: that is CreateVpc's
        // commit too (one transaction), so two commits in all.
        assert_eq!(actions, ["CreateVpc", "DeleteVpc"]);
        assert!(seen[0].seq < seen[1].seq);
        let op_of = |c: &Commit, kind: &str, id: &str| {
            c.changes
                .iter()
                .find(|ch| ch.kind == kind && ch.id == id)
                .map(|ch| ch.op)
        };
        assert_eq!(op_of(&seen[0], "vpc", &vpc), Some(ChangeOp::Created));
        assert_eq!(op_of(&seen[1], "vpc", &vpc), Some(ChangeOp::Deleted));
        assert!(
            seen[0].touches(&["route_table", "network_acl", "security_group"]),
            "a VPC comes with its main route table, default NACL and group"
        );
        // The trail survives a restart, in the same order with the same changes.
        let c = Control::open(&paths(dir.path())).unwrap();
        let stored = c.commits_since(0, 100).unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].changes, seen[0].changes);
        assert_eq!(stored[1].action, "DeleteVpc");
        assert_eq!(c.commits_since(stored[0].seq, 100).unwrap().len(), 1);
    }

    #[test]
    fn a_second_control_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Control::open(&paths(dir.path())).unwrap();
        assert!(matches!(
            Control::open(&paths(dir.path())),
            Err(StoreError::Locked(_))
        ));
    }

    #[test]
    fn subscribers_see_stored_worlds_then_every_commit_but_not_failures() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = Control::open(&paths(dir.path())).unwrap();
            c.mutate("000000000000", &env(), false, |_, _| Ok(()))
                .unwrap();
        }
        let mut c = Control::open(&paths(dir.path())).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        c.subscribe(Box::new(move |_, _| {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the stored world is announced at once"
        );
        c.mutate("000000000000", &env(), false, |w, e| {
            w.create_vpc(e, "10.0.0.0/16", None, &[])
        })
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let _ = c.mutate("000000000000", &env(), false, |w, e| {
            w.create_vpc(e, "10.0.0.0/8", None, &[])
        });
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a rejected mutation publishes nothing"
        );
        c.mutate("000000000000", &env(), false, |_, _| Ok(()))
            .unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a mutation that changed nothing publishes nothing"
        );
    }
}
