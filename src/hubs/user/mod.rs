//! UserHub: one Durable Object per user — its device sockets, in either dialect, and its event
//! stream. Its other parts each have their file: Web Push and notifications ([`notifier`]),
//! Socket.IO connections ([`socketio`]) with the rooms they join relayed ([`relay`]) and each
//! namespace's state ([`namespace`]), a backend's operations on them ([`remote`], waiting for a
//! namespace being opened: [`opening`]) and its calls about their lives ([`lifecycle`]), the
//! direct-message send ([`direct`]), its listing in the
//! directory of who is online ([`listing`]), and an operator's report ([`inspect`]).
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | `GET /connect` (verified by Worker)  | socket attachment | `ready`; with `since`: a replay batch, `synced`; 401 if revoked; 4009 beyond the cap; a directory `join` (`user::listing`) |
//! | frame `sync {since}`                 | — (the socket pages while `more`)       | the next replay batch, `synced`, once the user's replay budget covers a whole batch (`common::replay`) |
//! | `POST /push` (a backend's or a chat event) | event with the next seq and its class, idempotency key; what it supersedes or outgrows dropped | the event to every device not paging a resume |
//! | frame `ack {seq}`                    | the device's cursor (forward only)      | `ack` when the frame had an id          |
//! | frame `auth {token}`                 | new expiry in the attachment            | `ack {expires_at}` or `error` (`token_revoked`, …) |
//! | frame `message.send` (direct message) | D1 message + receipts; `message` in this stream (not for a retry of a deleted one) | `message` to receivers' hubs and every device; `ack {message}` |
//! | alarm (only for work due then)       | retention pruning, each class on its own | `token.expired` + close 4001 on expiry |
//! | `POST /disconnect`                   | revocation cut-off, when revoking       | close 4003 with the reason             |
//! | `POST /redact` (direct message deleted) | the message's events become tombstones; `message.deleted` in this stream | `message.deleted` to every device |
//! | `POST /activity` (from a room)       | —                                       | `room.activity` to every device        |
//! | `GET /inspect` (Worker: an operator's `GET /internal/v1/users/{id}`) | — (reads only; no table is made) | the report: devices (with how each token came), stream counters, cursors, revocation, push state, the alarm and why (`user::inspect`) |
//! | `POST /sockets` (a backend's `emit`, `socketsJoin`, … for chosen Socket.IO sockets) | see `user::remote` | see `user::remote` |
//! | `POST /broadcast` (from a directory shard) | — (not in the stream: no seq)     | the event with `broadcast: true` to every device (Socket.IO: EVENT on the main namespace); `{devices}`, and at 0 the hub knows itself unlisted |
//! | socket closes                        | `last_seen` when the last device leaves; alarm re-planned | the directory shard's `leave` when the last device leaves; a Socket.IO socket's `disconnect` hook calls (`user::lifecycle`) |
//! | frames over the rate limit           | —                                       | close 4008                             |
//!
//! Appending and fanning out, or replaying and sending `synced`, happen without yielding (SQLite
//! storage calls are synchronous), so a push can never slip into the middle of a replay: a
//! resuming socket sees every event exactly once and in order. A socket the hub has started to
//! close is no longer open: it gets nothing and nothing it sends is processed.
//!
//! Every event is stored with its [`Class`]: a backend's push, or a chat event (a direct
//! message, a read, a deletion, a room change) whose state D1 also holds. Each class prunes only
//! itself (`store::user_log`), so no flood of other users' messages can push a backend's event
//! out of the stream.

pub mod direct;
pub mod inspect;
pub mod lifecycle;
pub mod listing;
pub mod namespace;
pub mod notifier;
pub mod opening;
pub mod relay;
pub mod remote;
pub mod socketio;

use std::rc::Rc;

use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, State, WebSocket,
    WebSocketIncomingMessage,
};

