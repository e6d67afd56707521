//! The in-memory state of each namespace a Socket.IO connection connected in its UserHub:
//! where it is in the streams it follows (the recovery offset it stamps on every event) and its
//! relays, one per joined room (`user::relay`).
//!
//! Without rooms a namespace's state is just the next event's seq, so it is made afresh after
//! hibernation; with rooms the relays keep the hub in memory, and a hub that restarts anyway
//! closes such a connection with 1012 so that the client recovers from its own offset.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};
use worker::{Env, WebSocket};

use super::relay::{self, Join, Relay, RelayOwner};
use crate::error::ApiError;
use crate::hubs::common::dialect;
use crate::protocol::Emitted;
use crate::socketio::offset::{Position, MAX_ROOMS};
use crate::socketio::{engine, packet};

/// One namespace of a Socket.IO connection: where it is in the streams it follows, and its
/// relays, one per joined room.
pub struct NamespaceState {
    pub(super) client: WebSocket,
    /// The connection's socket id (a backend's `except` may name it).
    conn_id: String,
    pub(super) nsp: String,
    pub(super) position: RefCell<Position>,
    pub(super) relays: RefCell<HashMap<String, Rc<Relay>>>,
}

impl NamespaceState {
    pub fn new(client: WebSocket, conn_id: &str, nsp: &str, position: Position) -> Rc<Self> {
        Rc::new(Self {
            client,
            conn_id: conn_id.to_owned(),
            nsp: nsp.to_owned(),
            position: RefCell::new(position),
            relays: RefCell::new(HashMap::new()),
        })
    }

    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The offset after a user-stream event with `seq`.
    pub fn offset_after_user(&self, seq: i64) -> String {
        let mut position = self.position.borrow_mut();
        position.user = seq;
        position.encode()
    }

    pub fn rooms(&self) -> Vec<String> {
        self.relays.borrow().keys().cloned().collect()
    }

    pub fn emit(&self, event: &str, data: &Value, offset: Option<&str>) {
        let packet = packet::event(&self.nsp, event, data, offset);
        let _ = self.client.send_with_str(engine::message(&packet));
    }

    /// A backend's event with all its arguments (`user::remote`): not a stream entry, so no
    /// offset.
    pub fn emit_args(&self, event: &str, args: &[Value]) {
        let packet = packet::event_args(&self.nsp, event, args, None);
        let _ = self.client.send_with_str(engine::message(&packet));
    }

    pub fn ack(&self, id: u64, argument: &Value) {
        let _ = self
            .client
            .send_with_str(engine::message(&packet::ack(&self.nsp, id, argument)));
    }
}

impl NamespaceState {
    /// `room.join {room_id, since?}`: opens the relay. The ack comes with the room's `ready`;
    /// an already joined room is acked at once with its position.
    pub async fn join(self: &Rc<Self>, env: &Env, join: Join<'_>) -> Result<(), ApiError> {
        let Join {
            room_id,
            since,
            ack,
            ..
        } = join;
        crate::ids::validate_room_id(room_id)
            .map_err(|why| ApiError::bad_request("validation", why))?;
        if self.relays.borrow().contains_key(room_id) {
            let seq = self.position.borrow().room(room_id);
            if let Some(id) = ack {
                self.ack(id, &json!({"room_id": room_id, "seq": seq, "joined": true}));
            }
            return Ok(());
        }
        if self.relays.borrow().len() >= MAX_ROOMS {
            return Err(ApiError::bad_request(
                "validation",
                format!("a connection follows at most {MAX_ROOMS} rooms at once"),
            ));
        }
        let relay = Rc::new(Relay::open(env, &join).await?);
        if let Some(since) = since {
            self.position.borrow_mut().set_room(room_id, since);
        }
        let previous = self
            .relays
            .borrow_mut()
            .insert(room_id.to_owned(), Rc::clone(&relay));
        if let Some(previous) = previous {
            previous.leave();
        }
        relay::start(Rc::clone(self), room_id.to_owned(), relay);
        Ok(())
    }

    /// `room.leave {room_id}`: closes the relay; false when the room was not joined.
    pub fn leave(&self, room_id: &str) -> bool {
        let relay = self.relays.borrow_mut().remove(room_id);
        self.position.borrow_mut().remove_room(room_id);
        relay.map(|relay| relay.leave()).is_some()
    }

    /// Closes every relay: the namespace or the connection ended.
    pub fn leave_all(&self) {
        let relays: Vec<Rc<Relay>> = self.relays.borrow_mut().drain().map(|(_, r)| r).collect();
        for relay in relays {
            relay.leave();
        }
    }

    /// A request for a joined room: `event` with `data`, answered to the client's `ack`.
    pub fn request(
        &self,
        room_id: &str,
        event: &str,
        data: Value,
        ack: Option<u64>,
    ) -> Result<(), ApiError> {
        let relay = self.relays.borrow().get(room_id).cloned().ok_or_else(|| {
            ApiError::bad_request(
                "not_joined",
                format!("join room '{room_id}' first (room.join)"),
            )
        })?;
        relay.send(event, data, ack);
        Ok(())
    }

    /// Passes a refreshed token on to every room, as `auth` (the rooms expire their sockets on
    /// the old token's time otherwise).
    pub fn pass_token(&self, token: &str) {
        for relay in self.relays.borrow().values() {
            relay.send("auth", json!({"token": token}), None);
        }
    }

    /// The room accepted the relay: the position starts at its newest seq unless the join
    /// resumes, and the client's `room.join` is acked with the room's `ready`.
    fn on_ready(&self, room_id: &str, relay: &Relay, data: Value) {
        if !relay.resumed {
            let seq = data.get("seq").and_then(Value::as_i64).unwrap_or(0);
            self.position.borrow_mut().set_room(room_id, seq);
        }
        if let Some(id) = relay.join_ack.take() {
            self.ack(id, &dialect::with_room(room_id, data));
        }
    }
}

