//! Socket.IO connections to a user, in their UserHub: the user's stream, direct messages, and
//! rooms relayed over the one connection (`user::relay`).
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | CONNECT `nsp` (checked by `hubs::socketio`) | the namespace and its `pid`; `socket.data` the backend's `connection` answer set (`user::lifecycle`) | CONNECT `{sid, pid}`, or CONNECT_ERROR with the backend's refusal; on recovery the missed user events (main namespace); the backend's calls on the socket held meanwhile (`user::opening`); then each room of the offset this `pid` had joined, rejoined from its seq |
//! | EVENT `message.send`, `ack`, `auth`  | as `hubs::user` (the same [`Command`])  | the ack: the same data, or `{error}`    |
//! | EVENT `room.join`, `room.leave`      | the `pid`'s rooms (`store::joined_rooms`) | relayed to the room; its answer is the ack |
//! | EVENT `room.send` … `room.delete`    | —                                       | relayed to the room; its answer is the ack |
//! | EVENT of any other name              | —                                       | to the backend hook (`hook`), its answer the ack; `unknown_event` without one |
//! | DISCONNECT `nsp`, or Engine.IO close (the client's own end) | the `pid`'s rooms forgotten | the backend's `disconnect` call (`user::lifecycle`) |
//! | a stream event (`POST /push`, …)     | —                                       | EVENT `[event, data, offset]` on the main namespace |
//!
//! A connection's position in its streams lives in memory (`user::namespace`), stamped on every
//! event as its recovery offset.

use std::rc::Rc;

use serde_json::{json, Value};
use worker::{Request, WebSocket};

use super::namespace::NamespaceState;
use super::relay::Join;
use super::UserHub;
use crate::auth::jwt::Identity;
use crate::command::Command;
use crate::command::Request as ClientRequest;
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::dialect;
use crate::hubs::common::object::{self, upgrade_response, Answer};
use crate::hubs::socketio::{self as shared, Host, Opening, Parts};
use crate::protocol::{close, code, Reply, RequestId, ServerFrame};
use crate::socketio::offset::Position;
use crate::socketio::packet::Packet;
use crate::socketio::{engine, packet, Namespace, Session};
use crate::store::joined_rooms::JoinedRooms;
use crate::stream::plan_sparse_replay;

/// A namespace just connected: the socket's state, and the rooms its recovery rejoins.
struct Connected {
    info: SocketInfo,
    pid: String,
    state: Rc<NamespaceState>,
    rejoins: Vec<(String, i64)>,
}

