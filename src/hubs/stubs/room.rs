//! The way into a room's Room (`hubs::room`): its calls, their requests and answers, and
//! [`open_socket`], the one admission every member socket passes (a device's room connect, a
//! Socket.IO connection to one room, a relayed `room.join`).
//!
//! A Room is addressed by the room's id (`idFromName`); every call names it in a header
//! ([`room_of`]), since an object does not know the name it was addressed by.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Headers, Request, Response, Stub, WebSocket};

use super::user::Disconnected;
use super::Done;
use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::message::{Content, RoomMessage};
use crate::store::rooms;

calls! {
    /// What a Room is asked.
    RoomCall {
        /// A member socket, for a verified identity ([`open_socket`]).
        Connect = Get "/connect",
        /// Members added, removed or given a role in D1.
        Members = Post "/members" => members(MembersChange) -> Done,
        /// One user's sockets closed, perhaps revoking.
        Disconnect = Post "/disconnect" => disconnect(DisconnectUser) -> Disconnected,
        /// A message from REST or a backend.
        Post = Post "/post" => post(Post) -> Posted,
        /// A backend's event for every socket in the room (`hubs::room::emits`).
        Emit = Post "/emit" => emit(EmitRequest) -> EmitOutcome,
        /// A read cursor moved over REST.
        Read = Post "/read" => read(ReadRequest) -> ReadOutcome,
        /// A message edited over REST.
        Edit = Post "/edit" => edit(EditRequest) -> Changed,
        /// A message recalled or deleted over REST.
        Recall = Post "/recall" => recall(RecallRequest) -> Changed,
        /// The room renamed in D1: `{room_id, name}` for its sockets.
        Renamed = Post "/renamed" => renamed(Value) -> Done,
        /// The room deleted: every socket closed, the stream dropped.
        Delete = Post "/delete" => delete() -> Done,
        /// Sockets in the room per user.
        Presence = Get "/presence" => presence() -> RoomPresence,
        /// A shard's link (`hubs::room::shard`): `?shard=<k>`.
        Link = Get "/link",
        /// The objects holding the room's sockets.
        Shards = Get "/shards",
        /// An operator's numbers.
        Stats = Get "/stats",
        /// The alarm and its wakes (development).
        Alarm = Get "/alarm",
    }
}

/// The header carrying the room id on every request to a room (and to its shards).
const ROOM_HEADER: &str = "x-switchboard-room";
/// The header on a room connect carrying the user's revocation cut-off from D1 (unix seconds),
/// when they have one: every room a user opens learns it, old or new.
const REVOKED_BEFORE_HEADER: &str = "x-switchboard-revoked-before";

/// Membership changes the Worker has made in D1: users added with `role`, users removed, and
/// users whose role became `role`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MembersChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub updated: Vec<String>,
    #[serde(default)]
    pub role: String,
}

/// A message to store: from a member (`sender`), or a backend's system message (no sender).
/// `content.client_id` makes it idempotent per sender.
#[derive(Debug, Serialize, Deserialize)]
pub struct Post {
    pub sender: Option<String>,
    pub content: Content,
}

/// A backend's event for the room's sockets: in the room's stream (recovered on a resume)
/// unless `volatile`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmitRequest {
    pub event: String,
    pub args: Vec<Value>,
    /// Socket ids and rooms whose sockets skip it.
    #[serde(default)]
    pub except: Vec<String>,
    #[serde(default)]
    pub volatile: bool,
}

/// The seq an emitted event took in the room's stream (none when volatile).
#[derive(Debug, Serialize, Deserialize)]
pub struct EmitOutcome {
    pub seq: Option<i64>,
}

/// A member's read cursor moved over REST.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub user_id: String,
    pub seq: i64,
}

/// A member edits a message's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct EditRequest {
    pub user_id: String,
    pub message_id: String,
    pub body: String,
}

/// A member recalls a message; a `moderator` (the room's owner, an admin) may delete anyone's
/// at any time.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecallRequest {
    pub user_id: String,
    pub message_id: String,
    pub moderator: bool,
}

/// A message after an edit or a recall, and whether this call changed it (a repeat does not).
#[derive(Debug, Serialize, Deserialize)]
pub struct Changed {
    pub message: RoomMessage,
    pub changed: bool,
}

/// Where a member's cursor is after a read, and what is left unread.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadOutcome {
    pub read_seq: i64,
    pub unread: i64,
}

