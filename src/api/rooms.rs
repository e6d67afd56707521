//! Rooms over HTTP: the members' REST (JWT), the backends' internal API, and the room connect.
//!
//! Membership lives in D1 and is written here. Adding writes D1 first and then tells the Room
//! (which also learns a member it missed from D1 when they connect); removing tells the Room
//! first — it closes the member's sockets and stops admitting them — and then writes D1. Either
//! way a failed step leaves the room no more open than D1 says, and a retry converges. Deleting a
//! room follows the removal order for everyone at once.
//!
//! Every membership change is also told: the room's sockets get `member.added`,
//! `member.updated` or `member.removed` (from the Room), and each user concerned gets
//! `room.added`, `room.updated` or `room.removed` in their user stream — durable, so their other
//! apps update their room lists, live or on resume. A hub that cannot be reached is named in the
//! answer's `unnotified`; the change itself stands (the room list over REST shows it).
//!
//! Messages sent over REST and read cursors moved over REST go through the Room exactly as the
//! socket's `send` and `read` do.
//!
//! Adding someone needs no consent, so a member another user added (at create or later) is
//! pending: presence and the member list tell nothing about their activity until they act in
//! the room themselves — connect to it, or send, read, edit or delete over REST. Members a
//! backend adds, and creators, are never pending.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{D1Database, Env, Method, Request, Response};

use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::cursor::PageCursor;
use crate::error::ApiError;
use crate::hubs::notifier::RoomLevel;
use crate::hubs::room::{
    self, Changed, EditRequest, MembersChange, Post, Posted, ReadOutcome, ReadRequest,
    RecallRequest,
};
use crate::hubs::room_sockets::RoomPresence;
use crate::hubs::user::PushRequest;
use crate::message::Content;
use crate::notify::Level;
use crate::quota::Rate;
use crate::store::d1;
use crate::store::rooms::{self, DailyCap, Member, Room, MEMBER, OWNER};
use crate::stream::Class;

/// Users one call may add (internal calls may add more: backends seed large rooms).
pub const MAX_ADD: usize = 100;
pub const MAX_ADD_INTERNAL: usize = 1000;
pub const MAX_NAME_CHARS: usize = 100;
/// Rooms `GET /v1/unread` lists at most (the most recently active with unread messages).
pub const MAX_UNREAD_ROOMS: i64 = 1000;
/// The window `MAX_ROOMS_PER_DAY` counts in.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
    /// Internal calls only: the owner (public calls: the caller).
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMembersBody {
    pub users: Vec<String>,
    /// Internal calls only: `owner` or `member` (the default).
    #[serde(default)]
    pub role: Option<String>,
    /// Internal calls only: `false` adds an audience without a `room.added` event in each
    /// member's stream (a live event's 20,000 viewers need no 20,000 stream events, or UserHub
    /// wakes); they find the room in `GET /v1/rooms`.
    #[serde(default)]
    pub notify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

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

fn validation(why: impl Into<String>) -> ApiError {
    ApiError::bad_request("validation", why)
}

fn room_id(raw: &str) -> Result<&str, ApiError> {
    crate::ids::validate_room_id(raw).map_err(validation)?;
    Ok(raw)
}

/// Valid, distinct user ids, 1 to `max` of them, leaving out `except`.
pub fn user_list(
    users: &[String],
    max: usize,
    except: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if users.len() > max {
        return Err(validation(format!("users: at most {max} per call")));
    }
    let mut out: Vec<String> = Vec::with_capacity(users.len());
    for user in users {
        crate::ids::validate_user_id(user).map_err(|why| validation(format!("users: {why}")))?;
        if Some(user.as_str()) != except && !out.contains(user) {
            out.push(user.clone());
        }
    }
    Ok(out)
}

/// A room name, trimmed: 1 to [`MAX_NAME_CHARS`] characters.
pub fn validate_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(validation(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

/// Checks a create body; returns the room id (generated when absent) and the trimmed name.
pub fn validate_create(body: &CreateRoomBody) -> Result<(String, String), ApiError> {
    let id = match &body.id {
        Some(id) => room_id(id)?.to_owned(),
        None => format!("r_{}", uuid::Uuid::new_v4().simple()),
    };
    Ok((id, validate_name(&body.name)?))
}

/// A member's call on one room: who calls, the room, their membership, and D1.
struct Caller {
    me: Identity,
    room: Room,
    member: Member,
    db: D1Database,
}

impl Caller {
    /// Authenticates the call and finds the room (404) and the caller in it (403
    /// `not_a_member`).
    async fn of(
        req: &Request,
        env: &Env,
        config: &Config,
        room_id: &str,
    ) -> Result<Caller, ApiError> {
        let me = super::authenticate(req, env, config).await?;
        let room_id = self::room_id(room_id)?;
        let db = d1::db(env)?;
        let room = existing_room(&db, room_id).await?;
        let member = rooms::member(&db, room_id, &me.user_id)
            .await?
            .ok_or_else(not_a_member)?;
        Ok(Caller {
            me,
            room,
            member,
            db,
        })
    }

    /// The caller acts in the room: a pending membership becomes an ordinary one.
    async fn acts(&self) -> Result<(), ApiError> {
        if self.member.pending {
            rooms::activate(&self.db, &self.room.id, &self.me.user_id).await?;
        }
        Ok(())
    }

    fn owner_only(&self, what: &str) -> Result<(), ApiError> {
        if self.member.role == OWNER {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "forbidden",
                format!("only the room's owner {what}"),
            ))
        }
    }
}

/// `GET` / `PUT /v1/rooms/{id}/notifications` `{"level": "all" | "mentions" | "none"}`: the
/// caller's notification level for the room, kept in their UserHub (`hubs::notifier`), where
/// it is read when the room tells them of activity. Members only; setting it is not acting in
/// the room (a pending member stays pending).
pub async fn notifications(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        level: String,
    }
    let caller = Caller::of(&req, env, config, room_id).await?;
    let level = if req.method() == Method::Put {
        let body: Body = crate::http::read_json(&mut req, 1024).await?;
        Some(Level::parse(&body.level).ok_or_else(|| {
            ApiError::bad_request("validation", "level must be all, mentions or none")
        })?)
    } else {
        None
    };
    let request = RoomLevel {
        room_id: caller.room.id.clone(),
        level,
    };
    let answer: RoomLevel = crate::hubs::user::call(
        env,
        &caller.me.user_id,
        Method::Post,
        "/room-level",
        Some(&request),
    )
    .await?;
    Ok(crate::http::json(200, &answer)?)
}

