//! A user's event stream in the UserHub's own SQLite storage.
//!
//! Tables: `events` (the stream: seq, event, data, created_at), `idempotency` (push keys and the
//! seq they produced), `cursors` (each device's acknowledged seq) and `meta` (newest seq, highest
//! pruned seq, last seen, next prune, bytes stored). The newest seq lives in `meta`, not in
//! `MAX(seq)`, so pruning can never make a seq be handed out twice. `idempotency` and `cursors`
//! are lazy ([`LazyTable`]): made by a hub's first keyed push or first acknowledgement, so a
//! user's first connect creates one table fewer each.
//!
//! The stream is bounded by size as well as by count and age: `stored_bytes` (event name plus
//! data, as stored) is kept in `meta`, and an append that takes it over the bound prunes the
//! oldest events at once, whatever their age.
//!
//! Every function is synchronous: SQLite storage calls do not yield, so a caller that appends and
//! then sends, or replays and then sends, cannot be interleaved with another request.

use serde::Deserialize;
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use super::local::{LazyTable, Local};
use crate::stream::prune_ceiling;

/// Idempotency keys are remembered at least this long.
pub const IDEMPOTENCY_MS: i64 = 24 * 60 * 60 * 1000;

/// Version 1 made `idempotency` and `cursors` with the schema; version 2 makes them lazily.
const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL);
";
const IDEMPOTENCY: LazyTable = LazyTable {
    name: "idempotency",
    meta_key: "table:idempotency",
    ddl: "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID",
};
const CURSORS: LazyTable = LazyTable {
    name: "cursors",
    meta_key: "table:cursors",
    ddl: "CREATE TABLE IF NOT EXISTS cursors (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID",
};

/// One stored event.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: String,
    pub data: String,
    pub created_at: i64,
}