use self::lifecycle::Lifecycle;
use self::listing::Listing;
use self::namespace::Namespaces;
use self::opening::Openings;
use super::common::alarm::{Alarm, AlarmPlan};
use super::common::attachment::SocketInfo;
use super::common::dialect;
use super::common::gate::Gate;
use super::common::object::{self, upgrade_response, Answer};
use super::common::peer::Peer;
use super::common::replay::{Entry, Replays, Resume, Source};
use super::common::sockets::Sockets;
use super::stubs::user::{
    user_of, Announcement, DisconnectRequest, Disconnected, HubPresence, HubReach, PushOutcome,
    PushRequest, RedactRequest, UserCall,
};
use crate::clock::now_ms;
use crate::command::{Command, Request as ClientRequest};
use crate::config::Limits;
use crate::error::ApiError;
use crate::notify::Preview;
use crate::protocol::{self, close, code, RequestId, ServerFrame};
use crate::store::local::Local;
use crate::store::user_log::{UserLog, IDEMPOTENCY_MS};
use crate::stream::{coalescing_room, plan_sparse_replay, Class, ReplayPlan};

/// The events a user socket serves (any other is `unknown_event`).
const EVENTS: &[&str] = &["ping", "sync", "ack", "auth", "message.send"];

#[durable_object]
pub struct UserHub {
    sockets: Sockets,
    env: Env,
    local: Local,
    gate: Gate,
    alarm: Alarm,
    /// Replay bytes left per user, and each socket's `sync` pace (`common::replay`).
    replays: Replays,
    /// Each Socket.IO connection's namespaces, with their room relays (`user::namespace`).
    namespaces: Namespaces,
    /// The namespaces whose CONNECT waits on the backend's `connection` call (`user::opening`).
    openings: Openings,
    /// Whether this hub is listed in its directory shard (`user::listing`).
    listing: Rc<Listing>,
    /// The backend's `connection` and `disconnect` calls not answered yet (`user::lifecycle`).
    lifecycle: Lifecycle,
}

impl DurableObject for UserHub {
    fn new(state: State, env: Env) -> Self {
        let local = object::open_storage(&state, &env);
        let new_storage = object::migrated("user", UserLog::new(&local).migrate());
        object::answer_pings(&state);
        Self {
            sockets: Sockets::new(state, "user"),
            env,
            local,
            gate: Gate::default(),
            alarm: Alarm::new(new_storage),
            replays: Replays::default(),
            namespaces: Namespaces::default(),
            openings: Openings::default(),
            listing: Rc::default(),
            lifecycle: Lifecycle::default(),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let Some(call) = UserCall::of(&req) else {
            return object::error_response(ApiError::not_found("no such hub route"));
        };
        let result = match call {
            UserCall::Connect => self.accept_device(&req).await,
            UserCall::Push => self.push(req).await,
            UserCall::Subscribe => self.subscribe_call(req).await,
            UserCall::Subscriptions => self.subscriptions_call(),
            UserCall::Unsubscribe => self.unsubscribe_call(req).await,
            UserCall::RoomLevel => self.room_level_call(req).await,
            UserCall::Disconnect => self.disconnect(req).await,
            UserCall::Presence => self.presence(),
            UserCall::Activity => self.activity(req).await,
            UserCall::Broadcast => self.broadcast(req).await,
            UserCall::Sockets => self.sockets_call(req).await,
            UserCall::Redact => self.redact(req).await,
            UserCall::Alarm => super::common::alarm::alarm_report(&self.local, &self.sockets).await,
            UserCall::Inspect => self.inspect(&req).await,
        };
        result.or_else(object::error_response)
    }

    object::socket_events!(sockets, on_message, on_socket_gone);

    async fn alarm(&self) -> worker::Result<Response> {
        let now = now_ms();
        self.alarm
            .fired("user", Some(&self.local), &self.alarm_plan()?, now)?;
        self.sockets.expire_due(now);
        if self.log().prune_at()?.is_some_and(|due| due <= now) {
            self.prune(now)?;
        }
        self.notify_round(now).await?;
        self.schedule_alarm().await?;
        Response::ok("")
    }
}

impl UserHub {
    pub(super) fn log(&self) -> UserLog<'_> {
        UserLog::new(&self.local)
    }

    /// A frame from a device socket (`hubs::socketio`).
    async fn on_message(
        &self,
        ws: &WebSocket,
        frame: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        super::socketio::on_message(self, ws, frame).await;
        Ok(())
    }

