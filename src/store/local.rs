//! A Durable Object's own SQLite storage as the hubs' logs use it: the `meta` table (named
//! integers: the newest seq, flush and prune progress, alarm bookkeeping) and single-integer
//! queries.
//!
//! SQLite storage calls are synchronous, but each one crosses into JavaScript and back and
//! turns its rows into JavaScript objects before Rust sees them. The `meta` table is read far
//! more than it is written: a room message read a dozen keys on its way through the append, the
//! D1 copy and the alarm plan (~12% of a small room's sampled time in a profile, though
//! reading them from memory made no difference measurable in CPU-seconds: docs/BENCHMARKS.md,
//! third round). So [`Local`] keeps a copy of the whole table in memory, loaded in one
//! query the first time a key is read after the object starts, and written through on every
//! change. Every change to `meta` goes through here (or, for a bulk statement, forgets the copy
//! with [`Local::forget_meta`]), and an object is single-threaded, so the copy cannot disagree
//! with the table; a restart only means loading it again.
//!
//! The hubs' tables keyed by text are `WITHOUT ROWID`: one b-tree each instead of a table and
//! its key's index, so a new object writes fewer pages and opens a smaller schema on every wake
//! (a new UserHub's connect wrote 41 pages before, 33 after; docs/BENCHMARKS.md, sixth round).
//! Storage made before keeps its tables as they are: the rows and queries are the same.
//!
//! Tables that many objects never write are [`LazyTable`]s: created by their first write, not
//! with the schema. Every table is pages a new object writes and part of the schema every wake
//! opens, and a user who never acknowledges an event has no cursors to keep. `meta` records the
//! lazy tables that exist (`table:<name>`), so reading one that does not is answered without a
//! query, and storage made while they were eager has them recorded when it is migrated.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

/// The `meta` table: one integer per key.
pub const META_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;";

/// A [`LazyTable`] named `$name` (recorded in `meta` as `table:$name`), made by `$ddl`.
macro_rules! lazy_table {
    ($name:literal, $ddl:literal) => {
        $crate::store::local::LazyTable {
            name: $name,
            meta_key: concat!("table:", $name),
            ddl: $ddl,
        }
    };
}

pub(crate) use lazy_table;

/// A table created by its first write rather than with the schema.
pub struct LazyTable {
    pub name: &'static str,
    /// The `meta` key that records it exists: `table:<name>`.
    pub meta_key: &'static str,
    /// `CREATE TABLE IF NOT EXISTS …`
    pub ddl: &'static str,
}

/// An object's SQLite storage with its `meta` table held in memory.
pub struct Local {
    sql: SqlStorage,
    /// `None` until first read (and after [`Local::forget_meta`]).
    meta: RefCell<Option<HashMap<String, i64>>>,
}

impl Local {
    pub fn new(sql: SqlStorage) -> Self {
        Self {
            sql,
            meta: RefCell::new(None),
        }
    }

    pub fn sql(&self) -> &SqlStorage {
        &self.sql
    }

    /// Brings the storage to `version` of `schema` (idempotent statements, with `meta`) unless
    /// it records that version already; `upgrade` runs first on storage made before that
    /// version, and whichever of the `lazy` tables it already has are recorded. One read when nothing is to
    /// do: objects are constructed on every wake from hibernation, and running the whole
    /// `CREATE … IF NOT EXISTS` batch each time was a measurable share of a connect. True when
    /// the storage recorded no version at all (a new object, or one made before versions were
    /// recorded). Storage without a `meta` table is new (every version of every object made
    /// `meta` with its first tables), so it has nothing to upgrade and none of the lazy tables to
    /// record.
    pub fn migrate(
        &self,
        schema: &str,
        version: i64,
        lazy: &[&LazyTable],
        upgrade: impl FnOnce(&SqlStorage),
    ) -> worker::Result<bool> {
        let (found, is_new) = match self.meta("schema") {
            Ok(found) => (found, false),
            Err(_) => (None, true),
        };
        if found == Some(version) {
            return Ok(false);
        }
        if !is_new {
            upgrade(&self.sql);
        }
        self.sql.exec(schema, None)?;
        self.sql.exec(META_SCHEMA, None)?;
        if is_new {
            // The table was just made, so the copy is known: no read after the first one.
            self.meta.replace(Some(HashMap::new()));
        } else {
            self.record_existing(lazy)?;
        }
        self.set_meta("schema", version)?;
        Ok(found.is_none())
    }

