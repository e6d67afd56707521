//! Rooms over HTTP: the members' REST (JWT), the backends' internal API, and the room connect.
//! A room's members are managed in `api::room_members` and its messages in
//! `api::room_messages`; the steps all three share are here (`Caller`, `tell`).
//!
//! Every membership change is also told: the room's sockets get `member.added`,
//! `member.updated` or `member.removed` (from the Room), and each user concerned gets
//! `room.added`, `room.updated` or `room.removed` in their user stream — durable, so their other
//! apps update their room lists, live or on resume. A hub that cannot be reached is named in the
//! answer's `unnotified`; the change itself stands (the room list over REST shows it).
//!
//! Deleting a room follows the order of removing a member (`api::room_members`) for everyone
//! at once.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{D1Database, Env, Method};

use super::call::{listing, ok, respond, validation, Answer, Call};
use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::cursor::PageCursor;
use crate::error::ApiError;
use crate::hubs::stubs::room::{self, MembersChange, RoomCall};
use crate::hubs::stubs::user::{self, PushRequest, RoomLevel};
use crate::notify::Level;
use crate::store::d1;
use crate::store::rooms::{self, DailyCap, Member, Room, MEMBER, OWNER};
use crate::stream::Class;

pub const MAX_NAME_CHARS: usize = 100;
/// Rooms `GET /v1/unread` lists at most (the most recently active with unread messages).
pub const MAX_UNREAD_ROOMS: i64 = 1000;
/// The window `MAX_ROOMS_PER_DAY` counts in.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Users one call may add (internal calls may add more: backends seed large rooms).
pub const MAX_ADD: usize = 100;
pub const MAX_ADD_INTERNAL: usize = 1000;

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
struct RenameBody {
    name: String,
}

