//! The Durable Objects: [`user::UserHub`] (one per user: device sockets and the user's event
//! stream) and, later, the room hub. This module holds what both need: the per-socket attachment
//! and small helpers to answer frames.
//!
//! Nothing authoritative lives only in memory: a hub may hibernate between any two events, so
//! per-socket state is in the socket attachment and everything else in storage.

pub mod user;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Response, WebSocket};

use crate::error::ApiError;
use crate::protocol::{RequestId, ServerFrame};

/// Per-socket state, kept in the hibernatable socket's attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SocketInfo {
    pub user_id: String,
    pub conn_id: String,
    pub device: String,
    /// Unix seconds at which the socket's token expires.
    pub expires_at: i64,
}

impl SocketInfo {
    pub fn of(ws: &WebSocket) -> Option<SocketInfo> {
        ws.deserialize_attachment().ok().flatten()
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at * 1000
    }
}

/// The request header the Worker uses to hand a verified identity to a hub.
pub const IDENTITY_HEADER: &str = "x-switchboard-identity";
/// Set by the Worker when the client offered the `bearer` subprotocol.
pub const SUBPROTOCOL_HEADER: &str = "x-switchboard-subprotocol";

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sends a frame; a socket that is already closing simply misses it.
pub fn send(ws: &WebSocket, frame: &ServerFrame<'_>) {
    let _ = ws.send_with_str(frame.to_text());
}

pub fn send_error(ws: &WebSocket, id: Option<&RequestId>, code: &str, message: &str) {
    send(ws, &ServerFrame::error(id, code, message));
}

/// Answers a request frame: an `ack` when it carried an id, nothing otherwise.
pub fn send_ack(ws: &WebSocket, id: Option<&RequestId>, data: Value) {
    if let Some(id) = id {
        send(ws, &ServerFrame::ack(id, data));
    }
}

/// A hub's HTTP answer for an error, in the same JSON shape the Worker uses.
pub fn error_response(err: ApiError) -> worker::Result<Response> {
    Ok(crate::http::error_response(&err))
}