impl StoredEvent {
    pub fn data_value(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// An event just appended: its seq, and the bytes the stream now stores.
pub struct Appended {
    pub seq: i64,
    pub stored_bytes: i64,
}

pub struct UserLog<'a> {
    local: &'a Local,
    sql: &'a SqlStorage,
}

impl<'a> UserLog<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self {
            local,
            sql: local.sql(),
        }
    }

    /// Brings the storage to the current schema; true when it had none (a new hub).
    pub fn migrate(&self) -> worker::Result<bool> {
        self.local
            .migrate(SCHEMA, SCHEMA_VERSION, &[&IDEMPOTENCY, &CURSORS], |_| {})
    }

    fn meta(&self, key: &str) -> worker::Result<Option<i64>> {
        self.local.meta(key)
    }

    fn set_meta(&self, key: &str, value: i64) -> worker::Result<()> {
        self.local.set_meta(key, value)
    }

    fn clear_meta(&self, key: &str) -> worker::Result<()> {
        self.local.clear_meta(key)
    }

    pub fn last_seq(&self) -> worker::Result<i64> {
        Ok(self.meta("last_seq")?.unwrap_or(0))
    }

    pub fn pruned_through(&self) -> worker::Result<i64> {
        Ok(self.meta("pruned_through")?.unwrap_or(0))
    }

    /// Appends an event: the counters come from the in-memory `meta`, then two statements (the
    /// insert, the counters written together), since this is the path of every push.
    pub fn append(&self, event: &str, data: &Value, now_ms: i64) -> worker::Result<Appended> {
        let seq = self.last_seq()? + 1;
        let stored = self.stored_bytes()?;
        let data = data.to_string();
        let stored_bytes = stored + (event.len() + data.len()) as i64;
        self.sql.exec(
            "INSERT INTO events (seq, event, data, created_at) VALUES (?, ?, ?, ?)",
            vec![seq.into(), event.into(), data.into(), now_ms.into()],
        )?;
        self.local
            .set_metas(&[("last_seq", seq), ("stored_bytes", stored_bytes)])?;
        Ok(Appended { seq, stored_bytes })
    }

    /// Bytes of events stored (counted once from the table if this hub predates the count).
    pub fn stored_bytes(&self) -> worker::Result<i64> {
        if let Some(bytes) = self.meta("stored_bytes")? {
            return Ok(bytes);
        }
        // Through the newest seq: every event, without binding i64::MAX (beyond JavaScript's
        // safe integers, which the runtime warns about once per new hub).
        let bytes = self.bytes_through(self.last_seq()?)?;
        self.set_meta("stored_bytes", bytes)?;
        Ok(bytes)
    }

    fn bytes_through(&self, seq: i64) -> worker::Result<i64> {
        Ok(self
            .int(
                "SELECT SUM(LENGTH(CAST(event AS BLOB)) + LENGTH(CAST(data AS BLOB))) AS value FROM events WHERE seq <= ?",
                vec![seq.into()],
            )?
            .unwrap_or(0))
    }

    /// Deletes events with `seq <= through` and records it (`pruned_through`, bytes stored).
    fn delete_through(&self, through: i64) -> worker::Result<()> {
        let freed = self.bytes_through(through)?;
        self.sql
            .exec("DELETE FROM events WHERE seq <= ?", vec![through.into()])?;
        if through > self.pruned_through()? {
            self.set_meta("pruned_through", through)?;
        }
        let stored = self.stored_bytes()?;
        self.set_meta("stored_bytes", (stored - freed).max(0))
    }

    /// Prunes the oldest events until at most `max_bytes` are stored (`stored_bytes` now, as
    /// [`Appended`] says); the newest event always stays. Returns the highest seq pruned, if any.
    pub fn prune_bytes(&self, stored_bytes: i64, max_bytes: i64) -> worker::Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Sized {
            seq: i64,
            size: i64,
        }
        let mut excess = stored_bytes - max_bytes;
        if excess <= 0 {
            return Ok(None);
        }
        let last_seq = self.last_seq()?;
        let mut cut = None;
        let mut after = self.pruned_through()?;
        while excess > 0 {
            let rows: Vec<Sized> = self
                .sql
                .exec(
                    "SELECT seq, LENGTH(CAST(event AS BLOB)) + LENGTH(CAST(data AS BLOB)) AS size FROM events WHERE seq > ? AND seq < ? ORDER BY seq LIMIT 64",
                    vec![after.into(), last_seq.into()],
                )?
                .to_array()?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if excess <= 0 {
                    break;
                }
                excess -= row.size;
                cut = Some(row.seq);
                after = row.seq;
            }
        }
        if let Some(through) = cut {
            self.delete_through(through)?;
        }
        Ok(cut)
    }

    /// Events with `from <= seq <= through`, oldest first, at most `limit`.
    pub fn range(&self, from: i64, through: i64, limit: i64) -> worker::Result<Vec<StoredEvent>> {
        self.sql
            .exec(
                "SELECT seq, event, data, created_at FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                vec![from.into(), through.into(), limit.into()],
            )?
            .to_array()
    }

    pub fn idempotent_seq(&self, key: &str) -> worker::Result<Option<i64>> {
        if !self.local.has_table(&IDEMPOTENCY)? {
            return Ok(None);
        }
        self.int(
            "SELECT seq AS value FROM idempotency WHERE key = ?",
            vec![key.into()],
        )
    }

    pub fn remember_key(&self, key: &str, seq: i64, now_ms: i64) -> worker::Result<()> {
        self.local.create_table(&IDEMPOTENCY)?;
        self.sql.exec(
            "INSERT OR IGNORE INTO idempotency (key, seq, created_at) VALUES (?, ?, ?)",
            vec![key.into(), seq.into(), now_ms.into()],
        )?;
        Ok(())
    }

    pub fn cursor(&self, device: &str) -> worker::Result<Option<i64>> {
        if !self.local.has_table(&CURSORS)? {
            return Ok(None);
        }
        self.int(
            "SELECT seq AS value FROM cursors WHERE device = ?",
            vec![device.into()],
        )
    }

    /// Moves a device's cursor forward (never back); returns the stored cursor.
    pub fn advance_cursor(&self, device: &str, seq: i64, now_ms: i64) -> worker::Result<i64> {
        self.local.create_table(&CURSORS)?;
        self.sql.exec(
            "INSERT INTO cursors (device, seq, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(device) DO UPDATE SET seq = MAX(seq, excluded.seq), updated_at = excluded.updated_at",
            vec![device.into(), seq.into(), now_ms.into()],
        )?;
        Ok(self.cursor(device)?.unwrap_or(seq))
    }

    /// The user's revocation cut-off (unix seconds), if any.
    pub fn revoked_before(&self) -> worker::Result<Option<i64>> {
        self.meta("revoked_before")
    }

    /// Records a revocation cut-off; an earlier one never replaces a later one.
    pub fn revoke(&self, cutoff: i64) -> worker::Result<i64> {
        let cutoff = self.revoked_before()?.map_or(cutoff, |old| old.max(cutoff));
        self.set_meta("revoked_before", cutoff)?;
        Ok(cutoff)
    }

    /// Replaces the content of every stored `message` event for direct message `id` with a
    /// tombstone (`{"id","deleted":true}`), keeping its seq; returns how many were replaced.
    pub fn redact_message(&self, id: &str) -> worker::Result<usize> {
        let tombstone = serde_json::json!({"id": id, "deleted": true}).to_string();
        let cursor = self.sql.exec(
            "UPDATE events SET data = ? WHERE event = 'message' AND json_extract(data, '$.id') = ?",
            vec![tombstone.into(), id.into()],
        )?;
        Ok(cursor.rows_written())
    }

    pub fn last_seen(&self) -> worker::Result<Option<i64>> {
        self.meta("last_seen")
    }

    pub fn set_last_seen(&self, now_ms: i64) -> worker::Result<()> {
        self.set_meta("last_seen", now_ms)
    }

    /// When the next retention pass is due, if any.
    pub fn prune_at(&self) -> worker::Result<Option<i64>> {
        self.meta("prune_at")
    }

    /// Asks for a retention pass at `at_ms` unless one is due earlier; true when the due time
    /// moved (the hub's alarm may need to move with it).
    pub fn request_prune(&self, at_ms: i64) -> worker::Result<bool> {
        match self.prune_at()? {
            Some(due) if due <= at_ms => Ok(false),
            _ => self.set_meta("prune_at", at_ms).map(|()| true),
        }
    }

    /// Deletes events that are outside the newest `keep_events` and older than `keep_ms`, and
    /// idempotency keys older than [`IDEMPOTENCY_MS`]. Returns when something can next become
    /// prunable (`None`: nothing until a later append asks again), so a hub with nothing to prune
    /// never wakes for it.
    pub fn prune(
        &self,
        keep_events: i64,
        keep_ms: i64,
        now_ms: i64,
    ) -> worker::Result<Option<i64>> {
        let ceiling = prune_ceiling(self.last_seq()?, keep_events);
        let highest = self.int(
            "SELECT MAX(seq) AS value FROM events WHERE seq <= ? AND created_at < ?",
            vec![ceiling.into(), (now_ms - keep_ms).into()],
        )?;
        if let Some(highest) = highest {
            self.delete_through(highest)?;
        }
        let next_key = self.prune_keys(now_ms)?;
        let next_event = self
            .int(
                "SELECT MIN(created_at) AS value FROM events WHERE seq <= ?",
                vec![ceiling.into()],
            )?
            .map(|oldest| oldest + keep_ms);
        self.clear_meta("prune_at")?;
        Ok(next_event.into_iter().chain(next_key).min())
    }

    /// Forgets idempotency keys older than [`IDEMPOTENCY_MS`]; returns when the oldest left is due.
    fn prune_keys(&self, now_ms: i64) -> worker::Result<Option<i64>> {
        if !self.local.has_table(&IDEMPOTENCY)? {
            return Ok(None);
        }
        self.sql.exec(
            "DELETE FROM idempotency WHERE created_at < ?",
            vec![SqlStorageValue::from(now_ms - IDEMPOTENCY_MS)],
        )?;
        Ok(self
            .int("SELECT MIN(created_at) AS value FROM idempotency", vec![])?
            .map(|oldest| oldest + IDEMPOTENCY_MS))
    }

    fn int(&self, query: &str, bindings: Vec<SqlStorageValue>) -> worker::Result<Option<i64>> {
        self.local.int(query, bindings)
    }
}
