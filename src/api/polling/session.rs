//! One Engine.IO session on HTTP long-polling, as its object holds it in memory.
//!
//! The lobby and the relay (`api::lobby`) speak to a client through a WebSocket; a polling
//! client has none. So the session makes one: a `WebSocketPair` inside the object, whose server
//! end the lobby holds exactly as it holds an upgrade without a token, and whose other end,
//! [`Session::inner`], is the client as far as this object is concerned:
//!
//! | arrives                                   | kept                         | sent                                   |
//! |-------------------------------------------|------------------------------|----------------------------------------|
//! | a frame for the client (from `inner`)     | the outbox, while polling    | the held GET's answer; over the WebSocket once upgraded |
//! | a held GET                                | the waker                    | the outbox (`\x1e`-joined), or `6` at the ping interval |
//! | a POST                                    | —                            | each packet to `inner`                 |
//! | `2probe` on the client's WebSocket        | phase `Probing`              | `3probe`; a held GET ends (`6`)        |
//! | `5` on it                                 | phase `Upgraded`             | the outbox over the WebSocket          |
//! | `inner` closed (the hub or lobby ended it)| phase `Ended`                | `1` (close) to the client              |
//! | the client's close, a broken rule         | phase `Ended`                | `inner` closed: the lobby and hub let go |
//!
//! Everything a hub promises holds because the hub sees an ordinary Socket.IO socket: each
//! POSTed packet is one frame through its gate (rate, size), its pings and the client's pongs
//! pass through, and its closes (revocation, expiry, the socket cap) end the session.

use std::cell::{Cell, RefCell};

use futures_channel::oneshot;
use worker::WebSocket;

use crate::protocol::echoable_close_code;
use crate::socketio::engine;
use crate::socketio::polling::Outbox;

/// Where a session's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Held GETs carry them.
    Polling,
    /// The client's WebSocket answered its probe: polls end at once while the client pauses.
    Probing,
    /// The client's WebSocket carries everything.
    Upgraded,
    /// Over: the outbox ends with a close packet.
    Ended,
}

pub struct Session {
    /// The client as the lobby sees it: what the lobby sends arrives here, what the client
    /// sends is sent from here.
    pub inner: WebSocket,
    outbox: RefCell<Outbox>,
    /// Wakes the held GET, while one is held.
    held: RefCell<Option<oneshot::Sender<()>>>,
    phase: Cell<Phase>,
    /// The client's WebSocket, from its probe on.
    socket: RefCell<Option<WebSocket>>,
}

impl Session {
    pub fn new(inner: WebSocket) -> Self {
        Self {
            inner,
            outbox: RefCell::new(Outbox::default()),
            held: RefCell::new(None),
            phase: Cell::new(Phase::Polling),
            socket: RefCell::new(None),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// A packet for the client.
    pub fn deliver(&self, text: String) {
        if self.phase() == Phase::Upgraded {
            if let Some(socket) = self.socket.borrow().as_ref() {
                let _ = socket.send_with_str(text);
            }
            return;
        }
        self.outbox.borrow_mut().push(text);
        self.wake();
    }

    /// The other side ended the session (`inner` closed with `code`): the client is told,
    /// unless it ended the session itself.
    pub fn ended_by_server(&self, code: u16, reason: &str) {
        let _ = self.inner.close(Some(code), Some(reason));
        if self.phase() == Phase::Ended {
            return;
        }
        if self.phase() == Phase::Upgraded {
            if let Some(socket) = self.socket.borrow().as_ref() {
                let _ = socket.close(Some(echoable_close_code(code)), Some(reason));
            }
        } else {
            self.outbox.borrow_mut().push(engine::CLOSE.to_owned());
        }
        self.phase.set(Phase::Ended);
        self.wake();
    }

    /// The client ended the session, or broke the transport's rules: the lobby and the hub
    /// behind `inner` let go.
    pub fn ended_by_client(&self, code: u16, reason: &str) {
        if self.phase() == Phase::Ended {
            return;
        }
        self.phase.set(Phase::Ended);
        let _ = self.inner.close(Some(code), Some(reason));
        if let Some(socket) = self.socket.borrow().as_ref() {
            let _ = socket.close(Some(code), Some(reason));
        }
        self.wake();
    }

    /// Holds a GET: `None` when another is held already (the client broke the transport's
    /// rules), else what wakes it. A GET with something to carry, or while the client moves to
    /// its WebSocket, is not held: the receiver is woken at once.
    pub fn hold(&self) -> Option<oneshot::Receiver<()>> {
        if self
            .held
            .borrow()
            .as_ref()
            .is_some_and(|wake| !wake.is_canceled())
        {
            return None;
        }
        let (wake, woken) = oneshot::channel();
        if self.outbox.borrow().is_empty() && self.phase() == Phase::Polling {
            *self.held.borrow_mut() = Some(wake);
        } else {
            let _ = wake.send(());
        }
        Some(woken)
    }

    /// The held GET's answer: what waits ([`Outbox::next_body`]), or a noop.
    pub fn answer(&self) -> String {
        self.held.borrow_mut().take();
        let body = self.outbox.borrow_mut().next_body();
        body.unwrap_or_else(|| engine::NOOP.to_owned())
    }

    /// Whether the session is over and the client has been told.
    pub fn is_done(&self) -> bool {
        self.phase() == Phase::Ended && self.outbox.borrow().is_empty()
    }

    /// The client's WebSocket answered its probe: a held GET ends so that the client can pause
    /// polling.
    pub fn probed(&self, socket: WebSocket) {
        *self.socket.borrow_mut() = Some(socket);
        self.phase.set(Phase::Probing);
        self.wake();
    }

    /// The client moved to its WebSocket: what waited for a poll goes there.
    pub fn upgraded(&self) {
        self.phase.set(Phase::Upgraded);
        if let Some(socket) = self.socket.borrow().as_ref() {
            for text in self.outbox.borrow_mut().take_all() {
                let _ = socket.send_with_str(text);
            }
        }
        self.wake();
    }

    fn wake(&self) {
        if let Some(wake) = self.held.borrow_mut().take() {
            let _ = wake.send(());
        }
    }
}
