//! Room: one Durable Object per room — the part that orders and stores.
//!
//! A room is three files: this one (its requests and frames: what is stored, in what order, and
//! what each answer is), `hubs::room_sockets` (its sockets, here or on shards, and presence) and
//! `hubs::room_copy` (its D1 copy and its notes to absent members). Each has its table.
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | `GET /connect` (member, by Worker)   | see `hubs::room_sockets`; 403 if removed, 401 if revoked, checked here first | — |
//! | frame `sync {since}`                 | — (the socket pages while `more`)        | the next replay batch, `synced`, once the member's replay budget allows (`hubs::replay`) |
//! | any acting frame from a non-member   | —                                        | close 4003 (the frame is not processed)       |
//! | frame `send`                         | message with the next seq (client_id kept), in arrival order once the sender's rate allows | `ack {message}`; `message` to every socket; over the rate: `error rate_limited` |
//! | frame `edit` / `delete` (and `POST /edit`, `/recall`) | the change with the next seq, in arrival order with sends once the sender's rate allows; any message D1 holds, in the window or not | `ack {message, changed}`; `message.updated` / `message.deleted` to every socket; over the rate: `error rate_limited` |
//! | frame `typing`                       | —                                        | `typing` to the other users' sockets: at most three starts per interval per user (a repeat only after the interval; a message of theirs starts the count afresh), a stop only after a forwarded start; none in a large room (`ROOM_PRESENCE_BATCH_USERS` present) |
//! | frame `read {seq}`                   | the member's cursor (forward only)       | `ack {read_seq, unread}`; `read` to every socket, except in a large room |
//! | frame `auth {token}`                 | new expiry in the attachment             | `ack {expires_at}` or `error`                  |
//! | `POST /members` (Worker)             | members added (cursor at the newest seq) or removed (remembered) | `member.added` / `member.updated` / `member.removed`; removed members' sockets closed 4003, `user.left` |
//! | `POST /post` (Worker: REST send, backend publish) | a message from a member, or a `system` one (client_id kept) | `message` to every socket |
//! | `POST /read` (Worker: REST read)     | the member's cursor (forward only)       | `read` to every socket, except in a large room |
//! | `POST /renamed` (Worker)             | — (D1 has the name)                      | `room.updated {room_id, name}` to every socket |
//! | `POST /delete` (Worker)              | messages, members and cursors dropped; members remembered as removed | every socket closed 4004, on every shard |
//! | `POST /disconnect` (Worker)          | the user's revocation cut-off, when revoking | the user's sockets closed 4003 wherever they are, `user.left` |
//! | `GET /stats` (Worker: an operator's `GET /internal/v1/rooms/{id}/stats`) | — (reads only) | sockets per shard, members, the window, the D1 copy's position and lag, pending notes, the alarm and why (`hubs::inspect`) |
//! | alarm (only for work due then)       | see `hubs::room_copy`                    | `token.expired` + 4001; a large room's `presence.changed` |
//!
//! A message is durable here before it is acked or delivered, and sending never yields between
//! assigning the seq and handing the frame to every socket, so every receiver sees the room's
//! messages in seq order with no gap. Once delivered, messages and cursors are copied to D1 in
//! the same event, or by the alarm once a second while the room is busy; the alarm retries a
//! failed copy with backoff, and makes one the object did not finish, until D1 has them; nothing
//! is dropped.
//!
//! "Every socket" is every socket of the room, here or on its shards: a large room's sockets
//! beyond the first `ROOM_SHARD_SOCKETS` are held by shards, and the room still handles every
//! frame they send and hands them every frame it fans out, over one link each, so everything
//! above holds for them unchanged (docs/ARCHITECTURE.md, "Rooms beyond one object").
//!
//! Membership is checked on every acting frame, not only at connect, and a socket the room has
//! started to close is not open for anything: a client that ignores the close frame can send,
//! but nothing it sends is stored, delivered or acked.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, State, Stub, WebSocket,
    WebSocketIncomingMessage, WebSocketRequestResponsePair,
};

use super::replay::{Entry, Replays, Resume, Source};
use super::room_copy::COPY_BACKSTOP_MS;
use super::room_sockets::{forget_unlinked_shards, PresenceChanges};
use super::shard_link::{Down, Links};
use super::{now_ms, Alarm, AlarmPlan, Gate, Peer, SocketInfo, Sockets};
use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::error::ApiError;
use crate::message::{Content, RoomChange, RoomMessage};
use crate::protocol::{self, close, code, ClientFrame, ServerFrame};
use crate::quota::Rate;
use crate::store::local::Local;
use crate::store::room_log::{RoomEntry, RoomLog};
use crate::store::room_shards::RoomShards;
use crate::store::rooms;
use crate::stream::{plan_replay, ReplayPlan};
use crate::typing::Typing;