async fn existing_room(db: &D1Database, room_id: &str) -> Result<Room, ApiError> {
    rooms::room(db, room_id)
        .await?
        .ok_or_else(|| no_room(room_id))
}

fn no_room(room_id: &str) -> ApiError {
    ApiError::not_found(format!("no room '{room_id}'"))
}

fn not_a_member() -> ApiError {
    ApiError::forbidden("not_a_member", "you are not a member of this room")
}

fn room_json(room: &Room, member: Option<&Member>) -> Value {
    let mut value = json!(room);
    if let Some(member) = member {
        value["role"] = json!(member.role);
        value["read_seq"] = json!(member.read_seq);
    }
    value
}

// ----- the members' REST -----

pub async fn create(mut req: Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let body: CreateRoomBody =
        crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    if body.owner.is_some() {
        return Err(validation("owner: the caller owns a room they create"));
    }
    let members = user_list(&body.members, MAX_ADD, Some(&me.user_id))?;
    let made_by = Maker::User(me.user_id);
    create_room(env, config, &body, made_by, members).await
}

/// `MAX_ROOMS_PER_DAY`'s 429 with `Retry-After` (until the oldest of the user's rooms of the last
/// 24 hours is a day old); rooms a backend created with them as owner count too.
async fn over_daily_rooms(db: &D1Database, config: &Config, user_id: &str) -> ApiError {
    let now = crate::hubs::now_ms();
    let oldest = match rooms::created_since(db, user_id, now - DAY_MS).await {
        Ok((_, oldest)) => oldest,
        Err(err) => return err.into(),
    };
    let wait_ms = oldest.map_or(DAY_MS, |oldest| oldest + DAY_MS - now);
    let max = config.limits.max_rooms_per_day;
    ApiError::rate_limited(
        format!("at most {max} rooms per user in 24 hours"),
        wait_ms.div_euclid(1000) + 1,
    )
}