    /// Records which of `lazy` this storage already has (made when they were not lazy yet).
    fn record_existing(&self, lazy: &[&LazyTable]) -> worker::Result<()> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
        }
        if lazy.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; lazy.len()].join(", ");
        let names: Vec<SqlStorageValue> = lazy.iter().map(|table| table.name.into()).collect();
        let rows: Vec<Row> = self
            .sql
            .exec(
                &format!(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})"
                ),
                names,
            )?
            .to_array()?;
        let entries: Vec<(&str, i64)> = lazy
            .iter()
            .filter(|table| rows.iter().any(|row| row.name == table.name))
            .map(|table| (table.meta_key, 1))
            .collect();
        self.set_metas(&entries)
    }

    /// Whether a lazy table has been created (nothing to read from it if not).
    pub fn has_table(&self, table: &LazyTable) -> worker::Result<bool> {
        Ok(self.meta(table.meta_key)?.is_some())
    }

    /// Creates a lazy table before its first write; nothing when it exists.
    pub fn create_table(&self, table: &LazyTable) -> worker::Result<()> {
        if !self.has_table(table)? {
            self.sql.exec(table.ddl, None)?;
            self.set_meta(table.meta_key, 1)?;
        }
        Ok(())
    }

    /// What `use_table` answers when lazy `table` was ever made; `absent` (without a query)
    /// when not.
    fn if_made<T>(
        &self,
        table: &LazyTable,
        absent: T,
        use_table: impl FnOnce() -> worker::Result<T>,
    ) -> worker::Result<T> {
        if self.has_table(table)? {
            use_table()
        } else {
            Ok(absent)
        }
    }

    /// The rows `query` selects from lazy `table`: none when it was never made.
    pub fn rows<T: DeserializeOwned>(
        &self,
        table: &LazyTable,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> worker::Result<Vec<T>> {
        self.if_made(table, Vec::new(), || {
            self.sql.exec(query, bindings)?.to_array()
        })
    }

    /// The values of the one column `query` selects from lazy `table`, row by row
    /// ([`Local::rows`]).
    pub fn column<T: DeserializeOwned>(
        &self,
        table: &LazyTable,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> worker::Result<Vec<T>> {
        let rows: Vec<HashMap<String, T>> = self.rows(table, query, bindings)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| row.into_values().next())
            .collect())
    }

    /// The integer `query` selects from lazy `table` ([`Local::int`]): none when it was never
    /// made.
    pub fn int_in(
        &self,
        table: &LazyTable,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> worker::Result<Option<i64>> {
        self.if_made(table, None, || self.int(query, bindings))
    }

    /// Runs `statement` on lazy `table` if it was ever made (there is nothing to change if not).
    pub fn change(
        &self,
        table: &LazyTable,
        statement: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> worker::Result<()> {
        self.if_made(table, (), || {
            self.sql.exec(statement, bindings)?;
            Ok(())
        })
    }

    pub fn meta(&self, key: &str) -> worker::Result<Option<i64>> {
        let mut copy = self.meta.borrow_mut();
        if copy.is_none() {
            *copy = Some(self.load_meta()?);
        }
        Ok(copy.as_ref().and_then(|meta| meta.get(key).copied()))
    }

    fn load_meta(&self) -> worker::Result<HashMap<String, i64>> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            value: i64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT key, value FROM meta", None)?
            .to_array()?;
        Ok(rows.into_iter().map(|row| (row.key, row.value)).collect())
    }

    pub fn set_meta(&self, key: &str, value: i64) -> worker::Result<()> {
        self.set_metas(&[(key, value)])
    }

    /// Writes several keys in one statement.
    pub fn set_metas(&self, entries: &[(&str, i64)]) -> worker::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = vec!["(?, ?)"; entries.len()].join(", ");
        let bindings = entries
            .iter()
            .flat_map(|(key, value)| [(*key).into(), (*value).into()])
            .collect::<Vec<SqlStorageValue>>();
        self.sql.exec(
            &format!(
                "INSERT INTO meta (key, value) VALUES {rows} ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            bindings,
        )?;
        if let Some(meta) = self.meta.borrow_mut().as_mut() {
            for (key, value) in entries {
                meta.insert((*key).to_owned(), *value);
            }
        }
        Ok(())
    }

    /// Deletes a key; a key the copy knows is absent costs nothing.
    pub fn clear_meta(&self, key: &str) -> worker::Result<()> {
        if let Some(meta) = self.meta.borrow_mut().as_mut() {
            if meta.remove(key).is_none() {
                return Ok(());
            }
        }
        self.sql
            .exec("DELETE FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(())
    }

    /// After a statement that changed `meta` in bulk: the next read loads it again.
    pub fn forget_meta(&self) {
        self.meta.replace(None);
    }

    /// The single integer a query selects `AS value`, if any row has one.
    pub fn int(&self, query: &str, bindings: Vec<SqlStorageValue>) -> worker::Result<Option<i64>> {
        #[derive(Deserialize)]
        struct IntRow {
            value: Option<i64>,
        }
        let rows: Vec<IntRow> = self.sql.exec(query, bindings)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|row| row.value))
    }
}
