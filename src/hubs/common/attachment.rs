//! What a socket carries across hibernation: its attachment ([`SocketInfo`]).
//!
//! A hub may hibernate between any two events, and a socket's own state must survive it, so
//! it lives in the socket's attachment, written with every change (`Sockets::save`). An
//! attachment holds at most 16 KiB: what grows with use (the rooms a Socket.IO namespace
//! joined, say) is kept in the object's storage, never here.

use serde::{Deserialize, Serialize};
use worker::WebSocket;

use crate::auth::token::Carrier;
use crate::socketio::Session;

/// Per-socket state, kept in the hibernatable socket's attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SocketInfo {
    pub user_id: String,
    pub conn_id: String,
    pub device: String,
    /// Unix seconds at which the socket's token expires.
    pub expires_at: i64,
    /// Set when the server starts closing the socket: from then on it is not open for anything
    /// (no frame it sends is processed, nothing is delivered to it, it is not counted), even if
    /// the client never answers the close.
    #[serde(default)]
    pub closing: bool,
    /// Set while the client is paging through a resume (`synced` said `more:true`): live stream
    /// entries are not sent to it then, the next batch carries them, so it sees the stream in
    /// order with no gap and no duplicate.
    #[serde(default)]
    pub syncing: bool,
    /// Unix ms when the socket was accepted (the oldest goes first when a user has too many).
    #[serde(default)]
    pub opened_at: i64,
    /// The token has the `admin` role (a room socket's `delete` may then delete any message).
    #[serde(default)]
    pub admin: bool,
    /// Present on a Socket.IO connection (`hubs::socketio`): its wire is Engine.IO packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sio: Option<Session>,
    /// How the client sent its token, when the Worker said (user sockets): an operator's report
    /// shows it. Absent in attachments made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<Carrier>,
}

impl SocketInfo {
    pub fn of(ws: &WebSocket) -> Option<SocketInfo> {
        ws.deserialize_attachment().ok().flatten()
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at.saturating_mul(1000)
    }
}