/// A stored message and whether it was already there (a repeated client id).
#[derive(Debug, Serialize, Deserialize)]
pub struct Posted {
    pub message: RoomMessage,
    pub duplicate: bool,
}

/// Close one user's sockets in this room; with `revoke_before`, also refuse that user's tokens
/// issued at or before that second from now on.
#[derive(Debug, Serialize, Deserialize)]
pub struct DisconnectUser {
    pub user_id: String,
    pub reason: String,
    pub revoke_before: Option<i64>,
}

/// Sockets in the room per user.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomPresence {
    pub users: BTreeMap<String, usize>,
}

pub(super) fn stub(env: &Env, room_id: &str) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("ROOM")?
        .id_from_name(room_id)?
        .get_stub()?)
}

/// The headers every request to a room carries (its shards' too: `shard::connect`).
pub(super) fn headers(room_id: &str) -> Result<Headers, ApiError> {
    let headers = Headers::new();
    headers.set(ROOM_HEADER, room_id)?;
    Ok(headers)
}

/// The room a request is for, as the room's calls (and its shards') name it.
pub fn room_of(req: &Request) -> Result<String, ApiError> {
    crate::http::header(req, ROOM_HEADER)
        .ok_or_else(|| ApiError::bad_request("validation", "no room id"))
}

/// The revocation cut-off a room connect carries, if the user has one.
pub fn revoked_before_of(req: &Request) -> Option<i64> {
    crate::http::header(req, REVOKED_BEFORE_HEADER).and_then(|raw| raw.parse().ok())
}

/// Asks `room_id`'s Room `call` with `body`, and reads its JSON answer.
async fn ask<T: serde::de::DeserializeOwned>(
    env: &Env,
    room_id: &str,
    call: RoomCall,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let stub = stub(env, room_id)?;
    crate::http::call_hub_json_with(&stub, call.method(), call.path(), headers(room_id)?, body)
        .await
}

/// Opens a member's socket to a room for a verified identity: the room must exist and the
/// user be a member (404 / 403), the token must not be revoked (401); a pending member becomes
/// active. The room learns the user's revocation cut-off before it accepts the socket. `query`
/// is the room connect's (`since`, `device`, `dialect`).
pub async fn open_socket(
    env: &Env,
    identity: &Identity,
    room_id: &str,
    query: &str,
    subprotocol: bool,
) -> Result<Response, ApiError> {
    let db = crate::store::d1::db(env)?;
    let admission = rooms::admission(&db, room_id, &identity.user_id).await?;
    if !admission.room_exists {
        return Err(ApiError::not_found(format!("no room '{room_id}'")));
    }
    if !admission.is_member {
        return Err(ApiError::forbidden(
            "not_a_member",
            "you are not a member of this room",
        ));
    }
    crate::auth::revocation::check(identity, admission.revoked_before)?;
    if admission.pending {
        rooms::activate(&db, room_id, &identity.user_id).await?;
    }
    let headers = headers(room_id)?;
    if let Some(cutoff) = admission.revoked_before {
        // The room keeps the user's cut-off from now on: its in-band `auth` checks need it, and
        // a room made after the revocation was never told by the revocation itself.
        headers.set(REVOKED_BEFORE_HEADER, &cutoff.to_string())?;
    }
    let path = format!("{}?{query}", RoomCall::Connect.path());
    let upgrade = super::upgrade(&path, identity, subprotocol, headers)?;
    crate::http::call_hub(&stub(env, room_id)?, upgrade).await
}

/// Opens shard `shard`'s link to its room: the socket, accepted.
pub async fn link(env: &Env, room_id: &str, shard: u32) -> Result<WebSocket, ApiError> {
    let headers = headers(room_id)?;
    headers.set("upgrade", "websocket")?;
    let path = format!("{}?shard={shard}", RoomCall::Link.path());
    let req = crate::http::hub_request(RoomCall::Link.method(), &path, headers, None)?;
    let res = crate::http::call_hub(&stub(env, room_id)?, req).await?;
    super::accepted_socket(res).await
}

/// An operator's look at the room: `Shards` or `Stats` (or `Alarm`, in development).
pub async fn view(env: &Env, room_id: &str, call: RoomCall) -> Result<Value, ApiError> {
    ask(env, room_id, call, None::<&()>).await
}
