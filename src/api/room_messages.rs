//! A room's messages over HTTP: the history from D1, and sending, editing, deleting and reading
//! (JWT), and the backends' internal publish.
//!
//! Messages sent over REST and read cursors moved over REST go through the Room exactly as the
//! socket's `send` and `read` do. Sending, editing, deleting and reading is acting in the room:
//! a pending member (`api::room_members`) becomes an ordinary one.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Response};

use super::call::{ok, respond, validation, Answer, Call};
use super::rooms::{existing_room, room_id, Caller};
use crate::error::ApiError;
use crate::hubs::stubs::room::{self, EditRequest, Post, ReadRequest, RecallRequest};
use crate::message::Content;
use crate::quota::Rate;
use crate::store::d1;
use crate::store::rooms::{self, OWNER};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    seq: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    body: String,
}

// ----- the members' REST -----

/// `GET /v1/rooms/{id}/messages?before_seq=&limit=`: history from D1, newest first.
pub async fn history(call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    let limit = call.limit()?;
    let before = match call.query("before_seq") {
        None => i64::from(u32::MAX) * 1024,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 1)
            .ok_or_else(|| validation("before_seq must be a whole number >= 1"))?,
    };
    let page = rooms::history(&caller.db, &caller.room.id, before, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|m| m.seq))
        .flatten();
    ok(&json!({"messages": page, "next_before_seq": next}))
}

/// `POST /v1/rooms/{id}/messages`: the socket `send` over REST — the same content and rules,
/// the same send rate, idempotent by `client_id`; `201 {message, duplicate:false}`, or `200`
/// with the original for a repeated `client_id`.
pub async fn send(mut call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    let body: Value = call.body().await?;
    let Value::Object(fields) = body else {
        return Err(validation("the body must be a JSON object"));
    };
    let content = Content::parse(fields).map_err(|err| validation(err.to_string()))?;
    sends(call.env, &caller).await?;
    let post = Post {
        sender: Some(caller.me.user_id),
        content,
    };
    post_to_room(call.env, &caller.room.id, &post).await
}

/// `PATCH /v1/rooms/{id}/messages/{message}` `{"body"}`: the sender edits the body of a
/// message (it counts against `SEND_RATE` like a send); `message.updated` to every room socket.
pub async fn edit(mut call: Call<'_>, room_id: &str, message_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    crate::direct::validate_message_id(message_id).map_err(validation)?;
    let body: EditBody = call.body().await?;
    let env = call.env;
    sends(env, &caller).await?;
    let request = EditRequest {
        user_id: caller.me.user_id,
        message_id: message_id.to_owned(),
        body: body.body,
    };
    ok(&room::edit(env, &caller.room.id, &request).await?)
}

/// `DELETE /v1/rooms/{id}/messages/{message}`: the sender recalls within
/// `RECALL_WINDOW_SECONDS`; the room's owner and admins delete any message at any time. The
/// content is gone everywhere (D1's history too, for messages older than the room's window),
/// the seq stays; `message.deleted` to every room socket. It counts against `SEND_RATE`.
pub async fn delete(call: Call<'_>, room_id: &str, message_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    crate::direct::validate_message_id(message_id).map_err(validation)?;
    let env = call.env;
    sends(env, &caller).await?;
    let request = RecallRequest {
        moderator: caller.member.role == OWNER || caller.me.is_admin(),
        user_id: caller.me.user_id,
        message_id: message_id.to_owned(),
    };
    ok(&room::recall(env, &caller.room.id, &request).await?)
}

/// `POST /v1/rooms/{id}/read {"seq"}`: the socket `read` over REST.
pub async fn read(mut call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    let body: ReadBody = call.body().await?;
    if body.seq < 0 {
        return Err(validation("seq must be a whole number >= 0"));
    }
    caller.acts().await?;
    let request = ReadRequest {
        user_id: caller.me.user_id,
        seq: body.seq,
    };
    ok(&room::read(call.env, &caller.room.id, &request).await?)
}