/// The header carrying the room id on every request the Worker makes to a room.
pub const ROOM_HEADER: &str = "x-switchboard-room";
/// The header on a room connect carrying the user's revocation cut-off from D1 (unix seconds),
/// when they have one: every room a user opens learns it, old or new.
pub const REVOKED_BEFORE_HEADER: &str = "x-switchboard-revoked-before";

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

/// A member's read cursor moved over REST.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub user_id: String,
    pub seq: i64,
}

/// A member edits a message's body (`POST /edit`).
#[derive(Debug, Serialize, Deserialize)]
pub struct EditRequest {
    pub user_id: String,
    pub message_id: String,
    pub body: String,
}

/// A member recalls a message (`POST /recall`); a `moderator` (the room's owner, an admin)
/// may delete anyone's at any time.
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

/// The Room of one room id.
pub fn stub(env: &Env, room_id: &str) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("ROOM")?
        .id_from_name(room_id)?
        .get_stub()?)
}

/// The headers every request to a room carries.
pub fn headers(room_id: &str) -> Result<Headers, ApiError> {
    let headers = Headers::new();
    headers.set(ROOM_HEADER, room_id)?;
    Ok(headers)
}

/// Opens a member's socket to a room for a verified identity: the room must exist and the
/// user be a member (404 / 403), the token must not be revoked (401); a pending member becomes
/// active. The room learns the user's revocation cut-off before it accepts the socket. Both
/// the Worker's `GET /v1/rooms/{id}/connect` and a Socket.IO connection's relay
/// (`hubs::relay`) open room sockets here. `path` is the room's `/connect` with its query.
pub async fn open_socket(
    env: &Env,
    identity: &Identity,
    room_id: &str,
    path: &str,
    subprotocol: bool,
) -> Result<Response, ApiError> {
    let db = crate::store::d1::db(env)?;
    let admission = rooms::admission(&db, room_id, &identity.user_id).await?;
    if !admission.room_exists {
        return Err(ApiError::not_found(format!("no room '{room_id}'")));
    }
    if !admission.is_member {
        return Err(not_a_member());
    }
    crate::auth::revocation::check(identity, admission.revoked_before)?;
    if admission.pending {
        rooms::activate(&db, room_id, &identity.user_id).await?;
    }
    let headers = self::headers(room_id)?;
    if let Some(cutoff) = admission.revoked_before {
        // The room keeps the user's cut-off from now on: its in-band `auth` checks need it, and
        // a room made after the revocation was never told by the revocation itself.
        headers.set(REVOKED_BEFORE_HEADER, &cutoff.to_string())?;
    }
    let upgrade = super::upgrade_request(path, identity, subprotocol, headers)?;
    crate::http::call_hub(&stub(env, room_id)?, upgrade).await
}

/// Asks a room to do something and answer with JSON.
pub async fn call<T: DeserializeOwned>(
    env: &Env,
    room_id: &str,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let stub = stub(env, room_id)?;
    crate::http::call_hub_json_with(&stub, method, path, headers(room_id)?, body).await
}