pub async fn list(req: Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let super::Page { cursor, limit } = super::page(&req)?;
    let db = d1::db(env)?;
    let page = rooms::list_for_user(&db, &me.user_id, cursor.as_ref(), limit).await?;
    let next = PageCursor::next(&page, limit, |room| {
        PageCursor::new(room.activity_at, room.id.clone())
    });
    Ok(crate::http::json(
        200,
        &json!({"rooms": page, "next_cursor": next}),
    )?)
}

pub async fn get(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    Ok(crate::http::json(
        200,
        &room_json(&caller.room, Some(&caller.member)),
    )?)
}

/// `PATCH /v1/rooms/{id}` `{"name"}` (owner): renames; the room's sockets and every member's
/// stream hear `room.updated`.
pub async fn rename(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    caller.owner_only("renames it")?;
    let body: RenameBody = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    let name = validate_name(&body.name)?;
    let room_id = caller.room.id.as_str();
    rooms::rename(&caller.db, room_id, &name).await?;
    let update = json!({"room_id": room_id, "name": name});
    room::call::<Value>(env, room_id, Method::Post, "/renamed", Some(&update)).await?;
    let members = rooms::member_ids(&caller.db, room_id).await?;
    let unnotified = tell(env, &members, "room.updated", update).await;
    let mut out = room_json(
        &Room {
            name,
            ..caller.room
        },
        Some(&caller.member),
    );
    out["unnotified"] = json!(unnotified);
    Ok(crate::http::json(200, &out)?)
}

/// `DELETE /v1/rooms/{id}` (owner).
pub async fn delete(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    caller.owner_only("deletes it")?;
    delete_room(env, &caller.db, &caller.room.id).await
}

pub async fn add_members(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    let body: AddMembersBody =
        crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    if body.role.is_some() {
        return Err(validation(
            "role: members added here are members; backends set roles",
        ));
    }
    if body.notify.is_some() {
        return Err(validation(
            "notify: members a user adds are always told; backends may add quietly",
        ));
    }
    caller.owner_only("adds members")?;
    let users = user_list(&body.users, MAX_ADD, None)?;
    let added = Added {
        role: MEMBER,
        pending: true,
        notify: true,
    };
    add(env, config, &caller.db, &caller.room, &users, added).await
}

pub async fn remove_member(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    user_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    if caller.me.user_id != user_id {
        caller.owner_only("removes others; anyone may leave")?;
    }
    remove(env, &caller.db, &caller.room.id, user_id).await
}

pub async fn members(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    let limit = super::limit(&req)?;
    let after = crate::http::query_param(&req, "after");
    if let Some(after) = &after {
        crate::ids::validate_user_id(after).map_err(|why| validation(format!("after: {why}")))?;
    }
    let room_id = caller.room.id.as_str();
    let page = rooms::members(&caller.db, room_id, after.as_deref(), limit).await?;
    let users: Vec<String> = page.iter().map(|m| m.user_id.clone()).collect();
    let pending = |user: &str| page.iter().any(|m| m.user_id == user && m.pending);
    let presence =
        super::users::presence_of_users(env, config, &users, |user| !pending(user)).await?;
    let in_room: RoomPresence =
        room::call(env, room_id, Method::Get, "/presence", None::<&()>).await?;
    let out: Vec<Value> = page
        .iter()
        .zip(presence)
        .map(|(member, presence)| {
            if member.pending {
                // Nothing about their activity: no presence, no read position.
                return json!({
                    "user_id": member.user_id,
                    "role": member.role,
                    "joined_at": member.joined_at,
                    "pending": true,
                });
            }
            json!({
                "user_id": member.user_id,
                "role": member.role,
                "joined_at": member.joined_at,
                "pending": false,
                "read_seq": member.read_seq,
                "online": presence.online,
                "devices": presence.devices,
                "last_seen": presence.last_seen,
                "in_room": in_room.users.get(&member.user_id).copied().unwrap_or(0),
            })
        })
        .collect();
    let next = (page.len() as i64 == limit)
        .then(|| users.last().cloned())
        .flatten();
    Ok(crate::http::json(
        200,
        &json!({"members": out, "next_after": next}),
    )?)
}

