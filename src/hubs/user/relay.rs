//! Room relays: rooms joined over one Socket.IO connection.
//!
//! socket.io users join many rooms on one socket; a room's members and stream live in that
//! room's Durable Object, and the connection lives in the user's UserHub. So for each room a
//! Socket.IO namespace joins, the hub opens a socket of its own to the room, the same member
//! socket a device opens with `GET /v1/rooms/{id}/connect` (same admission, counted against the
//! same `CONNECT_RATE`, same limits, same replay with `since`, same presence). This file is
//! that socket ([`Relay`]); its namespace (`user::namespace`) reads what travels on it:
//!
//! - room → client: every frame becomes an EVENT on the namespace with `room_id` in its data;
//!   a stream frame also moves the namespace's recovery offset (`user::namespace`); the room's
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
use crate::hubs::stubs;
use crate::protocol::close;
use crate::quota::Rate;

/// The hub's socket to one room, for one namespace.
pub struct Relay {
    ws: WebSocket,
    next_id: Cell<u64>,
    /// The relay's request id → the client's ack id.
    pub pending: RefCell<HashMap<u64, u64>>,
    /// The client's `room.join` ack, answered by the room's `ready`.
    pub join_ack: Cell<Option<u64>>,
    /// Whether the `room.join` named a `since` (the room replays from there).
    pub resumed: bool,
    /// Set when the client left: the close is not news to it.
    pub leaving: Cell<bool>,
}

/// A room a namespace joins, as its relay opens.
pub struct Join<'a> {
    pub identity: &'a Identity,
    pub device: &'a str,
    pub room_id: &'a str,
    /// The room replays from there.
    pub since: Option<i64>,
    /// The client's `room.join`, answered by the room's `ready`.
    pub ack: Option<u64>,
}

/// What owns a relay: told each frame the room sends, and when the room's socket closes.
pub trait RelayOwner {
    fn on_frame(&self, room_id: &str, relay: &Relay, text: &str);
    fn on_closed(&self, room_id: &str, relay: &Rc<Relay>, code: u16, reason: &str);
}

impl Relay {
    /// Opens a member socket to the room `join` names, for the user. A relay is a room connect
    /// like any other: it counts against the user's connect rate.
    pub async fn open(env: &Env, join: &Join<'_>) -> Result<Self, ApiError> {
        crate::quota::check(env, Rate::Connect, &join.identity.user_id).await?;
        let mut query = format!("device={}", join.device);
        if let Some(since) = join.since {
            query.push_str(&format!("&since={since}"));
        }
        let res = stubs::room::open_socket(env, join.identity, join.room_id, &query, false).await?;
        Ok(Self {
            ws: stubs::accepted_socket(res).await?,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            join_ack: Cell::new(join.ack),
            resumed: join.since.is_some(),
            leaving: Cell::new(false),
        })
    }

    pub fn send(&self, event: &str, data: Value, ack: Option<u64>) {
        let mut frame = json!({"event": event, "data": data});
        if let Some(client_id) = ack {
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            self.pending.borrow_mut().insert(id, client_id);
            frame["id"] = json!(id);
        }
        let _ = self.ws.send_with_str(frame.to_string());
    }

    pub fn leave(&self) {
        self.leaving.set(true);
        let _ = self.ws.close(Some(close::NORMAL), Some("left"));
    }
}

/// Hands every frame of the relay to its owner until the room's socket closes.
pub fn start(owner: Rc<impl RelayOwner + 'static>, room_id: String, relay: Rc<Relay>) {
    worker::wasm_bindgen_futures::spawn_local(pump(owner, room_id, relay));
}

async fn pump(state: Rc<impl RelayOwner>, room_id: String, relay: Rc<Relay>) {
    let ws = relay.ws.clone();
    let Ok(mut events) = ws.events() else {
        state.on_closed(&room_id, &relay, close::NORMAL, "relay failed");
        return;
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(WebsocketEvent::Message(message)) => {
                if let Some(text) = message.text() {
                    state.on_frame(&room_id, &relay, &text);
                }
            }
            Ok(WebsocketEvent::Close(closed)) => {
                let code = crate::protocol::echoable_close_code(closed.code());
                let _ = ws.close(Some(code), Some(""));
                state.on_closed(&room_id, &relay, closed.code(), &closed.reason());
                return;
            }
            Err(_) => break,
        }
    }
    state.on_closed(&room_id, &relay, close::NORMAL, "relay failed");
}
