//! Rooms over HTTP: the members' REST (JWT), the backends' internal API, and the room connect.
//!
//! Membership lives in D1 and is written here. Adding writes D1 first and then tells the Room
//! (which also learns a member it missed from D1 when they connect); removing tells the Room
//! first — it closes the member's sockets and stops admitting them — and then writes D1. Either
//! way a failed step leaves the room no more open than D1 says, and a retry converges.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{D1Database, Env, Method, Request, Response};

use crate::config::Config;
use crate::cursor::PageCursor;
use crate::error::ApiError;
use crate::hubs::room::{self, MembersChange, Posted, PublishRequest, RoomPresence};
use crate::store::d1;
use crate::store::rooms::{self, Member, Room, MEMBER, OWNER};

/// Users one call may add (internal calls may add more: backends seed large rooms).
pub const MAX_ADD: usize = 100;
pub const MAX_ADD_INTERNAL: usize = 1000;
pub const MAX_NAME_CHARS: usize = 100;

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    pub body: String,
    #[serde(default)]
    pub data: Value,
    pub idempotency_key: Option<String>,
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

/// Checks a create body; returns the room id (generated when absent) and the trimmed name.
pub fn validate_create(body: &CreateRoomBody) -> Result<(String, String), ApiError> {
    let id = match &body.id {
        Some(id) => room_id(id)?.to_owned(),
        None => format!("r_{}", uuid::Uuid::new_v4().simple()),
    };
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(validation(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok((id, name.to_owned()))
}

/// The room, and the caller's membership: 404 when there is no such room, 403 when the caller
/// is not in it.
async fn membership(
    db: &D1Database,
    room_id: &str,
    user_id: &str,
) -> Result<(Room, Member), ApiError> {
    let room = rooms::room(db, room_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no room '{room_id}'")))?;
    let member = rooms::member(db, room_id, user_id)
        .await?
        .ok_or_else(|| ApiError::forbidden("not_a_member", "you are not a member of this room"))?;
    Ok((room, member))
}

async fn existing_room(db: &D1Database, room_id: &str) -> Result<Room, ApiError> {
    rooms::room(db, room_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no room '{room_id}'")))
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
    within_daily_rooms(env, config, &me.user_id).await?;
    create_room(env, config, &body, Some(me.user_id), members).await
}

/// `MAX_ROOMS_PER_DAY`: 429 with `Retry-After` once a user created that many rooms in the last
/// 24 hours (rooms a backend created with them as owner count too).
async fn within_daily_rooms(env: &Env, config: &Config, user_id: &str) -> Result<(), ApiError> {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    let now = crate::hubs::now_ms();
    let (created, oldest) = rooms::created_since(&d1::db(env)?, user_id, now - DAY_MS).await?;
    let max = config.limits.max_rooms_per_day;
    if created < max {
        return Ok(());
    }
    let wait_ms = oldest.map_or(DAY_MS, |oldest| oldest + DAY_MS - now);
    Err(ApiError::rate_limited(
        format!("at most {max} rooms per user in 24 hours"),
        wait_ms.div_euclid(1000) + 1,
    ))
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
    let me = super::authenticate(&req, env, config).await?;
    let db = d1::db(env)?;
    let (room, member) = membership(&db, self::room_id(room_id)?, &me.user_id).await?;
    Ok(crate::http::json(200, &room_json(&room, Some(&member)))?)
}

pub async fn add_members(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let room_id = self::room_id(room_id)?;
    let body: AddMembersBody =
        crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    if body.role.is_some() {
        return Err(validation(
            "role: members added here are members; backends set roles",
        ));
    }
    let db = d1::db(env)?;
    let (room, caller) = membership(&db, room_id, &me.user_id).await?;
    if caller.role != OWNER {
        return Err(ApiError::forbidden(
            "forbidden",
            "only the room's owner adds members",
        ));
    }
    let users = user_list(&body.users, MAX_ADD, None)?;
    add(env, config, &db, &room, &users, MEMBER).await
}

pub async fn remove_member(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
    user_id: &str,
) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let room_id = self::room_id(room_id)?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    let db = d1::db(env)?;
    let (_, caller) = membership(&db, room_id, &me.user_id).await?;
    if caller.role != OWNER && me.user_id != user_id {
        return Err(ApiError::forbidden(
            "forbidden",
            "only the room's owner removes others; anyone may leave",
        ));
    }
    remove(env, &db, room_id, user_id).await
}

pub async fn members(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let room_id = self::room_id(room_id)?;
    let limit = super::limit(&req)?;
    let after = crate::http::query_param(&req, "after");
    if let Some(after) = &after {
        crate::ids::validate_user_id(after).map_err(|why| validation(format!("after: {why}")))?;
    }
    let db = d1::db(env)?;
    membership(&db, room_id, &me.user_id).await?;
    let page = rooms::members(&db, room_id, after.as_deref(), limit).await?;
    let users: Vec<String> = page.iter().map(|m| m.user_id.clone()).collect();
    let presence = super::users::presence_of_users(env, config, &users, |_| true).await?;
    let in_room: RoomPresence =
        room::call(env, room_id, Method::Get, "/presence", None::<&()>).await?;
    let out: Vec<Value> = page
        .iter()
        .zip(presence)
        .map(|(member, presence)| {
            json!({
                "user_id": member.user_id,
                "role": member.role,
                "joined_at": member.joined_at,
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

pub async fn messages(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let me = super::authenticate(&req, env, config).await?;
    let room_id = self::room_id(room_id)?;
    let limit = super::limit(&req)?;
    let before = match crate::http::query_param(&req, "before_seq") {
        None => i64::from(u32::MAX) * 1024,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 1)
            .ok_or_else(|| validation("before_seq must be a whole number >= 1"))?,
    };
    let db = d1::db(env)?;
    membership(&db, room_id, &me.user_id).await?;
    let page = rooms::history(&db, room_id, before, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|m| m.seq))
        .flatten();
    Ok(crate::http::json(
        200,
        &json!({"messages": page, "next_before_seq": next}),
    )?)
}

pub async fn connect(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    let admitted = super::connect::admit(&req, config)?;
    let room_id = self::room_id(room_id)?;
    let path = super::connect::hub_path(&req)?;
    let db = d1::db(env)?;
    membership(&db, room_id, &admitted.identity.user_id).await?;
    super::not_revoked(env, &admitted.identity).await?;
    let upgrade = super::connect::upgrade_request_with(&path, &admitted, room::headers(room_id)?)?;
    crate::http::call_hub(&room::stub(env, room_id)?, upgrade).await
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
    let owner = body.owner.clone();
    create_room(env, config, &body, owner, members).await
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
    add(env, config, &db, &room, &users, role).await
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

pub async fn internal_publish(
    mut req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    let room_id = self::room_id(room_id)?;
    let body: PublishBody = crate::http::read_json(&mut req, config.limits.max_body_bytes).await?;
    let chars = body.body.chars().count();
    if body.body.trim().is_empty() || chars > crate::message::MAX_BODY_CHARS {
        return Err(validation(format!(
            "body must be 1 to {} characters",
            crate::message::MAX_BODY_CHARS
        )));
    }
    crate::message::validate_data(&body.data).map_err(|err| validation(err.to_string()))?;
    if let Some(key) = &body.idempotency_key {
        crate::ids::validate_client_id(key)
            .map_err(|why| validation(format!("idempotency_key: {why}")))?;
    }
    let db = d1::db(env)?;
    existing_room(&db, room_id).await?;
    let request = PublishRequest {
        body: body.body,
        data: body.data,
        idempotency_key: body.idempotency_key,
    };
    let posted: Posted = room::call(env, room_id, Method::Post, "/publish", Some(&request)).await?;
    Ok(crate::http::json(
        if posted.duplicate { 200 } else { 201 },
        &posted,
    )?)
}

// ----- shared steps -----

async fn create_room(
    env: &Env,
    config: &Config,
    body: &CreateRoomBody,
    owner: Option<String>,
    members: Vec<String>,
) -> Result<Response, ApiError> {
    let (id, name) = validate_create(body)?;
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
    let as_member = |user_id: String, role: &str| Member {
        user_id,
        role: role.to_owned(),
        joined_at: now,
        read_seq: 0,
    };
    let list: Vec<Member> = owner
        .into_iter()
        .map(|owner| as_member(owner, OWNER))
        .chain(members.into_iter().map(|user| as_member(user, MEMBER)))
        .collect();
    let db = d1::db(env)?;
    rooms::create(&db, &room, &list).await.map_err(|err| {
        if d1::is_conflict(&err) {
            ApiError::new(409, "conflict", format!("room '{id}' already exists"))
        } else {
            err.into()
        }
    })?;
    let change = MembersChange {
        add: list.iter().map(|m| m.user_id.clone()).collect(),
        remove: vec![],
    };
    room::call::<Value>(env, &id, Method::Post, "/members", Some(&change)).await?;
    let mut out = room_json(&room, None);
    out["members"] = json!(list.len());
    Ok(crate::http::json(201, &out)?)
}

/// 409 `room_full`: `MAX_ROOM_MEMBERS`.
fn room_full(max: usize) -> ApiError {
    ApiError::new(
        409,
        "room_full",
        format!("a room has at most {max} members (MAX_ROOM_MEMBERS)"),
    )
}

async fn add(
    env: &Env,
    config: &Config,
    db: &D1Database,
    room: &Room,
    users: &[String],
    role: &str,
) -> Result<Response, ApiError> {
    if users.is_empty() {
        return Err(validation("users must name at least one user"));
    }
    let max = config.limits.max_room_members;
    let already = rooms::already_members(db, &room.id, users).await?;
    let joining = users.len() - already.len();
    if joining > 0 && rooms::member_count(db, &room.id).await? + joining > max {
        return Err(room_full(max));
    }
    let now = crate::hubs::now_ms();
    let members: Vec<Member> = users
        .iter()
        .map(|user| Member {
            user_id: user.clone(),
            role: role.to_owned(),
            joined_at: now,
            read_seq: room.last_seq,
        })
        .collect();
    rooms::add_members(db, &room.id, &members).await?;
    let change = MembersChange {
        add: users.to_vec(),
        remove: vec![],
    };
    room::call::<Value>(env, &room.id, Method::Post, "/members", Some(&change)).await?;
    Ok(crate::http::json(
        200,
        &json!({"room_id": room.id, "added": users}),
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
        add: vec![],
        remove: vec![user_id.to_owned()],
    };
    room::call::<Value>(env, room_id, Method::Post, "/members", Some(&change)).await?;
    rooms::remove_member(db, room_id, user_id).await?;
    Ok(crate::http::json(
        200,
        &json!({"room_id": room_id, "removed": user_id}),
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
}
