//! Room: one Durable Object per room — the part that orders and stores.
//!
//! A room is this file (its calls and requests: what each does, what is stored in what order,
//! what each answer is) and its parts: [`messages`] (stored, edited, recalled, read),
//! [`emits`] (a backend's events),
//! [`members`] (the mirror of D1's membership), [`sockets`] (its sockets, here or on shards,
//! and presence), [`copy`] (its D1 copy and its notes to absent members), [`socketio`] (a
//! Socket.IO connection to the room alone), [`outbox`] (its fan-out after the storing turn),
//! [`inspect`] (an operator's numbers) and [`shard`] (the objects that hold a large room's
//! sockets beyond its own).
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | `GET /connect` (member, by Worker)   | see `room::sockets`; 403 if removed, 401 if revoked, checked here first | — |
//! | frame `sync {since}`                 | — (the socket pages while `more`)        | the next replay batch, `synced`, once the member's replay budget covers a whole batch (`common::replay`) |
//! | any acting frame from a non-member   | —                                        | close 4003 (the frame is not processed)       |
//! | frame `send`                         | message with the next seq (client_id kept), in arrival order once the sender's rate allows | `ack {message}`; `message` to every socket; over the rate: `error rate_limited` |
//! | frame `edit` / `delete` (and `POST /edit`, `/recall`) | the change with the next seq, queued like a send; any message D1 holds | `ack {message, changed}`; `message.updated` / `message.deleted` to every socket |
//! | frame `typing`                       | —                                        | `typing` to the other users' sockets, throttled (`typing`); none in a large room |
//! | frame `read {seq}`                   | the member's cursor (forward only)       | `ack {read_seq, unread}`; `read` to every socket, except in a large room |
//! | frame `auth {token}`                 | new expiry in the attachment             | `ack {expires_at}` or `error`                  |
//! | `POST /members` (Worker)             | members added (cursor at the newest seq) or removed (remembered) | `member.added` / `member.updated` / `member.removed`; removed members' sockets closed 4003, `user.left` |
//! | `POST /emit` (Worker: a backend's `to(room).emit`) | the event with the next seq, unless volatile (`room::emits`) | the event to every socket but those `except` names |
//! | `POST /post` (Worker: REST send, backend publish) | a message from a member, or a `system` one (client_id kept) | `message` to every socket |
//! | `POST /read` (Worker: REST read)     | the member's cursor (forward only)       | `read` to every socket, except in a large room |
//! | `POST /renamed` (Worker)             | — (D1 has the name)                      | `room.updated {room_id, name}` to every socket |
//! | `POST /delete` (Worker)              | messages, members and cursors dropped; members remembered as removed | every socket closed 4004, on every shard |
//! | `POST /disconnect` (Worker)          | the user's revocation cut-off, when revoking | the user's sockets closed 4003 wherever they are, `user.left` |
//! | `GET /stats` (Worker: an operator's `GET /internal/v1/rooms/{id}/stats`) | — (reads only) | sockets per shard, members, the window, the D1 copy's position and lag, pending notes, the alarm and why (`room::inspect`) |
//! | alarm (only for work due then)       | see `room::copy`                         | `token.expired` + 4001; a large room's `presence.changed` |
//!
//! A message is durable here before it is acked or delivered, and sending never yields between
//! assigning the seq and handing the frame to the shards and the [`outbox`] (which sends it to
//! the room's own sockets once the turn ends, before any other event), so every receiver sees
//! the room's messages in seq order with no gap. Once delivered, messages and cursors are copied to D1 in
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

pub mod copy;
pub mod emits;
pub mod inspect;
pub mod members;
pub mod messages;
pub mod outbox;
pub mod shard;
pub mod socketio;
pub mod sockets;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, State, WebSocket,
    WebSocketIncomingMessage,
};