/// `GET /v1/rooms/{id}/messages?before_seq=&limit=`: history from D1, newest first.
pub async fn messages(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    let limit = super::limit(&req)?;
    let before = match crate::http::query_param(&req, "before_seq") {
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
    Ok(crate::http::json(
        200,
        &json!({"messages": page, "next_before_seq": next}),
    )?)
}

/// `POST /v1/rooms/{id}/messages`: the socket `send` over REST — the same content and rules,
/// the same send rate, idempotent by `client_id`; `201 {message, duplicate:false}`, or `200`
/// with the original for a repeated `client_id`.
pub async fn send(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    let body: Value = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    let Value::Object(fields) = body else {
        return Err(validation("the body must be a JSON object"));
    };
    let content = Content::parse(fields).map_err(|err| validation(err.to_string()))?;
    crate::quota::check(env, Rate::Send, &caller.me.user_id).await?;
    caller.acts().await?;
    let post = Post {
        sender: Some(caller.me.user_id),
        content,
    };
    post_to_room(env, &caller.room.id, &post).await
}

/// `PATCH /v1/rooms/{id}/messages/{message_id}` `{"body"}`: the sender edits the body of a
/// message (it counts against `SEND_RATE` like a send); `message.updated` to every room socket.
pub async fn edit_message(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    message_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    crate::direct::validate_message_id(message_id).map_err(validation)?;
    let body: EditBody = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    crate::quota::check(env, Rate::Send, &caller.me.user_id).await?;
    caller.acts().await?;
    let request = EditRequest {
        user_id: caller.me.user_id,
        message_id: message_id.to_owned(),
        body: body.body,
    };
    let changed: Changed =
        room::call(env, &caller.room.id, Method::Post, "/edit", Some(&request)).await?;
    Ok(crate::http::json(200, &changed)?)
}

/// `DELETE /v1/rooms/{id}/messages/{message_id}`: the sender recalls within
/// `RECALL_WINDOW_SECONDS`; the room's owner and admins delete any message at any time. The
/// content is gone everywhere (D1's history too, for messages older than the room's window),
/// the seq stays; `message.deleted` to every room socket. It counts against `SEND_RATE`.
pub async fn delete_message(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    message_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    crate::direct::validate_message_id(message_id).map_err(validation)?;
    crate::quota::check(env, Rate::Send, &caller.me.user_id).await?;
    caller.acts().await?;
    let request = RecallRequest {
        moderator: caller.member.role == OWNER || caller.me.is_admin(),
        user_id: caller.me.user_id,
        message_id: message_id.to_owned(),
    };
    let changed: Changed = room::call(
        env,
        &caller.room.id,
        Method::Post,
        "/recall",
        Some(&request),
    )
    .await?;
    Ok(crate::http::json(200, &changed)?)
}

/// `POST /v1/rooms/{id}/read {"seq"}`: the socket `read` over REST.
pub async fn read(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&req, env, config, room_id).await?;
    let body: ReadBody = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    if body.seq < 0 {
        return Err(validation("seq must be a whole number >= 0"));
    }
    caller.acts().await?;
    let request = ReadRequest {
        user_id: caller.me.user_id,
        seq: body.seq,
    };
    let outcome: ReadOutcome =
        room::call(env, &caller.room.id, Method::Post, "/read", Some(&request)).await?;
    Ok(crate::http::json(200, &outcome)?)
}

/// `GET /v1/unread`: unread direct messages, unread per room (as of the rooms' last D1 copy)
/// and the total, in one call.
pub async fn unread(req: Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let db = d1::db(env)?;
    let direct = crate::store::direct::unread_count(&db, &me.user_id).await?;
    let per_room = rooms::unread_rooms(&db, &me.user_id, MAX_UNREAD_ROOMS).await?;
    let in_rooms: i64 = per_room.iter().map(|room| room.unread).sum();
    Ok(crate::http::json(
        200,
        &json!({
            "direct": direct,
            "rooms": per_room,
            "total": direct + in_rooms,
        }),
    )?)
}

pub async fn connect(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let admitted = super::connect::admit(&req, env, config).await?;
    let room_id = self::room_id(room_id)?;
    let path = super::connect::hub_path(&req)?;
    let subprotocol = admitted.carrier == crate::auth::token::Carrier::Subprotocol;
    room::open_socket(env, &admitted.identity, room_id, &path, subprotocol).await
}

// ----- the backends' internal API -----

