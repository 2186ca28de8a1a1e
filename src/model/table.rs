//! `Table<T>`: one kind of resource in a world, an ordered map from id to resource that
//! remembers which ids changed since the last commit. The change set is how the
//! `Control` knows which rows to write in the one SQLite transaction of a mutation, so
//! model code never talks to the store: it just uses `insert`, `get_mut` and `remove`.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;

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

/// The rows live in a persistent ordered map (`imbl::OrdMap`, a B-tree whose nodes are
/// shared between versions): cloning a world for a mutation is a reference count per
/// table, and a write copies only the path to the row it changes, so neither grows with
/// the number of resources. Rows (`Arc<T>`) and ids (`Arc<str>`) are shared too, so
/// copying a node copies no resource.
#[derive(Clone, Debug)]
pub struct Table<T> {
    rows: OrdMap<Arc<str>, Arc<T>>,
    /// The ids written since the last commit, each with whether the row existed before
    /// the first write (so a commit can say created, modified or deleted).
    dirty: BTreeMap<String, bool>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: OrdMap::new(),
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
        let id: Arc<str> = Arc::from(row.id());
        let existed = self.rows.contains_key(&id);
        self.dirty.entry(id.to_string()).or_insert(existed);
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

    /// The rows whose id is `>= start`, in id order (a prefix scan starts here).
    pub fn range_from<'s>(&'s self, start: &str) -> impl Iterator<Item = &'s T> + use<'s, T> {
        let start: Arc<str> = Arc::from(start);
        self.rows.range(start..).map(|(_, r)| &**r)
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

    /// The rows that differ from `older` (an earlier version of this table): each
    /// changed or added row's id with `Some(row)`, each removed one's with `None`, in id
    /// order. Subtrees the two versions share are skipped, so after one commit this
    /// costs about the commit's rows, not the table's. `T: Eq` lets `Arc<T>` compare by
    /// pointer first: rows the versions share are not compared field by field.
    pub fn changes_since<'a>(
        &'a self,
        older: &'a Table<T>,
    ) -> impl Iterator<Item = (&'a str, Option<&'a T>)> + 'a
    where
        T: Eq,
    {
        older.rows.diff(&self.rows).map(|d| match d {
            imbl::ordmap::DiffItem::Add(k, v) => (&**k, Some(&**v)),
            imbl::ordmap::DiffItem::Update { new: (k, v), .. } => (&**k, Some(&**v)),
            imbl::ordmap::DiffItem::Remove(k, _) => (&**k, None),
        })
    }

    /// Whether `other` is this very version of the table (shares its root): a cheap
    /// "nothing changed here" for a runtime that kept the version it last acted on.
    pub fn same_version(&self, other: &Table<T>) -> bool {
        self.rows.ptr_eq(&other.rows)
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
            let (op, body) = match (self.rows.get(id.as_str()), existed) {
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
        self.rows.insert(Arc::from(row.id()), Arc::new(row));
        Ok(())
    }

    pub(crate) fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        id: String,
        n: u32,
    }

    impl Resource for Row {
        const KIND: &'static str = "row";
        fn id(&self) -> &str {
            &self.id
        }
        fn region(&self) -> &str {
            "global"
        }
    }

    fn row(id: &str, n: u32) -> Row {
        Row { id: id.into(), n }
    }

    #[test]
    fn a_copy_is_independent_of_the_original_and_both_iterate_in_id_order() {
        let mut live = Table::default();
        for i in (0..500).rev() {
            live.insert(row(&format!("r-{i:04}"), i));
        }
        live.take_changes().unwrap();
        let mut copy = live.clone();
        copy.get_mut("r-0007").unwrap().n = 700;
        copy.remove("r-0100");
        copy.insert(row("r-9999", 1));
        // The original (what readers and subscribers hold) did not move.
        assert_eq!(live.get("r-0007").unwrap().n, 7);
        assert!(live.contains("r-0100") && !live.contains("r-9999"));
        assert_eq!(live.len(), 500);
        assert!(!live.has_changes());
        // The copy knows exactly what it changed.
        let changes: Vec<(String, ChangeOp)> = copy
            .take_changes()
            .unwrap()
            .into_iter()
            .map(|w| (w.id, w.op))
            .collect();
        assert_eq!(
            changes,
            [
                ("r-0007".to_string(), ChangeOp::Modified),
                ("r-0100".to_string(), ChangeOp::Deleted),
                ("r-9999".to_string(), ChangeOp::Created),
            ]
        );
        let ids: Vec<&str> = copy.iter().map(|r| r.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "rows iterate in id order (determinism)");
        assert_eq!(copy.len(), 500);
    }
}