    /// Accepts a device socket for an identity the Worker has verified, unless the user has
    /// revoked the token since.
    async fn accept_device(&self, req: &Request) -> Answer {
        let identity = super::stubs::identity_of(req)?;
        let log = self.log();
        crate::auth::revocation::check(&identity, log.revoked_before()?)?;
        let since = crate::http::query_param(req, "since").and_then(|s| s.parse::<i64>().ok());
        let device = crate::http::query_param(req, "device");
        let limits = Limits::of(&self.env);
        self.sockets
            .refuse_if_held(&identity.user_id, limits.max_sockets_per_user)?;
        self.on_device_connected()?;
        if crate::http::query_param(req, "dialect").as_deref() == Some("socketio") {
            return self.accept_socketio(req, identity, device).await;
        }
        let carrier = super::stubs::carrier_of(req);
        let (pair, info) = self.sockets.accept(&identity, device, None, carrier)?;
        let ws = pair.server;
        self.sockets
            .enforce_cap(&info.user_id, limits.max_sockets_per_user);
        let ready = json!({
            "user_id": info.user_id,
            "conn_id": info.conn_id,
            "device": info.device,
            "seq": log.last_seq()?,
            "cursor": log.cursor(&info.device)?,
            "expires_at": info.expires_at,
        });
        dialect::send(&ws, &ServerFrame::event("ready", ready));
        if let Some(since) = since {
            self.replay(&ws, &info.user_id, since.max(0))?;
        }
        self.schedule_alarm().await?;
        self.listing.join(&self.env, &info.user_id);
        upgrade_response(req, pair.client)
    }

    /// Sends the first batch of a resume after `since` (when `user`'s replay budget covers it),
    /// then `synced`. Does not yield.
    fn replay(&self, ws: &WebSocket, user: &str, since: i64) -> Result<(), ApiError> {
        let to = Resume {
            sockets: &self.sockets,
            peer: &Peer::Socket(ws.clone()),
            user,
            limits: &Limits::of(&self.env),
            source: &Events(self.log()),
        };
        self.replays.resume(&to, since)
    }

    /// `sync {since}`: the next batch of a resume, once the user's replay budget covers it.
    async fn on_sync(
        &self,
        ws: &WebSocket,
        info: &SocketInfo,
        since: i64,
        id: Option<&RequestId>,
    ) -> Result<(), ApiError> {
        let to = Resume {
            sockets: &self.sockets,
            peer: &Peer::Socket(ws.clone()),
            user: &info.user_id,
            limits: &Limits::of(&self.env),
            source: &Events(self.log()),
        };
        let Some(turn) = self.replays.sync(&to, info, since).await? else {
            return Ok(());
        };
        self.replays.serve(&to, turn)?;
        if let Some(id) = id {
            dialect::send(ws, &ServerFrame::ack(id, json!({})));
        }
        Ok(())
    }

    /// `POST /push`: appends an event and delivers it to every device; one that asks for a
    /// notification is planned (`user::notifier`).
    async fn push(&self, mut req: Request) -> Answer {
        let user = user_of(&req)?;
        let push: PushRequest = crate::http::read_hub_json(&mut req).await?;
        let preview =
            crate::notify::preview_of(&user, &push.event, &push.data, push.notify.as_ref());
        let outcome = self
            .append_and_deliver(push, preview.map(|preview| (user.as_str(), preview)))
            .await?;
        Ok(crate::http::json(200, &outcome)?)
    }