pub async fn internal_create(
    mut req: Request,
    env: &Env,
    config: &Config,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let body: CreateRoomBody =
        crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    if let Some(owner) = &body.owner {
        crate::ids::validate_user_id(owner).map_err(|why| validation(format!("owner: {why}")))?;
    }
    let members = user_list(&body.members, MAX_ADD_INTERNAL, body.owner.as_deref())?;
    let made_by = Maker::Backend(body.owner.clone());
    create_room(env, config, &body, made_by, members).await
}

pub async fn internal_add_members(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    let body: AddMembersBody =
        crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    let role = match body.role.as_deref() {
        None | Some(MEMBER) => MEMBER,
        Some(OWNER) => OWNER,
        Some(_) => return Err(validation("role must be 'owner' or 'member'")),
    };
    let users = user_list(&body.users, MAX_ADD_INTERNAL, None)?;
    let db = d1::db(env)?;
    let room = existing_room(&db, room_id).await?;
    let added = Added {
        role,
        pending: false,
        notify: body.notify.unwrap_or(true),
    };
    add(env, config, &db, &room, &users, added).await
}

pub async fn internal_remove_member(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    user_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    let db = d1::db(env)?;
    existing_room(&db, room_id).await?;
    remove(env, &db, room_id, user_id).await
}

/// `DELETE /internal/v1/rooms/{id}`.
pub async fn internal_delete(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    let db = d1::db(env)?;
    existing_room(&db, room_id).await?;
    delete_room(env, &db, room_id).await
}

/// `POST /internal/v1/rooms/{id}/publish`: a `system` message, or with `sender` (a member) any
/// message a member may send; `idempotency_key` makes a retry return the original.
pub async fn internal_publish(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    let body: Value = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    let post = published(body)?;
    let db = d1::db(env)?;
    existing_room(&db, room_id).await?;
    if let Some(sender) = &post.sender {
        rooms::member(&db, room_id, sender).await?.ok_or_else(|| {
            ApiError::forbidden(
                "not_a_member",
                format!("'{sender}' is not a member of this room"),
            )
        })?;
    }
    let started = crate::hubs::now_ms();
    let answer = post_to_room(env, room_id, &post).await;
    crate::log::info(
        "publish",
        json!({
            "room_id": room_id,
            "status": answer.as_ref().map_or_else(|err| err.status, Response::status_code),
            "bytes": post.content.body.len(),
            "ms": crate::hubs::now_ms() - started,
        }),
    );
    answer
}

/// `GET /internal/v1/rooms/{id}/shards`: the objects holding the room's sockets (the room's
/// own is shard 0) and how many sockets each holds (`hubs::room_shard`).
pub async fn internal_shards(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    internal_view(req, env, config, room_id, "/shards").await
}

/// An internal look at a room: the internal token, a room D1 knows (404 otherwise, and no Room
/// object is addressed), and the Room's JSON answer to `GET <path>`.
pub(super) async fn internal_view(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    path: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    existing_room(&d1::db(env)?, room_id).await?;
    let view: Value = room::call(env, room_id, Method::Get, path, None::<&()>).await?;
    Ok(crate::http::json(200, &view)?)
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

/// Stores a message in the room (which delivers it to every socket): 201, or 200 with the
/// original for a repeated `client_id`.
async fn post_to_room(env: &Env, room_id: &str, post: &Post) -> Result<Response, ApiError> {
    let posted: Posted = room::call(env, room_id, Method::Post, "/post", Some(post)).await?;
    Ok(crate::http::json(
        if posted.duplicate { 200 } else { 201 },
        &posted,
    )?)
}

/// Appends `event` to each user's stream; returns the users whose hub could not be reached.
/// No idempotency key: each change is told once, by the call that made it (a repeated call
/// finds nothing left to change and tells nobody). A chat event whoever made the change, a
/// backend or a user: the room list over REST holds its state.
async fn tell(env: &Env, users: &[String], event: &str, data: Value) -> Vec<String> {
    let request = PushRequest {
        event: event.to_owned(),
        data,
        idempotency_key: None,
        class: Class::Chat,
        notify: None,
    };
    let outcomes = crate::hubs::user::push_all(env, users, &request).await;
    users
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_err())
        .map(|(user, _)| user.clone())
        .collect()
}