#[durable_object]
pub struct Room {
    pub(super) sockets: Sockets,
    pub(super) env: Env,
    pub(super) local: Local,
    pub(super) gate: Gate,
    pub(super) alarm: Alarm,
    /// Per user: the typing last forwarded (memory only: losing it on hibernation at worst
    /// forwards one more `typing`).
    pub(super) typing: RefCell<HashMap<String, Typing>>,
    /// `send`, `edit` and `delete` frames waiting for their sender's rate, in arrival order (see
    /// `queue_act`).
    pub(super) sends: RefCell<VecDeque<(Peer, SocketInfo, ClientFrame)>>,
    pub(super) draining: Cell<bool>,
    /// A D1 copy is running (it goes on until nothing is left to copy).
    pub(super) copying: Cell<bool>,
    /// When the last D1 copy started (memory only: after a wake the next copy is made at once).
    pub(super) copied_at: Cell<i64>,
    /// The room's id once read or adopted (it never changes).
    pub(super) room_id: OnceCell<String>,
    /// Members whose last socket here closed after the room's latest change: they saw every
    /// change live, so a `room.activity` note would tell them nothing. Emptied by each change
    /// once it is delivered (memory only: after a wake every absent member is noted, as before).
    pub(super) caught_up: RefCell<HashSet<String>>,
    /// Replay bytes left per member, and the sockets with a `sync` waiting (`hubs::replay`).
    pub(super) replays: Replays,
    /// The links to the room's shards (`hubs::shard_link`).
    pub(super) links: Links,
    /// A large room's joins and leaves since its last `presence.changed`, and when that is due
    /// (memory only: a room hibernates only after ten idle seconds, long after it went out).
    pub(super) presence_changes: RefCell<PresenceChanges>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        super::observe(&env);
        let local = Local::new(state.storage().sql());
        let new_storage = RoomLog::new(&local).migrate().unwrap_or_else(|err| {
            crate::log::error(
                "hub.schema_failed",
                json!({"object": "room", "error": err.to_string()}),
            );
            false
        });
        if let Ok(pair) = WebSocketRequestResponsePair::new(protocol::PING, protocol::PONG) {
            state.set_websocket_auto_response(&pair);
        }
        if let Err(err) = forget_unlinked_shards(&local, &state) {
            crate::log::error("room.shards_failed", json!({"error": err.to_string()}));
        }
        Self {
            sockets: Sockets::new(state, "room"),
            env,
            local,
            gate: Gate::default(),
            alarm: Alarm::new(new_storage),
            typing: RefCell::new(HashMap::new()),
            sends: RefCell::new(VecDeque::new()),
            draining: Cell::new(false),
            copying: Cell::new(false),
            copied_at: Cell::new(0),
            room_id: OnceCell::new(),
            caught_up: RefCell::new(HashSet::new()),
            replays: Replays::default(),
            links: Links::default(),
            presence_changes: RefCell::new(PresenceChanges::default()),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match self.adopt_room_id(&req) {
            Ok(room_id) => match (req.method(), req.path().as_str()) {
                (Method::Get, "/connect") => self.accept_member(&req, &room_id).await,
                (Method::Post, "/members") => self.change_members(req).await,
                (Method::Post, "/disconnect") => self.disconnect(req).await,
                (Method::Get, "/alarm") => super::alarm_report(&self.local, &self.sockets).await,
                (Method::Post, "/post") => self.post(req, &room_id).await,
                (Method::Post, "/read") => self.read(req, &room_id).await,
                (Method::Post, "/edit") => self.edit(req, &room_id).await,
                (Method::Post, "/recall") => self.recall(req, &room_id).await,
                (Method::Post, "/renamed") => self.renamed(req, &room_id).await,
                (Method::Post, "/delete") => self.delete(&room_id).await,
                (Method::Get, "/presence") => self.presence_response(),
                (Method::Get, "/link") => self.accept_link(&req),
                (Method::Get, "/shards") => self.shards(&room_id).await,
                (Method::Get, "/stats") => self.stats(&room_id).await,
                _ => Err(ApiError::not_found("no such room route")),
            },
            Err(err) => Err(err),
        };
        result.or_else(super::error_response)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        if let Some(link) = self.links.find(&self.sockets, &ws) {
            return self.on_link(&ws, link, message).await;
        }
        if let Some((info, frame)) = super::socketio::screen(self, &self.gate, &ws, message).await {
            self.on_frame(&Peer::Socket(ws), info, frame).await;
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        self.sockets.log_closed(&ws, code, &reason);
        super::sockets::reciprocate_close(&ws, code);
        self.on_socket_gone(&ws).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        self.on_socket_gone(&ws).await
    }
    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm.fired();
        super::count_wake(&self.local)?;
        let now = now_ms();
        super::log_wake("room", &self.alarm_plan(false)?, now);
        super::expire_sockets(&self.sockets, now);
        super::socketio::ping_round(self, now)?;
        if self
            .presence_changes
            .borrow()
            .due
            .is_some_and(|due| due <= now)
        {
            self.flush_presence()?;
        }
        self.copy_to_d1(now).await?;
        self.announce_activity(now).await?;
        self.schedule_alarm().await?;
        Response::ok("")
    }
}