    /// Appends an event to the stream (once per idempotency key) and sends it to every device. A
    /// `room.updated` first deletes the older ones of its room that it makes obsolete; the append
    /// then prunes its own class beyond its byte bound, and asks for a retention pass when its
    /// class holds more than `RETENTION_EVENTS`.
    async fn append_and_deliver(
        &self,
        push: PushRequest,
        notify: Option<(&str, Preview)>,
    ) -> Result<PushOutcome, ApiError> {
        let log = self.log();
        let now = now_ms();
        if let Some(seq) = push
            .idempotency_key
            .as_deref()
            .map(|key| log.idempotent_seq(key))
            .transpose()?
            .flatten()
        {
            return Ok(PushOutcome {
                seq,
                devices: 0,
                duplicate: true,
            });
        }
        let class = push.class;
        if let Some(room) = coalescing_room(&push.event, &push.data) {
            log.supersede(class, &push.event, room, &push.data)?;
        }
        let appended = log.append(class, &push.event, &push.data, now)?;
        let seq = appended.seq;
        let limits = Limits::of(&self.env);
        log.prune_bytes(class, appended.class_bytes, limits.retention_bytes)?;
        let mut prune_moved = false;
        if let Some(key) = &push.idempotency_key {
            log.remember_key(key, seq, now)?;
            prune_moved |= log.request_prune(now + IDEMPOTENCY_MS)?;
        }
        if log.stored_events(class)? > limits.retention_events {
            prune_moved |= log.request_prune(now + limits.prune_interval_secs * 1000)?;
        }
        let frame = ServerFrame::stream(&push.event, seq, push.data);
        let socketio = self.deliver_socketio(&frame);
        let devices = self.deliver_native(&frame) + socketio;
        if prune_moved {
            self.schedule_alarm().await?;
        }
        if let Some((user, preview)) = notify {
            let preview = Preview {
                seq: Some(seq),
                ..preview
            };
            self.plan_notification(user, preview, socketio > 0).await?;
        }
        Ok(PushOutcome {
            seq,
            devices,
            duplicate: false,
        })
    }

    /// Sends a frame to every open device socket (a stream event skips devices still paging
    /// a resume: their next batch carries it); returns how many got it.
    fn deliver(&self, frame: &ServerFrame<'_>) -> usize {
        self.deliver_native(frame) + self.deliver_socketio(frame)
    }

    /// Sends a frame to every device socket of the gateway's own protocol.
    fn deliver_native(&self, frame: &ServerFrame<'_>) -> usize {
        let stream = frame.seq.is_some();
        self.sockets.fan_out(&frame.to_text(), stream, None, None)
    }

    /// Closes every device socket with 4003 and, when revoking, records the cut-off first so
    /// that no connect or `auth` after this call can bring an old token back.
    async fn disconnect(&self, mut req: Request) -> Answer {
        let body: DisconnectRequest = crate::http::read_hub_json(&mut req).await?;
        if let Some(cutoff) = body.revoke_before {
            self.log().revoke(cutoff)?;
            self.notify_log().forget_all()?;
        }
        if body.forget {
            self.notify_log().forget_levels()?;
        }
        let sockets = self.sockets.open();
        for (ws, _) in &sockets {
            self.sockets.close(ws, close::FORBIDDEN, &body.reason);
        }
        if let Some((_, info)) = sockets.first() {
            self.log().set_last_seen(now_ms())?;
            self.listing.leave(&self.env, &info.user_id).await;
        }
        self.schedule_alarm().await?;
        let answer = Disconnected {
            sockets: sockets.len(),
        };
        Ok(crate::http::json(200, &answer)?)
    }

    /// A direct message was deleted for everyone: its content leaves this stream (the events
    /// keep their seq, so replay has no gap) and every device hears `message.deleted`.
    async fn redact(&self, mut req: Request) -> Answer {
        let body: RedactRequest = crate::http::read_hub_json(&mut req).await?;
        self.log().redact_message(&body.message_id)?;
        let outcome = self
            .append_and_deliver(
                PushRequest {
                    event: "message.deleted".into(),
                    data: json!({"id": body.message_id}),
                    idempotency_key: Some(format!("dm-deleted:{}", body.message_id)),
                    class: Class::Chat,
                    notify: None,
                },
                None,
            )
            .await?;
        Ok(crate::http::json(200, &outcome)?)
    }

    /// A room's light activity note: delivered to the devices connected now, not stored; when
    /// none took it, perhaps a notification (`hubs::user::notifier`).
    async fn activity(&self, mut req: Request) -> Answer {
        let user = user_of(&req)?;
        let mut note: Value = crate::http::read_hub_json(&mut req).await?;
        let mentioned = note
            .as_object_mut()
            .and_then(|fields| fields.remove("mentioned"));
        let devices = self.deliver(&ServerFrame::event("room.activity", note.clone()));
        if let Some(mentioned) = mentioned {
            note["mentioned"] = mentioned;
        }
        self.plan_room_note(&user, &note, devices).await?;
        Ok(crate::http::json(200, &json!({"devices": devices}))?)
    }

