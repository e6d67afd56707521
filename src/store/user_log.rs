//! A user's event stream in the UserHub's own SQLite storage.
//!
//! Tables: `events` (the stream: seq, class, created_at, event, data), `idempotency` (push keys
//! and the seq they produced), `cursors` (each device's acknowledged seq) and `meta` (newest
//! seq, highest pruned seq, per class the bytes and events stored and the highest seq pruned,
//! last seen, next prune). The newest seq lives in `meta`, not in `MAX(seq)`, so pruning can
//! never make a seq be handed out twice. `idempotency` and `cursors` are lazy ([`LazyTable`]):
//! made by a hub's first keyed push or first acknowledgement, so a user's first connect creates
//! one table fewer each.
//!
//! Every event has a [`Class`]: a backend's, or a chat event the gateway made of what users did
//! (direct messages, reads, deletions, room changes). Each class is bounded on its own, by size
//! (`stored` bytes, event name plus data, kept in `meta`: an append that takes its class over the
//! bound prunes that class's oldest events at once, whatever their age) and by count and age (the
//! alarm's pass), so an append can only ever prune events of its own class: what other users send
//! never pushes out what a backend pushed. The kept events of one class may therefore lie below
//! the other's pruned ones; a replay reads what is kept, in seq order, and `pruned_through` (the
//! highest seq pruned of either class) still tells a client whenever anything after its `since`
//! is gone. Storage from before classes has the column added (its reserved chat events classed
//! by name); new storage puts the small columns before `event` and `data`, so scans that filter
//! on class or age never read a large event's overflow pages.
//!
//! A `room.updated` replaces the older ones of its room that it makes obsolete
//! ([`crate::stream::supersedes`]): they are deleted as it is appended. Nothing is lost (the
//! newer carries every value), so no pruned seq moves and `recovered` stays true.
//!
//! Every function is synchronous: SQLite storage calls do not yield, so a caller that appends and
//! then sends, or replays and then sends, cannot be interleaved with another request.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use super::local::{lazy_table, LazyTable, Local};
use crate::stream::{supersedes, Class};

/// Idempotency keys are remembered at least this long.
pub const IDEMPOTENCY_MS: i64 = 24 * 60 * 60 * 1000;

/// Version 1 made `idempotency` and `cursors` with the schema; version 2 makes them lazily;
/// version 3 classes every event.
const SCHEMA_VERSION: i64 = 3;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, class INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL);
";
/// The events only the gateway makes (their names are reserved to it): chat events.
const CHAT_EVENTS: &str =
    "'message', 'message.read', 'message.deleted', 'room.added', 'room.removed', 'room.updated'";
const IDEMPOTENCY: LazyTable = lazy_table!(
    "idempotency",
    "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID"
);
const CURSORS: LazyTable = lazy_table!(
    "cursors",
    "CREATE TABLE IF NOT EXISTS cursors (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID"
);

/// The size of an event as its class's byte bound counts it.
const SIZE: &str = "LENGTH(CAST(event AS BLOB)) + LENGTH(CAST(data AS BLOB))";

/// The `meta` keys of one class: bytes and events stored, the highest seq pruned.
struct ClassKeys {
    bytes: &'static str,
    events: &'static str,
    pruned: &'static str,
}

fn keys(class: Class) -> ClassKeys {
    match class {
        Class::Backend => ClassKeys {
            bytes: "bytes:backend",
            events: "events:backend",
            pruned: "pruned:backend",
        },
        Class::Chat => ClassKeys {
            bytes: "bytes:chat",
            events: "events:chat",
            pruned: "pruned:chat",
        },
    }
}

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

/// What one class of the stream holds, from its counters (an operator's report).
#[derive(Debug, Serialize)]
pub struct ClassStats {
    pub events: i64,
    pub bytes: i64,
    /// The highest seq of the class pruned.
    pub pruned_through: i64,
}

/// One device's acknowledged position.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceCursor {
    pub device: String,
    pub seq: i64,
    pub updated_at: i64,
}

