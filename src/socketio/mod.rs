//! The Socket.IO facade: socket.io-client 4.x, unchanged, speaking to the gateway.
//!
//! A socket.io client connects to `/socket.io/?EIO=4&transport=websocket` with its token where
//! the Worker sees it before the upgrade; its socket lands in the user's UserHub like any
//! device socket. What differs is only the wire: Engine.IO packets ([`engine`]) carrying
//! Socket.IO packets ([`packet`]), events as `[name, data, offset]` arrays and acks by id. The
//! hub turns each into the same operations the gateway's own protocol runs (`message.send`,
//! `auth`, `ack`, and through per-room relays every room request), so there is one copy of
//! each rule; this module only translates.
//!
//! | Socket.IO                           | gateway                                        |
//! |-------------------------------------|------------------------------------------------|
//! | CONNECT `nsp` (+ `auth.token`, `pid`, `offset`) | accepted: CONNECT `{sid, pid}`; with a `pid` and an offset the gateway can replay, the missed events follow and `socket.recovered` is true |
//! | EVENT `name`, args, ack id          | the request `name` with `data` = the first argument; its `ack` data, or `{"error":{code,message}}`, is the ack's argument |
//! | every stream event                  | EVENT `[event, data, offset]` on the main namespace (the first connected) |
//! | server `ping` every interval        | the heartbeat the client expects; the client's `pong` is its liveness |
//! | close 4001 / 4003 / 4009 …          | forced ends send DISCONNECT first (`io server disconnect`: no reconnect) |
//!
//! [`offset`] says how a connection's position in many streams fits in one offset.

pub mod engine;
pub mod handshake;
pub mod offset;
pub mod packet;
pub mod polling;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::protocol::Reply;

/// socket.io's reasons for a socket's end, as a backend's `disconnect` call names them
/// (`hubs::user::lifecycle`).
pub mod reason {
    /// The client's DISCONNECT (`socket.disconnect()`).
    pub const CLIENT_NAMESPACE: &str = "client namespace disconnect";
    /// A backend's `disconnectSockets()` without `close`.
    pub const SERVER_NAMESPACE: &str = "server namespace disconnect";
    /// The gateway closed the connection (a backend's `disconnectSockets(true)`, revocation,
    /// an expired token, the socket cap, a limit).
    pub const FORCED: &str = "forced server close";
    /// The connection went: the client closed it, the network dropped it, or it stopped
    /// answering pings.
    pub const TRANSPORT: &str = "transport close";
}

/// The packet answering a request: an `ack` becomes ACK with its data, an `error` ACK with
/// `{"error": data}`, or without an ack id an `error` event; an `ack` nobody asked for is
/// nothing (empty).
pub fn reply_text(reply: &Reply, event: &str, data: &Value) -> String {
    let packet = match (event, reply.id) {
        ("ack", Some(id)) => packet::ack(&reply.nsp, id, data),
        ("error", Some(id)) => packet::ack(&reply.nsp, id, &json!({"error": data})),
        ("error", None) => packet::event(&reply.nsp, "error", data, None),
        _ => return String::new(),
    };
    engine::message(&packet)
}

/// A Socket.IO connection's state, kept in its socket's attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The verified identity of the connection's token (refreshed by `auth`): room relays
    /// present it to each room.
    pub identity: Identity,
    /// The namespaces connected, each with its recovery id, in the order they connected. The
    /// first is the connection's main namespace ([`Session::main`]).
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Set on a connection to one room (held by the room itself): its events carry this
    /// `room_id`, and its offset is the room's seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    /// The client's first request, as handlers see it ([`handshake`]); user connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<handshake::Handshake>,
    /// `socket.data`: set by the backend (the `connection` call's answer, or
    /// `POST /internal/v1/socketio/data`), sent with every hook call, shown by `fetchSockets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The largest `socket.data`, serialised: it rides in the socket's attachment.
pub const MAX_SOCKET_DATA_BYTES: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// The recovery id this namespace was given: a reconnect presenting it may recover.
    pub pid: String,
    /// Whether it had rooms joined when last written: their relays live in the hub's memory,
    /// so a hub that finds this set and no relays has restarted. (Which rooms is the hub's to
    /// keep, `store::joined_rooms`: an attachment holds at most 16 KiB.)
    #[serde(default)]
    pub has_rooms: bool,
}

impl Session {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            namespaces: Vec::new(),
            room_id: None,
            handshake: None,
            data: None,
        }
    }

    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|nsp| nsp.name == name)
    }

    /// The main namespace: the first connected. The connection's own stream (the user's on a
    /// user connection, the room's on a room connection), broadcasts and notices travel on it
    /// alone, so what a connection costs does not grow with the namespaces it opens.
    pub fn main(&self) -> Option<&Namespace> {
        self.namespaces.first()
    }
}

/// Which namespaces clients may connect to: every one, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    Any,
    Only(Vec<String>),
}

impl Namespaces {
    /// `*` (or nothing) for every namespace; otherwise a comma-separated list such as `/,/chat`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw == "*" {
            return Ok(Self::Any);
        }
        let names: Vec<String> = raw.split(',').map(|n| n.trim().to_owned()).collect();
        if let Some(bad) = names.iter().find(|n| !n.starts_with('/') || n.len() > 128) {
            return Err(format!(
                "'{bad}' is not a namespace: each starts with '/' (e.g. '/,/chat')"
            ));
        }
        Ok(Self::Only(names))
    }

    pub fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// The argument of an ack: the result as the gateway's own `ack` carries it, or the error as
/// `{"error": {code, message}}` (socket.io acks have no error channel of their own).
pub fn ack_argument(result: Result<Value, ApiError>) -> Value {
    match result {
        Ok(value) => value,
        Err(err) => error_argument(err.code, &err.message),
    }
}

pub fn error_argument(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_policies() {
        assert_eq!(Namespaces::parse("*").unwrap(), Namespaces::Any);
        assert_eq!(Namespaces::parse("").unwrap(), Namespaces::Any);
        let only = Namespaces::parse("/, /chat").unwrap();
        assert!(only.allows("/") && only.allows("/chat") && !only.allows("/admin"));
        assert!(Namespaces::parse("chat").is_err());
    }

    #[test]
    fn answers_to_requests() {
        let with_ack = Reply {
            nsp: "/chat".into(),
            id: Some(4),
            event: "x".into(),
        };
        let without = Reply {
            nsp: "/".into(),
            id: None,
            event: "x".into(),
        };
        let data = json!({"a": 1});
        assert_eq!(reply_text(&with_ack, "ack", &data), r#"43/chat,4[{"a":1}]"#);
        assert_eq!(
            reply_text(&with_ack, "error", &data),
            r#"43/chat,4[{"error":{"a":1}}]"#
        );
        assert_eq!(
            reply_text(&without, "error", &data),
            r#"42["error",{"a":1}]"#
        );
        assert_eq!(reply_text(&without, "ack", &data), "");
    }

    #[test]
    fn errors_travel_in_the_ack() {
        let err = ApiError::bad_request("validation", "no");
        assert_eq!(
            ack_argument(Err(err)),
            json!({"error": {"code": "validation", "message": "no"}})
        );
        assert_eq!(ack_argument(Ok(json!({"a": 1}))), json!({"a": 1}));
    }
}