/// Who creates a room: a user over REST (its owner, within `MAX_ROOMS_PER_DAY`; the members
/// they name are pending), or a backend, with or without an owner.
enum Maker {
    User(String),
    Backend(Option<String>),
}

async fn create_room(
    env: &Env,
    config: &Config,
    body: &CreateRoomBody,
    made_by: Maker,
    members: Vec<String>,
) -> Result<Response, ApiError> {
    let (id, name) = validate_create(body)?;
    let (owner, by_user) = match made_by {
        Maker::User(user) => (Some(user), true),
        Maker::Backend(owner) => (owner, false),
    };
    let max = config.limits.max_room_members;
    if members.len() + usize::from(owner.is_some()) > max {
        return Err(room_full(max));
    }
    let now = crate::hubs::now_ms();
    let room = Room {
        id: id.clone(),
        name,
        created_by: owner.clone(),
        created_at: now,
        last_seq: 0,
        activity_at: now,
    };
    let as_member = |user_id: String, role: &str, pending: bool| Member {
        user_id,
        role: role.to_owned(),
        joined_at: now,
        read_seq: 0,
        pending,
    };
    let list: Vec<Member> = owner
        .into_iter()
        .map(|owner| as_member(owner, OWNER, false))
        .chain(
            members
                .into_iter()
                .map(|user| as_member(user, MEMBER, by_user)),
        )
        .collect();
    let cap = by_user.then_some(DailyCap {
        since_ms: now - DAY_MS,
        max: config.limits.max_rooms_per_day,
    });
    let db = d1::db(env)?;
    let made = rooms::create(&db, &room, &list, cap).await.map_err(|err| {
        if d1::is_conflict(&err) {
            ApiError::new(409, "conflict", format!("room '{id}' already exists"))
        } else {
            err.into()
        }
    })?;
    if !made {
        let creator = room.created_by.as_deref().unwrap_or_default();
        return Err(over_daily_rooms(&db, config, creator).await);
    }
    let change = MembersChange {
        add: list.iter().map(|m| m.user_id.clone()).collect(),
        role: MEMBER.into(),
        ..MembersChange::default()
    };
    room::call::<Value>(env, &id, Method::Post, "/members", Some(&change)).await?;
    let mut unnotified = Vec::new();
    for role in [OWNER, MEMBER] {
        let users: Vec<String> = list
            .iter()
            .filter(|m| m.role == role)
            .map(|m| m.user_id.clone())
            .collect();
        let data = room_added(&room, role);
        unnotified.extend(tell(env, &users, "room.added", data).await);
    }
    let mut out = room_json(&room, None);
    out["members"] = json!(list.len());
    out["unnotified"] = json!(unnotified);
    Ok(crate::http::json(201, &out)?)
}

/// What `room.added` says: the room as a room list shows it, with the user's role.
fn room_added(room: &Room, role: &str) -> Value {
    let mut value = json!(room);
    value["role"] = json!(role);
    json!({ "room": value })
}

/// 409 `room_full`: `MAX_ROOM_MEMBERS`.
fn room_full(max: usize) -> ApiError {
    ApiError::new(
        409,
        "room_full",
        format!("a room has at most {max} members (MAX_ROOM_MEMBERS)"),
    )
}

/// How members join by an add: with `role`, and `pending` when a user (not a backend) adds
/// them.
struct Added {
    role: &'static str,
    pending: bool,
    /// Each added member's stream gets `room.added`.
    notify: bool,
}

