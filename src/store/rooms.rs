//! Rooms in D1: rooms, members and the queryable copy of each room's messages.
//!
//! The Worker reads and writes membership here directly (it is authoritative for who is in a
//! room). Messages and read cursors arrive from the Room Durable Object's flush
//! ([`copy_statements`]), so reads here may trail the socket by the few milliseconds a flush
//! takes; the socket's `since` resume is the consistent path.
//!
//! Limits are checked by the statement that writes: a room is created only while its creator is
//! under the daily cap, and members are added only if the room stays within its cap, each in one
//! statement (D1 runs each statement and each batch as a transaction on one writer), so
//! concurrent calls never pass a limit and a refused call writes nothing. Lists of users are
//! bound as one JSON array (`json_each`), never as one parameter each: D1 binds at most 100
//! parameters per statement.
//!
//! A member another user added is `pending` until they act in the room themselves
//! ([`activate`]); presence ([`sharing_a_room`]) and the member list say nothing about a
//! pending member's activity.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use super::d1::{int, opt_int, opt_text, text};
use super::room_log::{DirtyCursor, RoomEntry};
use crate::cursor::PageCursor;
use crate::message::{MessageRow, RoomChange, RoomMessage, MESSAGE_COLUMNS};

pub const OWNER: &str = "owner";
pub const MEMBER: &str = "member";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_seq: i64,
    pub activity_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
    pub read_seq: i64,
    /// Added by another user, and has not yet acted in the room (connected to it, sent, read,
    /// edited or deleted): nothing about their activity is shown to anyone.
    #[serde(deserialize_with = "super::d1::flag")]
    pub pending: bool,
}

/// The daily cap on rooms a creator makes: a room is created only while fewer than `max` rooms
/// with the same creator were created after `since_ms`.
#[derive(Debug, Clone, Copy)]
pub struct DailyCap {
    pub since_ms: i64,
    pub max: i64,
}

/// A room with unread messages, and how many.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnreadRoom {
    pub room_id: String,
    pub unread: i64,
}

/// A room as the member listing it sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSummary {
    pub id: String,
    pub name: String,
    pub role: String,
    pub last_seq: i64,
    pub read_seq: i64,
    pub unread: i64,
    pub activity_at: i64,
    pub last_message: Option<Value>,
}

#[derive(Deserialize)]
struct SummaryRow {
    id: String,
    name: String,
    role: String,
    last_seq: i64,
    read_seq: i64,
    unread: i64,
    activity_at: i64,
    last_message: Option<String>,
}

pub async fn room(db: &D1Database, id: &str) -> worker::Result<Option<Room>> {
    db.prepare(
        "SELECT id, name, created_by, created_at, last_seq, activity_at FROM rooms WHERE id = ?",
    )
    .bind(&[text(id)])?
    .first(None)
    .await
}

pub async fn member(
    db: &D1Database,
    room_id: &str,
    user_id: &str,
) -> worker::Result<Option<Member>> {
    db.prepare(
        "SELECT user_id, role, joined_at, read_seq, pending FROM room_members WHERE room_id = ? AND user_id = ?",
    )
    .bind(&[text(room_id), text(user_id)])?
    .first(None)
    .await
}

/// What a room connect must know before the upgrade, read in one query: whether the room
/// exists, whether the user is a member and still pending, and the user's revocation cut-off
/// (unix seconds).
#[derive(Debug, Deserialize)]
pub struct Admission {
    pub room_exists: bool,
    pub is_member: bool,
    pub pending: bool,
    pub revoked_before: Option<i64>,
}

pub async fn admission(db: &D1Database, room_id: &str, user_id: &str) -> worker::Result<Admission> {
    #[derive(Deserialize)]
    struct Row {
        room_exists: i64,
        pending: Option<i64>,
        revoked_before: Option<i64>,
    }
    let row: Option<Row> = db
        .prepare(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE id = ?1) AS room_exists,
                    (SELECT pending FROM room_members WHERE room_id = ?1 AND user_id = ?2) AS pending,
                    (SELECT revoked_before FROM revocations WHERE user_id = ?2) AS revoked_before",
        )
        .bind(&[text(room_id), text(user_id)])?
        .first(None)
        .await?;
    Ok(row.map_or(
        Admission {
            room_exists: false,
            is_member: false,
            pending: false,
            revoked_before: None,
        },
        |row| Admission {
            room_exists: row.room_exists != 0,
            is_member: row.pending.is_some(),
            pending: row.pending.is_some_and(|pending| pending != 0),
            revoked_before: row.revoked_before,
        },
    ))
}

