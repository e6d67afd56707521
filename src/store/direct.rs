//! Direct messages in D1: `direct_messages` (one row per message, with the sender's delete
//! state) and `direct_receipts` (one row per receiver: read and delete state).
//!
//! A message deleted for everyone keeps its row as a tombstone (content emptied, `deleted_at`
//! set, receipts gone), so a retry of its `client_id` finds it and answers it as a duplicate
//! instead of storing it again under a new id; no listing shows a tombstone.
//!
//! Every listing is in a stable order — newest first by (created_at, id) — and continues from a
//! [`PageCursor`], so paging never skips or repeats a message while new ones arrive. Every query
//! that reads or changes a message names the party it is for, so nobody reaches another user's
//! message: it simply is not found.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::D1Database;

use super::d1::{content_columns, int, opt_text, text};
use crate::cursor::PageCursor;
use crate::direct::DirectMessage;
use crate::message::ContentColumns;

/// A receiver's state of a message, as its sender sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub user_id: String,
    pub read_at: Option<i64>,
    pub deleted: bool,
}

/// A sent message with every receiver's state.
#[derive(Debug, Serialize)]
pub struct Sent {
    #[serde(flatten)]
    pub message: DirectMessage,
    pub receipts: Vec<Receipt>,
}

/// A received message with the reader's own state.
#[derive(Debug, Serialize)]
pub struct Received {
    #[serde(flatten)]
    pub message: DirectMessage,
    pub read_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    sender_id: String,
    #[serde(flatten)]
    content: ContentColumns,
    created_at: i64,
    deleted_at: Option<i64>,
    #[serde(default)]
    read_at: Option<i64>,
}

impl Row {
    fn into_message(self, to: Vec<String>) -> DirectMessage {
        DirectMessage {
            id: self.id,
            sender_id: self.sender_id,
            to,
            content: self.content.into(),
            created_at: self.created_at,
            deleted_at: self.deleted_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReceiptRow {
    message_id: String,
    receiver_id: String,
    read_at: Option<i64>,
    deleted_at: Option<i64>,
}

const COLUMNS: &str = "m.id, m.sender_id, m.type, m.body, m.url, m.title, m.data, m.client_id, m.created_at, m.deleted_at";

/// D1 binds at most 100 parameters per statement; id lists go in chunks of this many.
const ID_CHUNK: usize = 50;

/// `?, ?, ?` numbered from `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn texts(values: &[String]) -> impl Iterator<Item = JsValue> + '_ {
    values.iter().map(|value| text(value))
}

/// Stores a message and one receipt per receiver, in one transaction. A repeated client id is
/// a UNIQUE violation.
pub async fn insert(db: &D1Database, m: &DirectMessage) -> worker::Result<()> {
    let mut statements = vec![db
        .prepare(
            "INSERT INTO direct_messages (id, sender_id, type, body, url, title, data, client_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(
            &[
                vec![text(&m.id), text(&m.sender_id)],
                content_columns(&m.content).to_vec(),
                vec![int(m.created_at)],
            ]
            .concat(),
        )?];
    for receiver in &m.to {
        statements.push(
            db.prepare(
                "INSERT INTO direct_receipts (message_id, receiver_id, created_at) VALUES (?, ?, ?)",
            )
            .bind(&[text(&m.id), text(receiver), int(m.created_at)])?,
        );
    }
    db.batch(statements).await?;
    Ok(())
}

/// The message a sender already sent with this client id (a tombstone if it was deleted for
/// everyone since).
pub async fn by_client_id(
    db: &D1Database,
    sender_id: &str,
    client_id: &str,
) -> worker::Result<Option<DirectMessage>> {
    let found: Vec<Found> = query(
        db,
        format!(
            "SELECT {COLUMNS} FROM direct_messages m WHERE m.sender_id = ?1 AND m.client_id = ?2"
        ),
        vec![text(sender_id), text(client_id)],
    )
    .await?;
    Ok(found.into_iter().next().map(|found| found.message))
}

/// A message row with every receipt, and the reader's `read_at` when the query selected it.
struct Found {
    message: DirectMessage,
    receipts: Vec<Receipt>,
    read_at: Option<i64>,
}

impl From<Found> for Sent {
    fn from(found: Found) -> Self {
        Sent {
            message: found.message,
            receipts: found.receipts,
        }
    }
}

impl From<Found> for Received {
    fn from(found: Found) -> Self {
        Received {
            message: found.message,
            read_at: found.read_at,
        }
    }
}

/// Runs a query that selects [`COLUMNS`] (and optionally `r.read_at`) and attaches every
/// message's receipts; each message as a [`Found`] or what one becomes ([`Sent`], [`Received`]).
async fn query<T: From<Found>>(
    db: &D1Database,
    sql: String,
    binds: Vec<JsValue>,
) -> worker::Result<Vec<T>> {
    let rows: Vec<Row> = db.prepare(sql).bind(&binds)?.all().await?.results()?;
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut receipts = receipts_of(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let list = receipts.remove(&row.id).unwrap_or_default();
            let to = list.iter().map(|r| r.user_id.clone()).collect();
            let read_at = row.read_at;
            T::from(Found {
                message: row.into_message(to),
                receipts: list,
                read_at,
            })
        })
        .collect())
}