impl Host for UserHub {
    fn parts(&self) -> Parts<'_> {
        Parts {
            sockets: &self.sockets,
            gate: &self.gate,
            env: &self.env,
        }
    }

    async fn on_request(&self, ws: &WebSocket, info: SocketInfo, request: ClientRequest) {
        self.on_device_request(ws, info, request).await;
    }

    fn revoked_before(&self, _user: &str) -> Result<Option<i64>, ApiError> {
        Ok(self.log().revoked_before()?)
    }

    async fn open_namespace(&self, opening: Opening<'_>) -> Result<(), ApiError> {
        let (conn_id, nsp) = (opening.info.conn_id.clone(), opening.nsp);
        self.openings.begin(&conn_id, nsp);
        let connected = self.connect_namespace(opening).await;
        let held = self.openings.end(&conn_id, nsp);
        let Some(connected) = connected? else {
            return Ok(());
        };
        self.do_held(&conn_id, nsp, held).await;
        let still_open = self
            .namespaces
            .get(&conn_id, nsp)
            .is_some_and(|state| Rc::ptr_eq(&state, &connected.state));
        let identity = connected.info.sio.as_ref().map(|s| s.identity.clone());
        let Some(identity) = identity.filter(|_| still_open) else {
            return Ok(());
        };
        for (room_id, seq) in connected.rejoins {
            self.rejoin(
                &connected.state,
                &identity,
                &connected.info.device,
                &connected.pid,
                &room_id,
                seq,
            )
            .await;
        }
        Ok(())
    }

    async fn on_event(&self, ws: &WebSocket, info: SocketInfo, nsp: &Namespace, packet: Packet) {
        let Some((name, args)) = packet.event() else {
            return;
        };
        let Some(state) = self.namespace_state(ws, &info, nsp) else {
            return;
        };
        let data = args.first().cloned().unwrap_or(Value::Null);
        let result = match name {
            "room.join" => {
                self.join_room(ws, &info, nsp, &state, &data, packet.id)
                    .await
            }
            "room.leave" => self.leave_room(ws, nsp, &state, &data).map(Some),
            "room.send" | "room.typing" | "room.read" | "room.edit" | "room.delete" => {
                room_request(&state, name, data, packet.id).map(|()| None)
            }
            "message.send" | "ack" | "auth" => {
                let command = Command::parse(name, data);
                self.run_command(ws, info.clone(), &command).await.map(Some)
            }
            _ => match object::config(&self.env) {
                Ok(config) => shared::call_hook(&self.env, &config, &info, &packet.nsp, name, args)
                    .await
                    .map(Some),
                Err(err) => Err(err),
            },
        };
        let reply = RequestId::SocketIo(Reply {
            nsp: packet.nsp.clone(),
            id: packet.id,
            event: name.to_owned(),
        });
        match result {
            Ok(Some(answer)) => dialect::send(ws, &ServerFrame::ack(&reply, answer)),
            Ok(None) => {}
            Err(err) => dialect::send(
                ws,
                &ServerFrame::error(Some(&reply), err.code, &err.message),
            ),
        }
    }

    fn disconnected(&self, info: &SocketInfo, nsp: &str, reason: &str) {
        self.disconnect_call(info, nsp, reason);
    }

    fn forget(&self, conn_id: &str, nsp: Option<&str>) {
        match nsp {
            Some(nsp) => self.namespaces.remove(conn_id, nsp),
            None => self.namespaces.forget(conn_id),
        }
    }

    fn ended_for_good(&self, info: &SocketInfo, nsp: Option<&str>) {
        let joined = JoinedRooms::new(&self.local);
        for ended in info.sio.iter().flat_map(|session| &session.namespaces) {
            if nsp.is_none_or(|nsp| nsp == ended.name) {
                let _ = joined.forget(&ended.pid);
            }
        }
    }
}

impl UserHub {
    /// The backend's `connection` call, then CONNECT (and a recovery's missed events); the
    /// namespace as connected, or `None` when the socket went meanwhile.
    async fn connect_namespace(&self, opening: Opening<'_>) -> Result<Option<Connected>, ApiError> {
        let Opening {
            ws,
            info,
            nsp,
            resume,
            auth,
        } = opening;
        let main = info.sio.as_ref().and_then(Session::main).is_none();
        let recovery = match resume {
            Some((pid, offset)) => self
                .recover(&info.user_id, nsp, pid, offset, main)?
                .map(|found| (pid.to_owned(), found)),
            None => None,
        };
        let pid = match &recovery {
            Some((pid, _)) => pid.clone(),
            None => shared::new_pid(),
        };
        let position = match &recovery {
            Some((_, (position, _))) => position.clone(),
            None => Position::new(self.log().last_seq()?),
        };
        let data = self
            .connection_call(&info, nsp, auth, recovery.is_some())
            .await?;
        // The call may have taken a while: the socket's state as it is now.
        let Some(mut info) = SocketInfo::of(ws).filter(|info| !info.closing) else {
            return Ok(None);
        };
        if let Some(session) = info.sio.as_mut() {
            if let Some(data) = data {
                session.data = Some(data);
            }
            if let Some(handshake) = session.handshake.as_mut() {
                handshake.keep_auth(auth);
            }
        }
        let namespace = Namespace {
            name: nsp.to_owned(),
            pid: pid.clone(),
            has_rooms: !position.rooms.is_empty(),
        };
        let info = shared::add_namespace(&self.sockets, ws, info, namespace)?;
        let state = NamespaceState::new(ws.clone(), &info.conn_id, nsp, position);
        self.namespaces.insert(&info.conn_id, Rc::clone(&state));
        shared::reply_connect(ws, nsp, &info.conn_id, &pid);
        let rejoins = match recovery {
            Some((_, (position, missed))) => {
                for text in missed {
                    let _ = ws.send_with_str(text);
                }
                position.rooms
            }
            None => Vec::new(),
        };
        Ok(Some(Connected {
            info,
            pid,
            state,
            rejoins,
        }))
    }

