//! `Table<T>`: one kind of resource in a world, an ordered map from id to resource that
//! remembers which ids changed since the last commit. The change set is how the
//! `Control` knows which rows to write in the one SQLite transaction of a mutation, so
//! model code never talks to the store: it just uses `insert`, `get_mut` and `remove`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use super::change::ChangeOp;

/// A resource kind stored in a [`Table`].
pub trait Resource: Clone + std::fmt::Debug + Serialize + DeserializeOwned {
    /// The persistence kind, the `kind` column of the store (`"vpc"`, `"subnet"` …).
    /// Never change it once released: it names rows already on disk.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// The region the resource lives in (`"global"` for global resources).
    fn region(&self) -> &str;
}

/// Rows are shared (`Arc`) between snapshots and copied on write, so cloning a world for
/// a mutation costs a reference count per row, not a deep copy.
#[derive(Clone, Debug)]
pub struct Table<T> {
    rows: BTreeMap<String, Arc<T>>,
    /// The ids written since the last commit, each with whether the row existed before
    /// the first write (so a commit can say created, modified or deleted).
    dirty: BTreeMap<String, bool>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            dirty: BTreeMap::new(),
        }
    }
}

/// One row a commit writes: its id, what happened to it, and its new body (`None` when
/// deleted).
pub(crate) struct RowWrite {
    pub id: String,
    pub op: ChangeOp,
    pub body: Option<String>,
}

impl<T: Resource> Table<T> {
    pub fn get(&self, id: &str) -> Option<&T> {
        self.rows.get(id).map(|r| &**r)
    }

    /// Mutable access; marks the row changed.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let row = self.rows.get_mut(id)?;
        self.dirty.entry(id.to_string()).or_insert(true);
        Some(Arc::make_mut(row))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    /// Inserts (or replaces) a row under its own id; marks it changed.
    pub fn insert(&mut self, row: T) {
        let id = row.id().to_string();
        let existed = self.rows.contains_key(&id);
        self.dirty.entry(id.clone()).or_insert(existed);
        self.rows.insert(id, Arc::new(row));
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let row = self.rows.remove(id)?;
        self.dirty.entry(id.to_string()).or_insert(true);
        Some(Arc::unwrap_or_clone(row))
    }

    /// All rows, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.values().map(|r| &**r)
    }

    /// The rows of one region, in id order.
    pub fn in_region<'s, 'r>(
        &'s self,
        region: &'r str,
    ) -> impl Iterator<Item = &'s T> + use<'s, 'r, T> {
        self.rows
            .values()
            .map(|r| &**r)
            .filter(move |r| r.region() == region)
    }

    /// Ids of rows matching `pred` (collect first, then mutate: the borrow checker's way).
    pub fn ids_where(&self, mut pred: impl FnMut(&T) -> bool) -> Vec<String> {
        self.rows
            .values()
            .filter(|r| pred(r))
            .map(|r| r.id().to_string())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Takes the change set: each written row with its new JSON body, each deleted row
    /// with none. A row created and deleted within one mutation never happened.
    pub(crate) fn take_changes(&mut self) -> Result<Vec<RowWrite>, serde_json::Error> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for (id, existed) in dirty {
            let (op, body) = match (self.rows.get(&id), existed) {
                (Some(row), false) => (ChangeOp::Created, Some(serde_json::to_string(&**row)?)),
                (Some(row), true) => (ChangeOp::Modified, Some(serde_json::to_string(&**row)?)),
                (None, true) => (ChangeOp::Deleted, None),
                (None, false) => continue,
            };
            out.push(RowWrite { id, op, body });
        }
        Ok(out)
    }

    /// Loads one row from the store without marking it changed.
    pub(crate) fn load(&mut self, body: &str) -> Result<(), serde_json::Error> {
        let row: T = serde_json::from_str(body)?;
        self.rows.insert(row.id().to_string(), Arc::new(row));
        Ok(())
    }

    pub(crate) fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }
}
