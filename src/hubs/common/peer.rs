//! Peer: the socket a room answers, wherever it is held.
//!
//! A room's sockets live in the room's own object or, once the room is large, in its shards
//! (`hubs::room::shard`). Every frame a member sends is still handled by the room, which alone
//! orders and stores; what it answers (an ack, an error, a replay batch, a close, a changed
//! attachment) goes back to the socket the frame came from. A [`Peer`] is that socket: one the
//! room holds, or one a shard holds, reached through the shard's link (`common::link`),
//! which carries the answer in the order the room sent it, among the room's deliveries.

use serde_json::Value;
use worker::WebSocket;

use super::attachment::SocketInfo;
use super::dialect;
use super::link::Down;
use super::sockets::Sockets;
use crate::protocol::{RequestId, ServerFrame};

#[derive(Clone)]
pub enum Peer {
    /// A socket this object accepted.
    Socket(WebSocket),
    /// A socket a shard accepted, with its state as the shard sent it along with the frame.
    Shard {
        link: WebSocket,
        info: Box<SocketInfo>,
    },
}

impl Peer {
    /// Sends one text to the socket; nothing for an empty one.
    pub fn send_text(&self, text: String) {
        if text.is_empty() {
            return;
        }
        match self {
            Peer::Socket(ws) => {
                let _ = ws.send_with_str(text);
            }
            Peer::Shard { link, info } => Down::Answer {
                conn: info.conn_id.clone(),
                text,
            }
            .send(link),
        }
    }

    /// Sends a frame in the socket's dialect (an answer to a Socket.IO request as its packet).
    pub fn send(&self, frame: &ServerFrame<'_>) {
        self.send_text(dialect::text(frame));
    }

    /// Answers a request frame: an `ack` when it carried an id, nothing otherwise.
    pub fn ack(&self, id: Option<&RequestId>, data: Value) {
        if let Some(id) = id {
            self.send(&ServerFrame::ack(id, data));
        }
    }

    pub fn error(&self, id: Option<&RequestId>, code: &str, message: &str) {
        self.send(&ServerFrame::error(id, code, message));
    }

    /// Starts closing the socket (`Sockets::close` where it is held).
    pub fn close(&self, sockets: &Sockets, code: u16, reason: &str) {
        match self {
            Peer::Socket(ws) => sockets.close(ws, code, reason),
            Peer::Shard { link, info } => Down::Close {
                conn: info.conn_id.clone(),
                code,
                reason: reason.to_owned(),
            }
            .send(link),
        }
    }

    /// The socket's state: read from the attachment here, as sent along by a shard.
    pub fn info(&self) -> Option<SocketInfo> {
        match self {
            Peer::Socket(ws) => SocketInfo::of(ws),
            Peer::Shard { info, .. } => Some(SocketInfo::clone(info)),
        }
    }

    /// Writes the socket's changed state where the socket is held.
    pub fn save(&self, sockets: &Sockets, info: &SocketInfo) -> worker::Result<()> {
        match self {
            Peer::Socket(ws) => sockets.save(ws, info),
            Peer::Shard { link, .. } => {
                Down::UpdateSocket {
                    info: Box::new(info.clone()),
                }
                .send(link);
                Ok(())
            }
        }
    }
}