/// An event just appended: its seq, and the bytes its class now stores.
pub struct Appended {
    pub seq: i64,
    pub class_bytes: i64,
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
        let local = self.local;
        self.local
            .migrate(SCHEMA, SCHEMA_VERSION, &[&IDEMPOTENCY, &CURSORS], |sql| {
                // Storage from before classes: every event it has reads as a backend's, except
                // the ones only the gateway makes; its byte count covered both classes and is
                // counted again per class. Asked first, in one query, so that storage made after
                // classes runs no statement that fails.
                let before_classes = local.int(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table'
                        AND name = 'events' AND sql NOT LIKE '%class INTEGER%') AS value",
                    vec![],
                );
                if before_classes.ok().flatten() != Some(1) {
                    return;
                }
                let _ = sql.exec(
                    "ALTER TABLE events ADD COLUMN class INTEGER NOT NULL DEFAULT 0",
                    None,
                );
                let _ = sql.exec(
                    &format!("UPDATE events SET class = 1 WHERE event IN ({CHAT_EVENTS})"),
                    None,
                );
                let _ = local.clear_meta("stored_bytes");
            })
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

    /// The highest seq pruned, of either class.
    pub fn pruned_through(&self) -> worker::Result<i64> {
        Ok(self.meta("pruned_through")?.unwrap_or(0))
    }

    /// The highest seq of `class` pruned (every event of the class up to it is gone).
    fn class_pruned(&self, class: Class) -> worker::Result<i64> {
        Ok(self.meta(keys(class).pruned)?.unwrap_or(0))
    }

    /// The counters of `class` (a stream that never had an event reads none).
    pub fn class_stats(&self, class: Class) -> worker::Result<ClassStats> {
        Ok(ClassStats {
            events: self.stored_events(class)?,
            bytes: self.stored_bytes(class)?,
            pruned_through: self.class_pruned(class)?,
        })
    }

    /// Appends an event: the counters come from the in-memory `meta`, then two statements (the
    /// insert, the counters written together), since this is the path of every push.
    pub fn append(
        &self,
        class: Class,
        event: &str,
        data: &Value,
        now_ms: i64,
    ) -> worker::Result<Appended> {
        let keys = keys(class);
        let seq = self.last_seq()? + 1;
        let data = data.to_string();
        let class_bytes = self.stored_bytes(class)? + (event.len() + data.len()) as i64;
        let class_events = self.stored_events(class)? + 1;
        self.sql.exec(
            "INSERT INTO events (seq, class, created_at, event, data) VALUES (?, ?, ?, ?, ?)",
            vec![
                seq.into(),
                class.code().into(),
                now_ms.into(),
                event.into(),
                data.into(),
            ],
        )?;
        self.local.set_metas(&[
            ("last_seq", seq),
            (keys.bytes, class_bytes),
            (keys.events, class_events),
        ])?;
        Ok(Appended { seq, class_bytes })
    }

    /// Bytes of `class` stored (counted once from the table if this hub predates the count).
    fn stored_bytes(&self, class: Class) -> worker::Result<i64> {
        self.counted(keys(class).bytes, class, &format!("SUM({SIZE})"))
    }

    /// Events of `class` stored (counted once from the table if this hub predates the count).
    pub fn stored_events(&self, class: Class) -> worker::Result<i64> {
        self.counted(keys(class).events, class, "COUNT(*)")
    }

    /// A per-class counter from `meta`, or `aggregate` over the class's events once, then kept.
    fn counted(&self, key: &str, class: Class, aggregate: &str) -> worker::Result<i64> {
        if let Some(value) = self.meta(key)? {
            return Ok(value);
        }
        // A stream that never had an event has nothing to count (a new hub's first push).
        if self.last_seq()? == 0 {
            return Ok(0);
        }
        let value = self
            .int(
                &format!("SELECT {aggregate} AS value FROM events WHERE class = ?"),
                vec![class.code().into()],
            )?
            .unwrap_or(0);
        self.set_meta(key, value)?;
        Ok(value)
    }

    /// Deletes the events of `class` with `seq <= through` and records it (the class's and the
    /// stream's pruned seq, the class's bytes and events).
    fn delete_through(&self, class: Class, through: i64) -> worker::Result<()> {
        #[derive(Deserialize)]
        struct Freed {
            bytes: Option<i64>,
            events: i64,
        }
        let keys = keys(class);
        let after = self.class_pruned(class)?;
        let (bytes, events) = (self.stored_bytes(class)?, self.stored_events(class)?);
        let range =
            || -> Vec<SqlStorageValue> { vec![class.code().into(), after.into(), through.into()] };
        let freed: Vec<Freed> = self
            .sql
            .exec(
                &format!("SELECT SUM({SIZE}) AS bytes, COUNT(*) AS events FROM events WHERE class = ? AND seq > ? AND seq <= ?"),
                range(),
            )?
            .to_array()?;
        let (freed_bytes, freed_events) = freed
            .first()
            .map_or((0, 0), |f| (f.bytes.unwrap_or(0), f.events));
        self.sql.exec(
            "DELETE FROM events WHERE class = ? AND seq > ? AND seq <= ?",
            range(),
        )?;
        self.local.set_metas(&[
            (keys.pruned, through.max(after)),
            ("pruned_through", through.max(self.pruned_through()?)),
            (keys.bytes, (bytes - freed_bytes).max(0)),
            (keys.events, (events - freed_events).max(0)),
        ])
    }

    /// Prunes the oldest events of `class` until it stores at most `max_bytes` (`class_bytes`
    /// now, as [`Appended`] says); the newest event always stays. Returns the highest seq
    /// pruned, if any.
    pub fn prune_bytes(
        &self,
        class: Class,
        class_bytes: i64,
        max_bytes: i64,
    ) -> worker::Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Sized {
            seq: i64,
            size: i64,
        }
        let mut excess = class_bytes - max_bytes;
        if excess <= 0 {
            return Ok(None);
        }
        let last_seq = self.last_seq()?;
        let mut cut = None;
        let mut after = self.class_pruned(class)?;
        while excess > 0 {
            let rows: Vec<Sized> = self
                .sql
                .exec(
                    &format!("SELECT seq, {SIZE} AS size FROM events WHERE class = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT 64"),
                    vec![class.code().into(), after.into(), last_seq.into()],
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
            self.delete_through(class, through)?;
        }
        Ok(cut)
    }

    /// Before `event` of `class` is appended for `room`: deletes the older ones of the same
    /// class, event and room that `newer` makes obsolete, and takes them off the class's
    /// counters. Returns how many went.
    pub fn supersede(
        &self,
        class: Class,
        event: &str,
        room: &str,
        newer: &Value,
    ) -> worker::Result<usize> {
        #[derive(Deserialize)]
        struct Older {
            seq: i64,
            data: String,
            size: i64,
        }
        let rows: Vec<Older> = self
            .sql
            .exec(
                &format!("SELECT seq, data, {SIZE} AS size FROM events WHERE event = ? AND class = ? AND json_extract(data, '$.room_id') = ?"),
                vec![event.into(), class.code().into(), room.into()],
            )?
            .to_array()?;
        let obsolete: Vec<&Older> = rows
            .iter()
            .filter(|row| {
                serde_json::from_str(&row.data).is_ok_and(|older| supersedes(newer, &older))
            })
            .collect();
        if obsolete.is_empty() {
            return Ok(0);
        }
        let (bytes, events) = (self.stored_bytes(class)?, self.stored_events(class)?);
        for older in &obsolete {
            self.sql
                .exec("DELETE FROM events WHERE seq = ?", vec![older.seq.into()])?;
        }
        let keys = keys(class);
        let freed: i64 = obsolete.iter().map(|older| older.size).sum();
        self.local.set_metas(&[
            (keys.bytes, (bytes - freed).max(0)),
            (keys.events, (events - obsolete.len() as i64).max(0)),
        ])?;
        Ok(obsolete.len())
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
        self.local.int_in(
            &IDEMPOTENCY,
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
        self.local.int_in(
            &CURSORS,
            "SELECT seq AS value FROM cursors WHERE device = ?",
            vec![device.into()],
        )
    }

    /// The highest cursor of any device: every event through it was acknowledged by one.
    pub fn max_cursor(&self) -> worker::Result<i64> {
        Ok(self
            .local
            .int_in(&CURSORS, "SELECT MAX(seq) AS value FROM cursors", vec![])?
            .unwrap_or(0))
    }

    /// The devices' cursors, most recently moved first, at most `limit`, and how many there
    /// are; none read when no device ever acknowledged (the table is never made here).
    pub fn cursors(&self, limit: i64) -> worker::Result<(Vec<DeviceCursor>, i64)> {
        if !self.local.has_table(&CURSORS)? {
            return Ok((Vec::new(), 0));
        }
        let cursors = self
            .sql
            .exec(
                "SELECT device, seq, updated_at FROM cursors ORDER BY updated_at DESC, device LIMIT ?",
                vec![limit.into()],
            )?
            .to_array()?;
        let count = self
            .int("SELECT COUNT(*) AS value FROM cursors", vec![])?
            .unwrap_or(0);
        Ok((cursors, count))
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
    /// tombstone (`{"id","deleted":true}`), keeping its seq, and takes the content off the chat
    /// class's bytes; returns how many were replaced.
    pub fn redact_message(&self, id: &str) -> worker::Result<usize> {
        #[derive(Deserialize)]
        struct Found {
            bytes: Option<i64>,
            events: i64,
        }
        const MATCH: &str =
            "WHERE event = 'message' AND class = ? AND json_extract(data, '$.id') = ?";
        let class = Class::Chat;
        let matching = || -> Vec<SqlStorageValue> { vec![class.code().into(), id.into()] };
        let found: Vec<Found> = self
            .sql
            .exec(
                &format!(
                    "SELECT SUM(LENGTH(CAST(data AS BLOB))) AS bytes, COUNT(*) AS events FROM events {MATCH}"
                ),
                matching(),
            )?
            .to_array()?;
        let Some(Found {
            bytes: Some(old),
            events,
        }) = found.into_iter().next()
        else {
            return Ok(0);
        };
        let bytes = self.stored_bytes(class)?;
        let tombstone = serde_json::json!({"id": id, "deleted": true}).to_string();
        let now = events * tombstone.len() as i64;
        let mut bindings = vec![tombstone.into()];
        bindings.extend(matching());
        self.sql
            .exec(&format!("UPDATE events SET data = ? {MATCH}"), bindings)?;
        self.set_meta(keys(class).bytes, (bytes - old + now).max(0))?;
        Ok(usize::try_from(events).unwrap_or_default())
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

    /// Deletes the events of each class that are outside the class's newest `keep_events` and
    /// older than `keep_ms`, and idempotency keys older than [`IDEMPOTENCY_MS`]. Returns when
    /// something can next become prunable (`None`: nothing until a later append asks again), so
    /// a hub with nothing to prune never wakes for it.
    pub fn prune(
        &self,
        keep_events: i64,
        keep_ms: i64,
        now_ms: i64,
    ) -> worker::Result<Option<i64>> {
        let mut next = self.prune_keys(now_ms)?;
        for class in Class::ALL {
            if let Some(due) = self.prune_class(class, keep_events, keep_ms, now_ms)? {
                next = Some(next.map_or(due, |next| next.min(due)));
            }
        }
        self.clear_meta("prune_at")?;
        Ok(next)
    }

    /// Retention of one class: it keeps its newest `keep_events` events and every event younger
    /// than `keep_ms`, whichever keeps more (an event goes only if both rules allow). Returns
    /// when the next event the count rule allows comes of age.
    fn prune_class(
        &self,
        class: Class,
        keep_events: i64,
        keep_ms: i64,
        now_ms: i64,
    ) -> worker::Result<Option<i64>> {
        // The newest event of the class beyond its newest `keep_events`, if it has that many.
        let Some(ceiling) = self.int(
            "SELECT seq AS value FROM events WHERE class = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            vec![class.code().into(), keep_events.into()],
        )?
        else {
            return Ok(None);
        };
        let highest = self.int(
            "SELECT MAX(seq) AS value FROM events WHERE class = ? AND seq <= ? AND created_at < ?",
            vec![
                class.code().into(),
                ceiling.into(),
                (now_ms - keep_ms).into(),
            ],
        )?;
        if let Some(highest) = highest {
            self.delete_through(class, highest)?;
        }
        Ok(self
            .int(
                "SELECT MIN(created_at) AS value FROM events WHERE class = ? AND seq <= ?",
                vec![class.code().into(), ceiling.into()],
            )?
            .map(|oldest| oldest + keep_ms))
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