use super::common::alarm::{alarm_report, Alarm, AlarmPlan};
use super::common::attachment::SocketInfo;
use super::common::gate::Gate;
use super::common::link::{forget_unlinked_shards, Down, Links};
use super::common::object::{self, Answer};
use super::common::peer::Peer;
use super::common::reauth;
use super::common::replay::{Entry, Replays, Resume, Source};
use super::common::sockets::Sockets;
use super::stubs::room::{room_of, RoomCall};
use crate::clock::now_ms;
use crate::command::{Command, Request as ClientRequest};
use crate::config::Limits;
use crate::error::ApiError;
use crate::message::{RoomChange, RoomMessage};
use crate::presence::PresenceChanges;
use crate::protocol::{self, close, code, ServerFrame};
use crate::quota::Rate;
use crate::store::local::Local;
use crate::store::room_log::{RoomEntry, RoomLog};
use crate::store::room_shards::RoomShards;
use crate::stream::{plan_replay, ReplayPlan};
use crate::typing::Typing;
use outbox::Outbox;

/// The events a room socket serves (any other is `unknown_event`).
const EVENTS: &[&str] = &[
    "ping", "send", "edit", "delete", "typing", "sync", "read", "auth",
];

#[durable_object]
pub struct Room {
    sockets: Rc<Sockets>,
    /// What the room's own sockets get once the turn that stored it ends (`outbox`).
    outbox: Outbox,
    env: Env,
    local: Local,
    gate: Gate,
    alarm: Alarm,
    /// Per user: the typing last forwarded (memory only: losing it on hibernation at worst
    /// forwards one more `typing`).
    typing: RefCell<HashMap<String, Typing>>,
    /// `send`, `edit` and `delete` frames waiting for their sender's rate, in arrival order (see
    /// `queue_act`).
    sends: RefCell<VecDeque<(Peer, SocketInfo, ClientRequest)>>,
    draining: Cell<bool>,
    /// A D1 copy is running (it goes on until nothing is left to copy).
    copying: Cell<bool>,
    /// When the last D1 copy started (memory only: after a wake the next copy is made at once).
    copied_at: Cell<i64>,
    /// The room's id once read or adopted (it never changes).
    room_id: OnceCell<String>,
    /// Members whose last socket here closed after the room's latest change: they saw every
    /// change live, so a `room.activity` note would tell them nothing. Emptied by each change
    /// once it is delivered (memory only: after a wake every absent member is noted, as before).
    caught_up: RefCell<HashSet<String>>,
    /// Replay bytes left per member, and each socket's `sync` pace (`common::replay`).
    replays: Replays,
    /// The links to the room's shards (`common::link`).
    links: Links,
    /// A large room's joins and leaves since its last `presence.changed`, and when that is due
    /// (memory only: a room hibernates only after ten idle seconds, long after it went out).
    presence_changes: RefCell<PresenceChanges>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        let local = object::open_storage(&state, &env);
        let new_storage = object::migrated("room", RoomLog::new(&local).migrate());
        object::answer_pings(&state);
        if let Err(err) = forget_unlinked_shards(&local, &state) {
            crate::log::error("room.shards_failed", json!({"error": err.to_string()}));
        }
        let sockets = Rc::new(Sockets::new(state, "room"));
        Self {
            outbox: Outbox::new(Rc::clone(&sockets)),
            sockets,
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
        self.outbox.flush();
        let result = match self.adopt_room_id(&req) {
            Ok(room_id) => match RoomCall::of(&req) {
                Some(RoomCall::Connect) => self.accept_member(&req, &room_id).await,
                Some(RoomCall::Members) => self.change_members(req).await,
                Some(RoomCall::Disconnect) => self.disconnect(req).await,
                Some(RoomCall::Alarm) => alarm_report(&self.local, &self.sockets).await,
                Some(RoomCall::Post) => self.post_call(req, &room_id).await,
                Some(RoomCall::Emit) => self.emit_call(req).await,
                Some(RoomCall::Read) => self.read_call(req, &room_id).await,
                Some(RoomCall::Edit) => self.edit_call(req, &room_id).await,
                Some(RoomCall::Recall) => self.recall_call(req, &room_id).await,
                Some(RoomCall::Renamed) => self.renamed_call(req, &room_id).await,
                Some(RoomCall::Delete) => self.delete_call(&room_id).await,
                Some(RoomCall::Presence) => self.presence_response(),
                Some(RoomCall::Link) => self.accept_link(&req),
                Some(RoomCall::Shards) => self.shards(&room_id).await,
                Some(RoomCall::Stats) => self.stats(&room_id).await,
                None => Err(ApiError::not_found("no such room route")),
            },
            Err(err) => Err(err),
        };
        result.or_else(object::error_response)
    }

