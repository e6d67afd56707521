//! The WebSocket wire contract: frames, event names, error codes and close codes.
//!
//! Everything here is pure so it is unit-tested on the host; the Durable Objects only call it.
//!
//! - Client → server: `{"event": "<name>", "data": {...}, "id": <request id, optional>}`.
//! - Server → client: `{"event": "<name>", "data": {...}, "seq": <n, on durable stream events>}`.
//! - A request that carries an `id` is answered by `ack` or `error` with the same `id`.
//!
//! docs/PROTOCOL.md is the prose version of this file; keep them together.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The exact heartbeat request and reply. The runtime answers it without waking the Durable
/// Object (WebSocket auto-response), so these strings must match byte for byte.
pub const PING: &str = r#"{"event":"ping"}"#;
pub const PONG: &str = r#"{"event":"pong"}"#;

/// Event names the gateway itself sends or understands. A backend may not push an event with
/// one of these names: a client could not tell it from the real thing.
pub const RESERVED_EVENTS: &[&str] = &[
    "ready",
    "ack",
    "error",
    "ping",
    "pong",
    "synced",
    "message",
    "auth",
    "typing",
    "read",
    "presence",
    "send",
    "token.expired",
    "user.joined",
    "user.left",
    "room.activity",
    "message.send",
    "message.read",
    "message.deleted",
    "message.updated",
    "sync",
    "room.added",
    "room.removed",
    "room.updated",
    "member.added",
    "member.removed",
    "member.updated",
];

/// Close codes a client can see, with the reason it would see them.
pub mod close {
    /// Normal closure (also used where the peer sent 1005/1006, which may not be echoed).
    pub const NORMAL: u16 = 1000;
    /// A text frame was not valid UTF-8 (the runtime hands it over with U+FFFD in place of
    /// each bad sequence, so a raw U+FFFD is taken for one: send it escaped, `\ufffd`).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame was larger than the configured limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server restarted the connection's path (a room shard lost its link to the room, a
    /// Socket.IO hub restarted with rooms joined): reconnect and resume.
    pub const SERVICE_RESTART: u16 = 1012;
    /// The socket's token expired and was not refreshed in band.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Forbidden or revoked: forced disconnect, removal from a room.
    pub const FORBIDDEN: u16 = 4003;
    /// The room was deleted.
    pub const ROOM_DELETED: u16 = 4004;
    /// The client sent frames faster than its allowance.
    pub const RATE_LIMITED: u16 = 4008;
    /// The user opened more than `MAX_SOCKETS_PER_USER` sockets on one hub or room; the
    /// oldest is closed.
    pub const TOO_MANY_SOCKETS: u16 = 4009;
}

/// Error codes carried in `error` events. They are stable: clients switch on them.
pub mod code {
    pub const BAD_FRAME: &str = "bad_frame";
    pub const UNKNOWN_EVENT: &str = "unknown_event";
    pub const VALIDATION: &str = "validation";
    pub const TOKEN_INVALID: &str = "token_invalid";
    pub const FORBIDDEN: &str = "forbidden";
    pub const INTERNAL: &str = "internal";
}

/// A frame from a client, after parsing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClientFrame {
    pub event: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub id: Option<RequestId>,
}

/// A request id: whatever the client chose, a number or a string, echoed back unchanged; or,
/// for a Socket.IO client, where its answer goes (never read from a frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(i64),
    Text(String),
    #[serde(skip)]
    SocketIo(Reply),
}

/// Where the answer to a Socket.IO request goes: its namespace, its ack id (none when the client
/// asked for no ack), and its event (an error with no ack to travel in names it). Carried as the
/// request's id through the gateway's own handlers, so their `ack` and `error` answers come out
/// as Socket.IO packets (`hubs::common::dialect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub nsp: String,
    pub id: Option<u64>,
    pub event: String,
}

/// Why a text frame could not be read as a [`ClientFrame`]. The id is kept when it could be
/// recovered, so the error still answers the request.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: Option<RequestId>,
    pub message: String,
}

/// Parses a client frame. Never panics, whatever the input.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|err| FrameError {
        id: None,
        message: format!("frame is not valid JSON: {err}"),
    })?;
    let id = value
        .get("id")
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    if !value.is_object() {
        return Err(FrameError {
            id,
            message: "frame must be a JSON object".into(),
        });
    }
    serde_json::from_value::<ClientFrame>(value).map_err(|err| FrameError {
        id,
        message: format!("frame does not match {{event, data, id}}: {err}"),
    })
}

