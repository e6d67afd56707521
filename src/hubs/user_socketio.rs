//! Socket.IO connections to a user, in their UserHub: the user's stream, direct messages, and
//! rooms relayed over the one connection (`hubs::relay`).
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | CONNECT `nsp` (checked by `hubs::socketio`) | the namespace and its `pid` | CONNECT `{sid, pid}`; on recovery the missed user events (main namespace), then each room of the offset this `pid` had joined, rejoined from its seq |
//! | EVENT `message.send`, `ack`, `auth`  | as `hubs::user`                         | the ack: the same data, or `{error}`    |
//! | EVENT `room.join`, `room.leave`      | the `pid`'s rooms (`store::joined_rooms`) | relayed to the room; its answer is the ack |
//! | EVENT `room.send` … `room.delete`    | —                                       | relayed to the room; its answer is the ack |
//! | EVENT of any other name              | —                                       | to the backend hook (`hook`), its answer the ack; `unknown_event` without one |
//! | DISCONNECT `nsp`, or Engine.IO close (the client's own end) | the `pid`'s rooms forgotten | — |
//! | a stream event (`POST /push`, …)     | —                                       | EVENT `[event, data, offset]` on the main namespace |
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
use worker::{Env, Request, Response, WebSocket};

use super::relay::Follow;
use super::socketio::{self as shared, Host};
use super::user::UserHub;
use super::{SocketInfo, Sockets};
use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::protocol::{close, code, ClientFrame, ServerFrame};
use crate::socketio::offset::Position;
use crate::socketio::packet::Packet;
use crate::socketio::{self as sio, engine, packet, Namespace, Session};
use crate::store::joined_rooms::JoinedRooms;
use crate::store::local::Local;
use crate::stream::plan_sparse_replay;

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

impl Host for UserHub {
    fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    fn local(&self) -> &Local {
        &self.local
    }

    fn env(&self) -> &Env {
        &self.env
    }

    fn revoked_before(&self, _user: &str) -> Result<Option<i64>, ApiError> {
        Ok(self.log().revoked_before()?)
    }

    async fn open_namespace(
        &self,
        ws: &WebSocket,
        info: SocketInfo,
        nsp: &str,
        resume: Option<(&str, &str)>,
    ) -> Result<(), ApiError> {
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
        let namespace = Namespace {
            name: nsp.to_owned(),
            pid: pid.clone(),
            has_rooms: !position.rooms.is_empty(),
        };
        let info = shared::add_namespace(&self.sockets, ws, info, namespace)?;
        let follow = Follow::new(ws.clone(), nsp, position);
        self.follows.insert(&info.conn_id, Rc::clone(&follow));
        shared::reply_connect(ws, nsp, &info.conn_id, &pid);
        let Some((_, (position, missed))) = recovery else {
            return Ok(());
        };
        for text in missed {
            let _ = ws.send_with_str(text);
        }
        let Some(identity) = info.sio.as_ref().map(|s| s.identity.clone()) else {
            return Ok(());
        };
        for (room_id, seq) in position.rooms {
            self.rejoin(&follow, &identity, &info.device, &pid, &room_id, seq)
                .await;
        }
        Ok(())
    }

