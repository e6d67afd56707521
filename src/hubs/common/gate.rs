//! The gate every incoming frame passes, in either dialect, before a hub looks at it.
//!
//! In order: the socket's state present and not closing (else the frame is dropped unread),
//! its token not expired (4001), within its frame rate (4008), within `MAX_FRAME_BYTES` (1009),
//! valid UTF-8 (1007; see `close::INVALID_PAYLOAD`). Then a frame of the gateway's own protocol
//! is read into a [`Request`] (else `bad_frame`); a Socket.IO socket's goes to the engine
//! (`hubs::socketio`), which reads its packets.
//!
//! Rate-limit buckets live in memory by connection id (`ratelimit`).

use std::cell::RefCell;
use std::collections::HashMap;

use worker::{WebSocket, WebSocketIncomingMessage};

use super::attachment::SocketInfo;
use super::dialect;
use super::sockets::Sockets;
use crate::clock::now_ms;
use crate::command::Request;
use crate::config::Limits;
use crate::protocol::{close, code, ServerFrame};
use crate::ratelimit::Bucket;

/// Per socket, its frame allowance.
#[derive(Default)]
pub struct Gate {
    buckets: RefCell<HashMap<String, Bucket>>,
}

/// A frame that passed the gate.
pub enum Screened {
    /// A request of the gateway's own protocol, read.
    Request(SocketInfo, Request),
    /// A Socket.IO socket's frame for the engine: its text, or `None` for a binary frame.
    SocketIo(SocketInfo, Option<String>),
}

impl Gate {
    /// Screens a frame ([the checks](self)); `None` when it stops here (dropped, closed, or
    /// answered `bad_frame`).
    pub fn screen(
        &self,
        sockets: &Sockets,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
        limits: &Limits,
    ) -> Option<Screened> {
        let (info, text) = self.pass(sockets, ws, message, limits)?;
        if info.sio.is_some() {
            return Some(Screened::SocketIo(info, text));
        }
        let Some(text) = text else {
            let why = "binary frames are not supported; send JSON text";
            dialect::send(ws, &ServerFrame::error(None, code::BAD_FRAME, why));
            return None;
        };
        match Request::parse(&text) {
            Ok(request) => Some(Screened::Request(info, request)),
            Err(err) => {
                let frame = ServerFrame::error(err.id.as_ref(), code::BAD_FRAME, &err.message);
                dialect::send(ws, &frame);
                None
            }
        }
    }

    /// The checks every frame passes, whatever the socket's dialect; the socket's state and the
    /// frame's text (`None`: binary).
    fn pass(
        &self,
        sockets: &Sockets,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
        limits: &Limits,
    ) -> Option<(SocketInfo, Option<String>)> {
        let Some(info) = SocketInfo::of(ws) else {
            sockets.close(ws, close::NORMAL, "socket state lost; reconnect");
            return None;
        };
        if info.closing {
            return None;
        }
        let now = now_ms();
        if info.is_expired(now) {
            sockets.expire(ws, &info);
            return None;
        }
        if !self.allow(&info.conn_id, now, limits) {
            sockets.close(ws, close::RATE_LIMITED, "rate limited");
            return None;
        }
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(_) => return Some((info, None)),
        };
        if text.len() > limits.max_frame_bytes {
            sockets.close(ws, close::TOO_BIG, "frame too big");
            return None;
        }
        if text.contains(char::REPLACEMENT_CHARACTER) {
            sockets.close(ws, close::INVALID_PAYLOAD, "frame is not valid UTF-8");
            return None;
        }
        Some((info, Some(text)))
    }

    /// Takes a token from the socket's bucket; false when it is over its allowance.
    fn allow(&self, conn_id: &str, now: i64, limits: &Limits) -> bool {
        let (burst, per_second) = (limits.rate_limit_burst, limits.rate_limit_per_second);
        self.buckets
            .borrow_mut()
            .entry(conn_id.to_owned())
            .or_insert_with(|| Bucket::full(burst, now))
            .take(now, per_second, burst)
    }

    /// The socket is gone: its allowance too.
    pub fn forget(&self, conn_id: &str) {
        self.buckets.borrow_mut().remove(conn_id);
    }
}