/// Inserts the [`Member`]s of the JSON array bound as `?2` into the room `?1`; callers append
/// the condition (`WHERE …`).
const INSERT_MEMBERS: &str =
    "INSERT INTO room_members (room_id, user_id, role, joined_at, read_seq, pending)
     SELECT ?1, json_extract(m.value, '$.user_id'), json_extract(m.value, '$.role'),
            json_extract(m.value, '$.joined_at'), json_extract(m.value, '$.read_seq'),
            json_extract(m.value, '$.pending')
     FROM json_each(?2) m";

/// A list as one JSON text parameter (read with `json_each`).
fn json_list<T: Serialize>(items: &[T]) -> worker::Result<JsValue> {
    Ok(text(&serde_json::to_string(items)?))
}

/// Creates a room with its members in one transaction, if its creator is within `cap`;
/// false (and nothing written) when they are not. A taken id is a UNIQUE violation.
pub async fn create(
    db: &D1Database,
    room: &Room,
    members: &[Member],
    cap: Option<DailyCap>,
) -> worker::Result<bool> {
    let mut statements = vec![db
        .prepare(
            "INSERT INTO rooms (id, name, created_by, created_at, last_seq, activity_at)
             SELECT ?1, ?2, ?3, ?4, 0, ?4
             WHERE ?5 IS NULL OR (SELECT COUNT(*) FROM rooms WHERE created_by = ?3 AND created_at > ?6) < ?5
             RETURNING id",
        )
        .bind(&[
            text(&room.id),
            text(&room.name),
            opt_text(room.created_by.as_deref()),
            int(room.created_at),
            opt_int(cap.map(|cap| cap.max)),
            opt_int(cap.map(|cap| cap.since_ms)),
        ])?];
    if !members.is_empty() {
        // Only into the room the first statement made: one with this id, creator and
        // millisecond and no members yet (when the cap skipped that insert, there is none).
        statements.push(
            db.prepare(format!(
                "{INSERT_MEMBERS}
                 WHERE EXISTS (SELECT 1 FROM rooms WHERE id = ?1 AND created_by IS ?3 AND created_at = ?4)
                   AND NOT EXISTS (SELECT 1 FROM room_members WHERE room_id = ?1)"
            ))
            .bind(&[
                text(&room.id),
                json_list(members)?,
                opt_text(room.created_by.as_deref()),
                int(room.created_at),
            ])?,
        );
    }
    let results = db.batch(statements).await?;
    match results.first() {
        Some(made) => Ok(!made.results::<Value>()?.is_empty()),
        None => Ok(false),
    }
}

/// Adds `members` (distinct users) unless the room would then hold more than `max`; one
/// already in the room keeps its row. All or nothing, in one statement: concurrent adds never
/// pass `max`. Returns the users this call added — none when the room would pass `max`, or
/// when every one of them is a member already.
pub async fn add_members(
    db: &D1Database,
    room_id: &str,
    members: &[Member],
    max: usize,
) -> worker::Result<Vec<String>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let insert = db
        .prepare(format!(
            "{INSERT_MEMBERS}
             WHERE (SELECT COUNT(*) FROM room_members WHERE room_id = ?1)
                 + (SELECT COUNT(*) FROM json_each(?2) k WHERE NOT EXISTS (
                      SELECT 1 FROM room_members x
                      WHERE x.room_id = ?1 AND x.user_id = json_extract(k.value, '$.user_id'))) <= ?3
             ON CONFLICT (room_id, user_id) DO NOTHING
             RETURNING user_id"
        ))
        .bind(&[
            text(room_id),
            json_list(members)?,
            int(i64::try_from(max).unwrap_or(i64::MAX)),
        ])?;
    user_ids_of(insert).await
}

/// The member acted in the room themselves: a pending membership becomes an ordinary one.
pub async fn activate(db: &D1Database, room_id: &str, user_id: &str) -> worker::Result<()> {
    db.prepare(
        "UPDATE room_members SET pending = 0 WHERE room_id = ? AND user_id = ? AND pending = 1",
    )
    .bind(&[text(room_id), text(user_id)])?
    .run()
    .await?;
    Ok(())
}

/// Removes a member. A room left without an owner gets its longest-standing member as owner.
pub async fn remove_member(db: &D1Database, room_id: &str, user_id: &str) -> worker::Result<()> {
    let remove = db
        .prepare("DELETE FROM room_members WHERE room_id = ? AND user_id = ?")
        .bind(&[text(room_id), text(user_id)])?;
    let promote = db
        .prepare(
            "UPDATE room_members SET role = 'owner'
             WHERE room_id = ?1
               AND NOT EXISTS (SELECT 1 FROM room_members WHERE room_id = ?1 AND role = 'owner')
               AND user_id = (SELECT user_id FROM room_members WHERE room_id = ?1 ORDER BY joined_at, user_id LIMIT 1)",
        )
        .bind(&[text(room_id)])?;
    db.batch(vec![remove, promote]).await?;
    Ok(())
}

