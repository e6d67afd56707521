//! A room's members over HTTP: adding, removing and listing them (JWT), and the backends'
//! internal add and remove.
//!
//! Membership lives in D1 and is written here (and by `api::rooms` when a room is created).
//! Adding writes D1 first and then tells the Room (which also learns a member it missed from D1
//! when they connect); removing tells the Room first — it closes the member's sockets and stops
//! admitting them — and then writes D1. Either way a failed step leaves the room no more open
//! than D1 says, and a retry converges. Each change is told to the room's sockets and to the
//! users concerned, as `api::rooms` describes.
//!
//! Adding someone needs no consent, so a member another user added (at create or later) is
//! pending: presence and the member list tell nothing about their activity until they act in
//! the room themselves — connect to it, or send, read, edit or delete over REST. Members a
//! backend adds, and creators, are never pending.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{D1Database, Env};

use super::call::{ok, validation, Answer, Call};
use super::rooms::{
    existing_room, room_added, room_full, room_id, tell, user_list, Caller, MAX_ADD,
    MAX_ADD_INTERNAL,
};
use crate::error::ApiError;
use crate::hubs::stubs::room::{self, MembersChange};
use crate::store::d1;
use crate::store::rooms::{self, Member, Room, MEMBER, OWNER};

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

// ----- the members' REST -----

/// `POST /v1/rooms/{id}/members` `{"users"}` (owner): the users join as pending members.
pub async fn add(mut call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    let body: AddMembersBody = call.body().await?;
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
    add_to(&call, &caller.db, &caller.room, &users, added).await
}

/// `DELETE /v1/rooms/{id}/members/{user}`: anyone may leave; the owner removes others.
pub async fn remove(call: Call<'_>, room_id: &str, user_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    if caller.me.user_id != user_id {
        caller.owner_only("removes others; anyone may leave")?;
    }
    remove_from(call.env, &caller.db, &caller.room.id, user_id).await
}

/// `GET /v1/rooms/{id}/members?after=&limit=`: the members in user order, each with their
/// presence and read position (none for a pending member).
pub async fn list(call: Call<'_>, room_id: &str) -> Answer {
    let caller = Caller::of(&call, room_id).await?;
    let limit = call.limit()?;
    let after = call.query("after");
    if let Some(after) = &after {
        crate::ids::validate_user_id(after).map_err(|why| validation(format!("after: {why}")))?;
    }
    let (env, room_id) = (call.env, caller.room.id.as_str());
    let page = rooms::members(&caller.db, room_id, after.as_deref(), limit).await?;
    let users: Vec<String> = page.iter().map(|m| m.user_id.clone()).collect();
    let pending = |user: &str| page.iter().any(|m| m.user_id == user && m.pending);
    let presence =
        super::users::presence_of_users(env, call.config, &users, |user| !pending(user)).await?;
    let in_room = room::presence(env, room_id).await?;
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
    ok(&json!({"members": out, "next_after": next}))
}

// ----- the backends' internal API -----

/// `POST /internal/v1/rooms/{id}/members` `{"users", "role"?, "notify"?}`.
pub async fn internal_add(mut call: Call<'_>, room_id: &str) -> Answer {
    call.internal()?;
    let room_id = self::room_id(room_id)?;
    let body: AddMembersBody = call.body().await?;
    let role = match body.role.as_deref() {
        None | Some(MEMBER) => MEMBER,
        Some(OWNER) => OWNER,
        Some(_) => return Err(validation("role must be 'owner' or 'member'")),
    };
    let users = user_list(&body.users, MAX_ADD_INTERNAL, None)?;
    let db = d1::db(call.env)?;
    let room = existing_room(&db, room_id).await?;
    let added = Added {
        role,
        pending: false,
        notify: body.notify.unwrap_or(true),
    };
    add_to(&call, &db, &room, &users, added).await
}

