//! A room's message stream, members and read cursors in the Room Durable Object's own SQLite.
//!
//! This is the authoritative copy: a message is here, with its seq, before anyone is told about
//! it. D1 gets a copy later (the room's alarm flushes it), so this log also records how far the
//! copy has got: `flushed_through` for messages, `read_dirty` for cursors not yet copied.
//!
//! Tables: `room` (the room's id, one row), `messages` (the stream), `members` (a mirror of D1
//! membership with each member's read cursor), `removed` (users removed since they were last
//! added: the room never re-learns them from D1, which may still list them for a moment),
//! `revoked` (per-user revocation cut-offs) and `meta` (newest seq, flush progress, activity
//! timing). Every function is synchronous, so a caller that appends and then sends cannot be
//! interleaved with another request.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use super::local::Local;
use crate::message::{MessageRow, RoomChange, RoomMessage, MESSAGE_COLUMNS};

/// Mentions read per message: a message naming more notifies only the first ones.
pub const MAX_MENTIONS: i64 = 50;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS room (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, sender_id TEXT, type TEXT NOT NULL, body TEXT NOT NULL, url TEXT, title TEXT, data TEXT, client_id TEXT, created_at INTEGER NOT NULL, edited_at INTEGER, deleted_at INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client_id ON messages (COALESCE(sender_id, ''), client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (id);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY, message_seq INTEGER NOT NULL, message_id TEXT NOT NULL, kind TEXT NOT NULL, body TEXT, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (user_id TEXT PRIMARY KEY, read_seq INTEGER NOT NULL, read_dirty INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS removed (user_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revoked (user_id TEXT PRIMARY KEY, before INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS emits (seq INTEGER PRIMARY KEY, event TEXT NOT NULL, args TEXT NOT NULL, skip TEXT, at INTEGER NOT NULL);
";

/// Version 2 added edits and recalls (`changes`, `edited_at`, `deleted_at`); version 3 a
/// backend's emitted events (`emits`).
const SCHEMA_VERSION: i64 = 3;

/// Emitted events a room keeps: the newest ones, for resumes (they are not history: D1 never
/// has them).
pub const EMIT_WINDOW: i64 = 1000;

/// One entry of the room's stream: a message, or a change to one.
#[derive(Debug, Clone)]
pub enum RoomEntry {
    Message(RoomMessage),
    Change(RoomChange),
    Emit(RoomEmit),
}

impl RoomEntry {
    pub fn seq(&self) -> i64 {
        match self {
            RoomEntry::Message(message) => message.seq,
            RoomEntry::Change(change) => change.seq,
            RoomEntry::Emit(emit) => emit.seq,
        }
    }
}

/// A backend's event emitted to the room (`api::sockets`): in the stream with a seq of its
/// own, so members see it in order among the messages and a resume replays it; never copied to
/// D1 (it is not history).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEmit {
    pub seq: i64,
    pub event: String,
    pub args: Vec<Value>,
    /// Socket ids and rooms whose sockets skip it.
    pub except: Vec<String>,
}

#[derive(Deserialize)]
struct EmitRow {
    seq: i64,
    event: String,
    args: String,
    skip: Option<String>,
}

impl From<EmitRow> for RoomEmit {
    fn from(row: EmitRow) -> Self {
        Self {
            seq: row.seq,
            event: row.event,
            args: serde_json::from_str(&row.args).unwrap_or_default(),
            except: row
                .skip
                .and_then(|except| serde_json::from_str(&except).ok())
                .unwrap_or_default(),
        }
    }
}

/// A read cursor that D1 has not seen yet.
#[derive(Debug, Deserialize)]
pub struct DirtyCursor {
    pub user_id: String,
    pub read_seq: i64,
}

#[derive(Deserialize)]
struct TextRow {
    value: String,
}

pub struct RoomLog<'a> {
    local: &'a Local,
    sql: &'a SqlStorage,
}

impl<'a> RoomLog<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self {
            local,
            sql: local.sql(),
        }
    }

    /// Brings the storage to the current schema; true when it had none (a new room).
    pub fn migrate(&self) -> worker::Result<bool> {
        self.local.migrate(SCHEMA, SCHEMA_VERSION, &[], |sql| {
            // A room from before edits has `messages` without edited_at / deleted_at: add them.
            // On any other room these fail harmlessly (no table yet, or the column exists).
            for column in ["edited_at", "deleted_at"] {
                let _ = sql.exec(
                    &format!("ALTER TABLE messages ADD COLUMN {column} INTEGER"),
                    None,
                );
            }
        })
    }

    /// The room's id, once any request has told it.
    pub fn room_id(&self) -> worker::Result<Option<String>> {
        let rows: Vec<TextRow> = self
            .sql
            .exec("SELECT id AS value FROM room LIMIT 1", None)?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    pub fn set_room_id(&self, id: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO room (id) VALUES (?)",
            vec![id.into()],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> worker::Result<Option<i64>> {
        self.local.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: i64) -> worker::Result<()> {
        self.local.set_meta(key, value)
    }

    pub fn clear_meta(&self, key: &str) -> worker::Result<()> {
        self.local.clear_meta(key)
    }

    pub fn last_seq(&self) -> worker::Result<i64> {
        Ok(self.meta("last_seq")?.unwrap_or(0))
    }

    /// Appends a message, assigning the next seq; `message.seq` is ignored and the stored
    /// message is returned.
    pub fn append(&self, mut message: RoomMessage) -> worker::Result<RoomMessage> {
        message.seq = self.last_seq()? + 1;
        let data = crate::message::data_column(&message.content.data);
        self.sql.exec(
            "INSERT INTO messages (seq, id, sender_id, type, body, url, title, data, client_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                message.seq.into(),
                message.id.as_str().into(),
                opt(message.sender_id.as_deref()),
                message.content.kind.as_str().into(),
                message.content.body.as_str().into(),
                opt(message.content.url.as_deref()),
                opt(message.content.title.as_deref()),
                opt(data.as_deref()),
                opt(message.content.client_id.as_deref()),
                message.created_at.into(),
            ],
        )?;
        self.set_meta("last_seq", message.seq)?;
        Ok(message)
    }

    /// Appends a backend's emitted event with the next seq. Every [`EMIT_WINDOW`]th one drops
    /// those beyond the window (a resume from before them is then told it cannot recover,
    /// never given a gap).
    pub fn append_emit(
        &self,
        event: &str,
        args: &[Value],
        except: &[String],
        at: i64,
    ) -> worker::Result<RoomEmit> {
        let seq = self.last_seq()? + 1;
        let args_text = serde_json::to_string(args).unwrap_or_else(|_| "[]".into());
        let except_text =
            (!except.is_empty()).then(|| serde_json::to_string(except).unwrap_or_default());
        self.sql.exec(
            "INSERT INTO emits (seq, event, args, skip, at) VALUES (?, ?, ?, ?, ?)",
            vec![
                seq.into(),
                event.into(),
                args_text.as_str().into(),
                opt(except_text.as_deref()),
                at.into(),
            ],
        )?;
        self.set_meta("last_seq", seq)?;
        if seq % EMIT_WINDOW == 0 {
            self.prune_emits()?;
        }
        Ok(RoomEmit {
            seq,
            event: event.to_owned(),
            args: args.to_vec(),
            except: except.to_vec(),
        })
    }

    fn prune_emits(&self) -> worker::Result<()> {
        let Some(through) = self.local.int(
            "SELECT seq AS value FROM emits ORDER BY seq DESC LIMIT 1 OFFSET ?",
            vec![EMIT_WINDOW.into()],
        )?
        else {
            return Ok(());
        };
        self.sql
            .exec("DELETE FROM emits WHERE seq <= ?", vec![through.into()])?;
        if through > self.pruned_through()? {
            self.set_meta("pruned_through", through)?;
        }
        Ok(())
    }

    /// The messages `query` (selecting [`MESSAGE_COLUMNS`]) finds, as messages of `room_id`.
    fn messages(
        &self,
        room_id: &str,
        query: &str,
        bindings: impl Into<Option<Vec<SqlStorageValue>>>,
    ) -> worker::Result<Vec<RoomMessage>> {
        let rows: Vec<MessageRow> = self.sql.exec(query, bindings)?.to_array()?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_message(room_id))
            .collect())
    }

    /// The message with this id, if the room still keeps it (within its window).
    pub fn by_id(&self, room_id: &str, id: &str) -> worker::Result<Option<RoomMessage>> {
        let query = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?");
        Ok(self
            .messages(room_id, &query, vec![id.into()])?
            .into_iter()
            .next())
    }

    /// The newest message, as it is now (edited or emptied by a recall).
    pub fn newest_message(&self, room_id: &str) -> worker::Result<Option<RoomMessage>> {
        let query = format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY seq DESC LIMIT 1");
        Ok(self.messages(room_id, &query, None)?.into_iter().next())
    }

    /// The users the messages after `seq` mention (`data.mentions`, an array of user ids; the
    /// first [`MAX_MENTIONS`] of them per message count): whom a `room.activity` note should
    /// tell they were mentioned. Deleted messages mention nobody.
    pub fn mentioned_after(&self, seq: i64) -> worker::Result<HashSet<String>> {
        #[derive(Deserialize)]
        struct Row {
            user: Option<String>,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT DISTINCT mention.value AS user
                 FROM messages, json_each(CASE WHEN json_valid(messages.data) THEN messages.data ELSE '{}' END, '$.mentions') AS mention
                 WHERE messages.seq > ? AND messages.deleted_at IS NULL AND mention.key < ? AND mention.type = 'text'",
                vec![seq.into(), MAX_MENTIONS.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().filter_map(|row| row.user).collect())
    }

    /// Brings a message read from D1 (older than the window) up to date with the edits and
    /// recalls of it this room still keeps, some of which D1 may not have yet.
    pub fn with_kept_changes(&self, mut message: RoomMessage) -> worker::Result<RoomMessage> {
        let changes: Vec<RoomChange> = self
            .sql
            .exec(
                "SELECT seq, message_seq, message_id, kind, body, at FROM changes
                 WHERE message_seq = ? ORDER BY seq",
                vec![message.seq.into()],
            )?
            .to_array()?;
        for change in changes {
            if change.kind == RoomChange::DELETED {
                message.content.body.clear();
                message.content.url = None;
                message.content.title = None;
                message.content.data = serde_json::Value::Null;
                message.deleted_at = Some(change.at);
            } else if let Some(body) = change.body {
                message.content.body = body;
                message.edited_at = Some(change.at);
            }
        }
        Ok(message)
    }

    /// Sets a message's body (an edit) and appends the change with the next seq.
    pub fn edit(&self, message: &RoomMessage, body: &str, at: i64) -> worker::Result<RoomChange> {
        self.sql.exec(
            "UPDATE messages SET body = ?, edited_at = ? WHERE seq = ?",
            vec![body.into(), at.into(), message.seq.into()],
        )?;
        self.append_change(message, RoomChange::UPDATED, Some(body), at)
    }

    /// Empties a message (a recall or a delete), keeping its seq, forgets the bodies of its
    /// earlier edits, and appends the change with the next seq.
    pub fn recall(&self, message: &RoomMessage, at: i64) -> worker::Result<RoomChange> {
        self.sql.exec(
            "UPDATE messages SET body = '', url = NULL, title = NULL, data = NULL, deleted_at = ?
             WHERE seq = ?",
            vec![at.into(), message.seq.into()],
        )?;
        self.sql.exec(
            "UPDATE changes SET body = NULL WHERE message_seq = ?",
            vec![message.seq.into()],
        )?;
        self.append_change(message, RoomChange::DELETED, None, at)
    }

    fn append_change(
        &self,
        message: &RoomMessage,
        kind: &str,
        body: Option<&str>,
        at: i64,
    ) -> worker::Result<RoomChange> {
        let change = RoomChange {
            seq: self.last_seq()? + 1,
            message_seq: message.seq,
            message_id: message.id.clone(),
            kind: kind.to_owned(),
            body: body.map(str::to_owned),
            at,
        };
        self.sql.exec(
            "INSERT INTO changes (seq, message_seq, message_id, kind, body, at) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                change.seq.into(),
                change.message_seq.into(),
                change.message_id.as_str().into(),
                change.kind.as_str().into(),
                opt(change.body.as_deref()),
                change.at.into(),
            ],
        )?;
        self.set_meta("last_seq", change.seq)?;
        Ok(change)
    }

    /// The history's entries (messages and changes: what D1 copies) with seqs from `from`
    /// through `through`, in seq order, at most `limit`.
    pub fn entries(
        &self,
        room_id: &str,
        from: i64,
        through: i64,
        limit: i64,
    ) -> worker::Result<Vec<RoomEntry>> {
        let changes: Vec<RoomChange> = self.in_seq_range(
            "SELECT seq, message_seq, message_id, kind, body, at FROM changes",
            (from, through, limit),
        )?;
        let mut entries: Vec<RoomEntry> = self
            .range(room_id, from, through, limit)?
            .into_iter()
            .map(RoomEntry::Message)
            .chain(changes.into_iter().map(RoomEntry::Change))
            .collect();
        entries.sort_by_key(RoomEntry::seq);
        entries.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(entries)
    }

    /// Everything a member's resume replays from `from` through `through`, in seq order, at
    /// most `limit`: [`RoomLog::entries`] and the emitted events among them.
    pub fn stream_entries(
        &self,
        room_id: &str,
        from: i64,
        through: i64,
        limit: i64,
    ) -> worker::Result<Vec<RoomEntry>> {
        let emits: Vec<EmitRow> = self.in_seq_range(
            "SELECT seq, event, args, skip FROM emits",
            (from, through, limit),
        )?;
        let mut entries = self.entries(room_id, from, through, limit)?;
        entries.extend(emits.into_iter().map(|row| RoomEntry::Emit(row.into())));
        entries.sort_by_key(RoomEntry::seq);
        entries.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(entries)
    }

    /// The rows `select` (`SELECT … FROM <table>`) finds with `from <= seq <= through`, oldest
    /// first, at most `limit`.
    fn in_seq_range<T: serde::de::DeserializeOwned>(
        &self,
        select: &str,
        (from, through, limit): (i64, i64, i64),
    ) -> worker::Result<Vec<T>> {
        self.sql
            .exec(
                &format!("{select} WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"),
                vec![from.into(), through.into(), limit.into()],
            )?
            .to_array()
    }

    /// The message a sender (`None`: the system) already sent with this client id.
    pub fn by_client_id(
        &self,
        room_id: &str,
        sender_id: Option<&str>,
        client_id: &str,
    ) -> worker::Result<Option<RoomMessage>> {
        let query = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE COALESCE(sender_id, '') = ? AND client_id = ?"
        );
        let bindings = vec![sender_id.unwrap_or("").into(), client_id.into()];
        Ok(self.messages(room_id, &query, bindings)?.into_iter().next())
    }

    /// Messages with `from <= seq <= through`, oldest first, at most `limit`.
    pub fn range(
        &self,
        room_id: &str,
        from: i64,
        through: i64,
        limit: i64,
    ) -> worker::Result<Vec<RoomMessage>> {
        let query = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"
        );
        self.messages(
            room_id,
            &query,
            vec![from.into(), through.into(), limit.into()],
        )
    }

    pub fn is_member(&self, user_id: &str) -> worker::Result<bool> {
        Ok(self.read_seq(user_id)?.is_some())
    }

    pub fn member_count(&self) -> worker::Result<i64> {
        Ok(self
            .local
            .int("SELECT COUNT(*) AS value FROM members", Vec::new())?
            .unwrap_or(0))
    }

    pub fn members(&self) -> worker::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Row {
            user_id: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT user_id FROM members ORDER BY user_id", None)?
            .to_array()?;
        Ok(rows.into_iter().map(|row| row.user_id).collect())
    }

    /// Adds a member (the Worker added them in D1) whose cursor starts at `read_seq`; an
    /// existing member is left as is, and an earlier removal is forgotten.
    pub fn add_member(&self, user_id: &str, read_seq: i64) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM removed WHERE user_id = ?",
            vec![user_id.into()],
        )?;
        self.learn_member(user_id, read_seq)
    }

    /// Mirrors a member found in D1. The cursor is marked for copying so D1 converges on the
    /// room's own value. Callers check [`Self::is_removed`] first.
    pub fn learn_member(&self, user_id: &str, read_seq: i64) -> worker::Result<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO members (user_id, read_seq, read_dirty) VALUES (?, ?, 1)",
            vec![user_id.into(), read_seq.into()],
        )?;
        Ok(())
    }

    /// Removes a member and remembers the removal until they are added again.
    pub fn remove_member(&self, user_id: &str) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM members WHERE user_id = ?",
            vec![user_id.into()],
        )?;
        self.sql.exec(
            "INSERT OR IGNORE INTO removed (user_id) VALUES (?)",
            vec![user_id.into()],
        )?;
        Ok(())
    }

    pub fn is_removed(&self, user_id: &str) -> worker::Result<bool> {
        let found = self.local.int(
            "SELECT 1 AS value FROM removed WHERE user_id = ?",
            vec![user_id.into()],
        )?;
        Ok(found.is_some())
    }

    /// A user's revocation cut-off (unix seconds), if any.
    pub fn revoked_before(&self, user_id: &str) -> worker::Result<Option<i64>> {
        self.local.int(
            "SELECT before AS value FROM revoked WHERE user_id = ?",
            vec![user_id.into()],
        )
    }

    /// Records a revocation cut-off; an earlier one never replaces a later one.
    pub fn revoke(&self, user_id: &str, cutoff: i64) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO revoked (user_id, before) VALUES (?, ?)
             ON CONFLICT(user_id) DO UPDATE SET before = MAX(before, excluded.before)",
            vec![user_id.into(), cutoff.into()],
        )?;
        Ok(())
    }

    pub fn read_seq(&self, user_id: &str) -> worker::Result<Option<i64>> {
        self.local.int(
            "SELECT read_seq AS value FROM members WHERE user_id = ?",
            vec![user_id.into()],
        )
    }

    /// Moves a member's cursor forward to `seq` (never back); true when it moved.
    pub fn advance_read(&self, user_id: &str, seq: i64) -> worker::Result<bool> {
        let moved = self.sql.exec(
            "UPDATE members SET read_seq = ?, read_dirty = 1 WHERE user_id = ? AND read_seq < ?",
            vec![seq.into(), user_id.into(), seq.into()],
        )?;
        Ok(moved.rows_written() > 0)
    }

    /// Messages after the member's cursor that someone else sent.
    pub fn unread(&self, user_id: &str) -> worker::Result<i64> {
        let count = self.local.int(
            "SELECT COUNT(*) AS value FROM messages
             WHERE seq > COALESCE((SELECT read_seq FROM members WHERE user_id = ?), 0)
               AND COALESCE(sender_id, '') != ? AND deleted_at IS NULL",
            vec![user_id.into(), user_id.into()],
        )?;
        Ok(count.unwrap_or(0))
    }

    /// The highest seq no longer kept here (D1 has it).
    pub fn pruned_through(&self) -> worker::Result<i64> {
        Ok(self.meta("pruned_through")?.unwrap_or(0))
    }

    /// Keeps the newest `window` messages (edits and recalls, which have seqs of their own, do
    /// not count: however often a message is edited, the window still holds as many messages),
    /// and every message D1 does not have yet; older entries are deleted here (history reads
    /// them from D1). Returns the new pruned seq, if it moved.
    pub fn prune_window(&self, window: i64) -> worker::Result<Option<i64>> {
        // The newest message beyond the window has a seq at most `last_seq - window`.
        if self.last_seq()?.saturating_sub(window) <= self.pruned_through()? {
            return Ok(None);
        }
        let Some(oldest_dropped) = self.local.int(
            "SELECT seq AS value FROM messages ORDER BY seq DESC LIMIT 1 OFFSET ?",
            vec![window.into()],
        )?
        else {
            return Ok(None);
        };
        let through = self.flushed_through()?.min(oldest_dropped);
        if through <= self.pruned_through()? {
            return Ok(None);
        }
        self.sql
            .exec("DELETE FROM messages WHERE seq <= ?", vec![through.into()])?;
        self.sql
            .exec("DELETE FROM changes WHERE seq <= ?", vec![through.into()])?;
        self.sql
            .exec("DELETE FROM emits WHERE seq <= ?", vec![through.into()])?;
        self.set_meta("pruned_through", through)?;
        Ok(Some(through))
    }

    /// The messages kept here: the oldest one's seq (none when empty) and how many.
    pub fn window(&self) -> worker::Result<(Option<i64>, i64)> {
        #[derive(Deserialize)]
        struct Row {
            oldest: Option<i64>,
            kept: i64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT MIN(seq) AS oldest, COUNT(*) AS kept FROM messages",
                None,
            )?
            .to_array()?;
        Ok(rows.first().map_or((None, 0), |row| (row.oldest, row.kept)))
    }

    /// When the oldest message D1 does not have yet was stored (unix ms), if any.
    pub fn oldest_uncopied_at(&self) -> worker::Result<Option<i64>> {
        self.local.int(
            "SELECT created_at AS value FROM messages WHERE seq > ? ORDER BY seq LIMIT 1",
            vec![self.flushed_through()?.into()],
        )
    }

    /// Read cursors moved since D1 last got them.
    pub fn dirty_cursor_count(&self) -> worker::Result<i64> {
        Ok(self
            .local
            .int(
                "SELECT COUNT(*) AS value FROM members WHERE read_dirty = 1",
                vec![],
            )?
            .unwrap_or(0))
    }

    pub fn flushed_through(&self) -> worker::Result<i64> {
        Ok(self.meta("flushed_through")?.unwrap_or(0))
    }

    /// Up to `limit` read cursors that D1 has not seen yet.
    pub fn dirty_cursors(&self, limit: i64) -> worker::Result<Vec<DirtyCursor>> {
        self.sql
            .exec(
                "SELECT user_id, read_seq FROM members WHERE read_dirty = 1 LIMIT ?",
                vec![limit.into()],
            )?
            .to_array()
    }

    /// Records that D1 has messages through `seq` and these cursors at these values. A cursor
    /// that moved again meanwhile stays marked.
    pub fn mark_flushed(&self, seq: i64, cursors: &[DirtyCursor]) -> worker::Result<()> {
        if seq > self.flushed_through()? {
            self.set_meta("flushed_through", seq)?;
        }
        for cursor in cursors {
            self.sql.exec(
                "UPDATE members SET read_dirty = 0 WHERE user_id = ? AND read_seq = ?",
                vec![cursor.user_id.as_str().into(), cursor.read_seq.into()],
            )?;
        }
        Ok(())
    }

    /// Forgets a deleted room: its messages, members and cursors go, every member is
    /// remembered as removed, and nothing is left to copy. Seqs keep counting from where they
    /// were, so a client's resume point never names a message of a room created again later.
    pub fn clear(&self) -> worker::Result<()> {
        let last_seq = self.last_seq()?;
        self.sql.exec(
            "INSERT OR IGNORE INTO removed (user_id) SELECT user_id FROM members",
            None,
        )?;
        self.sql.exec("DELETE FROM members", None)?;
        self.sql.exec("DELETE FROM messages", None)?;
        self.sql.exec("DELETE FROM changes", None)?;
        self.sql.exec("DELETE FROM emits", None)?;
        self.sql.exec(
            "DELETE FROM meta WHERE key NOT IN ('last_seq', 'alarm_wakes')",
            None,
        )?;
        self.local.forget_meta();
        self.local
            .set_metas(&[("flushed_through", last_seq), ("pruned_through", last_seq)])
    }

    /// True when something is waiting to be copied to D1: a message past the copy, or a read
    /// cursor that moved since.
    pub fn has_unflushed(&self) -> worker::Result<bool> {
        if self.flushed_through()? < self.last_seq()? {
            return Ok(true);
        }
        let dirty = self.local.int(
            "SELECT EXISTS (SELECT 1 FROM members WHERE read_dirty = 1) AS value",
            vec![],
        )?;
        Ok(dirty == Some(1))
    }
}

fn opt(value: Option<&str>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, SqlStorageValue::from)
}