/// A user's rooms, most recently active first, with unread counts and the last message (with
/// a 100-character `preview` of its body, as `room.activity` has it: `message::PREVIEW_CHARS`).
pub async fn list_for_user(
    db: &D1Database,
    user_id: &str,
    after: Option<&PageCursor>,
    limit: i64,
) -> worker::Result<Vec<RoomSummary>> {
    let rows: Vec<SummaryRow> = db
        .prepare(
            "SELECT r.id, r.name, m.role, r.last_seq, m.read_seq, r.activity_at,
               (SELECT COUNT(*) FROM room_messages x
                 WHERE x.room_id = r.id AND x.seq > m.read_seq AND COALESCE(x.sender_id, '') != m.user_id
                   AND x.deleted_at IS NULL) AS unread,
               (SELECT json_object('id', x.id, 'seq', x.seq, 'sender_id', x.sender_id, 'type', x.type,
                                   'preview', substr(x.body, 1, 100), 'created_at', x.created_at)
                  FROM room_messages x WHERE x.room_id = r.id ORDER BY x.seq DESC LIMIT 1) AS last_message
             FROM room_members m JOIN rooms r ON r.id = m.room_id
             WHERE m.user_id = ?1
               AND (?2 IS NULL OR r.activity_at < ?2 OR (r.activity_at = ?2 AND r.id > ?3))
             ORDER BY r.activity_at DESC, r.id ASC
             LIMIT ?4",
        )
        .bind(&[
            text(user_id),
            after.map_or(JsValue::NULL, |c| int(c.at)),
            opt_text(after.map(|c| c.id.as_str())),
            int(limit),
        ])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .into_iter()
        .map(|row| RoomSummary {
            id: row.id,
            name: row.name,
            role: row.role,
            last_seq: row.last_seq,
            read_seq: row.read_seq,
            unread: row.unread,
            activity_at: row.activity_at,
            last_message: row
                .last_message
                .and_then(|raw| serde_json::from_str(&raw).ok()),
        })
        .collect())
}

/// How many rooms `user_id` created since `since_ms`, and when the oldest of them was.
pub async fn created_since(
    db: &D1Database,
    user_id: &str,
    since_ms: i64,
) -> worker::Result<(i64, Option<i64>)> {
    #[derive(Deserialize)]
    struct Row {
        n: i64,
        oldest: Option<i64>,
    }
    let row: Option<Row> = db
        .prepare("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM rooms WHERE created_by = ? AND created_at > ?")
        .bind(&[text(user_id), int(since_ms)])?
        .first(None)
        .await?;
    Ok(row.map_or((0, None), |row| (row.n, row.oldest)))
}

/// Renames a room.
pub async fn rename(db: &D1Database, room_id: &str, name: &str) -> worker::Result<()> {
    db.prepare("UPDATE rooms SET name = ? WHERE id = ?")
        .bind(&[text(name), text(room_id)])?
        .run()
        .await?;
    Ok(())
}

/// Deletes a room, its members and its messages, in one transaction.
pub async fn delete(db: &D1Database, room_id: &str) -> worker::Result<()> {
    let statements = [
        "DELETE FROM room_messages WHERE room_id = ?",
        "DELETE FROM room_members WHERE room_id = ?",
        "DELETE FROM rooms WHERE id = ?",
    ]
    .iter()
    .map(|sql| db.prepare(*sql).bind(&[text(room_id)]))
    .collect::<worker::Result<Vec<_>>>()?;
    db.batch(statements).await?;
    Ok(())
}

/// Every member's user id (a room has at most `MAX_ROOM_MEMBERS`).
pub async fn member_ids(db: &D1Database, room_id: &str) -> worker::Result<Vec<String>> {
    ids(
        db,
        "SELECT user_id AS id FROM room_members WHERE room_id = ?",
        room_id,
    )
    .await
}

/// The ids a query selects `AS id`, its one parameter being `key`.
async fn ids(db: &D1Database, query: &str, key: &str) -> worker::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
    }
    let rows: Vec<Row> = db
        .prepare(query)
        .bind(&[text(key)])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// Gives existing members among `users` the role `role`; returns those whose role changed.