impl NamespaceState {
    /// A backend's event emitted to the room (`room::emits`): every argument as it was, unless
    /// `except` names this connection or one of the rooms it joined.
    fn on_emitted(&self, room_id: &str, event: &str, frame: Map<String, Value>, seq: Option<i64>) {
        let Ok(emitted) = serde_json::from_value::<Emitted>(Value::Object(frame)) else {
            return;
        };
        if emitted.skips(&self.conn_id, &self.rooms()) {
            return;
        }
        let offset = seq.map(|seq| {
            let mut position = self.position.borrow_mut();
            position.set_room(room_id, seq);
            position.encode()
        });
        let packet = packet::event_args(&self.nsp, event, &emitted.args, offset.as_deref());
        let _ = self.client.send_with_str(engine::message(&packet));
    }
}

impl RelayOwner for NamespaceState {
    /// A frame from a room's socket.
    fn on_frame(&self, room_id: &str, relay: &Relay, text: &str) {
        let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let event = match frame.remove("event") {
            Some(Value::String(event)) => event,
            _ => return,
        };
        let data = frame.remove("data").unwrap_or(Value::Null);
        let id = frame.get("id").and_then(Value::as_u64);
        let seq = frame.get("seq").and_then(Value::as_i64);
        match event.as_str() {
            "ready" => self.on_ready(room_id, relay, data),
            "ack" => {
                if let Some(client_id) = id.and_then(|id| relay.pending.borrow_mut().remove(&id)) {
                    self.ack(client_id, &data);
                }
            }
            "error" => {
                let client_id = id.and_then(|id| relay.pending.borrow_mut().remove(&id));
                match client_id {
                    Some(client_id) => self.ack(client_id, &json!({"error": data})),
                    None => self.emit("error", &dialect::with_room(room_id, data), None),
                }
            }
            "synced" if data.get("more").and_then(Value::as_bool) == Some(true) => {
                let since = data.get("seq").cloned().unwrap_or(Value::Null);
                relay.send("sync", json!({"since": since}), None);
            }
            "pong" | "token.expired" => {}
            _ if frame.contains_key("args") => self.on_emitted(room_id, &event, frame, seq),
            _ => {
                let offset = seq.map(|seq| {
                    let mut position = self.position.borrow_mut();
                    position.set_room(room_id, seq);
                    position.encode()
                });
                self.emit(
                    &event,
                    &dialect::with_room(room_id, data),
                    offset.as_deref(),
                );
            }
        }
    }

    /// The room closed the relay (removed, deleted, revoked, expired, …) or it failed.
    fn on_closed(&self, room_id: &str, relay: &Rc<Relay>, code: u16, reason: &str) {
        let ours = self
            .relays
            .borrow()
            .get(room_id)
            .is_some_and(|current| Rc::ptr_eq(current, relay));
        if ours {
            self.relays.borrow_mut().remove(room_id);
            self.position.borrow_mut().remove_room(room_id);
        }
        let refusal = crate::socketio::error_argument("room_closed", reason);
        if let Some(id) = relay.join_ack.take() {
            self.ack(id, &refusal);
        }
        let pending: Vec<u64> = relay
            .pending
            .borrow_mut()
            .drain()
            .map(|(_, id)| id)
            .collect();
        for id in pending {
            self.ack(id, &refusal);
        }
        if !relay.leaving.get() {
            self.emit(
                "room.left",
                &json!({"room_id": room_id, "code": code, "reason": reason}),
                None,
            );
        }
    }
}

/// Every Socket.IO namespace's state, by connection id.
#[derive(Default)]
pub struct Namespaces {
    by_conn: RefCell<HashMap<String, Vec<Rc<NamespaceState>>>>,
}

impl Namespaces {
    pub(super) fn get(&self, conn_id: &str, nsp: &str) -> Option<Rc<NamespaceState>> {
        self.by_conn
            .borrow()
            .get(conn_id)?
            .iter()
            .find(|state| state.nsp() == nsp)
            .cloned()
    }

    pub(super) fn insert(&self, conn_id: &str, state: Rc<NamespaceState>) {
        let mut by_conn = self.by_conn.borrow_mut();
        let states = by_conn.entry(conn_id.to_owned()).or_default();
        states.retain(|known| known.nsp() != state.nsp());
        states.push(state);
    }

    pub(super) fn remove(&self, conn_id: &str, nsp: &str) {
        let removed = {
            let mut by_conn = self.by_conn.borrow_mut();
            let Some(states) = by_conn.get_mut(conn_id) else {
                return;
            };
            let (gone, kept): (Vec<_>, Vec<_>) =
                states.drain(..).partition(|state| state.nsp() == nsp);
            *states = kept;
            gone
        };
        for state in removed {
            state.leave_all();
        }
    }

    /// The connection ended: every relay of it is closed.
    pub fn forget(&self, conn_id: &str) {
        let removed = self.by_conn.borrow_mut().remove(conn_id);
        for state in removed.unwrap_or_default() {
            state.leave_all();
        }
    }

    /// A token refreshed on the connection reaches every room its namespaces relay (the rooms
    /// expire their sockets on the old token's time otherwise).
    pub fn refresh_token(&self, conn_id: &str, token: &str) {
        let states = self
            .by_conn
            .borrow()
            .get(conn_id)
            .cloned()
            .unwrap_or_default();
        for state in states {
            state.pass_token(token);
        }
    }
}