impl Room {
    pub(super) fn log(&self) -> RoomLog<'_> {
        RoomLog::new(&self.local)
    }

    pub(super) fn config(&self) -> Result<Rc<Config>, ApiError> {
        super::config(&self.env)
    }

    pub(super) fn limits(&self) -> crate::config::Limits {
        super::limits(&self.env)
    }

    /// A room learns its own id from the Worker's first request and keeps it (alarms have no
    /// request to read it from).
    fn adopt_room_id(&self, req: &Request) -> Result<String, ApiError> {
        let room_id = crate::http::header(req, ROOM_HEADER)
            .ok_or_else(|| ApiError::bad_request("validation", "no room id"))?;
        if self.room_id.get().is_none() {
            self.log().set_room_id(&room_id)?;
            let _ = self.room_id.set(room_id.clone());
        }
        Ok(room_id)
    }

    /// The room's id, once any request has told it; read from storage once per wake.
    pub(super) fn room_id(&self) -> worker::Result<Option<String>> {
        if let Some(room_id) = self.room_id.get() {
            return Ok(Some(room_id.clone()));
        }
        let room_id = self.log().room_id()?;
        if let Some(room_id) = &room_id {
            let _ = self.room_id.set(room_id.clone());
        }
        Ok(room_id)
    }

    /// Succeeds for a member, learning one the room missed from D1 unless it has seen them
    /// removed since (D1 may still list them for a moment); else 403 `not_a_member`.
    pub(super) async fn admit_member(&self, room_id: &str, user_id: &str) -> Result<(), ApiError> {
        if self.log().is_member(user_id)? {
            return Ok(());
        }
        if !self.log().is_removed(user_id)? {
            let db = crate::store::d1::db(&self.env)?;
            if let Some(member) = rooms::member(&db, room_id, user_id).await? {
                if !self.log().is_removed(user_id)? {
                    self.log().learn_member(user_id, member.read_seq)?;
                }
            }
        }
        if self.log().is_member(user_id)? {
            Ok(())
        } else {
            Err(not_a_member())
        }
    }

    /// Sends the first batch of a resume after `since` (when `user`'s replay budget covers it),
    /// then `synced`; beyond the room's window `synced` says `recovered:false` and names the
    /// REST route that pages back through D1. Does not yield.
    pub(super) fn replay(
        &self,
        peer: &Peer,
        room_id: &str,
        user: &str,
        since: i64,
    ) -> Result<(), ApiError> {
        let to = Resume {
            sockets: &self.sockets,
            peer,
            user,
            limits: &self.limits(),
            source: &Messages {
                log: self.log(),
                room_id,
            },
        };
        self.replays.resume(&to, since)
    }

    /// `sync {since}`: the next batch of a resume, once the member's replay budget covers it
    /// (and if they are still a member then).
    async fn on_sync(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let room_id = self.room_id()?.unwrap_or_default();
        let to = Resume {
            sockets: &self.sockets,
            peer,
            user: &info.user_id,
            limits: &self.limits(),
            source: &Messages {
                log: self.log(),
                room_id: &room_id,
            },
        };
        let Some(turn) = self.replays.sync(&to, info, frame).await? else {
            return Ok(());
        };
        if !self.log().is_member(&info.user_id)? {
            return Ok(());
        }
        self.replays.serve(&to, turn)?;
        peer.ack(frame.id.as_ref(), json!({}));
        Ok(())
    }

    async fn change_members(&self, mut req: Request) -> Result<Response, ApiError> {
        let change: MembersChange = crate::http::read_hub_json(&mut req).await?;
        let log = self.log();
        let last_seq = log.last_seq()?;
        let member_event = |event: &str, user: &str, role: Option<&str>| {
            let mut data = json!({"user_id": user});
            if let Some(role) = role {
                data["role"] = json!(role);
            }
            self.broadcast(&ServerFrame::event(event, data), None);
        };
        for user in &change.add {
            let joined = !log.is_member(user)?;
            log.add_member(user, last_seq)?;
            if joined {
                member_event("member.added", user, Some(&change.role));
            }
        }
        for user in &change.updated {
            member_event("member.updated", user, Some(&change.role));
        }
        for user in &change.remove {
            let was_member = log.is_member(user)?;
            log.remove_member(user)?;
            self.close_user(user, "removed from the room")?;
            if was_member {
                member_event("member.removed", user, None);
            }
        }
        self.schedule_alarm().await?;
        Ok(crate::http::json(200, &json!({"last_seq": last_seq}))?)
    }

    /// Closes one user's sockets (forced disconnect), recording a revocation cut-off first.
    async fn disconnect(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: DisconnectUser = crate::http::read_hub_json(&mut req).await?;
        if let Some(cutoff) = body.revoke_before {
            self.log().revoke(&body.user_id, cutoff)?;
        }
        let sockets = self.close_user(&body.user_id, &body.reason)?;
        self.schedule_alarm().await?;
        let answer = super::user::Disconnected { sockets };
        Ok(crate::http::json(200, &answer)?)
    }

    /// `POST /post`: a member's message sent over REST, or a backend's (with or without a
    /// sender); delivered exactly as a socket `send`.
    async fn post(&self, mut req: Request, room_id: &str) -> Result<Response, ApiError> {
        let post: Post = crate::http::read_hub_json(&mut req).await?;
        if let Some(sender) = &post.sender {
            self.admit_member(room_id, sender).await?;
        }
        if let Some(sender) = &post.sender {
            self.sent_message(sender);
        }
        let posted = self.store(room_id, post.sender, post.content)?;
        if !posted.duplicate {
            self.broadcast(&message_frame(&posted.message), None);
            self.after_append().await?;
            self.copy_to_d1(now_ms()).await?;
        }
        let status = if posted.duplicate { 200 } else { 201 };
        Ok(crate::http::json(status, &posted)?)
    }

    /// Stores a message with the next seq, or finds the one its sender already stored with
    /// the same `client_id`. Never yields: the caller delivers it before anything else runs.
    fn store(
        &self,
        room_id: &str,
        sender: Option<String>,
        content: Content,
    ) -> Result<Posted, ApiError> {
        let log = self.log();
        if let Some(client_id) = &content.client_id {
            if let Some(message) = log.by_client_id(room_id, sender.as_deref(), client_id)? {
                return Ok(Posted {
                    message,
                    duplicate: true,
                });
            }
        }
        let message = log.append(RoomMessage {
            id: crate::message::new_id(),
            seq: 0,
            room_id: room_id.to_owned(),
            sender_id: sender,
            content,
            created_at: now_ms(),
            edited_at: None,
            deleted_at: None,
        })?;
        crate::metrics::record(
            crate::metrics::Point::new(crate::metrics::Kind::Message, "room")
                .subject(room_id)
                .value(message.content.body.len() as f64),
        );
        Ok(Posted {
            message,
            duplicate: false,
        })
    }

    /// `POST /read`: a member's cursor moved over REST, exactly as the socket `read`.
    async fn read(&self, mut req: Request, room_id: &str) -> Result<Response, ApiError> {
        let read: ReadRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &read.user_id).await?;
        let outcome = self.read_through(&read.user_id, read.seq).await?;
        Ok(crate::http::json(200, &outcome)?)
    }

    /// `POST /edit`: a member edits a message over REST.
    async fn edit(&self, mut req: Request, room_id: &str) -> Result<Response, ApiError> {
        let edit: EditRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &edit.user_id).await?;
        let changed = self
            .change_body(room_id, &edit.user_id, &edit.message_id, &edit.body)
            .await?;
        Ok(crate::http::json(200, &changed)?)
    }

    /// `POST /recall`: a member recalls (or a moderator deletes) a message over REST.
    async fn recall(&self, mut req: Request, room_id: &str) -> Result<Response, ApiError> {
        let recall: RecallRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &recall.user_id).await?;
        let changed = self
            .take_back(
                room_id,
                &recall.user_id,
                &recall.message_id,
                recall.moderator,
            )
            .await?;
        Ok(crate::http::json(200, &changed)?)
    }

    /// The message `id` as it is now: from the room's own window, else from D1 (older
    /// messages; brought up to date with the edits and recalls of it the room still keeps), so
    /// a sender, an owner or an admin reaches every message D1 still holds.
    async fn find_message(&self, room_id: &str, id: &str) -> Result<RoomMessage, ApiError> {
        let log = self.log();
        if let Some(message) = log.by_id(room_id, id)? {
            return Ok(message);
        }
        let db = crate::store::d1::db(&self.env)?;
        match rooms::message(&db, room_id, id).await? {
            Some(message) => Ok(self.log().with_kept_changes(message)?),
            None => Err(ApiError::not_found(format!(
                "no message '{id}' in this room"
            ))),
        }
    }

    /// Sets the body of `user`'s own message: `message.updated` to every socket, in order with
    /// the messages around it. The same body again changes nothing.
    async fn change_body(
        &self,
        room_id: &str,
        user: &str,
        id: &str,
        body: &str,
    ) -> Result<Changed, ApiError> {
        let message = self.find_message(room_id, id).await?;
        if message.sender_id.as_deref() != Some(user) {
            return Err(ApiError::forbidden(
                "not_sender",
                "only the sender edits a message",
            ));
        }
        if message.deleted_at.is_some() {
            return Err(ApiError::new(
                409,
                "message_deleted",
                "the message was deleted",
            ));
        }
        if message.content.body == body {
            return Ok(Changed {
                message,
                changed: false,
            });
        }
        let edited = Content {
            body: body.to_owned(),
            ..message.content.clone()
        };
        edited
            .validate()
            .map_err(|err| ApiError::bad_request(code::VALIDATION, err.to_string()))?;
        let change = self.log().edit(&message, body, now_ms())?;
        self.announce(room_id, &change).await
    }

    /// Empties a message for everyone, keeping its seq: its sender within
    /// `RECALL_WINDOW_SECONDS`, a moderator at any time. `message.deleted` to every socket; a
    /// message already deleted changes nothing.
    async fn take_back(
        &self,
        room_id: &str,
        user: &str,
        id: &str,
        moderator: bool,
    ) -> Result<Changed, ApiError> {
        let message = self.find_message(room_id, id).await?;
        if message.deleted_at.is_some() {
            return Ok(Changed {
                message,
                changed: false,
            });
        }
        let now = now_ms();
        if !moderator {
            if message.sender_id.as_deref() != Some(user) {
                return Err(ApiError::forbidden(
                    "not_sender",
                    "only the sender, the room's owner or an admin deletes a message",
                ));
            }
            let window = self.limits().recall_window_secs;
            crate::message::within_recall_window(message.created_at, now, window)?;
        }
        let change = self.log().recall(&message, now)?;
        self.announce(room_id, &change).await
    }

    /// Sends an edit or recall just stored to every socket, schedules its D1 copy, and answers
    /// with the message as it now is.
    async fn announce(&self, room_id: &str, change: &RoomChange) -> Result<Changed, ApiError> {
        self.broadcast(&change_frame(room_id, change), None);
        self.after_append().await?;
        self.copy_to_d1(now_ms()).await?;
        Ok(Changed {
            message: self.find_message(room_id, &change.message_id).await?,
            changed: true,
        })
    }

    /// `POST /renamed`: the Worker renamed the room in D1; its sockets hear of it.
    async fn renamed(&self, mut req: Request, room_id: &str) -> Result<Response, ApiError> {
        let body: Value = crate::http::read_hub_json(&mut req).await?;
        let name = body.get("name").cloned().unwrap_or(Value::Null);
        self.broadcast(
            &ServerFrame::event("room.updated", json!({"room_id": room_id, "name": name})),
            None,
        );
        Ok(crate::http::json(200, &json!({}))?)
    }

    /// `POST /delete`: the room is being deleted. Every socket closes with 4004, every member is
    /// remembered as removed (a connect admitted from D1 a moment ago is refused), and the
    /// messages, cursors and pending D1 copy are dropped; the Worker deletes D1's rows next.
    async fn delete(&self, room_id: &str) -> Result<Response, ApiError> {
        for (ws, _) in self.sockets.open() {
            self.sockets
                .close(&ws, close::ROOM_DELETED, "the room was deleted");
        }
        let down = Down::CloseAll {
            code: close::ROOM_DELETED,
            reason: "the room was deleted".into(),
        };
        self.links.send_all(&self.sockets, &down);
        RoomShards::new(&self.local).clear()?;
        self.log().clear()?;
        self.schedule_alarm().await?;
        Ok(crate::http::json(200, &json!({"room_id": room_id}))?)
    }

    pub(super) async fn on_frame(&self, peer: &Peer, info: SocketInfo, frame: ClientFrame) {
        let id = frame.id.as_ref();
        if frame.event != "ping" && !self.log().is_member(&info.user_id).unwrap_or(false) {
            peer.error(
                id,
                code::FORBIDDEN,
                "you are no longer a member of this room",
            );
            peer.close(&self.sockets, close::FORBIDDEN, "removed from the room");
            return;
        }
        let result = match frame.event.as_str() {
            "ping" => {
                peer.send_text(protocol::PONG.to_owned());
                Ok(())
            }
            "send" | "edit" | "delete" => {
                self.queue_act(peer.clone(), info, frame).await;
                return;
            }
            "typing" => self.on_typing(peer, &info, &frame),
            "sync" => self.on_sync(peer, &info, &frame).await,
            "read" => self.on_read(peer, &info, &frame).await,
            "auth" => self.on_auth(peer, info, &frame).await,
            other => Err(ApiError::bad_request(
                code::UNKNOWN_EVENT,
                format!("unknown event '{other}' on a room socket"),
            )),
        };
        if let Err(err) = result {
            peer.error(id, err.code, &err.message);
        }
    }

    /// Every `send`, `edit` and `delete` first counts against its sender's rate across the
    /// platform (`quota`: an edit or a recall costs what a message costs, so neither escapes the
    /// rate), which awaits the limiter. They wait in one queue, drained by one handler at a
    /// time, so each is applied in the order it arrived however the limiter's answers
    /// interleave; membership is checked again when a frame's turn comes.
    async fn queue_act(&self, peer: Peer, info: SocketInfo, frame: ClientFrame) {
        self.sends.borrow_mut().push_back((peer, info, frame));
        if self.draining.replace(true) {
            return;
        }
        loop {
            let next = self.sends.borrow_mut().pop_front();
            let Some((peer, info, frame)) = next else {
                break;
            };
            let result = match crate::quota::check(&self.env, Rate::Send, &info.user_id).await {
                Ok(()) if !self.log().is_member(&info.user_id).unwrap_or(false) => {
                    Err(not_a_member())
                }
                Ok(()) => match frame.event.as_str() {
                    "edit" => self.on_edit(&peer, &info, &frame).await,
                    "delete" => self.on_delete(&peer, &info, &frame).await,
                    _ => self.on_send(&peer, &info, &frame).await,
                },
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                peer.error(frame.id.as_ref(), err.code, &err.message);
            }
        }
        self.draining.set(false);
        // After the queue, not per send: sends that arrive meanwhile are not held up, and the
        // copy running then takes theirs too. Within a second of the last copy, the alarm
        // planned by `after_append` makes it.
        let now = now_ms();
        if now >= self.next_copy_at() {
            if let Err(err) = self.copy_to_d1(now).await {
                crate::log::error("d1_copy.error", json!({"error": err.to_string()}));
            }
        }
    }

    /// `send {type, body, client_id, …}`: store, ack, deliver — in that order, without yielding.
    async fn on_send(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let Value::Object(fields) = frame.data.clone() else {
            return Err(ApiError::bad_request(
                code::VALIDATION,
                "send needs data, a JSON object",
            ));
        };
        let content = Content::parse(fields)
            .map_err(|err| ApiError::bad_request(code::VALIDATION, err.to_string()))?;
        let room_id = self
            .room_id()?
            .ok_or_else(|| ApiError::internal("the room does not know its id"))?;
        let posted = self.store(&room_id, Some(info.user_id.clone()), content)?;
        self.sent_message(&info.user_id);
        peer.ack(frame.id.as_ref(), json!(posted));
        if !posted.duplicate {
            self.broadcast(&message_frame(&posted.message), None);
            self.after_append().await?;
        }
        Ok(())
    }

    /// A member's message ends the typing it announced: their typing count starts afresh.
    fn sent_message(&self, user: &str) {
        if let Some(typing) = self.typing.borrow_mut().get_mut(user) {
            *typing = typing.after_message();
        }
    }

    /// `typing {active}`: relayed to the other users, not stored.
    fn on_typing(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let active = match frame.data.get("active") {
            None => true,
            Some(Value::Bool(active)) => *active,
            Some(_) => {
                return Err(ApiError::bad_request(
                    code::VALIDATION,
                    "typing data.active must be true or false",
                ))
            }
        };
        let interval = self.limits().typing_interval_ms;
        // Nor is a large room told who is typing (each start a frame to every socket).
        let forwarded = !self.presence_batched()? && {
            let mut typing = self.typing.borrow_mut();
            let last = typing.get(&info.user_id).copied();
            let next = Typing::forward(last, active, now_ms(), interval);
            if let Some(next) = next {
                typing.insert(info.user_id.clone(), next);
            }
            next.is_some()
        };
        if forwarded {
            self.broadcast(
                &ServerFrame::event("typing", json!({"user_id": info.user_id, "active": active})),
                Some(&info.user_id),
            );
        }
        peer.ack(frame.id.as_ref(), json!({ "forwarded": forwarded }));
        Ok(())
    }

    /// `edit {id, body}`: the sender edits a message.
    async fn on_edit(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let id = message_id_of(frame)?;
        let body = frame
            .data
            .get("body")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(code::VALIDATION, "edit needs data.body, a string")
            })?;
        let room_id = self.room_id()?.unwrap_or_default();
        let changed = self.change_body(&room_id, &info.user_id, &id, body).await?;
        peer.ack(frame.id.as_ref(), json!(changed));
        Ok(())
    }

    /// `delete {id}`: the sender recalls a message within the window; an admin or the room's
    /// owner deletes any (the role is read from D1 only when nothing else already allows it).
    async fn on_delete(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let id = message_id_of(frame)?;
        let room_id = self.room_id()?.unwrap_or_default();
        let message = self.find_message(&room_id, &id).await?;
        let window = self.limits().recall_window_secs;
        let sender_may = message.sender_id.as_deref() == Some(info.user_id.as_str())
            && crate::message::within_recall_window(message.created_at, now_ms(), window).is_ok();
        let moderator =
            info.admin || (!sender_may && self.is_owner(&room_id, &info.user_id).await?);
        let changed = self
            .take_back(&room_id, &info.user_id, &id, moderator)
            .await?;
        peer.ack(frame.id.as_ref(), json!(changed));
        Ok(())
    }

    /// Whether `user` owns the room (D1 holds roles; the room does not).
    async fn is_owner(&self, room_id: &str, user: &str) -> Result<bool, ApiError> {
        let db = crate::store::d1::db(&self.env)?;
        Ok(rooms::member(&db, room_id, user)
            .await?
            .is_some_and(|member| member.role == rooms::OWNER))
    }

    /// `read {seq}`: the member has read through `seq`.
    async fn on_read(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let seq = frame
            .data
            .get("seq")
            .and_then(Value::as_i64)
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(code::VALIDATION, "read needs data.seq, a whole number >= 0")
            })?;
        let outcome = self.read_through(&info.user_id, seq).await?;
        peer.ack(frame.id.as_ref(), json!(outcome));
        Ok(())
    }

    /// Moves a member's cursor to `seq`: forward only, never past the newest message; a move
    /// is announced to every socket as a read receipt.
    async fn read_through(&self, user_id: &str, seq: i64) -> Result<ReadOutcome, ApiError> {
        let log = self.log();
        let last_seq = log.last_seq()?;
        if seq > last_seq {
            return Err(ApiError::bad_request(
                code::VALIDATION,
                format!("seq {seq} is ahead of the room ({last_seq})"),
            ));
        }
        let moved = log.advance_read(user_id, seq)?;
        let read_seq = log.read_seq(user_id)?.ok_or_else(not_a_member)?;
        let outcome = ReadOutcome {
            read_seq,
            unread: log.unread(user_id)?,
        };
        if moved {
            // A large room's audience is not told who read what: one frame to every socket for
            // each member's read is O(N²) frames for a room that reads along.
            if !self.presence_batched()? {
                self.broadcast(
                    &ServerFrame::event("read", json!({"user_id": user_id, "seq": read_seq})),
                    None,
                );
            }
            self.schedule_alarm().await?;
        }
        Ok(outcome)
    }

    async fn on_auth(
        &self,
        peer: &Peer,
        info: SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let revoked_before = self.log().revoked_before(&info.user_id)?;
        let answer =
            self.sockets
                .reauthenticate(peer, info, frame, &*self.config()?, revoked_before)?;
        peer.ack(frame.id.as_ref(), answer);
        self.schedule_alarm().await?;
        Ok(())
    }

    /// Sets the alarm to the earliest piece of work that exists now — a token expiry of an
    /// open socket, a D1 copy (when it became due, or its retry), an activity note (when it
    /// became due, at most one per interval), a Socket.IO ping round, a large room's presence
    /// batch — or deletes it when there is none.
    pub(super) async fn schedule_alarm(&self) -> worker::Result<()> {
        let wanted = self.alarm_plan(true)?.earliest();
        self.alarm.plan(&self.sockets.storage(), wanted).await
    }

    /// The work the alarm waits for, each piece with its time (`GET /stats` lists them, with
    /// `record` false: an operator's look writes nothing).
    pub(super) fn alarm_plan(&self, record: bool) -> worker::Result<AlarmPlan> {
        Ok(AlarmPlan::of(&[
            ("d1_copy", self.flush_due(record)?),
            ("activity_notes", self.activity_due()?),
            ("token_expiry", self.sockets.next_expiry()),
            ("socketio_ping", super::socketio::ping_at(self)?),
            ("presence_batch", self.presence_changes.borrow().due),
        ]))
    }

    /// When the D1 copy is due, if anything waits for it: as an append planned it, or its
    /// retry. Work that no append planned (a moved cursor) is due at once, or when the interval
    /// since the last copy is up; with `record`, that time is kept so later plans agree.
    fn flush_due(&self, record: bool) -> worker::Result<Option<i64>> {
        let log = self.log();
        if !log.has_unflushed()? {
            return Ok(None);
        }
        let due = match log.meta("flush_due")? {
            Some(due) => due,
            None => {
                let due = now_ms().max(self.next_copy_at());
                if record {
                    log.set_meta("flush_due", due)?;
                }
                due
            }
        };
        let due = log.meta("flush_retry_at")?.unwrap_or(due);
        // A copy still running past its backstop: look again a backstop later, not at once.
        Ok(Some(if self.copying.get() {
            due.max(now_ms() + COPY_BACKSTOP_MS)
        } else {
            due
        }))
    }
}