    async fn on_event(&self, ws: &WebSocket, info: SocketInfo, nsp: &Namespace, packet: Packet) {
        let Some((name, args)) = packet.event() else {
            return;
        };
        let Some(follow) = self.follow(ws, &info, nsp) else {
            return;
        };
        let data = args.first().cloned().unwrap_or(Value::Null);
        let result = match name {
            "room.join" => {
                self.join_room(ws, &info, nsp, &follow, &data, packet.id)
                    .await
            }
            "room.leave" => self.leave_room(ws, nsp, &follow, &data).map(Some),
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
            _ => match self.config() {
                Ok(config) => shared::call_hook(&self.env, &config, &info, &packet.nsp, name, args)
                    .await
                    .map(Some),
                Err(err) => Err(err),
            },
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

    fn forget(&self, conn_id: &str, nsp: Option<&str>) {
        match nsp {
            Some(nsp) => self.follows.remove(conn_id, nsp),
            None => self.follows.forget(conn_id),
        }
    }

    fn ended_by_client(&self, info: &SocketInfo, nsp: Option<&str>) {
        let joined = JoinedRooms::new(&self.local);
        for ended in info.sio.iter().flat_map(|session| &session.namespaces) {
            if nsp.is_none_or(|nsp| nsp == ended.name) {
                let _ = joined.forget(&ended.pid);
            }
        }
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
        let carrier = super::carrier_of(req);
        let pair = shared::accept(self, &identity, device, None, carrier)?;
        self.schedule_alarm().await?;
        self.listing.join(&self.env, &identity.user_id).await;
        super::upgrade_response(req, pair.client)
    }

    /// Delivers a frame to every Socket.IO socket, on its main namespace ([`Session::main`]); a
    /// stream event carries the recovery offset. Returns how many sockets got it.
    pub(super) fn deliver_socketio(&self, frame: &ServerFrame<'_>) -> usize {
        let mut sent = 0;
        for (ws, info) in self.sockets.socketio() {
            let Some(nsp) = info.sio.as_ref().and_then(Session::main) else {
                continue;
            };
            let Some(follow) = self.follow(&ws, &info, nsp) else {
                continue;
            };
            let offset = frame.seq.map(|seq| follow.offset_after_user(seq));
            follow.emit(frame.event, &frame.data, offset.as_deref());
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
        if nsp.has_rooms {
            self.sockets.close(
                ws,
                close::SERVICE_RESTART,
                "the gateway restarted: reconnect to recover",
            );
            return None;
        }
        let last = self.log().last_seq().unwrap_or(0);
        let follow = Follow::new(ws.clone(), &nsp.name, Position::new(last));
        self.follows.insert(&info.conn_id, Rc::clone(&follow));
        Some(follow)
    }

    /// A room of a recovered connection, joined again from its seq; `room.left` if it cannot be
    /// (and the room is forgotten for `pid`, so a later recovery does not ask again).
    async fn rejoin(
        &self,
        follow: &Rc<Follow>,
        identity: &Identity,
        device: &str,
        pid: &str,
        room_id: &str,
        seq: i64,
    ) {
        let joined = follow
            .join(&self.env, identity, device, room_id, Some(seq), None)
            .await;
        if let Err(err) = joined {
            follow.leave(room_id);
            let _ = JoinedRooms::new(&self.local).remove(pid, room_id);
            let left = json!({"room_id": room_id, "code": err.code, "reason": err.message});
            follow.emit("room.left", &left, None);
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
        let Some(missed) = self.replays.whole(user, &self.limits(), plan, read)? else {
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
        follow: &Rc<Follow>,
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
        follow
            .join(&self.env, &identity, &info.device, &room_id, since, ack)
            .await?;
        JoinedRooms::new(&self.local).add(&nsp.pid, &room_id, super::now_ms())?;
        self.remember_rooms(ws, follow);
        Ok(None)
    }

    /// `room.leave {room_id}`.
    fn leave_room(
        &self,
        ws: &WebSocket,
        nsp: &Namespace,
        follow: &Follow,
        data: &Value,
    ) -> Result<Value, ApiError> {
        let room_id = shared::room_id_of(data)?;
        let left = follow.leave(&room_id);
        JoinedRooms::new(&self.local).remove(&nsp.pid, &room_id)?;
        self.remember_rooms(ws, follow);
        Ok(json!({"room_id": room_id, "left": left}))
    }

    /// Writes whether the namespace has rooms to the attachment: after a restart, a namespace
    /// that had rooms is told to recover (see [`UserHub::follow`]).
    fn remember_rooms(&self, ws: &WebSocket, follow: &Follow) {
        let Some(mut info) = SocketInfo::of(ws) else {
            return;
        };
        let has_rooms = !follow.rooms().is_empty();
        if let Some(nsp) = info.sio.as_mut().and_then(|session| {
            session
                .namespaces
                .iter_mut()
                .find(|n| n.name == follow.nsp())
        }) {
            if nsp.has_rooms != has_rooms {
                nsp.has_rooms = has_rooms;
                let _ = self.sockets.save(ws, &info);
            }
        }
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

/// What a recovery replays: the position it reaches and the user events after the client's, encoded.
type Recovered = (Position, Vec<String>);

/// `room.send` and the others: the room socket's request of the same name, without `room_id`.
fn room_request(
    follow: &Follow,
    name: &str,
    mut data: Value,
    ack: Option<u64>,
) -> Result<(), ApiError> {
    let room_id = shared::room_id_of(&data)?;
    if let Some(object) = data.as_object_mut() {
        object.remove("room_id");
    }
    let event = name.trim_start_matches("room.");
    follow.request(&room_id, event, data, ack)
}