    /// A broadcast: sent to the devices connected now, not stored (a backend's emit to a
    /// namespace: to its Socket.IO sockets, `user::remote`). A hub with no socket open says so,
    /// and its shard drops it (so the next accept lists it again).
    async fn broadcast(&self, mut req: Request) -> Answer {
        let body: Announcement = crate::http::read_hub_json(&mut req).await?;
        let devices = match &body.emitted {
            Some(emitted) => self.emit_to_namespace(&body.event, emitted),
            None => self.announce(&body),
        };
        let open = self.sockets.count();
        if open == 0 {
            self.listing.dropped();
        }
        Ok(crate::http::json(200, &HubReach { devices, open })?)
    }

    /// Sends a broadcast to every open device socket: `{"event","data","broadcast":true}` on the
    /// gateway's protocol, an EVENT on each namespace of a Socket.IO connection (no offset: it
    /// is not in the stream). Returns how many sockets got it.
    fn announce(&self, announcement: &Announcement) -> usize {
        let text = protocol::broadcast_text(&announcement.event, &announcement.data);
        let frame = ServerFrame::event(&announcement.event, announcement.data.clone());
        let open = self.sockets.open();
        for (ws, info) in &open {
            match info.sio {
                None => {
                    let _ = ws.send_with_str(&text);
                }
                Some(_) => dialect::emit(ws, info, &frame),
            }
        }
        open.len()
    }

    fn presence(&self) -> Answer {
        let presence = HubPresence {
            devices: self.sockets.count(),
            last_seen: self.log().last_seen()?,
        };
        Ok(crate::http::json(200, &presence)?)
    }

    /// A request from a device socket of the gateway's own protocol.
    pub(super) async fn on_device_request(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        request: ClientRequest,
    ) {
        let id = request.id.as_ref();
        let result = match &request.command {
            Command::Ping => {
                let _ = ws.send_with_str(protocol::PONG);
                Ok(())
            }
            Command::Sync { since } => self.on_sync(ws, &info, *since, id).await,
            command => self.run_command(ws, info, command).await.map(|answer| {
                if let Some(id) = id {
                    dialect::send(ws, &ServerFrame::ack(id, answer));
                }
            }),
        };
        if let Err(err) = result {
            dialect::send(ws, &ServerFrame::error(id, err.code, &err.message));
        }
    }

    /// The requests a device socket of either dialect makes; the answer is the ack's data.
    pub(super) async fn run_command(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        command: &Command,
    ) -> Result<Value, ApiError> {
        match command {
            Command::Ack { seq } => self.on_ack(&info, *seq).await,
            Command::Auth { token } => self.on_auth(ws, info, token).await,
            Command::MessageSend { data } => self.on_message_send(&info, data).await,
            Command::Invalid { event, message } if EVENTS.contains(&event.as_str()) => {
                Err(ApiError::bad_request(code::VALIDATION, message.clone()))
            }
            other => Err(ApiError::bad_request(
                code::UNKNOWN_EVENT,
                format!("unknown event '{}' on the user socket", other.event()),
            )),
        }
    }

    /// `ack {seq}`: the device has everything through `seq`.
    async fn on_ack(&self, info: &SocketInfo, seq: i64) -> Result<Value, ApiError> {
        let log = self.log();
        let last_seq = log.last_seq()?;
        if seq > last_seq {
            return Err(ApiError::bad_request(
                code::VALIDATION,
                format!("seq {seq} is ahead of the stream ({last_seq})"),
            ));
        }
        let cursor = log.advance_cursor(&info.device, seq, now_ms())?;
        self.on_acked(cursor).await?;
        Ok(json!({"cursor": cursor}))
    }

    /// `message.send {to, type, body, client_id, …}`: a direct message. It is stored in D1 and
    /// pushed to the receivers first; then it joins this user's own stream (so every device,
    /// this one included, has it in order) and the sender gets the ack. A retry of a message
    /// deleted for everyone is acked with its tombstone and joins no stream again.
    async fn on_message_send(&self, info: &SocketInfo, data: &Value) -> Result<Value, ApiError> {
        let sent =
            direct::send(&self.env, &info.user_id, data.clone(), Some(&info.user_id)).await?;
        if sent.message.deleted_at.is_none() {
            self.append_and_deliver(
                PushRequest {
                    event: "message".into(),
                    data: json!(sent.message),
                    idempotency_key: Some(sent.message.stream_key()),
                    class: Class::Chat,
                    notify: None,
                },
                None,
            )
            .await?;
        }
        Ok(json!({"message": sent.message, "duplicate": sent.duplicate}))
    }

