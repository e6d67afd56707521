//! The one seam where the two wire dialects differ: how a socket is written to.
//!
//! A socket speaks the gateway's own protocol (JSON frames) or Socket.IO (Engine.IO packets);
//! its attachment says which (`SocketInfo::sio`). Everything else — which requests exist, what
//! they do, what is answered — is the same for both, so a hub hands its answers and events to
//! this file and never asks which dialect a socket speaks:
//!
//! | what                                    | the gateway's protocol       | Socket.IO                                                    |
//! |-----------------------------------------|------------------------------|--------------------------------------------------------------|
//! | an answer (`ack` / `error` with an id)  | the frame                    | ACK on the request's namespace; an error without an ack: `error` `{code, message, event}` |
//! | an event (`ready`, a notice, a broadcast) | the frame                  | EVENT on the main namespace (a room connection's with `room_id` and, for a stream entry, the seq as its offset) |
//! | a final close (removal, revocation, …)  | the close frame              | DISCONNECT on every namespace first (`io server disconnect`) |
//!
//! A UserHub's stream events carry a recovery offset per namespace and are written by
//! `hubs::user::socketio`; a room's by [`room_event`].

use serde_json::{json, Map, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::WebSocket;

use super::attachment::SocketInfo;
use crate::protocol::{RequestId, ServerFrame};
use crate::socketio::{engine, packet};

#[wasm_bindgen]
extern "C" {
    /// The runtime's WebSocket, seen only for `send` with a JavaScript value (`web_sys`'s
    /// `send_with_str` makes a new JavaScript string from the Rust one on every call).
    type JsSocket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &JsSocket, data: &JsValue) -> Result<(), JsValue>;
}

/// A frame's text made into a JavaScript string once, for a fan-out: each socket is handed the
/// same string instead of a copy of its own (the copy was a third of a room's cost per
/// recipient).
pub struct SharedText(JsValue);

impl SharedText {
    pub fn new(text: &str) -> Self {
        Self(JsValue::from_str(text))
    }

    /// Sends the text; a socket that cannot take it is closing, and its close event follows.
    pub fn send(&self, ws: &WebSocket) {
        let socket: &worker::web_sys::WebSocket = ws.as_ref();
        let _ = socket.unchecked_ref::<JsSocket>().send(&self.0);
    }
}

/// A frame as its socket reads it: an answer to a Socket.IO request as that protocol's packet
/// (empty when the request wanted no ack and the answer is not an error: nothing is sent),
/// anything else in the gateway's own protocol.
pub fn text(frame: &ServerFrame<'_>) -> String {
    match frame.id {
        Some(RequestId::SocketIo(reply)) => {
            let data = match (frame.event, reply.id, &frame.data) {
                ("error", None, Value::Object(fields)) => {
                    let mut fields = fields.clone();
                    fields.insert("event".into(), json!(reply.event));
                    Value::Object(fields)
                }
                _ => frame.data.clone(),
            };
            crate::socketio::reply_text(reply, frame.event, &data)
        }
        _ => frame.to_text(),
    }
}

/// Sends a frame to a socket; one that is already closing simply misses it.
pub fn send(ws: &WebSocket, frame: &ServerFrame<'_>) {
    let text = text(frame);
    if !text.is_empty() {
        let _ = ws.send_with_str(text);
    }
}

/// An event as `info`'s socket reads it: the frame, or on a Socket.IO connection an EVENT on
/// its main namespace (none before one is connected).
pub fn event_text(info: &SocketInfo, frame: &ServerFrame<'_>) -> Option<String> {
    let Some(session) = &info.sio else {
        return Some(frame.to_text());
    };
    let nsp = session.main()?;
    Some(match &session.room_id {
        Some(room_id) => room_event(&nsp.name, room_id, frame),
        None => engine::message(&packet::event(&nsp.name, frame.event, &frame.data, None)),
    })
}

/// Sends an event in the socket's own dialect ([`event_text`]).
pub fn emit(ws: &WebSocket, info: &SocketInfo, frame: &ServerFrame<'_>) {
    if let Some(text) = event_text(info, frame) {
        let _ = ws.send_with_str(text);
    }
}

/// Before a final close: DISCONNECT for every namespace of a Socket.IO socket (nothing for any
/// other), so the client does not reconnect.
pub fn farewell(ws: &WebSocket, info: &SocketInfo) {
    for nsp in info.sio.iter().flat_map(|session| &session.namespaces) {
        let _ = ws.send_with_str(engine::message(&packet::disconnect(&nsp.name)));
    }
}

/// A room's frame for a connection to that room: an EVENT with `room_id` in its data (a
/// backend's emitted event: its arguments as they were) and, for a stream entry, the room's
/// seq as the recovery offset.
pub fn room_event(nsp: &str, room_id: &str, frame: &ServerFrame<'_>) -> String {
    let offset = frame.seq.map(|seq| seq.to_string());
    if let Some(emitted) = &frame.emitted {
        return engine::message(&packet::event_args(
            nsp,
            frame.event,
            &emitted.args,
            offset.as_deref(),
        ));
    }
    let data = with_room(room_id, frame.data.clone());
    engine::message(&packet::event(nsp, frame.event, &data, offset.as_deref()))
}

/// A room frame's data with the room's id in it (data that is not an object goes in `value`).
pub fn with_room(room_id: &str, data: Value) -> Value {
    let mut object = match data {
        Value::Object(object) => object,
        Value::Null => Map::new(),
        other => {
            let mut object = Map::new();
            object.insert("value".into(), other);
            object
        }
    };
    object.insert("room_id".into(), json!(room_id));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Reply;

    #[test]
    fn room_frames_carry_their_room() {
        assert_eq!(
            with_room("r", json!({"seq": 1})),
            json!({"seq": 1, "room_id": "r"})
        );
        assert_eq!(with_room("r", Value::Null), json!({"room_id": "r"}));
        assert_eq!(
            with_room("r", json!(3)),
            json!({"value": 3, "room_id": "r"})
        );
    }

    #[test]
    fn an_error_without_an_ack_names_its_event_on_every_connection() {
        let id = RequestId::SocketIo(Reply {
            nsp: "/chat".into(),
            id: None,
            event: "room.send".into(),
        });
        let frame = ServerFrame::error(Some(&id), "validation", "no");
        assert_eq!(
            text(&frame),
            r#"42/chat,["error",{"code":"validation","event":"room.send","message":"no"}]"#
        );
        let native = RequestId::Number(1);
        assert_eq!(
            text(&ServerFrame::error(Some(&native), "validation", "no")),
            r#"{"event":"error","id":1,"data":{"code":"validation","message":"no"}}"#
        );
    }
}
