//! UserHub: one Durable Object per user.
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | `GET /connect` (verified by Worker)  | socket attachment (user, conn, device, expiry, how the token came) | `ready`; with `since`: one replay batch, `synced`; 401 `token_revoked` for a revoked token; the user's oldest socket closed 4009 beyond the cap; the directory shard's `join` unless listed since waking (`hubs::directory`) |
//! | frame `sync {since}`                 | — (the socket pages while `more`)       | the next replay batch, `synced`, once the user's replay budget allows (`hubs::replay`) |
//! | `POST /push` (a backend's or a chat event) | event with the next seq and its class; idempotency key; older `room.updated` it supersedes deleted; its class's oldest events pruned beyond the byte bound | the event to every device not paging a resume |
//! | frame `ack {seq}`                    | the device's cursor (forward only)      | `ack` when the frame had an id          |
//! | frame `auth {token}`                 | new expiry in the attachment            | `ack {expires_at}` or `error` (`token_revoked`, …) |
//! | frame `message.send` (direct message) | D1 message + receipts; `message` in this stream (not for a retry of a deleted one) | `message` to receivers' hubs and every device; `ack {message}` |
//! | alarm (only for work due then)       | retention pruning, each class on its own | `token.expired` + close 4001 on expiry |
//! | `POST /disconnect`                   | revocation cut-off, when revoking       | close 4003 with the reason             |
//! | `POST /redact` (direct message deleted) | the message's events become tombstones; `message.deleted` in this stream | `message.deleted` to every device |
//! | `POST /activity` (from a room)       | —                                       | `room.activity` to every device        |
//! | `GET /inspect` (Worker: an operator's `GET /internal/v1/users/{id}`) | — (reads only; no table is made) | the report: devices (with how each token came), stream counters, cursors, revocation, push state, the alarm and why (`hubs::inspect`) |
//! | `POST /broadcast` (from a directory shard) | — (not in the stream: no seq)     | the event with `broadcast: true` to every device (Socket.IO: EVENT on each namespace); `{devices}`, and at 0 the hub knows itself unlisted |
//! | socket closes                        | `last_seen` when the last device leaves; alarm re-planned | the directory shard's `leave` when the last device leaves |
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

use std::rc::Rc;

use futures_util::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, State, Stub, WebSocket,
    WebSocketIncomingMessage, WebSocketRequestResponsePair,
};

use super::directory::{Announcement, HubReach, Listing};
use super::replay::{Entry, Replays, Resume, Source};
use super::user_socketio::Follows;
use super::{
    now_ms, send, send_ack, send_error, Alarm, AlarmPlan, Gate, Peer, SocketInfo, Sockets,
};
use crate::config::Config;
use crate::error::ApiError;
use crate::notify::{NotifyRequest, Preview};
use crate::protocol::{self, close, code, ClientFrame, ServerFrame};
use crate::store::local::Local;
use crate::store::user_log::{UserLog, IDEMPOTENCY_MS};
use crate::stream::{coalescing_room, plan_sparse_replay, Class, ReplayPlan};

/// An event for the stream: a backend's, as the Worker forwards it after validation, or a chat
/// event the gateway makes.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushRequest {
    pub event: String,
    pub data: Value,
    pub idempotency_key: Option<String>,
    /// Whose budget the event counts against.
    pub class: Class,
    /// A backend's notification for users whose devices do not take the event in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyRequest>,
}

/// What a push did for this user.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushOutcome {
    pub seq: i64,
    pub devices: usize,
    pub duplicate: bool,
}

/// A direct message deleted for everyone.
#[derive(Debug, Serialize, Deserialize)]
pub struct RedactRequest {
    pub message_id: String,
}

/// The hub's view of presence; the Worker applies the grace rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct HubPresence {
    pub devices: usize,
    pub last_seen: Option<i64>,
}

/// Close every socket of this user; with `revoke_before`, also refuse tokens issued at or
/// before that second from now on.
#[derive(Debug, Serialize, Deserialize)]
pub struct DisconnectRequest {
    pub reason: String,
    pub revoke_before: Option<i64>,
    /// The account is deleted: the user's room levels go too.
    #[serde(default)]
    pub forget: bool,
}

/// How many sockets a disconnect closed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Disconnected {
    pub sockets: usize,
}

/// The UserHub of one user.
pub fn stub(env: &Env, user_id: &str) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("USER_HUB")?
        .id_from_name(user_id)?
        .get_stub()?)
}