// ----- the backends' internal API -----

/// `POST /internal/v1/rooms/{id}/publish`: a `system` message, or with `sender` (a member) any
/// message a member may send; `idempotency_key` makes a retry return the original.
pub async fn internal_publish(mut call: Call<'_>, room_id: &str) -> Answer {
    call.internal()?;
    let room_id = self::room_id(room_id)?;
    let body: Value = call.body().await?;
    let post = published(body)?;
    let db = d1::db(call.env)?;
    existing_room(&db, room_id).await?;
    if let Some(sender) = &post.sender {
        rooms::member(&db, room_id, sender).await?.ok_or_else(|| {
            ApiError::forbidden(
                "not_a_member",
                format!("'{sender}' is not a member of this room"),
            )
        })?;
    }
    let started = crate::clock::now_ms();
    let answer = post_to_room(call.env, room_id, &post).await;
    let status = answer
        .as_ref()
        .map_or_else(|err| err.status, Response::status_code);
    let level = crate::log::outcome(status >= 500);
    if crate::log::enabled(level) {
        crate::log::emit(
            level,
            "publish",
            json!({
                "room_id": room_id,
                "status": status,
                "bytes": post.content.body.len(),
                "ms": crate::clock::now_ms() - started,
            }),
        );
    }
    answer
}

/// Reads a publish body: the content fields, `sender` (optional) and `idempotency_key`
/// (optional; the message's `client_id`).
pub fn published(body: Value) -> Result<Post, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(validation("the body must be a JSON object"));
    };
    if fields.contains_key("client_id") {
        return Err(validation("client_id: a backend names idempotency_key"));
    }
    let sender = match fields.remove("sender") {
        None | Some(Value::Null) => None,
        Some(Value::String(sender)) => {
            crate::ids::validate_user_id(&sender)
                .map_err(|why| validation(format!("sender: {why}")))?;
            Some(sender)
        }
        Some(_) => return Err(validation("sender must be a user id")),
    };
    if let Some(key) = fields.remove("idempotency_key") {
        fields.insert("client_id".into(), key);
    }
    let content = Content::parse_published(fields, sender.is_some())
        .map_err(|err| validation(err.to_string().replacen("client_id", "idempotency_key", 1)))?;
    Ok(Post { sender, content })
}

// ----- shared steps -----

/// The caller sends, edits or deletes: counted against `SEND_RATE`, and acting in the room.
async fn sends(env: &Env, caller: &Caller) -> Result<(), ApiError> {
    crate::quota::check(env, Rate::Send, &caller.me.user_id).await?;
    caller.acts().await
}

/// Stores a message in the room (which delivers it to every socket): 201, or 200 with the
/// original for a repeated `client_id`.
async fn post_to_room(env: &Env, room_id: &str, post: &Post) -> Answer {
    let posted = room::post(env, room_id, post).await?;
    respond(if posted.duplicate { 200 } else { 201 }, &posted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_bodies() {
        let post = published(json!({"body": "hi", "idempotency_key": "k-1"})).unwrap();
        assert_eq!(post.sender, None);
        assert_eq!(post.content.kind, "system");
        assert_eq!(post.content.client_id.as_deref(), Some("k-1"));
        let post =
            published(json!({"sender": "alice", "type": "file", "url": "https://x.example/f"}))
                .unwrap();
        assert_eq!(post.sender.as_deref(), Some("alice"));
        for bad in [
            json!({"body": "x", "client_id": "c"}),
            json!({"body": "x", "sender": 7}),
            json!({"body": "x", "sender": "a b"}),
            json!({"body": "x", "idempotency_key": ""}),
            json!(["x"]),
        ] {
            let err = published(bad.clone()).unwrap_err();
            assert_eq!((err.status, err.code), (400, "validation"), "{bad}");
        }
    }
}
