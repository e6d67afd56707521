//! Socket.IO connections in a UserHub: the facade's server side.
//!
//! What arrives, what is stored, what is sent (beyond what `hubs::user` does for every socket):
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | `GET /connect?dialect=socketio`      | socket attachment with a [`Session`]    | Engine.IO open; the hub's ping alarm planned |
//! | CONNECT `nsp` (+ `token`, `pid`, `offset`) | the namespace and its `pid`       | CONNECT `{sid, pid}`; on recovery the missed user events, then each room rejoined from its offset; CONNECT_ERROR for a namespace not served, another user's or a bad token |
//! | EVENT `message.send`, `ack`, `auth`  | as `hubs::user`                         | the ack: the same data, or `{error}`    |
//! | EVENT `room.join` … `room.delete`    | the namespace's rooms (`hubs::relay`)   | relayed to the room; its answer is the ack |
//! | EVENT of any other name              | —                                       | to the backend hook (`hook`), its answer the ack; `unknown_event` without one |
//! | `3` (pong)                           | `last_pong`                             | —                                       |
//! | alarm (every ping interval while any Socket.IO socket is open) | the next ping time | `2` (ping) to each; a socket silent for the interval plus the timeout is closed |
//! | DISCONNECT `nsp`                     | the namespace removed, its relays closed | —                                      |
//!
//! Forced ends (revocation, `POST /disconnect`) send DISCONNECT for every namespace first, so
//! the client stops reconnecting (`io server disconnect`), as socket.io's own server does.
//!
//! A connection's position in its streams lives in memory ([`Follows`]), stamped on every event
//! as its recovery offset. Without rooms it is just the event's seq, so nothing is lost when the
//! hub hibernates; with rooms the relays keep the hub in memory. Should the hub restart anyway,
//! a namespace that had rooms is closed with 1012 so that the client reconnects and recovers
//! from its own offset.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Value};
use worker::{Request, Response, WebSocket};

use super::relay::Follow;
use super::user::UserHub;
use super::{now_ms, SocketInfo};
use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::protocol::{close, code, ClientFrame, ServerFrame};
use crate::quota::Rate;
use crate::socketio::offset::Position;
use crate::socketio::packet::{Kind, Packet};
use crate::socketio::{self as sio, engine, packet, Namespace, Session};
use crate::stream::plan_sparse_replay;

/// The `meta` key of the next ping round (unix ms; 0 when none is planned).
const PING_AT_KEY: &str = "sio_ping_at";

/// Every Socket.IO namespace's [`Follow`], by connection id.
#[derive(Default)]
pub struct Follows {
    by_conn: RefCell<HashMap<String, Vec<Rc<Follow>>>>,
}

impl Follows {
    fn get(&self, conn_id: &str, nsp: &str) -> Option<Rc<Follow>> {
        self.by_conn
            .borrow()
            .get(conn_id)?
            .iter()
            .find(|follow| follow.nsp() == nsp)
            .cloned()
    }

    fn insert(&self, conn_id: &str, follow: Rc<Follow>) {
        let mut by_conn = self.by_conn.borrow_mut();
        let follows = by_conn.entry(conn_id.to_owned()).or_default();
        follows.retain(|known| known.nsp() != follow.nsp());
        follows.push(follow);
    }

    fn remove(&self, conn_id: &str, nsp: &str) {
        let removed = {
            let mut by_conn = self.by_conn.borrow_mut();
            let Some(follows) = by_conn.get_mut(conn_id) else {
                return;
            };
            let (gone, kept): (Vec<_>, Vec<_>) =
                follows.drain(..).partition(|follow| follow.nsp() == nsp);
            *follows = kept;
            gone
        };
        for follow in removed {
            follow.leave_all();
        }
    }

    /// The connection ended: every relay of it is closed.
    pub fn forget(&self, conn_id: &str) {
        let removed = self.by_conn.borrow_mut().remove(conn_id);
        for follow in removed.unwrap_or_default() {
            follow.leave_all();
        }
    }