/// Appends an event to a user's stream through their UserHub.
pub async fn push(env: &Env, user: &str, request: &PushRequest) -> Result<PushOutcome, ApiError> {
    call(env, user, Method::Post, "/push", Some(request)).await
}

/// Pushes one event to each of `users` (their hubs asked [`PUSH_FAN_OUT`] at a time); the
/// outcomes in the order given.
pub async fn push_all(
    env: &Env,
    users: &[String],
    request: &PushRequest,
) -> Vec<Result<PushOutcome, ApiError>> {
    stream::iter(users)
        .map(|user| push(env, user, request))
        .buffered(PUSH_FAN_OUT)
        .collect()
        .await
}

/// UserHubs a fan-out asks at once.
pub const PUSH_FAN_OUT: usize = 50;

/// The header that tells a hub whose it is (the hub is addressed by the user's id, but an
/// object does not know the name it was addressed by).
const USER_HEADER: &str = "x-switchboard-user";

/// Asks a user's UserHub to do something and answer with JSON.
pub async fn call<T: DeserializeOwned>(
    env: &Env,
    user: &str,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let headers = Headers::new();
    headers.set(USER_HEADER, user)?;
    crate::http::call_hub_json_with(&stub(env, user)?, method, path, headers, body).await
}

/// The user a hub request is for, as [`call`] names it.
pub(super) fn user_of(req: &Request) -> Result<String, ApiError> {
    crate::http::header(req, USER_HEADER)
        .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "a hub call must name its user"))
}

#[durable_object]
pub struct UserHub {
    pub(super) sockets: Sockets,
    pub(super) env: Env,
    pub(super) local: Local,
    gate: Gate,
    alarm: Alarm,
    /// Replay bytes left per user, and the sockets with a `sync` waiting (`hubs::replay`).
    pub(super) replays: Replays,
    /// What each Socket.IO connection follows, with its room relays (`hubs::socketio`).
    pub(super) follows: Follows,
    /// Whether this hub is listed in its directory shard (`hubs::directory`).
    pub(super) listing: Listing,
}

