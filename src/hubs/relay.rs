//! Room relays: rooms joined over one Socket.IO connection.
//!
//! socket.io users join many rooms on one socket; a room's members and stream live in that
//! room's Durable Object, and the connection lives in the user's UserHub. So for each room a
//! Socket.IO namespace joins, the hub opens a socket of its own to the room, the same member
//! socket a device opens with `GET /v1/rooms/{id}/connect` (same admission, counted against the
//! same `CONNECT_RATE`, same limits, same replay with `since`, same presence), and relays what
//! travels on it:
//!
//! - room → client: every frame becomes an EVENT on the namespace with `room_id` in its data;
//!   a stream frame also moves the namespace's recovery offset ([`Position`]); the room's
//!   `ack` / `error` answers the client's ack; `synced {more:true}` is paged on here.
//! - client → room: `room.send`, `room.typing`, `room.read`, `room.edit`, `room.delete` become
//!   the room socket's `send`, `typing`, `read`, `edit`, `delete`.
//!
//! A WebSocket keeps frames in order, so the client sees each room's messages in seq order
//! with no gap, exactly as a room socket would. The price: a relay is an outgoing socket,
//! which cannot hibernate, so a hub with rooms joined stays in memory (docs/ARCHITECTURE.md),
//! and each room frame costs one more hop (docs/BENCHMARKS.md).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{Env, WebSocket, WebsocketEvent};

use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::protocol::close;
use crate::quota::Rate;
use crate::socketio::offset::{Position, MAX_ROOMS};
use crate::socketio::{self as sio, engine, packet};

/// One namespace of a Socket.IO connection: where it is in the streams it follows, and its
/// relays, one per joined room.
pub struct Follow {
    client: WebSocket,
    nsp: String,
    position: RefCell<Position>,
    relays: RefCell<HashMap<String, Rc<Relay>>>,
}

/// The hub's socket to one room, for one namespace.
struct Relay {
    ws: WebSocket,
    next_id: Cell<u64>,
    /// The relay's request id → the client's ack id.
    pending: RefCell<HashMap<u64, u64>>,
    /// The client's `room.join` ack, answered by the room's `ready`.
    join_ack: Cell<Option<u64>>,
    /// Whether the `room.join` named a `since` (the room replays from there).
    resumed: bool,
    /// Set when the client left: the close is not news to it.
    leaving: Cell<bool>,
}

impl Follow {
    pub fn new(client: WebSocket, nsp: &str, position: Position) -> Rc<Self> {
        Rc::new(Self {
            client,
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

    pub fn ack(&self, id: u64, argument: &Value) {
        let _ = self
            .client
            .send_with_str(engine::message(&packet::ack(&self.nsp, id, argument)));
    }

    /// `room.join {room_id, since?}`: opens the relay. The ack comes with the room's `ready`;
    /// an already joined room is acked at once with its position.
    pub async fn join(
        self: &Rc<Self>,
        env: &Env,
        identity: &Identity,
        device: &str,
        room_id: &str,
        since: Option<i64>,
        ack: Option<u64>,
    ) -> Result<(), ApiError> {
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
        // A relay is a room connect like any other: it counts against the user's connect rate.
        crate::quota::check(env, Rate::Connect, &identity.user_id).await?;
        let mut path = format!("/connect?device={device}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let res = super::room::open_socket(env, identity, room_id, &path, false).await?;
        let ws = super::accepted_socket(res).await?;
        let relay = Rc::new(Relay {
            ws,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            join_ack: Cell::new(ack),
            resumed: since.is_some(),
            leaving: Cell::new(false),
        });
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
        worker::wasm_bindgen_futures::spawn_local(pump(Rc::clone(self), room_id.to_owned(), relay));
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
    pub fn auth(&self, token: &str) {
        for relay in self.relays.borrow().values() {
            relay.send("auth", json!({"token": token}), None);
        }
    }

    /// A frame from a room's socket.
    fn on_room_frame(&self, room_id: &str, relay: &Relay, text: &str) {
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
                    None => self.emit("error", &sio::with_room(room_id, data), None),
                }
            }
            "synced" if data.get("more").and_then(Value::as_bool) == Some(true) => {
                let since = data.get("seq").cloned().unwrap_or(Value::Null);
                relay.send("sync", json!({"since": since}), None);
            }
            "pong" | "token.expired" => {}
            _ => {
                let offset = seq.map(|seq| {
                    let mut position = self.position.borrow_mut();
                    position.set_room(room_id, seq);
                    position.encode()
                });
                self.emit(&event, &sio::with_room(room_id, data), offset.as_deref());
            }
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
            self.ack(id, &sio::with_room(room_id, data));
        }
    }

    /// The room closed the relay (removed, deleted, revoked, expired, …) or it failed.
    fn room_closed(&self, room_id: &str, relay: &Rc<Relay>, code: u16, reason: &str) {
        let ours = self
            .relays
            .borrow()
            .get(room_id)
            .is_some_and(|current| Rc::ptr_eq(current, relay));
        if ours {
            self.relays.borrow_mut().remove(room_id);
            self.position.borrow_mut().remove_room(room_id);
        }
        let refusal = sio::error_argument("room_closed", reason);
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

impl Relay {
    fn send(&self, event: &str, data: Value, ack: Option<u64>) {
        let mut frame = json!({"event": event, "data": data});
        if let Some(client_id) = ack {
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            self.pending.borrow_mut().insert(id, client_id);
            frame["id"] = json!(id);
        }
        let _ = self.ws.send_with_str(frame.to_string());
    }

    fn leave(&self) {
        self.leaving.set(true);
        let _ = self.ws.close(Some(close::NORMAL), Some("left"));
    }
}

/// Relays a room's frames to the client until the room's socket closes.
async fn pump(follow: Rc<Follow>, room_id: String, relay: Rc<Relay>) {
    let ws = relay.ws.clone();
    let Ok(mut events) = ws.events() else {
        follow.room_closed(&room_id, &relay, close::NORMAL, "relay failed");
        return;
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(WebsocketEvent::Message(message)) => {
                if let Some(text) = message.text() {
                    follow.on_room_frame(&room_id, &relay, &text);
                }
            }
            Ok(WebsocketEvent::Close(closed)) => {
                let code = crate::protocol::echoable_close_code(closed.code());
                let _ = ws.close(Some(code), Some(""));
                follow.room_closed(&room_id, &relay, closed.code(), &closed.reason());
                return;
            }
            Err(_) => break,
        }
    }
    follow.room_closed(&room_id, &relay, close::NORMAL, "relay failed");
}