/// A frame to a client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerFrame<'a> {
    pub event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a RequestId>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Set on a backend's emitted event ([`Emitted`]).
    #[serde(flatten)]
    pub emitted: Option<Emitted>,
}

/// A backend's emitted event (`api::sockets`), as it travels: every argument, and the socket
/// ids and rooms whose sockets skip it. The frame's `data` is the first argument, so a client
/// of the gateway's own protocol reads an ordinary event; a Socket.IO one gets every argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    pub args: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

impl Emitted {
    /// Whether the socket `id`, in `rooms`, skips it.
    pub fn skips(&self, id: &str, rooms: &[String]) -> bool {
        self.except
            .iter()
            .any(|skip| skip == id || rooms.contains(skip))
    }
}

impl<'a> ServerFrame<'a> {
    /// A backend's emitted event: `data` is its first argument (null without one).
    pub fn emitted(event: &'a str, seq: Option<i64>, emitted: Emitted) -> Self {
        Self {
            event,
            id: None,
            data: emitted.args.first().cloned().unwrap_or(Value::Null),
            seq,
            emitted: Some(emitted),
        }
    }

    pub fn event(event: &'a str, data: Value) -> Self {
        Self {
            event,
            id: None,
            data,
            seq: None,
            emitted: None,
        }
    }

    pub fn stream(event: &'a str, seq: i64, data: Value) -> Self {
        Self {
            event,
            id: None,
            data,
            seq: Some(seq),
            emitted: None,
        }
    }

    pub fn ack(id: &'a RequestId, data: Value) -> Self {
        Self {
            event: "ack",
            id: Some(id),
            data,
            seq: None,
            emitted: None,
        }
    }

    pub fn error(id: Option<&'a RequestId>, code: &str, message: &str) -> Self {
        Self {
            event: "error",
            id,
            data: json!({"code": code, "message": message}),
            seq: None,
            emitted: None,
        }
    }

    /// The frame as the gateway's own protocol writes it (an answer to a Socket.IO request is
    /// written by `hubs::common::dialect`).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"event":"error","data":{"code":"internal","message":"unserialisable frame"}}"#
                .to_owned()
        })
    }
}

/// A broadcast's frame: `{"event","data","broadcast":true}`, without a seq: it is in no stream,
/// so a client neither resumes from it nor gets it again (`hubs::directory`).
pub fn broadcast_text(event: &str, data: &Value) -> String {
    #[derive(Serialize)]
    struct Broadcast<'a> {
        event: &'a str,
        #[serde(skip_serializing_if = "Value::is_null")]
        data: &'a Value,
        broadcast: bool,
    }
    let frame = Broadcast {
        event,
        data,
        broadcast: true,
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

/// Checks a backend-chosen event name: dotted lowercase words (`permission.changed`,
/// `order.shipped`), at most 64 characters, not reserved.
pub fn validate_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("event must be 1 to 64 characters".into());
    }
    let well_formed = name.split('.').all(|part| {
        let mut chars = part.chars();
        matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    });
    if !well_formed {
        return Err(format!(
            "event '{name}' must be dotted lowercase words such as 'permission.changed'"
        ));
    }
    if RESERVED_EVENTS.contains(&name) {
        return Err(format!("event '{name}' is reserved by the gateway"));
    }
    Ok(())
}

/// Names socket.io keeps for itself: a client library never hands an event with one of them
/// to the application.
pub const SOCKETIO_RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Checks the name of a backend's emitted event (`api::sockets`): any name a socket.io
/// application uses (`new-message`, `orderUpdate`), 1 to 64 characters without control
/// characters, neither the gateway's reserved names nor socket.io's.
pub fn validate_emit_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("event must be 1 to 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("event may not contain control characters".into());
    }
    if RESERVED_EVENTS.contains(&name) || SOCKETIO_RESERVED_EVENTS.contains(&name) {
        return Err(format!("event '{name}' is reserved"));
    }
    Ok(())
}