impl DurableObject for UserHub {
    fn new(state: State, env: Env) -> Self {
        super::observe(&env);
        let local = Local::new(state.storage().sql());
        let new_storage = UserLog::new(&local).migrate().unwrap_or_else(|err| {
            crate::log::error(
                "hub.schema_failed",
                json!({"object": "user", "error": err.to_string()}),
            );
            false
        });
        if let Ok(pair) = WebSocketRequestResponsePair::new(protocol::PING, protocol::PONG) {
            state.set_websocket_auto_response(&pair);
        }
        Self {
            sockets: Sockets::new(state, "user"),
            env,
            local,
            gate: Gate::default(),
            alarm: Alarm::new(new_storage),
            replays: Replays::default(),
            follows: Follows::default(),
            listing: Listing::default(),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match (req.method(), req.path().as_str()) {
            (Method::Get, "/connect") => self.accept_device(&req).await,
            (Method::Post, "/push") => self.push(req).await,
            (Method::Post, "/subscriptions") => self.subscribe_route(req).await,
            (Method::Get, "/subscriptions") => self.subscriptions_route(),
            (Method::Post, "/unsubscribe") => self.unsubscribe_route(req).await,
            (Method::Post, "/room-level") => self.room_level_route(req).await,
            (Method::Post, "/disconnect") => self.disconnect(req).await,
            (Method::Get, "/presence") => self.presence(),
            (Method::Post, "/activity") => self.activity(req).await,
            (Method::Post, "/broadcast") => self.broadcast(req).await,
            (Method::Post, "/redact") => self.redact(req).await,
            (Method::Get, "/alarm") => super::alarm_report(&self.local, &self.sockets).await,
            (Method::Get, "/inspect") => self.inspect(&req).await,
            _ => Err(ApiError::not_found("no such hub route")),
        };
        result.or_else(super::error_response)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        if let Some((info, frame)) = super::socketio::screen(self, &self.gate, &ws, message).await {
            self.on_frame(&ws, info, frame).await;
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
        super::log_wake("user", &self.alarm_plan()?, now);
        super::expire_sockets(&self.sockets, now);
        super::socketio::ping_round(self, now)?;
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

    pub(super) fn config(&self) -> Result<Rc<Config>, ApiError> {
        super::config(&self.env)
    }

    /// Accepts a device socket for an identity the Worker has verified, unless the user has
    /// revoked the token since.
    async fn accept_device(&self, req: &Request) -> Result<Response, ApiError> {
        let identity = super::identity_of(req)?;
        let log = self.log();
        crate::auth::revocation::check(&identity, log.revoked_before()?)?;
        let since = crate::http::query_param(req, "since").and_then(|s| s.parse::<i64>().ok());
        let device = crate::http::query_param(req, "device");

        self.sockets
            .admit(&identity.user_id, self.limits().max_sockets_per_user)?;
        self.on_device_connected()?;
        if crate::http::query_param(req, "dialect").as_deref() == Some("socketio") {
            return self.accept_socketio(req, identity, device).await;
        }
        let carrier = super::carrier_of(req);
        let (pair, info) = self.sockets.accept(&identity, device, None, carrier)?;
        let ws = pair.server;
        self.sockets
            .enforce_cap(&info.user_id, self.limits().max_sockets_per_user);
        let ready = json!({
            "user_id": info.user_id,
            "conn_id": info.conn_id,
            "device": info.device,
            "seq": log.last_seq()?,
            "cursor": log.cursor(&info.device)?,
            "expires_at": info.expires_at,
        });
        send(&ws, &ServerFrame::event("ready", ready));
        if let Some(since) = since {
            self.replay(&ws, &info.user_id, since.max(0))?;
        }
        self.schedule_alarm().await?;
        self.listing.join(&self.env, &info.user_id).await;
        super::upgrade_response(req, pair.client)
    }

    /// Sends the first batch of a resume after `since` (when `user`'s replay budget covers it),
    /// then `synced`. Does not yield.
    fn replay(&self, ws: &WebSocket, user: &str, since: i64) -> Result<(), ApiError> {
        let to = Resume {
            sockets: &self.sockets,
            peer: &Peer::Socket(ws.clone()),
            user,
            limits: &self.limits(),
            source: &Events(self.log()),
        };
        self.replays.resume(&to, since)
    }

    /// `sync {since}`: the next batch of a resume, once the user's replay budget covers it.
    async fn on_sync(
        &self,
        ws: &WebSocket,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<(), ApiError> {
        let to = Resume {
            sockets: &self.sockets,
            peer: &Peer::Socket(ws.clone()),
            user: &info.user_id,
            limits: &self.limits(),
            source: &Events(self.log()),
        };
        let Some(turn) = self.replays.sync(&to, info, frame).await? else {
            return Ok(());
        };
        self.replays.serve(&to, turn)?;
        send_ack(ws, frame.id.as_ref(), json!({}));
        Ok(())
    }

    /// Appends an event and delivers it to every device; one that asks for a notification is
    /// planned (`hubs::notifier`).
    async fn push(&self, mut req: Request) -> Result<Response, ApiError> {
        let user = user_of(&req)?;
        let push: PushRequest = crate::http::read_hub_json(&mut req).await?;
        let preview = super::notifier::preview_of(&user, &push);
        let outcome = self
            .record(push, preview.map(|preview| (user.as_str(), preview)))
            .await?;
        Ok(crate::http::json(200, &outcome)?)
    }

    /// Appends an event to the stream (once per idempotency key) and sends it to every device. A
    /// `room.updated` first deletes the older ones of its room that it makes obsolete; the append
    /// then prunes its own class beyond its byte bound, and asks for a retention pass when its
    /// class holds more than `RETENTION_EVENTS`.
    async fn record(
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
        let limits = self.limits();
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
        let devices = self.sockets.fan_out(&frame, None) + socketio;
        if prune_moved {
            self.schedule_alarm().await?;
        }
        if let Some((user, preview)) = notify {
            let preview = Preview {
                seq: Some(seq),
                ..preview
            };
            self.plan(user, preview, socketio > 0).await?;
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
        self.sockets.fan_out(frame, None) + self.deliver_socketio(frame)
    }

    /// Closes every device socket with 4003 and, when revoking, records the cut-off first so
    /// that no connect or `auth` after this call can bring an old token back.
    async fn disconnect(&self, mut req: Request) -> Result<Response, ApiError> {
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
    async fn redact(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: RedactRequest = crate::http::read_hub_json(&mut req).await?;
        self.log().redact_message(&body.message_id)?;
        let outcome = self
            .record(
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
    /// none took it, perhaps a notification (`hubs::notifier`).
    async fn activity(&self, mut req: Request) -> Result<Response, ApiError> {
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

    /// A broadcast: sent to the devices connected now, not stored. A hub with none answers 0,
    /// and its shard drops it (so the next accept lists it again).
    async fn broadcast(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: Announcement = crate::http::read_hub_json(&mut req).await?;
        let devices = self.announce(&body);
        if devices == 0 {
            self.listing.dropped();
        }
        Ok(crate::http::json(200, &HubReach { devices })?)
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
                Some(_) => super::emit(ws, info, &frame),
            }
        }
        open.len()
    }

    fn presence(&self) -> Result<Response, ApiError> {
        let presence = HubPresence {
            devices: self.sockets.count(),
            last_seen: self.log().last_seen()?,
        };
        Ok(crate::http::json(200, &presence)?)
    }

    async fn on_frame(&self, ws: &WebSocket, info: SocketInfo, frame: ClientFrame) {
        let id = frame.id.as_ref();
        let result = match frame.event.as_str() {
            "ping" => {
                let _ = ws.send_with_str(protocol::PONG);
                Ok(())
            }
            "sync" => self.on_sync(ws, &info, &frame).await,
            _ => self
                .run(ws, info, &frame)
                .await
                .map(|answer| send_ack(ws, id, answer)),
        };
        if let Err(err) = result {
            send_error(ws, id, err.code, &err.message);
        }
    }

    /// The requests a device socket of either protocol makes; the answer is the ack's data.
    pub(super) async fn run(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        frame: &ClientFrame,
    ) -> Result<Value, ApiError> {
        match frame.event.as_str() {
            "ack" => self.on_ack(&info, frame).await,
            "auth" => self.on_auth(ws, info, frame).await,
            "message.send" => self.on_message_send(&info, frame).await,
            other => Err(ApiError::bad_request(
                code::UNKNOWN_EVENT,
                format!("unknown event '{other}' on the user socket"),
            )),
        }
    }

    /// `ack {seq}`: the device has everything through `seq`.
    async fn on_ack(&self, info: &SocketInfo, frame: &ClientFrame) -> Result<Value, ApiError> {
        let seq = frame
            .data
            .get("seq")
            .and_then(Value::as_i64)
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(code::VALIDATION, "ack needs data.seq, a whole number >= 0")
            })?;
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
    async fn on_message_send(
        &self,
        info: &SocketInfo,
        frame: &ClientFrame,
    ) -> Result<Value, ApiError> {
        let sent = super::direct::send(
            &self.env,
            &info.user_id,
            frame.data.clone(),
            Some(&info.user_id),
        )
        .await?;
        if sent.message.deleted_at.is_none() {
            self.record(
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

    /// `auth {token}`: extends the socket's life with a fresh token for the same user.
    async fn on_auth(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        frame: &ClientFrame,
    ) -> Result<Value, ApiError> {
        let revoked_before = self.log().revoked_before()?;
        let answer = self.sockets.reauthenticate(
            &Peer::Socket(ws.clone()),
            info,
            frame,
            &*self.config()?,
            revoked_before,
        )?;
        self.relay_auth(ws, frame);
        self.schedule_alarm().await?;
        Ok(answer)
    }

    /// A socket closed or failed: forget its rate bucket, note when the last device left, stop
    /// waiting for its token's expiry, and after the last one unlist the hub (`hubs::directory`).
    async fn on_socket_gone(&self, ws: &WebSocket) -> worker::Result<()> {
        let gone = self.sockets.gone(ws);
        if let Some(gone) = &gone {
            self.gate.forget(&gone.conn_id);
            self.follows.forget(&gone.conn_id);
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
        let limits = self.limits();
        let keep_ms = limits.retention_days * 24 * 60 * 60 * 1000;
        if let Some(next) = self.log().prune(limits.retention_events, keep_ms, now)? {
            // Never sooner than the configured interval: prune in batches, not per event.
            let at = next.max(now + limits.prune_interval_secs * 1000);
            self.log().request_prune(at)?;
        }
        Ok(())
    }

    /// The configured limits; the defaults if the configuration cannot be read (the hub must
    /// still close expired sockets and prune).
    pub(super) fn limits(&self) -> crate::config::Limits {
        super::limits(&self.env)
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
            ("socketio_ping", super::socketio::ping_at(self)?),
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