    /// `auth {token}`: extends the socket's life with a fresh token for the same user; the rooms
    /// a Socket.IO connection relays get it too.
    async fn on_auth(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        token: &str,
    ) -> Result<Value, ApiError> {
        let revoked_before = self.log().revoked_before()?;
        let config = object::config(&self.env)?;
        let conn_id = info.conn_id.clone();
        let peer = Peer::Socket(ws.clone());
        let answer = super::common::reauth::refresh(
            &self.sockets,
            &peer,
            info,
            token,
            &config,
            revoked_before,
        )?;
        self.namespaces.refresh_token(&conn_id, token);
        self.schedule_alarm().await?;
        Ok(answer)
    }

    /// A socket closed or failed: forget its rate bucket, note when the last device left, stop
    /// waiting for its token's expiry, and after the last one unlist the hub (`user::listing`).
    async fn on_socket_gone(
        &self,
        _ws: &WebSocket,
        gone: Option<SocketInfo>,
    ) -> worker::Result<()> {
        if let Some(gone) = &gone {
            self.gate.forget(&gone.conn_id);
            self.namespaces.forget(&gone.conn_id);
            let why = match gone.closing {
                true => crate::socketio::reason::FORCED,
                false => crate::socketio::reason::TRANSPORT,
            };
            for nsp in gone.sio.iter().flat_map(|session| &session.namespaces) {
                self.disconnect_call(gone, &nsp.name, why);
            }
        }
        let last = self.sockets.count() == 0;
        if last {
            self.log().set_last_seen(now_ms())?;
        }
        self.schedule_alarm().await?;
        if let Some(gone) = gone.filter(|_| last) {
            self.listing.leave(&self.env, &gone.user_id).await;
        }
        Ok(())
    }

    fn prune(&self, now: i64) -> worker::Result<()> {
        let limits = Limits::of(&self.env);
        let keep_ms = limits.retention_days * 24 * 60 * 60 * 1000;
        if let Some(next) = self.log().prune(limits.retention_events, keep_ms, now)? {
            // Never sooner than the configured interval: prune in batches, not per event.
            let at = next.max(now + limits.prune_interval_secs * 1000);
            self.log().request_prune(at)?;
        }
        Ok(())
    }

    /// Sets the alarm to the earliest piece of work that exists now: the next token expiry of an
    /// open socket, the next retention pass, a Socket.IO ping round or a notification look;
    /// deletes it when there is none.
    pub(super) async fn schedule_alarm(&self) -> worker::Result<()> {
        let wanted = self.alarm_plan()?.earliest();
        self.alarm.plan(&self.sockets.storage(), wanted).await
    }

    /// The work the alarm waits for, each piece with its time (`GET /inspect` lists them).
    pub(super) fn alarm_plan(&self) -> worker::Result<AlarmPlan> {
        Ok(AlarmPlan::of(&[
            ("token_expiry", self.sockets.next_expiry()),
            ("retention", self.log().prune_at()?),
            ("notifications", self.notify_log().notify_at()?),
        ]))
    }
}

/// The user's stream as a replay reads it.
struct Events<'a>(UserLog<'a>);

impl Source for Events<'_> {
    fn plan(&self, since: i64) -> Result<ReplayPlan, ApiError> {
        let log = &self.0;
        Ok(plan_sparse_replay(
            since,
            log.last_seq()?,
            log.pruned_through()?,
        ))
    }

    fn read(&self, from: i64, through: i64, n: i64) -> Result<Vec<Entry>, ApiError> {
        Ok(self
            .0
            .range(from, through, n)?
            .into_iter()
            .map(|event| Entry {
                seq: event.seq,
                text: ServerFrame::stream(&event.event, event.seq, event.data_value()).to_text(),
            })
            .collect())
    }

    fn unrecovered(&self, _plan: &ReplayPlan) -> Value {
        Value::Null
    }
}