pub async fn set_role(
    db: &D1Database,
    room_id: &str,
    users: &[String],
    role: &str,
) -> worker::Result<Vec<String>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let update = db
        .prepare(
            "UPDATE room_members SET role = ?2
             WHERE room_id = ?1 AND role <> ?2 AND user_id IN (SELECT value FROM json_each(?3))
             RETURNING user_id",
        )
        .bind(&[text(room_id), text(role), json_list(users)?])?;
    user_ids_of(update).await
}

/// A user's rooms with unread messages (others' messages after their cursor, as of the rooms'
/// last D1 copy, counted as in room lists), most recently active first, at most `limit`.
pub async fn unread_rooms(
    db: &D1Database,
    user_id: &str,
    limit: i64,
) -> worker::Result<Vec<UnreadRoom>> {
    db.prepare(
        "SELECT room_id, unread FROM (
           SELECT r.id AS room_id, r.activity_at AS activity_at,
             (SELECT COUNT(*) FROM room_messages x
               WHERE x.room_id = r.id AND x.seq > m.read_seq AND COALESCE(x.sender_id, '') != m.user_id
                 AND x.deleted_at IS NULL) AS unread
           FROM room_members m JOIN rooms r ON r.id = m.room_id
           WHERE m.user_id = ?1 AND r.last_seq > m.read_seq)
         WHERE unread > 0 ORDER BY activity_at DESC, room_id LIMIT ?2",
    )
    .bind(&[text(user_id), int(limit)])?
    .all()
    .await?
    .results()
}

/// Which of `users` are already members of the room.
pub async fn already_members(
    db: &D1Database,
    room_id: &str,
    users: &[String],
) -> worker::Result<Vec<String>> {
    users_among(
        db,
        "SELECT user_id FROM room_members
         WHERE room_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))",
        room_id,
        users,
    )
    .await
}

/// The `user_id`s a query finds among `users`, its parameters being `first` (`?1`) and
/// `users` as one JSON array (`?2`).
async fn users_among(
    db: &D1Database,
    select: &str,
    first: &str,
    users: &[String],
) -> worker::Result<Vec<String>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    user_ids_of(db.prepare(select).bind(&[text(first), json_list(users)?])?).await
}

/// The `user_id` column of the rows a statement answers (a `SELECT`, or `RETURNING user_id`).
async fn user_ids_of(statement: D1PreparedStatement) -> worker::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let rows: Vec<Row> = statement.all().await?.results()?;
    Ok(rows.into_iter().map(|row| row.user_id).collect())
}

/// Every room the user is a member of.
pub async fn rooms_of(db: &D1Database, user_id: &str) -> worker::Result<Vec<String>> {
    ids(
        db,
        "SELECT room_id AS id FROM room_members WHERE user_id = ?",
        user_id,
    )
    .await
}

/// Which of `others` share at least one room with `user_id` in which they are not pending.
pub async fn sharing_a_room(
    db: &D1Database,
    user_id: &str,
    others: &[String],
) -> worker::Result<Vec<String>> {
    users_among(
        db,
        "SELECT DISTINCT theirs.user_id AS user_id FROM room_members mine
         JOIN room_members theirs ON theirs.room_id = mine.room_id
         WHERE mine.user_id = ?1 AND theirs.pending = 0
           AND theirs.user_id IN (SELECT value FROM json_each(?2))",
        user_id,
        others,
    )
    .await
}

/// Members in user id order, after `after`.
pub async fn members(
    db: &D1Database,
    room_id: &str,
    after: Option<&str>,
    limit: i64,
) -> worker::Result<Vec<Member>> {
    db.prepare(
        "SELECT user_id, role, joined_at, read_seq, pending FROM room_members
         WHERE room_id = ?1 AND (?2 IS NULL OR user_id > ?2) ORDER BY user_id LIMIT ?3",
    )
    .bind(&[text(room_id), opt_text(after), int(limit)])?
    .all()
    .await?
    .results()
}

/// An edit sets the body the change carries (none once recalled: the recall that follows
/// empties it); a recall empties the content and sets `deleted_at`.
fn change_statement(
    db: &D1Database,
    room_id: &str,
    change: &RoomChange,
) -> worker::Result<D1PreparedStatement> {
    if change.kind == RoomChange::DELETED {
        db.prepare(
            "UPDATE room_messages SET body = '', url = NULL, title = NULL, data = NULL, deleted_at = ?1
             WHERE room_id = ?2 AND seq = ?3",
        )
        .bind(&[int(change.at), text(room_id), int(change.message_seq)])
    } else {
        db.prepare(
            "UPDATE room_messages SET body = COALESCE(?1, body), edited_at = ?2
             WHERE room_id = ?3 AND seq = ?4 AND deleted_at IS NULL",
        )
        .bind(&[
            opt_text(change.body.as_deref()),
            int(change.at),
            text(room_id),
            int(change.message_seq),
        ])
    }
}