    object::socket_events!(sockets, on_message, on_socket_gone);

    async fn alarm(&self) -> worker::Result<Response> {
        self.outbox.flush();
        let now = now_ms();
        self.alarm
            .fired("room", Some(&self.local), &self.alarm_plan(false)?, now)?;
        self.sockets.expire_due(now);
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
    /// A frame from a shard's link, or from a socket of the room's own (`hubs::socketio`).
    async fn on_message(
        &self,
        ws: &WebSocket,
        frame: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        self.outbox.flush();
        if let Some(link) = self.links.find(&self.sockets, ws) {
            return self.on_link(ws, link, frame).await;
        }
        super::socketio::on_message(self, ws, frame).await;
        Ok(())
    }
    /// A room learns its own id from the Worker's first request and keeps it (alarms have no
    /// request to read it from).
    fn adopt_room_id(&self, req: &Request) -> Result<String, ApiError> {
        let room_id = room_of(req)?;
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
            limits: &Limits::of(&self.env),
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
        since: i64,
    ) -> Result<Option<Value>, ApiError> {
        let room_id = self.room_id()?.unwrap_or_default();
        let to = Resume {
            sockets: &self.sockets,
            peer,
            user: &info.user_id,
            limits: &Limits::of(&self.env),
            source: &Messages {
                log: self.log(),
                room_id: &room_id,
            },
        };
        let Some(turn) = self.replays.sync(&to, info, since).await? else {
            return Ok(None);
        };
        if !self.log().is_member(&info.user_id)? {
            return Ok(None);
        }
        self.replays.serve(&to, turn)?;
        Ok(Some(json!({})))
    }
    /// `RoomCall::Renamed`: the Worker renamed the room in D1; its sockets hear of it.
    async fn renamed_call(&self, mut req: Request, room_id: &str) -> Answer {
        let body: Value = crate::http::read_hub_json(&mut req).await?;
        let name = body.get("name").cloned().unwrap_or(Value::Null);
        self.broadcast(
            ServerFrame::event("room.updated", json!({"room_id": room_id, "name": name})),
            None,
        );
        Ok(crate::http::json(200, &json!({}))?)
    }
    /// `RoomCall::Delete`: the room is being deleted. Every socket closes with 4004, every member
    /// is remembered as removed (a connect admitted from D1 a moment ago is refused), and the
    /// messages, cursors and pending D1 copy are dropped; the Worker deletes D1's rows next.
    async fn delete_call(&self, room_id: &str) -> Answer {
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
    /// A request from a member socket, here or on a shard, in either dialect. Every request but
    /// `ping` is from a member at this moment, or the socket is closed; acts wait their turn in
    /// the send queue.
    pub(super) async fn on_member_request(
        &self,
        peer: &Peer,
        info: SocketInfo,
        request: ClientRequest,
    ) {
        let id = request.id.as_ref();
        let is_member = self.log().is_member(&info.user_id).unwrap_or(false);
        if request.command != Command::Ping && !is_member {
            peer.error(
                id,
                code::FORBIDDEN,
                "you are no longer a member of this room",
            );
            peer.close(&self.sockets, close::FORBIDDEN, "removed from the room");
            return;
        }
        if request.command.is_act() {
            self.queue_act(peer.clone(), info, request).await;
            return;
        }
        let result = match &request.command {
            Command::Ping => {
                peer.send_text(protocol::PONG.to_owned());
                Ok(None)
            }
            Command::Typing { active } => self.on_typing(&info, *active).map(Some),
            Command::Sync { since } => self.on_sync(peer, &info, *since).await,
            Command::Read { seq } => self.on_read(&info, *seq).await.map(Some),
            Command::Auth { token } => self.on_auth(peer, info, token).await.map(Some),
            Command::Invalid { event, message } if EVENTS.contains(&event.as_str()) => {
                Err(ApiError::bad_request(code::VALIDATION, message.clone()))
            }
            other => Err(ApiError::bad_request(
                code::UNKNOWN_EVENT,
                format!("unknown event '{}' on a room socket", other.event()),
            )),
        };
        match result {
            Ok(Some(answer)) => peer.ack(id, answer),
            Ok(None) => {}
            Err(err) => peer.error(id, err.code, &err.message),
        }
    }
    /// Every `send`, `edit` and `delete` first counts against its sender's rate across the
    /// platform (`quota`: an edit or a recall costs what a message costs, so neither escapes the
    /// rate), which awaits the limiter. They wait in one queue, drained by one handler at a
    /// time, so each is applied in the order it arrived however the limiter's answers
    /// interleave; membership is checked again when a frame's turn comes.
    async fn queue_act(&self, peer: Peer, info: SocketInfo, request: ClientRequest) {
        self.sends.borrow_mut().push_back((peer, info, request));
        if self.draining.replace(true) {
            return;
        }
        loop {
            let next = self.sends.borrow_mut().pop_front();
            let Some((peer, info, request)) = next else {
                break;
            };
            let id = request.id.clone();
            let result = match crate::quota::check(&self.env, Rate::Send, &info.user_id).await {
                Ok(()) if !self.log().is_member(&info.user_id).unwrap_or(false) => {
                    Err(not_a_member())
                }
                Ok(()) => self.act(&peer, &info, request).await,
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                peer.error(id.as_ref(), err.code, &err.message);
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
    /// An act whose turn came: a message stored, edited or recalled (or its data refused).
    async fn act(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        request: ClientRequest,
    ) -> Result<(), ApiError> {
        let id = request.id.as_ref();
        let changed = match request.command {
            Command::Send { content } => return self.on_send(peer, info, content, id).await,
            Command::Edit {
                id: message_id,
                body,
            } => self.on_edit(info, &message_id, &body).await?,
            Command::Delete { id: message_id } => self.on_delete(info, &message_id).await?,
            Command::Invalid { message, .. } => {
                return Err(ApiError::bad_request(code::VALIDATION, message))
            }
            other => {
                return Err(ApiError::bad_request(
                    code::VALIDATION,
                    format!("'{}' is not an act", other.event()),
                ))
            }
        };
        peer.ack(id, changed);
        Ok(())
    }
    /// `auth {token}`: extends the socket's life with a fresh token for the same user.
    async fn on_auth(&self, peer: &Peer, info: SocketInfo, token: &str) -> Result<Value, ApiError> {
        let revoked_before = self.log().revoked_before(&info.user_id)?;
        let config = object::config(&self.env)?;
        let answer = reauth::refresh(&self.sockets, peer, info, token, &config, revoked_before)?;
        self.schedule_alarm().await?;
        Ok(answer)
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
            ("presence_batch", self.presence_changes.borrow().due),
        ]))
    }
}

pub(super) fn message_frame(message: &RoomMessage) -> ServerFrame<'static> {
    ServerFrame::stream("message", message.seq, json!(message))
}

pub(super) fn change_frame(room_id: &str, change: &RoomChange) -> ServerFrame<'static> {
    let (event, data) = change.event(room_id);
    ServerFrame::stream(event, change.seq, data)
}

pub(super) fn entry_frame<'e>(room_id: &str, entry: &'e RoomEntry) -> ServerFrame<'e> {
    match entry {
        RoomEntry::Message(message) => message_frame(message),
        RoomEntry::Change(change) => change_frame(room_id, change),
        RoomEntry::Emit(emit) => emits::frame(emit),
    }
}

pub(super) fn not_a_member() -> ApiError {
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
            .stream_entries(self.room_id, from, through, n)?
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