/// A backend's join (`api::sockets`: socket.io's `socketsJoin`) is the authority: D1 gets the
/// room when it has none (named by its id, with no owner) and each of `users` who is not a
/// member yet becomes one (role `member`, not pending, no `room.added`); members keep their
/// role. Then the room admits their sockets as it admits any member's.
pub(super) async fn admit(
    call: &Call<'_>,
    room_id: &str,
    users: &[String],
) -> Result<(), ApiError> {
    let db = d1::db(call.env)?;
    let now = crate::clock::now_ms();
    let room = match rooms::room(&db, room_id).await? {
        Some(room) => room,
        None => made_by_backend(&db, room_id, now).await?,
    };
    let already = rooms::already_members(&db, room_id, users).await?;
    let joining: Vec<Member> = users
        .iter()
        .filter(|user| !already.contains(user))
        .map(|user| Member {
            user_id: user.clone(),
            role: MEMBER.into(),
            joined_at: now,
            read_seq: room.last_seq,
            pending: false,
        })
        .collect();
    if joining.is_empty() {
        return Ok(());
    }
    let max = call.config.limits.max_room_members;
    let added = rooms::add_members(&db, room_id, &joining, max).await?;
    if added.len() < joining.len() {
        let wanted: Vec<String> = joining.into_iter().map(|m| m.user_id).collect();
        if rooms::already_members(&db, room_id, &wanted).await?.len() < wanted.len() {
            return Err(room_full(max));
        }
    }
    let change = MembersChange {
        add: added,
        role: MEMBER.into(),
        ..MembersChange::default()
    };
    room::members(call.env, room_id, &change).await?;
    Ok(())
}

/// A room D1 did not have, made for a backend's join; one made meanwhile by another call is
/// taken as it is.
async fn made_by_backend(db: &D1Database, room_id: &str, now: i64) -> Result<Room, ApiError> {
    let room = Room {
        id: room_id.to_owned(),
        name: room_id.to_owned(),
        created_by: None,
        created_at: now,
        last_seq: 0,
        activity_at: now,
    };
    if let Err(err) = rooms::create(db, &room, &[], None).await {
        if !d1::is_conflict(&err) {
            return Err(err.into());
        }
    }
    existing_room(db, room_id).await
}

/// `DELETE /internal/v1/rooms/{id}/members/{user}`.
pub async fn internal_remove(call: Call<'_>, room_id: &str, user_id: &str) -> Answer {
    call.internal()?;
    let room_id = self::room_id(room_id)?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    let db = d1::db(call.env)?;
    existing_room(&db, room_id).await?;
    remove_from(call.env, &db, room_id, user_id).await
}

// ----- shared steps -----

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
async fn add_to(
    call: &Call<'_>,
    db: &D1Database,
    room: &Room,
    users: &[String],
    Added {
        role,
        pending,
        notify,
    }: Added,
) -> Answer {
    if users.is_empty() {
        return Err(validation("users must name at least one user"));
    }
    let (env, max) = (call.env, call.config.limits.max_room_members);
    let already = rooms::already_members(db, &room.id, users).await?;
    let joining: Vec<String> = users
        .iter()
        .filter(|user| !already.contains(user))
        .cloned()
        .collect();
    let now = crate::clock::now_ms();
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
    room::members(env, &room.id, &change).await?;
    let mut unnotified = if notify {
        tell(env, &added, "room.added", room_added(room, role)).await
    } else {
        Vec::new()
    };
    let update = json!({"room_id": room.id, "role": role});
    unnotified.extend(tell(env, &updated, "room.updated", update).await);
    ok(&json!({"room_id": room.id, "added": added, "updated": updated, "unnotified": unnotified}))
}

/// Removes `user_id` from the room: the Room first, then D1; their stream gets `room.removed`.
async fn remove_from(env: &Env, db: &D1Database, room_id: &str, user_id: &str) -> Answer {
    if rooms::member(db, room_id, user_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "'{user_id}' is not a member of '{room_id}'"
        )));
    }
    let change = MembersChange {
        remove: vec![user_id.to_owned()],
        ..MembersChange::default()
    };
    room::members(env, room_id, &change).await?;
    rooms::remove_member(db, room_id, user_id).await?;
    let user = [user_id.to_owned()];
    let gone = json!({"room_id": room_id, "reason": "removed"});
    let unnotified = tell(env, &user, "room.removed", gone).await;
    ok(&json!({"room_id": room_id, "removed": user_id, "unnotified": unnotified}))
}