    /// Accepts a Socket.IO socket and opens the Engine.IO session.
    pub(super) async fn accept_socketio(
        &self,
        req: &Request,
        identity: Identity,
        device: Option<String>,
    ) -> Answer {
        let carrier = crate::hubs::stubs::carrier_of(req);
        let mut session = Session::new(identity.clone());
        session.handshake = crate::hubs::stubs::handshake_of(req);
        let pair = shared::accept(self, &identity, device, session, carrier)?;
        self.schedule_alarm().await?;
        self.listing.join(&self.env, &identity.user_id);
        upgrade_response(req, pair.client)
    }

    /// Delivers a frame to every Socket.IO socket, on its main namespace ([`Session::main`]); a
    /// stream event carries the recovery offset. Returns how many sockets got it.
    pub(super) fn deliver_socketio(&self, frame: &ServerFrame<'_>) -> usize {
        let mut sent = 0;
        for (ws, info) in self.sockets.socketio() {
            let Some(nsp) = info.sio.as_ref().and_then(Session::main) else {
                continue;
            };
            let Some(state) = self.namespace_state(&ws, &info, nsp) else {
                continue;
            };
            let offset = frame.seq.map(|seq| state.offset_after_user(seq));
            state.emit(frame.event, &frame.data, offset.as_deref());
            sent += 1;
        }
        sent
    }

    /// A namespace's state: made afresh after hibernation (a namespace without rooms needs
    /// no more than the next event's seq). A namespace that had rooms and lost its relays (the
    /// hub restarted) closes the socket with 1012, and the client recovers from its offset.
    pub(super) fn namespace_state(
        &self,
        ws: &WebSocket,
        info: &SocketInfo,
        nsp: &Namespace,
    ) -> Option<Rc<NamespaceState>> {
        if let Some(state) = self.namespaces.get(&info.conn_id, &nsp.name) {
            return Some(state);
        }
        if nsp.has_rooms {
            self.sockets.close(
                ws,
                close::SERVICE_RESTART,
                "the gateway restarted: reconnect to recover",
            );
            return None;
        }
        let last = self.log().last_seq().unwrap_or(0);
        let state = NamespaceState::new(ws.clone(), &info.conn_id, &nsp.name, Position::new(last));
        self.namespaces.insert(&info.conn_id, Rc::clone(&state));
        Some(state)
    }

    /// A room of a recovered connection, joined again from its seq; `room.left` if it cannot be
    /// (and the room is forgotten for `pid`, so a later recovery does not ask again).
    async fn rejoin(
        &self,
        state: &Rc<NamespaceState>,
        identity: &Identity,
        device: &str,
        pid: &str,
        room_id: &str,
        seq: i64,
    ) {
        let joined = state
            .join(
                &self.env,
                Join {
                    identity,
                    device,
                    room_id,
                    since: Some(seq),
                    ack: None,
                },
            )
            .await;
        if let Err(err) = joined {
            state.leave(room_id);
            let _ = JoinedRooms::new(&self.local).remove(pid, room_id);
            let left = json!({"room_id": room_id, "code": err.code, "reason": err.message});
            state.emit("room.left", &left, None);
        }
    }