    fn of_conn(&self, conn_id: &str) -> Vec<Rc<Follow>> {
        self.by_conn
            .borrow()
            .get(conn_id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Sends DISCONNECT for every namespace of a Socket.IO socket (nothing for any other socket):
/// the server ended it, the client must not reconnect.
pub fn end_namespaces(ws: &WebSocket, info: &SocketInfo) {
    for nsp in info.sio.iter().flat_map(|session| &session.namespaces) {
        let _ = ws.send_with_str(engine::message(&packet::disconnect(&nsp.name)));
    }
}

impl UserHub {
    /// Accepts a Socket.IO socket and opens the Engine.IO session.
    pub(super) async fn accept_socketio(
        &self,
        req: &Request,
        identity: Identity,
        device: Option<String>,
    ) -> Result<Response, ApiError> {
        let now = now_ms();
        let session = Session::new(identity.clone(), now);
        let (pair, info) = self.sockets.accept(&identity, device, Some(session))?;
        let limits = self.limits();
        self.sockets
            .enforce_cap(&info.user_id, limits.max_sockets_per_user);
        let _ = pair.server.send_with_str(engine::open(
            &info.conn_id,
            limits.socketio_ping_interval_ms,
            limits.socketio_ping_timeout_ms,
            limits.max_frame_bytes,
        ));
        if self.ping_at()?.is_none() {
            self.set_ping_at(now + interval(&limits))?;
        }
        self.schedule_alarm().await?;
        super::upgrade_response(req, pair.client)
    }

    /// The next ping round, if one is planned and a Socket.IO socket is open to need it.
    pub(super) fn ping_at(&self) -> worker::Result<Option<i64>> {
        if self.sockets.socketio().is_empty() {
            return Ok(None);
        }
        Ok(self.local.meta(PING_AT_KEY)?.filter(|at| *at > 0))
    }

    fn set_ping_at(&self, at: i64) -> worker::Result<()> {
        self.local.set_meta(PING_AT_KEY, at)
    }

    /// The alarm's ping round, when due: a ping to every Socket.IO socket, and a close for each
    /// one that missed its pongs; the next round planned while any remain.
    pub(super) fn ping_round(&self, now: i64) -> worker::Result<()> {
        if self.ping_at()?.is_none_or(|at| at > now) {
            return Ok(());
        }
        let limits = self.limits();
        let mut remaining = 0;
        for (ws, info) in self.sockets.socketio() {
            let Some(session) = &info.sio else { continue };
            if session.is_dead(
                now,
                limits.socketio_ping_interval_ms,
                limits.socketio_ping_timeout_ms,
            ) {
                self.follows.forget(&info.conn_id);
                self.sockets.close(&ws, close::NORMAL, "ping timeout");
                continue;
            }
            let _ = ws.send_with_str(engine::PING);
            remaining += 1;
        }
        let next = if remaining > 0 {
            now + interval(&limits)
        } else {
            0
        };
        self.set_ping_at(next)
    }

    /// Delivers a frame to every Socket.IO socket, on every namespace it connected; a stream
    /// event carries the recovery offset. Returns how many sockets got it.
    pub(super) fn deliver_socketio(&self, frame: &ServerFrame<'_>) -> usize {
        let mut sent = 0;
        for (ws, info) in self.sockets.socketio() {
            let Some(session) = &info.sio else { continue };
            for nsp in &session.namespaces {
                let Some(follow) = self.follow(&ws, &info, nsp) else {
                    continue;
                };
                let offset = frame.seq.map(|seq| follow.offset_after_user(seq));
                follow.emit(frame.event, &frame.data, offset.as_deref());
            }
            sent += 1;
        }
        sent
    }

    /// A namespace's [`Follow`]: made afresh after hibernation (a namespace without rooms needs
    /// no more than the next event's seq). A namespace that had rooms and lost its relays (the
    /// hub restarted) closes the socket with 1012, and the client recovers from its offset.
    fn follow(&self, ws: &WebSocket, info: &SocketInfo, nsp: &Namespace) -> Option<Rc<Follow>> {
        if let Some(follow) = self.follows.get(&info.conn_id, &nsp.name) {
            return Some(follow);
        }
        if !nsp.rooms.is_empty() {
            self.sockets
                .close(ws, 1012, "the gateway restarted: reconnect to recover");
            return None;
        }
        let last = self.log().last_seq().unwrap_or(0);
        let follow = Follow::new(ws.clone(), &nsp.name, Position::new(last));
        self.follows.insert(&info.conn_id, Rc::clone(&follow));
        Some(follow)
    }

    /// A text frame from a Socket.IO socket.
    pub(super) async fn on_socketio_text(&self, ws: &WebSocket, info: SocketInfo, text: &str) {
        match engine::parse(text) {
            Ok(engine::Packet::Pong(_)) => self.on_pong(ws, info),
            Ok(engine::Packet::Ping(payload)) => {
                let _ = ws.send_with_str(format!("{}{payload}", engine::PONG));
            }
            Ok(engine::Packet::Close) => {
                self.follows.forget(&info.conn_id);
                self.sockets.close(ws, close::NORMAL, "client closed");
            }
            Ok(engine::Packet::Upgrade | engine::Packet::Noop) => {}
            Ok(engine::Packet::Message(inner)) => match packet::parse(inner) {
                Ok(packet) => self.on_packet(ws, info, packet).await,
                Err(err) => refuse_frame(ws, &info, &err.message()),
            },
            Err(why) => refuse_frame(ws, &info, &why),
        }
    }

    /// A binary frame: Socket.IO attachments, which the gateway does not take.
    pub(super) fn on_socketio_binary(&self, ws: &WebSocket, info: &SocketInfo) {
        refuse_frame(ws, info, &packet::PacketError::Binary.message());
    }

    fn on_pong(&self, ws: &WebSocket, mut info: SocketInfo) {
        if let Some(session) = info.sio.as_mut() {
            session.last_pong = now_ms();
            let _ = self.sockets.save(ws, &info);
        }
    }

    async fn on_packet(&self, ws: &WebSocket, info: SocketInfo, packet: Packet) {
        match packet.kind {
            Kind::Connect => {
                if let Err(err) = self.on_connect(ws, info, &packet).await {
                    let data = json!({"code": err.code, "message": err.message});
                    let refusal = packet::connect_error(&packet.nsp, err.code, &data);
                    let _ = ws.send_with_str(engine::message(&refusal));
                }
            }
            Kind::Disconnect => self.on_namespace_end(ws, info, &packet.nsp),
            Kind::Event => self.on_event(ws, info, packet).await,
            Kind::Ack | Kind::ConnectError => {}
        }
    }

    /// CONNECT to a namespace: served, the same user if a token rides along, then recovered
    /// when the client's `pid` and offset allow it.
    async fn on_connect(
        &self,
        ws: &WebSocket,
        mut info: SocketInfo,
        packet: &Packet,
    ) -> Result<(), ApiError> {
        let config = self.config()?;
        if !config.namespaces.allows(&packet.nsp) {
            return Err(ApiError::new(
                404,
                "namespace_not_served",
                format!(
                    "namespace '{}' is not served (SOCKETIO_NAMESPACES)",
                    packet.nsp
                ),
            ));
        }
        let auth = packet.data.as_ref();
        if let Some(token) = auth
            .and_then(|auth| auth.get("token"))
            .and_then(Value::as_str)
        {
            let revoked_before = self.log().revoked_before()?;
            super::sockets::verify_for(token, &info.user_id, &config, revoked_before)?;
        }
        let Some(session) = info.sio.as_mut() else {
            return Ok(());
        };
        if let Some(known) = session.namespace(&packet.nsp) {
            let reply = packet::connect(&packet.nsp, &info.conn_id, &known.pid);
            let _ = ws.send_with_str(engine::message(&reply));
            return Ok(());
        }
        let text = |key: &str| auth.and_then(|a| a.get(key)).and_then(Value::as_str);
        let recovery = match (text("pid"), text("offset")) {
            (Some(pid), Some(offset)) => self
                .recover(&info.user_id, offset)?
                .map(|found| (pid.to_owned(), found)),
            _ => None,
        };
        let pid = match &recovery {
            Some((pid, _)) => pid.clone(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let position = match &recovery {
            Some((_, (position, _))) => position.clone(),
            None => Position::new(self.log().last_seq()?),
        };
        session.namespaces.push(Namespace {
            name: packet.nsp.clone(),
            pid: pid.clone(),
            rooms: position
                .rooms
                .iter()
                .map(|(room, _)| room.clone())
                .collect(),
        });
        let identity = session.identity.clone();
        self.sockets.save(ws, &info)?;
        let follow = Follow::new(ws.clone(), &packet.nsp, position.clone());
        self.follows.insert(&info.conn_id, Rc::clone(&follow));
        let reply = packet::connect(&packet.nsp, &info.conn_id, &pid);
        let _ = ws.send_with_str(engine::message(&reply));
        let Some((_, (position, missed))) = recovery else {
            return Ok(());
        };
        for (seq, event, data) in missed {
            let offset = follow.offset_after_user(seq);
            follow.emit(&event, &data, Some(&offset));
        }
        for (room_id, seq) in position.rooms {
            let joined = follow
                .join(
                    &self.env,
                    &identity,
                    &info.device,
                    &room_id,
                    Some(seq),
                    None,
                )
                .await;
            if let Err(err) = joined {
                follow.leave(&room_id);
                let left = json!({"room_id": room_id, "code": err.code, "reason": err.message});
                follow.emit("room.left", &left, None);
            }
        }
        Ok(())
    }

    /// The user events after an offset, when they are all still kept and fit one replay batch
    /// within the user's budget: then the connection is recovered.
    fn recover(&self, user: &str, offset: &str) -> Result<Option<Recovered>, ApiError> {
        let Ok(position) = Position::parse(offset) else {
            return Ok(None);
        };
        let log = self.log();
        let plan = plan_sparse_replay(position.user, log.last_seq()?, log.pruned_through()?);
        if !plan.recovered {
            return Ok(None);
        }
        let limits = self.limits();
        let limit = self.replays.limit(user, &limits);
        if plan.through - plan.from + 1 > limit.events {
            return Ok(None);
        }
        let events = if plan.from <= plan.through {
            log.range(plan.from, plan.through, limit.events)?
        } else {
            Vec::new()
        };
        let mut missed = Vec::with_capacity(events.len());
        let mut bytes = 0;
        for event in events {
            let data = event.data_value();
            bytes += event.event.len() + data.to_string().len();
            missed.push((event.seq, event.event, data));
        }
        if bytes > limit.bytes {
            return Ok(None);
        }
        self.replays.spend(user, bytes, &limits);
        Ok(Some((position, missed)))
    }

    /// DISCONNECT from a namespace: it is forgotten and its relays closed.
    fn on_namespace_end(&self, ws: &WebSocket, mut info: SocketInfo, nsp: &str) {
        self.follows.remove(&info.conn_id, nsp);
        if let Some(session) = info.sio.as_mut() {
            session.namespaces.retain(|known| known.name != nsp);
            let _ = self.sockets.save(ws, &info);
        }
    }

    /// An EVENT: a request of the gateway's protocol, a room request, or a custom event for
    /// the backend hook. Its result answers the client's ack, or, when it asked for none and
    /// the request failed, an `error` event.
    async fn on_event(&self, ws: &WebSocket, info: SocketInfo, packet: Packet) {
        let Some((name, args)) = packet.event() else {
            return;
        };
        let Some(nsp) = info
            .sio
            .as_ref()
            .and_then(|session| session.namespace(&packet.nsp))
            .cloned()
        else {
            if let Some(id) = packet.id {
                let refusal = sio::error_argument(
                    "not_connected",
                    &format!("connect to namespace '{}' first", packet.nsp),
                );
                let ack = packet::ack(&packet.nsp, id, &refusal);
                let _ = ws.send_with_str(engine::message(&ack));
            }
            return;
        };
        let Some(follow) = self.follow(ws, &info, &nsp) else {
            return;
        };
        let data = args.first().cloned().unwrap_or(Value::Null);
        let result = match name {
            "room.join" => self.join_room(ws, &info, &follow, &data, packet.id).await,
            "room.leave" => self.leave_room(ws, &follow, &data).map(Some),
            "room.send" | "room.typing" | "room.read" | "room.edit" | "room.delete" => {
                room_request(&follow, name, data, packet.id).map(|()| None)
            }
            "message.send" | "ack" | "auth" => {
                let frame = ClientFrame {
                    event: name.to_owned(),
                    data,
                    id: None,
                };
                self.run(ws, info.clone(), &frame).await.map(Some)
            }
            _ => self
                .call_hook(&info, &packet.nsp, name, args)
                .await
                .map(Some),
        };
        match (result, packet.id) {
            (Ok(Some(answer)), Some(id)) => follow.ack(id, &answer),
            (Err(err), Some(id)) => follow.ack(id, &sio::ack_argument(Err(err))),
            (Err(err), None) => follow.emit(
                "error",
                &json!({"code": err.code, "message": err.message, "event": name}),
                None,
            ),
            (Ok(_), _) => {}
        }
    }

    /// `room.join {room_id, since?}`: the ack follows when the room accepts the relay.
    async fn join_room(
        &self,
        ws: &WebSocket,
        info: &SocketInfo,
        follow: &Rc<Follow>,
        data: &Value,
        ack: Option<u64>,
    ) -> Result<Option<Value>, ApiError> {
        let room_id = room_id_of(data)?;
        let since = match data.get("since") {
            None | Some(Value::Null) => None,
            Some(since) => Some(since.as_i64().filter(|s| *s >= 0).ok_or_else(|| {
                ApiError::bad_request(code::VALIDATION, "since must be a whole number >= 0")
            })?),
        };
        let identity = info
            .sio
            .as_ref()
            .map(|session| session.identity.clone())
            .ok_or_else(|| ApiError::internal("not a Socket.IO socket"))?;
        follow
            .join(&self.env, &identity, &info.device, &room_id, since, ack)
            .await?;
        self.remember_rooms(ws, follow);
        Ok(None)
    }

    /// `room.leave {room_id}`.
    fn leave_room(&self, ws: &WebSocket, follow: &Follow, data: &Value) -> Result<Value, ApiError> {
        let room_id = room_id_of(data)?;
        let left = follow.leave(&room_id);
        self.remember_rooms(ws, follow);
        Ok(json!({"room_id": room_id, "left": left}))
    }

    /// Writes the namespace's rooms to the attachment: after a restart, a namespace that had
    /// rooms is told to recover (see [`UserHub::follow`]).
    fn remember_rooms(&self, ws: &WebSocket, follow: &Follow) {
        let Some(mut info) = SocketInfo::of(ws) else {
            return;
        };
        let rooms = follow.rooms();
        if let Some(nsp) = info.sio.as_mut().and_then(|session| {
            session
                .namespaces
                .iter_mut()
                .find(|n| n.name == follow.nsp())
        }) {
            if nsp.rooms != rooms {
                nsp.rooms = rooms;
                let _ = self.sockets.save(ws, &info);
            }
        }
    }

    /// A custom event: to the backend hook, once the user's send rate allows.
    async fn call_hook(
        &self,
        info: &SocketInfo,
        nsp: &str,
        event: &str,
        args: &[Value],
    ) -> Result<Value, ApiError> {
        let config = self.config()?;
        let Some(hook) = config.hook.as_ref() else {
            return Err(ApiError::bad_request(
                code::UNKNOWN_EVENT,
                format!("unknown event '{event}' (no EVENT_HOOK_URL is configured)"),
            ));
        };
        crate::quota::check(&self.env, Rate::Send, &info.user_id).await?;
        let call = crate::hook::HookCall {
            user_id: &info.user_id,
            conn_id: &info.conn_id,
            namespace: nsp,
            event,
            args,
        };
        crate::hook::call(hook, &call).await.map_err(ApiError::from)
    }

    /// An `auth` refresh reaches every room the connection follows.
    pub(super) fn relay_auth(&self, ws: &WebSocket, frame: &ClientFrame) {
        let Some(info) = SocketInfo::of(ws).filter(|info| info.sio.is_some()) else {
            return;
        };
        if let Some(token) = frame.data.get("token").and_then(Value::as_str) {
            for follow in self.follows.of_conn(&info.conn_id) {
                follow.auth(token);
            }
        }
    }
}

/// What a recovery replays: the client's position and the user events after it.
type Recovered = (Position, Vec<(i64, String, Value)>);

/// `room.send` and the others: the room socket's request of the same name, without `room_id`.
fn room_request(
    follow: &Follow,
    name: &str,
    mut data: Value,
    ack: Option<u64>,
) -> Result<(), ApiError> {
    let room_id = room_id_of(&data)?;
    if let Some(object) = data.as_object_mut() {
        object.remove("room_id");
    }
    let event = name.trim_start_matches("room.");
    follow.request(&room_id, event, data, ack)
}

fn room_id_of(data: &Value) -> Result<String, ApiError> {
    data.get("room_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "data.room_id is required"))
}

/// A frame that is not a packet the gateway takes: an `error` event on every namespace the
/// socket connected; the socket stays open.
fn refuse_frame(ws: &WebSocket, info: &SocketInfo, why: &str) {
    super::emit(
        ws,
        info,
        &ServerFrame::event("error", json!({"code": code::BAD_FRAME, "message": why})),
    );
}

fn interval(limits: &crate::config::Limits) -> i64 {
    i64::try_from(limits.socketio_ping_interval_ms).unwrap_or(i64::MAX)
}