fn message_frame(message: &RoomMessage) -> ServerFrame<'static> {
    ServerFrame::stream("message", message.seq, json!(message))
}

fn change_frame(room_id: &str, change: &RoomChange) -> ServerFrame<'static> {
    let (event, data) = change.event(room_id);
    ServerFrame::stream(event, change.seq, data)
}

pub(super) fn entry_frame(room_id: &str, entry: &RoomEntry) -> ServerFrame<'static> {
    match entry {
        RoomEntry::Message(message) => message_frame(message),
        RoomEntry::Change(change) => change_frame(room_id, change),
    }
}

/// `data.id` of an `edit` or `delete` frame: a message id.
fn message_id_of(frame: &ClientFrame) -> Result<String, ApiError> {
    frame
        .data
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| crate::direct::validate_message_id(id).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(code::VALIDATION, "data.id must be a message id (m_…)")
        })
}

fn not_a_member() -> ApiError {
    ApiError::forbidden("not_a_member", "you are not a member of this room")
}

/// A room's stream as a replay reads it.
struct Messages<'a> {
    log: RoomLog<'a>,
    room_id: &'a str,
}

impl Source for Messages<'_> {
    fn plan(&self, since: i64) -> Result<ReplayPlan, ApiError> {
        Ok(plan_replay(
            since,
            self.log.last_seq()?,
            self.log.pruned_through()?,
        ))
    }

    fn read(&self, from: i64, through: i64, n: i64) -> Result<Vec<Entry>, ApiError> {
        Ok(self
            .log
            .entries(self.room_id, from, through, n)?
            .iter()
            .map(|entry| Entry {
                seq: entry.seq(),
                text: entry_frame(self.room_id, entry).to_text(),
            })
            .collect())
    }

    /// Where to page back through D1 (room ids are path-safe: `ids::validate_room_id`).
    fn unrecovered(&self, plan: &ReplayPlan) -> Value {
        let history = format!(
            "/v1/rooms/{}/messages?before_seq={}",
            self.room_id, plan.from
        );
        json!({ "history": history })
    }
}