async fn receipts_of(
    db: &D1Database,
    ids: &[String],
) -> worker::Result<HashMap<String, Vec<Receipt>>> {
    let mut out: HashMap<String, Vec<Receipt>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut rows: Vec<ReceiptRow> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        let page: Vec<ReceiptRow> = db
            .prepare(format!(
                "SELECT message_id, receiver_id, read_at, deleted_at FROM direct_receipts
                 WHERE message_id IN ({}) ORDER BY rowid",
                placeholders(1, chunk.len())
            ))
            .bind(&texts(chunk).collect::<Vec<_>>())?
            .all()
            .await?
            .results()?;
        rows.extend(page);
    }
    for row in rows {
        out.entry(row.message_id).or_default().push(Receipt {
            user_id: row.receiver_id,
            read_at: row.read_at,
            deleted: row.deleted_at.is_some(),
        });
    }
    Ok(out)
}

/// The `(created_at, id)` keyset condition for "after this cursor, newest first".
fn after(
    cursor: Option<&PageCursor>,
    at_col: &str,
    id_col: &str,
    first: usize,
) -> (String, Vec<JsValue>) {
    match cursor {
        None => ("1 = 1".into(), vec![]),
        Some(c) => (
            format!(
                "({at_col} < ?{first} OR ({at_col} = ?{first} AND {id_col} < ?{}))",
                first + 1
            ),
            vec![int(c.at), text(&c.id)],
        ),
    }
}

/// What a sender has sent and not deleted, newest first, with each receiver's state.
pub async fn sent(
    db: &D1Database,
    sender_id: &str,
    cursor: Option<&PageCursor>,
    limit: i64,
) -> worker::Result<Vec<Sent>> {
    let (keyset, keyset_binds) = after(cursor, "m.created_at", "m.id", 3);
    let sql = format!(
        "SELECT {COLUMNS} FROM direct_messages m
         WHERE m.sender_id = ?1 AND m.sender_deleted_at IS NULL AND m.deleted_at IS NULL AND {keyset}
         ORDER BY m.created_at DESC, m.id DESC LIMIT ?2"
    );
    let binds = [vec![text(sender_id), int(limit)], keyset_binds].concat();
    query(db, sql, binds).await
}

/// What a receiver has received and not deleted, newest first (optionally unread only).
pub async fn received(
    db: &D1Database,
    receiver_id: &str,
    unread_only: bool,
    cursor: Option<&PageCursor>,
    limit: i64,
) -> worker::Result<Vec<Received>> {
    let (keyset, keyset_binds) = after(cursor, "r.created_at", "r.message_id", 3);
    let unread = if unread_only {
        "AND r.read_at IS NULL"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS}, r.read_at FROM direct_receipts r JOIN direct_messages m ON m.id = r.message_id
         WHERE r.receiver_id = ?1 AND r.deleted_at IS NULL {unread} AND {keyset}
         ORDER BY r.created_at DESC, r.message_id DESC LIMIT ?2"
    );
    let binds = [vec![text(receiver_id), int(limit)], keyset_binds].concat();
    query(db, sql, binds).await
}