/// Messages with a seq below `before_seq`, newest first.
pub async fn history(
    db: &D1Database,
    room_id: &str,
    before_seq: i64,
    limit: i64,
) -> worker::Result<Vec<RoomMessage>> {
    let rows: Vec<MessageRow> = db
        .prepare(
            format!("SELECT {MESSAGE_COLUMNS} FROM room_messages WHERE room_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"),
        )
        .bind(&[text(room_id), int(before_seq), int(limit)])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_message(room_id))
        .collect())
}

/// The message `id` of a room as D1 holds it (older than the room's own window, or not).
pub async fn message(
    db: &D1Database,
    room_id: &str,
    id: &str,
) -> worker::Result<Option<RoomMessage>> {
    let row: Option<MessageRow> = db
        .prepare(format!(
            "SELECT {MESSAGE_COLUMNS} FROM room_messages WHERE room_id = ? AND id = ?"
        ))
        .bind(&[text(room_id), text(id)])?
        .first(None)
        .await?;
    Ok(row.map(|row| row.into_message(room_id)))
}

/// The statements that copy a Room DO's unflushed stream entries (messages, and edits and
/// recalls of them) and cursors into D1, in seq order. Every one is idempotent (insert-or-ignore,
/// set-to-value and forward-only updates), so a flush retried after a partial failure, or run
/// twice, leaves the same rows.
pub fn copy_statements(
    db: &D1Database,
    room_id: &str,
    entries: &[RoomEntry],
    cursors: &[DirtyCursor],
) -> worker::Result<Vec<D1PreparedStatement>> {
    let mut statements = Vec::with_capacity(entries.len() + cursors.len() + 1);
    for entry in entries {
        let m = match entry {
            RoomEntry::Message(m) => m,
            RoomEntry::Change(change) => {
                statements.push(change_statement(db, room_id, change)?);
                continue;
            }
            RoomEntry::Emit(_) => continue,
        };
        statements.push(
            db.prepare(
                "INSERT OR IGNORE INTO room_messages (room_id, seq, id, sender_id, type, body, url, title, data, client_id, created_at, edited_at, deleted_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(
                &[
                    vec![text(room_id), int(m.seq), text(&m.id), opt_text(m.sender_id.as_deref())],
                    super::d1::content_columns(&m.content).to_vec(),
                    vec![int(m.created_at), opt_int(m.edited_at), opt_int(m.deleted_at)],
                ]
                .concat(),
            )?,
        );
    }
    if let Some(last) = entries.last() {
        let activity = entries
            .iter()
            .filter_map(|entry| match entry {
                RoomEntry::Message(m) => Some(m.created_at),
                RoomEntry::Change(_) | RoomEntry::Emit(_) => None,
            })
            .max()
            .unwrap_or(0);
        statements.push(
            db.prepare(
                "UPDATE rooms SET last_seq = MAX(last_seq, ?1), activity_at = MAX(activity_at, ?2) WHERE id = ?3",
            )
            .bind(&[int(last.seq()), int(activity), text(room_id)])?,
        );
    }
    for cursor in cursors {
        statements.push(
            db.prepare(
                "UPDATE room_members SET read_seq = MAX(read_seq, ?1) WHERE room_id = ?2 AND user_id = ?3",
            )
            .bind(&[int(cursor.read_seq), text(room_id), text(&cursor.user_id)])?,
        );
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_travel_as_the_json_the_insert_reads() {
        let member = Member {
            user_id: "bob".into(),
            role: MEMBER.into(),
            joined_at: 7,
            read_seq: 3,
            pending: true,
        };
        let sent = serde_json::to_value([&member]).unwrap();
        assert_eq!(
            sent,
            json!([{"user_id": "bob", "role": "member", "joined_at": 7, "read_seq": 3, "pending": true}])
        );
        for field in ["user_id", "role", "joined_at", "read_seq", "pending"] {
            assert!(INSERT_MEMBERS.contains(&format!("'$.{field}'")), "{field}");
        }
    }

    #[test]
    fn member_rows_read_the_pending_flag() {
        let row = json!({"user_id": "bob", "role": "member", "joined_at": 7, "read_seq": 3, "pending": 1});
        assert!(serde_json::from_value::<Member>(row).unwrap().pending);
        let row =
            json!({"user_id": "bob", "role": "owner", "joined_at": 7, "read_seq": 3, "pending": 0});
        assert!(!serde_json::from_value::<Member>(row).unwrap().pending);
    }
}