/// Adds `users` with `role`; members already there keep their cursor and, when `role`
/// differs, get `role` (`member.updated`, `room.updated`). Over `MAX_ROOM_MEMBERS` nothing
/// changes: `409 room_full`.
async fn add(
    env: &Env,
    config: &Config,
    db: &D1Database,
    room: &Room,
    users: &[String],
    Added {
        role,
        pending,
        notify,
    }: Added,
) -> Result<Response, ApiError> {
    if users.is_empty() {
        return Err(validation("users must name at least one user"));
    }
    let max = config.limits.max_room_members;
    let already = rooms::already_members(db, &room.id, users).await?;
    let joining: Vec<String> = users
        .iter()
        .filter(|user| !already.contains(user))
        .cloned()
        .collect();
    let now = crate::hubs::now_ms();
    let members: Vec<Member> = joining
        .iter()
        .map(|user| Member {
            user_id: user.clone(),
            role: role.to_owned(),
            joined_at: now,
            read_seq: room.last_seq,
            pending,
        })
        .collect();
    let inserted = rooms::add_members(db, &room.id, &members, max).await?;
    // None added although some were not members: the room would pass its cap, unless every
    // one of them joined meanwhile through another call.
    if inserted.is_empty()
        && !joining.is_empty()
        && rooms::already_members(db, &room.id, &joining).await?.len() < joining.len()
    {
        return Err(room_full(max));
    }
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let added: Vec<String> = joining
        .into_iter()
        .filter(|user| inserted.contains(user))
        .collect();
    let updated = rooms::set_role(db, &room.id, &already, role).await?;
    let change = MembersChange {
        add: added.clone(),
        updated: updated.clone(),
        role: role.to_owned(),
        ..MembersChange::default()
    };
    room::call::<Value>(env, &room.id, Method::Post, "/members", Some(&change)).await?;
    let mut unnotified = if notify {
        tell(env, &added, "room.added", room_added(room, role)).await
    } else {
        Vec::new()
    };
    let update = json!({"room_id": room.id, "role": role});
    unnotified.extend(tell(env, &updated, "room.updated", update).await);
    Ok(crate::http::json(
        200,
        &json!({"room_id": room.id, "added": added, "updated": updated, "unnotified": unnotified}),
    )?)
}

async fn remove(
    env: &Env,
    db: &D1Database,
    room_id: &str,
    user_id: &str,
) -> Result<Response, ApiError> {
    if rooms::member(db, room_id, user_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "'{user_id}' is not a member of '{room_id}'"
        )));
    }
    let change = MembersChange {
        remove: vec![user_id.to_owned()],
        ..MembersChange::default()
    };
    room::call::<Value>(env, room_id, Method::Post, "/members", Some(&change)).await?;
    rooms::remove_member(db, room_id, user_id).await?;
    let user = [user_id.to_owned()];
    let gone = json!({"room_id": room_id, "reason": "removed"});
    let unnotified = tell(env, &user, "room.removed", gone).await;
    Ok(crate::http::json(
        200,
        &json!({"room_id": room_id, "removed": user_id, "unnotified": unnotified}),
    )?)
}

/// Deletes a room: the Room first (its sockets close with 4004 and it admits nobody), then
/// D1's rows (REST no longer knows the room or its history), then every former member's
/// stream gets `room.removed`. A retry after a failure repeats what is left.
async fn delete_room(env: &Env, db: &D1Database, room_id: &str) -> Result<Response, ApiError> {
    let members = rooms::member_ids(db, room_id).await?;
    room::call::<Value>(env, room_id, Method::Post, "/delete", None::<&()>).await?;
    rooms::delete(db, room_id).await?;
    let gone = json!({"room_id": room_id, "reason": "deleted"});
    let unnotified = tell(env, &members, "room.removed", gone).await;
    Ok(crate::http::json(
        200,
        &json!({"room_id": room_id, "deleted": true, "members": members.len(), "unnotified": unnotified}),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_body(value: Value) -> CreateRoomBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn user_lists_dedupe_and_drop_the_caller() {
        let users = vec!["a".into(), "b".into(), "a".into(), "me".into()];
        assert_eq!(user_list(&users, 10, Some("me")).unwrap(), vec!["a", "b"]);
        assert!(user_list(&["a/b".into()], 10, None).is_err());
        assert!(user_list(&vec!["a".into(); 11], 10, None).is_err());
    }

    #[test]
    fn create_bodies() {
        let (id, name) = validate_create(&create_body(json!({"name": " Team "}))).unwrap();
        assert!(id.starts_with("r_"));
        assert_eq!(name, "Team");
        let (id, _) = validate_create(&create_body(json!({"id": "team.a", "name": "A"}))).unwrap();
        assert_eq!(id, "team.a");
        assert!(validate_create(&create_body(json!({"name": ""}))).is_err());
        assert!(validate_create(&create_body(json!({"id": "a b", "name": "x"}))).is_err());
        assert!(validate_create(&create_body(
            json!({"name": "x".repeat(MAX_NAME_CHARS + 1)})
        ))
        .is_err());
        assert!(
            serde_json::from_value::<CreateRoomBody>(json!({"name": "x", "extra": 1})).is_err()
        );
    }

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