/// One received message, if the receiver has it and has not deleted it.
pub async fn received_one(
    db: &D1Database,
    receiver_id: &str,
    id: &str,
) -> worker::Result<Option<Received>> {
    let sql = format!(
        "SELECT {COLUMNS}, r.read_at FROM direct_receipts r JOIN direct_messages m ON m.id = r.message_id
         WHERE r.receiver_id = ?1 AND r.message_id = ?2 AND r.deleted_at IS NULL"
    );
    let found: Vec<Received> = query(db, sql, vec![text(receiver_id), text(id)]).await?;
    Ok(found.into_iter().next())
}

/// A message newly marked read: who sent it.
#[derive(Debug, Deserialize)]
pub struct NewlyRead {
    pub message_id: String,
    pub sender_id: String,
}

/// Marks the receiver's unread, undeleted receipts among `ids` read at `now`; returns the ones
/// that changed (already-read ones keep their first read time).
pub async fn mark_read(
    db: &D1Database,
    receiver_id: &str,
    ids: &[String],
    now: i64,
) -> worker::Result<Vec<NewlyRead>> {
    let mut changed = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        changed.extend(mark_read_chunk(db, receiver_id, chunk, now).await?);
    }
    Ok(changed)
}

async fn mark_read_chunk(
    db: &D1Database,
    receiver_id: &str,
    ids: &[String],
    now: i64,
) -> worker::Result<Vec<NewlyRead>> {
    let mut select_binds = vec![text(receiver_id)];
    select_binds.extend(texts(ids));
    let changed: Vec<NewlyRead> = db
        .prepare(format!(
            "SELECT r.message_id, m.sender_id FROM direct_receipts r JOIN direct_messages m ON m.id = r.message_id
             WHERE r.receiver_id = ?1 AND r.read_at IS NULL AND r.deleted_at IS NULL
               AND r.message_id IN ({})",
            placeholders(2, ids.len())
        ))
        .bind(&select_binds)?
        .all()
        .await?
        .results()?;
    if changed.is_empty() {
        return Ok(changed);
    }
    let mut update_binds = vec![text(receiver_id), int(now)];
    update_binds.extend(texts(ids));
    db.prepare(format!(
        "UPDATE direct_receipts SET read_at = ?2
         WHERE receiver_id = ?1 AND read_at IS NULL AND deleted_at IS NULL AND message_id IN ({})",
        placeholders(3, ids.len())
    ))
    .bind(&update_binds)?
    .run()
    .await?;
    Ok(changed)
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

/// Runs `statement` (whose `{ids}` is replaced by the placeholders of an id chunk, numbered
/// from 3 after `party` and `now`) once per chunk; returns the ids it reports with `RETURNING`.
async fn update_returning_ids(
    db: &D1Database,
    statement: &str,
    party: &str,
    ids: &[String],
    now: i64,
) -> worker::Result<Vec<String>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        let mut binds = vec![text(party), int(now)];
        binds.extend(texts(chunk));
        let query = statement.replace("{ids}", &placeholders(3, chunk.len()));
        let rows: Vec<IdRow> = db.prepare(query).bind(&binds)?.all().await?.results()?;
        out.extend(rows.into_iter().map(|row| row.id));
    }
    Ok(out)
}

/// Whose copy a delete removes: the sender's (from their sent list) or a receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Sender,
    Receiver,
}

/// Deletes `user`'s own copies among `ids` (the other parties keep theirs); returns the ids
/// deleted now.
pub async fn delete(
    db: &D1Database,
    party: Party,
    user: &str,
    ids: &[String],
    now: i64,
) -> worker::Result<Vec<String>> {
    let statement = match party {
        Party::Sender => {
            "UPDATE direct_messages SET sender_deleted_at = ?2
             WHERE sender_id = ?1 AND sender_deleted_at IS NULL AND deleted_at IS NULL AND id IN ({ids}) RETURNING id"
        }
        Party::Receiver => {
            "UPDATE direct_receipts SET deleted_at = ?2
             WHERE receiver_id = ?1 AND deleted_at IS NULL AND message_id IN ({ids}) RETURNING message_id AS id"
        }
    };
    update_returning_ids(db, statement, user, ids, now).await
}