pub(super) fn room_id(raw: &str) -> Result<&str, ApiError> {
    crate::ids::validate_room_id(raw).map_err(validation)?;
    Ok(raw)
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
pub(super) struct Caller {
    pub me: Identity,
    pub room: Room,
    pub member: Member,
    pub db: D1Database,
}

impl Caller {
    /// Authenticates the call and finds the room (404) and the caller in it (403
    /// `not_a_member`).
    pub async fn of(call: &Call<'_>, room_id: &str) -> Result<Caller, ApiError> {
        let me = call.user().await?;
        let room_id = self::room_id(room_id)?;
        let db = d1::db(call.env)?;
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
    pub async fn acts(&self) -> Result<(), ApiError> {
        if self.member.pending {
            rooms::activate(&self.db, &self.room.id, &self.me.user_id).await?;
        }
        Ok(())
    }

    pub fn owner_only(&self, what: &str) -> Result<(), ApiError> {
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
/// caller's notification level for the room, kept in their UserHub (`hubs::user::notifier`), where
/// it is read when the room tells them of activity. Members only; setting it is not acting in
/// the room (a pending member stays pending).
pub async fn notifications(mut call: Call<'_>, room_id: &str) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        level: String,
    }
    let caller = Caller::of(&call, room_id).await?;
    let level = if call.req.method() == Method::Put {
        let body: Body = call.body_within(1024).await?;
        Some(
            Level::parse(&body.level)
                .ok_or_else(|| validation("level must be all, mentions or none"))?,
        )
    } else {
        None
    };
    let request = RoomLevel {
        room_id: caller.room.id.clone(),
        level,
    };
    ok(&user::room_level(call.env, &caller.me.user_id, &request).await?)
}

/// The room `room_id`, or 404.
pub(super) async fn existing_room(db: &D1Database, room_id: &str) -> Result<Room, ApiError> {
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

pub async fn create(mut call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let body: CreateRoomBody = call.body().await?;
    if body.owner.is_some() {
        return Err(validation("owner: the caller owns a room they create"));
    }
    let members = user_list(&body.members, MAX_ADD, Some(&me.user_id))?;
    let made_by = Maker::User(me.user_id);
    create_room(&call, &body, made_by, members).await
}

/// `MAX_ROOMS_PER_DAY`'s 429 with `Retry-After` (until the oldest of the user's rooms of the last
/// 24 hours is a day old); rooms a backend created with them as owner count too.
async fn over_daily_rooms(db: &D1Database, config: &Config, user_id: &str) -> ApiError {
    let now = crate::clock::now_ms();
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

pub async fn list(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let super::call::Page { cursor, limit } = call.page()?;
    let db = d1::db(call.env)?;
    let page = rooms::list_for_user(&db, &me.user_id, cursor.as_ref(), limit).await?;
    listing("rooms", &page, limit, |room| {
        PageCursor::new(room.activity_at, room.id.clone())
    })
}

pub async fn get(call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    ok(&room_json(&caller.room, Some(&caller.member)))
}

/// `PATCH /v1/rooms/{id}` `{"name"}` (owner): renames; the room's sockets and every member's
/// stream hear `room.updated`.
pub async fn rename(mut call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    caller.owner_only("renames it")?;
    let body: RenameBody = call.body().await?;
    let name = validate_name(&body.name)?;
    let (env, room_id) = (call.env, caller.room.id.as_str());
    rooms::rename(&caller.db, room_id, &name).await?;
    let update = json!({"room_id": room_id, "name": name});
    room::renamed(env, room_id, &update).await?;
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
    ok(&out)
}

/// `DELETE /v1/rooms/{id}` (owner).
pub async fn delete(call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    caller.owner_only("deletes it")?;
    delete_room(call.env, &caller.db, &caller.room.id).await
}

/// `GET /v1/unread`: unread direct messages, unread per room (as of the rooms' last D1 copy)
/// and the total, in one call.
pub async fn unread(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let db = d1::db(call.env)?;
    let direct = crate::store::direct::unread_count(&db, &me.user_id).await?;
    let per_room = rooms::unread_rooms(&db, &me.user_id, MAX_UNREAD_ROOMS).await?;
    let in_rooms: i64 = per_room.iter().map(|room| room.unread).sum();
    ok(&json!({
        "direct": direct,
        "rooms": per_room,
        "total": direct + in_rooms,
    }))
}

pub async fn connect(call: Call<'_>, room_id: &str) -> Answer {
    let admitted = super::connect::authenticate(&call).await?;
    let room_id = self::room_id(room_id)?;
    let query = super::connect::hub_query(&call)?;
    admitted.open_room_socket(call.env, room_id, &query).await
}

// ----- the backends' internal API -----

pub async fn internal_create(mut call: Call<'_>) -> Answer {
    call.internal()?;
    let body: CreateRoomBody = call.body().await?;
    if let Some(owner) = &body.owner {
        crate::ids::validate_user_id(owner).map_err(|why| validation(format!("owner: {why}")))?;
    }
    let members = user_list(&body.members, MAX_ADD_INTERNAL, body.owner.as_deref())?;
    let made_by = Maker::Backend(body.owner.clone());
    create_room(&call, &body, made_by, members).await
}

/// An internal call on one room: the internal token, a valid room id, and a room D1 knows (404
/// otherwise, and no Room object is addressed); D1 and the room's id.
pub(super) async fn internal_room<'a>(
    call: &Call<'_>,
    room_id: &'a str,
) -> Result<(D1Database, &'a str), ApiError> {
    call.internal()?;
    let room_id = self::room_id(room_id)?;
    let db = d1::db(call.env)?;
    existing_room(&db, room_id).await?;
    Ok((db, room_id))
}

/// `DELETE /internal/v1/rooms/{id}`.
pub async fn internal_delete(call: Call<'_>, room_id: &str) -> Answer {
    let (db, room_id) = internal_room(&call, room_id).await?;
    delete_room(call.env, &db, room_id).await
}

/// `GET /internal/v1/rooms/{id}/shards`: the objects holding the room's sockets (the room's
/// own is shard 0) and how many sockets each holds (`hubs::room::shard`).
pub async fn internal_shards(call: Call<'_>, room_id: &str) -> Answer {
    internal_view(call, room_id, RoomCall::Shards).await
}

/// An internal look at a room: the internal token, a room D1 knows (404 otherwise, and no Room
/// object is addressed), and the Room's JSON answer to `view` (`Shards`, `Stats`).
pub(super) async fn internal_view(call: Call<'_>, room_id: &str, view: RoomCall) -> Answer {
    let (_, room_id) = internal_room(&call, room_id).await?;
    ok(&room::view(call.env, room_id, view).await?)
}

// ----- shared steps -----

/// Appends `event` to each user's stream; returns the users whose hub could not be reached.
/// No idempotency key: each change is told once, by the call that made it (a repeated call
/// finds nothing left to change and tells nobody). A chat event whoever made the change, a
/// backend or a user: the room list over REST holds its state.
pub(super) async fn tell(env: &Env, users: &[String], event: &str, data: Value) -> Vec<String> {
    let request = PushRequest {
        event: event.to_owned(),
        data,
        idempotency_key: None,
        class: Class::Chat,
        notify: None,
    };
    let outcomes = user::push_all(env, users, &request).await;
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
    call: &Call<'_>,
    body: &CreateRoomBody,
    made_by: Maker,
    members: Vec<String>,
) -> Answer {
    let (env, config) = (call.env, call.config);
    let (id, name) = validate_create(body)?;
    let (owner, by_user) = match made_by {
        Maker::User(user) => (Some(user), true),
        Maker::Backend(owner) => (owner, false),
    };
    let max = config.limits.max_room_members;
    if members.len() + usize::from(owner.is_some()) > max {
        return Err(room_full(max));
    }
    let now = crate::clock::now_ms();
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
    room::members(env, &id, &change).await?;
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
    respond(201, &out)
}

/// What `room.added` says: the room as a room list shows it, with the user's role.
pub(super) fn room_added(room: &Room, role: &str) -> Value {
    let mut value = json!(room);
    value["role"] = json!(role);
    json!({ "room": value })
}

/// 409 `room_full`: `MAX_ROOM_MEMBERS`.
pub(super) fn room_full(max: usize) -> ApiError {
    ApiError::new(
        409,
        "room_full",
        format!("a room has at most {max} members (MAX_ROOM_MEMBERS)"),
    )
}

/// Deletes a room: the Room first (its sockets close with 4004 and it admits nobody), then
/// D1's rows (REST no longer knows the room or its history), then every former member's
/// stream gets `room.removed`. A retry after a failure repeats what is left.
async fn delete_room(env: &Env, db: &D1Database, room_id: &str) -> Answer {
    let members = rooms::member_ids(db, room_id).await?;
    room::delete(env, room_id).await?;
    rooms::delete(db, room_id).await?;
    let gone = json!({"room_id": room_id, "reason": "deleted"});
    let unnotified = tell(env, &members, "room.removed", gone).await;
    ok(
        &json!({"room_id": room_id, "deleted": true, "members": members.len(), "unnotified": unnotified}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lists_dedupe_and_drop_the_caller() {
        let users = vec!["a".into(), "b".into(), "a".into(), "me".into()];
        assert_eq!(user_list(&users, 10, Some("me")).unwrap(), vec!["a", "b"]);
        assert!(user_list(&["a/b".into()], 10, None).is_err());
        assert!(user_list(&vec!["a".into(); 11], 10, None).is_err());
    }

    fn create_body(value: Value) -> CreateRoomBody {
        serde_json::from_value(value).unwrap()
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
}