    /// Where a reconnecting namespace resumes from its offset: the rooms of the offset that
    /// `pid` had joined (the offset may say where the client is in a room, never which rooms to
    /// enter) and, on the main namespace, the user events after it, encoded for `nsp` with
    /// their offsets — when they are all still kept and fit one replay batch within the user's
    /// budget; else `None`, a clean start. Another namespace follows no user stream: it resumes
    /// its rooms alone, at the stream's newest seq.
    fn recover(
        &self,
        user: &str,
        nsp: &str,
        pid: &str,
        offset: &str,
        main: bool,
    ) -> Result<Option<Recovered>, ApiError> {
        let Ok(mut position) = Position::parse(offset) else {
            return Ok(None);
        };
        let joined = JoinedRooms::new(&self.local).rooms(pid)?;
        position.rooms.retain(|(room, _)| joined.contains(room));
        let log = self.log();
        if !main {
            position.user = log.last_seq()?;
            return Ok(Some((position, Vec::new())));
        }
        let plan = plan_sparse_replay(position.user, log.last_seq()?, log.pruned_through()?);
        let newest = plan.through;
        let read = |from, through, n| {
            let mut stamped = position.clone();
            Ok(log
                .range(from, through, n)?
                .into_iter()
                .map(|event| {
                    stamped.user = event.seq;
                    let offset = stamped.encode();
                    let packet =
                        packet::event(nsp, &event.event, &event.data_value(), Some(&offset));
                    engine::message(&packet)
                })
                .collect())
        };
        let Some(missed) = self
            .replays
            .whole(user, &Limits::of(&self.env), plan, read)?
        else {
            return Ok(None);
        };
        position.user = newest;
        Ok(Some((position, missed)))
    }

    /// `room.join {room_id, since?}`: the ack follows when the room accepts the relay; the room
    /// is recorded as the namespace's `pid`'s, for its recovery.
    async fn join_room(
        &self,
        ws: &WebSocket,
        info: &SocketInfo,
        nsp: &Namespace,
        state: &Rc<NamespaceState>,
        data: &Value,
        ack: Option<u64>,
    ) -> Result<Option<Value>, ApiError> {
        let room_id = shared::room_id_of(data)?;
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
        state
            .join(
                &self.env,
                Join {
                    identity: &identity,
                    device: &info.device,
                    room_id: &room_id,
                    since,
                    ack,
                },
            )
            .await?;
        JoinedRooms::new(&self.local).add(&nsp.pid, &room_id, crate::clock::now_ms())?;
        self.remember_rooms(ws, state);
        Ok(None)
    }

    /// `room.leave {room_id}`.
    fn leave_room(
        &self,
        ws: &WebSocket,
        nsp: &Namespace,
        state: &NamespaceState,
        data: &Value,
    ) -> Result<Value, ApiError> {
        let room_id = shared::room_id_of(data)?;
        let left = state.leave(&room_id);
        JoinedRooms::new(&self.local).remove(&nsp.pid, &room_id)?;
        self.remember_rooms(ws, state);
        Ok(json!({"room_id": room_id, "left": left}))
    }

    /// Writes whether the namespace has rooms to the attachment: after a restart, a namespace
    /// that had rooms is told to recover (see `UserHub::namespace_state`).
    pub(super) fn remember_rooms(&self, ws: &WebSocket, state: &NamespaceState) {
        let Some(mut info) = SocketInfo::of(ws) else {
            return;
        };
        let has_rooms = !state.rooms().is_empty();
        if let Some(nsp) = info.sio.as_mut().and_then(|session| {
            session
                .namespaces
                .iter_mut()
                .find(|n| n.name == state.nsp())
        }) {
            if nsp.has_rooms != has_rooms {
                nsp.has_rooms = has_rooms;
                let _ = self.sockets.save(ws, &info);
            }
        }
    }
}

/// What a recovery replays: the position it reaches and the user events after the client's,
/// encoded.
type Recovered = (Position, Vec<String>);

/// `room.send` and the others: the room socket's request of the same name, without `room_id`.
fn room_request(
    state: &NamespaceState,
    name: &str,
    mut data: Value,
    ack: Option<u64>,
) -> Result<(), ApiError> {
    let room_id = shared::room_id_of(&data)?;
    if let Some(object) = data.as_object_mut() {
        object.remove("room_id");
    }
    let event = name.trim_start_matches("room.");
    state.request(&room_id, event, data, ack)
}