pub async fn unread_count(db: &D1Database, receiver_id: &str) -> worker::Result<i64> {
    let count: Option<i64> = db
        .prepare(
            "SELECT COUNT(*) AS unread FROM direct_receipts
             WHERE receiver_id = ? AND read_at IS NULL AND deleted_at IS NULL",
        )
        .bind(&[text(receiver_id)])?
        .first(Some("unread"))
        .await?;
    Ok(count.unwrap_or(0))
}

/// Filters of the admin listing; every one optional.
#[derive(Debug, Default)]
pub struct AdminFilter {
    pub sender: Option<String>,
    pub receiver: Option<String>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
}

/// Every message matching the filter, newest first, with every receiver's state.
pub async fn admin_list(
    db: &D1Database,
    filter: &AdminFilter,
    cursor: Option<&PageCursor>,
    limit: i64,
) -> worker::Result<Vec<Sent>> {
    let (keyset, keyset_binds) = after(cursor, "m.created_at", "m.id", 6);
    let filter_binds = vec![
        opt_text(filter.sender.as_deref()),
        opt_text(filter.receiver.as_deref()),
        filter.from.map_or(JsValue::NULL, int),
        filter.until.map_or(JsValue::NULL, int),
        int(limit),
    ];
    let sql = format!(
        "SELECT {COLUMNS} FROM direct_messages m
         WHERE m.deleted_at IS NULL
           AND (?1 IS NULL OR m.sender_id = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM direct_receipts r WHERE r.message_id = m.id AND r.receiver_id = ?2))
           AND (?3 IS NULL OR m.created_at >= ?3)
           AND (?4 IS NULL OR m.created_at < ?4)
           AND {keyset}
         ORDER BY m.created_at DESC, m.id DESC LIMIT ?5"
    );
    let binds = [filter_binds, keyset_binds].concat();
    query(db, sql, binds).await
}

/// When `sender_id` sent message `id` (unix ms), if they did and it is not deleted.
pub async fn sent_at(db: &D1Database, sender_id: &str, id: &str) -> worker::Result<Option<i64>> {
    db.prepare(
        "SELECT created_at FROM direct_messages WHERE id = ? AND sender_id = ? AND deleted_at IS NULL",
    )
    .bind(&[text(id), text(sender_id)])?
    .first(Some("created_at"))
    .await
}

/// Deletes a message for everyone at `now`: its receipts go and its row becomes a tombstone.
/// Returns its parties (receivers, then the sender), or `None` when there was no such message
/// (or it was deleted already).
pub async fn admin_delete(
    db: &D1Database,
    id: &str,
    now: i64,
) -> worker::Result<Option<Vec<String>>> {
    #[derive(Deserialize)]
    struct Party {
        user_id: String,
    }
    let receipts = db
        .prepare(
            "DELETE FROM direct_receipts WHERE message_id = ? RETURNING receiver_id AS user_id",
        )
        .bind(&[text(id)])?;
    let message = db
        .prepare(
            "UPDATE direct_messages SET body = '', url = NULL, title = NULL, data = NULL, deleted_at = ?2
             WHERE id = ?1 AND deleted_at IS NULL RETURNING sender_id AS user_id",
        )
        .bind(&[text(id), int(now)])?;
    let results = db.batch(vec![receipts, message]).await?;
    let mut parties = Vec::new();
    for result in &results {
        parties.extend(result.results::<Party>()?.into_iter().map(|p| p.user_id));
    }
    match results.get(1).map(|r| r.results::<Party>()).transpose()? {
        Some(deleted) if !deleted.is_empty() => Ok(Some(parties)),
        _ => Ok(None),
    }
}