/// A close code that may be sent back: 1005 and 1006 are reserved for the runtime and may not be
/// echoed, so they become a normal close.
pub fn echoable_close_code(code: u16) -> u16 {
    match code {
        1000 | 3000..=4999 => code,
        1001..=1003 | 1007..=1014 => code,
        _ => close::NORMAL,
    }
}

/// Close reasons are limited to 123 bytes on the wire; cut on a character boundary.
pub fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_frame_has_no_seq() {
        assert_eq!(
            broadcast_text("maintenance.soon", &json!({"at": 5})),
            r#"{"event":"maintenance.soon","data":{"at":5},"broadcast":true}"#
        );
        assert_eq!(
            broadcast_text("ping.all", &Value::Null),
            r#"{"event":"ping.all","broadcast":true}"#
        );
    }

    #[test]
    fn parses_a_full_frame() {
        let frame = parse_client_frame(r#"{"event":"auth","id":7,"data":{"token":"t"}}"#).unwrap();
        assert_eq!(frame.event, "auth");
        assert_eq!(frame.id, Some(RequestId::Number(7)));
        assert_eq!(frame.data, json!({"token": "t"}));
    }

    #[test]
    fn data_and_id_are_optional() {
        let frame = parse_client_frame(r#"{"event":"typing"}"#).unwrap();
        assert_eq!(frame.data, Value::Null);
        assert_eq!(frame.id, None);
    }

    #[test]
    fn string_ids_are_kept() {
        let frame = parse_client_frame(r#"{"event":"x","id":"abc"}"#).unwrap();
        assert_eq!(frame.id, Some(RequestId::Text("abc".into())));
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        for text in [
            "",
            "nope",
            "[]",
            "42",
            "{}",
            r#"{"event":5}"#,
            "{\"event\":",
        ] {
            assert!(parse_client_frame(text).is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn a_bad_frame_keeps_its_id() {
        let err = parse_client_frame(r#"{"event":5,"id":3}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::Number(3)));
    }

    #[test]
    fn server_frames_skip_absent_fields() {
        assert_eq!(
            ServerFrame::event("pong", Value::Null).to_text(),
            r#"{"event":"pong"}"#
        );
        assert_eq!(
            ServerFrame::stream("x.y", 4, json!({"a": 1})).to_text(),
            r#"{"event":"x.y","data":{"a":1},"seq":4}"#
        );
        let id = RequestId::Number(9);
        assert_eq!(
            ServerFrame::error(Some(&id), code::BAD_FRAME, "no").to_text(),
            r#"{"event":"error","id":9,"data":{"code":"bad_frame","message":"no"}}"#
        );
    }

    #[test]
    fn heartbeat_strings_are_the_serialised_frames() {
        assert_eq!(ServerFrame::event("pong", Value::Null).to_text(), PONG);
        assert_eq!(
            parse_client_frame(PING).unwrap().event,
            "ping",
            "the auto-response request must be a valid frame"
        );
    }

    #[test]
    fn event_names() {
        assert!(validate_event_name("permission.changed").is_ok());
        assert!(validate_event_name("order.shipped_2").is_ok());
        assert!(validate_event_name("Permission.Changed").is_err());
        assert!(validate_event_name("a..b").is_err());
        assert!(validate_event_name(".a").is_err());
        assert!(validate_event_name("").is_err());
        assert!(validate_event_name(&"a".repeat(65)).is_err());
        for reserved in RESERVED_EVENTS.iter().chain(SOCKETIO_RESERVED_EVENTS) {
            assert!(validate_emit_name(reserved).is_err(), "{reserved}");
        }
        for fine in ["new-message", "orderUpdate", "user:joined"] {
            assert!(validate_emit_name(fine).is_ok(), "{fine}");
        }
        assert!(validate_emit_name("a\nb").is_err());
        assert!(validate_emit_name(&"x".repeat(65)).is_err());
        for reserved in RESERVED_EVENTS {
            assert!(validate_event_name(reserved).is_err(), "{reserved}");
        }
    }

    #[test]
    fn close_codes_that_cannot_be_echoed() {
        assert_eq!(echoable_close_code(1005), 1000);
        assert_eq!(echoable_close_code(1006), 1000);
        assert_eq!(echoable_close_code(4001), 4001);
        assert_eq!(echoable_close_code(1001), 1001);
    }

    #[test]
    fn close_reasons_are_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123);
        assert!(long.starts_with(cut));
    }
}
