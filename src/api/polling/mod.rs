//! `PollingSession`: a Socket.IO client on HTTP long-polling, one object per Engine.IO session.
//!
//! socket.io-client starts on long-polling unless told otherwise, and stays there behind
//! networks that block WebSockets. Its requests are separate HTTP requests that may reach any
//! Worker isolate, so the session lives in a Durable Object named by its `sid` (a sticky
//! session without load-balancer affinity). The object holds no storage: a session lives in
//! its memory, from the handshake until it ends ([`session`]).
//!
//! | arrives (from the Worker, `hubs::stubs::polling`) | stored | sent |
//! |---------------------------------------------------|--------|------|
//! | `Open` (the handshake)  | the [`Session`]; the lobby waits for its CONNECT (`api::lobby`), counted against the client's address | the open packet, `upgrades: ["websocket"]` |
//! | `Poll` (a GET)          | held until there is something to carry, at most the ping interval | the packets, or `6`; `400` for a second held GET (the session ends) |
//! | `Send` (a POST)         | —      | each packet to the lobby (and through it the hub); `413` beyond `MAX_FRAME_BYTES` (the session ends) |
//! | `TooLarge`              | —      | `413`, the session ends: a POST the Worker refused for its declared length |
//! | `Upgrade` (a WebSocket) | the socket, after `2probe` / `5` | `3probe`; from then on everything over it |
//!
//! Nothing unauthenticated reaches a user's hub: the lobby admits the session at its CONNECT as
//! it does a WebSocket without a token, and from then on relays to the hub, where the session
//! is one Socket.IO socket among the user's (the socket cap, rates, revocation, the hook).
//! A session the object does not hold (ended, or never opened) answers `400 Session ID
//! unknown`, and the client starts again.

pub mod session;

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::future::select;
use futures_util::StreamExt;
use worker::{
    durable_object, Delay, DurableObject, Env, Request, Response, State, WebSocket, WebSocketPair,
    WebsocketEvent,
};

use self::session::{Phase, Session};
use super::lobby::{Destination, Held};
use super::pending::Pending;
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::stubs::polling::{Opening, PollingCall};
use crate::protocol::close;
use crate::socketio::engine::{self, Upgrades};
use crate::socketio::polling::{self, PayloadError};

/// The probe a client sends on the WebSocket it would move to, and the answer it waits for.
const PROBE: &str = "2probe";
const PROBE_ANSWER: &str = "3probe";

#[durable_object]
pub struct PollingSession {
    env: Env,
    session: RefCell<Option<Rc<Session>>>,
}

impl DurableObject for PollingSession {
    fn new(_state: State, env: Env) -> Self {
        Self {
            env,
            session: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let result = match PollingCall::of(&req) {
            Some(PollingCall::Open) => self.open(&mut req).await,
            Some(PollingCall::Poll) => self.poll().await,
            Some(PollingCall::Send) => self.send(&mut req).await,
            Some(PollingCall::Upgrade) => self.upgrade(),
            Some(PollingCall::TooLarge) => self.too_large(),
            None => Err(ApiError::not_found("no such polling route")),
        };
        result.or_else(|err| Ok(crate::http::error_response(&err)))
    }
}

impl PollingSession {
    fn limits(&self) -> Limits {
        Limits::of(&self.env)
    }

    /// The session, unless it ended and its client was told.
    fn current(&self) -> Option<Rc<Session>> {
        let mut slot = self.session.borrow_mut();
        if slot.as_ref().is_some_and(|session| session.is_done()) {
            *slot = None;
        }
        slot.clone()
    }

    async fn open(&self, req: &mut Request) -> Result<Response, ApiError> {
        if self.session.borrow().is_some() {
            return engine_answer(400, engine::BAD_REQUEST);
        }
        let opening: Opening = req.json().await?;
        let limits = self.limits();
        let pending = Pending::hold(opening.address.clone(), limits.max_pending_per_address)?;
        let pair = WebSocketPair::new()?;
        pair.server.accept()?;
        pair.client.accept()?;
        let destination = Destination {
            query: opening.query,
            room_id: opening.room_id,
            handshake: opening.handshake,
        };
        let held = Held::new(
            &self.env,
            &limits,
            destination,
            opening.origin,
            opening.token,
        );
        worker::wasm_bindgen_futures::spawn_local(held.wait(pair.server, pending));
        let session = Rc::new(Session::new(pair.client));
        worker::wasm_bindgen_futures::spawn_local(carry(session.clone()));
        *self.session.borrow_mut() = Some(session);
        text(
            200,
            engine::open(&opening.sid, Upgrades::WebSocket, limits.engine_timing()),
        )
    }

    async fn poll(&self) -> Result<Response, ApiError> {
        let Some(session) = self.current() else {
            return engine_answer(400, engine::SESSION_UNKNOWN);
        };
        let Some(woken) = session.hold() else {
            session.ended_by_client(close::INVALID_PAYLOAD, "a second poll while one is held");
            return engine_answer(400, engine::BAD_REQUEST);
        };
        let interval = self.limits().socketio_ping_interval_ms;
        let deadline = Delay::from(std::time::Duration::from_millis(interval));
        select(woken, deadline).await;
        text(200, session.answer())
    }

    async fn send(&self, req: &mut Request) -> Result<Response, ApiError> {
        let Some(session) = self.current() else {
            return engine_answer(400, engine::SESSION_UNKNOWN);
        };
        let body = req.text().await?;
        if session.phase() != Phase::Polling {
            return engine_answer(400, engine::BAD_REQUEST);
        }
        match polling::decode(&body, self.limits().max_frame_bytes) {
            Ok(packets) => {
                for packet in packets {
                    session.inner.send_with_str(packet)?;
                }
                let mut res = Response::ok("ok")?;
                res.headers_mut().set("content-type", "text/html")?;
                Ok(res)
            }
            Err(PayloadError::TooLarge) => self.too_large(),
            Err(PayloadError::Empty) => {
                session.ended_by_client(close::INVALID_PAYLOAD, "bad payload");
                engine_answer(400, engine::BAD_REQUEST)
            }
        }
    }

    fn too_large(&self) -> Result<Response, ApiError> {
        if let Some(session) = self.current() {
            session.ended_by_client(close::TOO_BIG, "payload too large");
        }
        engine_answer(413, engine::BAD_REQUEST)
    }

    fn upgrade(&self) -> Result<Response, ApiError> {
        let session = match self.current() {
            Some(session) if session.phase() == Phase::Polling => session,
            _ => return engine_answer(400, engine::SESSION_UNKNOWN),
        };
        let pair = WebSocketPair::new()?;
        pair.server.accept()?;
        worker::wasm_bindgen_futures::spawn_local(take_over(session, pair.server));
        Ok(Response::from_websocket(pair.client)?)
    }
}

/// Carries what the lobby (or the hub behind it) sends the client into the session, until it
/// closes.
async fn carry(session: Rc<Session>) {
    let Ok(mut events) = session.inner.events() else {
        return;
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(WebsocketEvent::Message(message)) => {
                if let Some(text) = message.text() {
                    session.deliver(text);
                }
            }
            Ok(WebsocketEvent::Close(closed)) => {
                session.ended_by_server(closed.code(), &closed.reason());
                return;
            }
            Err(_) => {
                session.ended_by_server(close::SERVICE_RESTART, "session lost");
                return;
            }
        }
    }
}

/// The client's WebSocket: answers its probe, takes the session over at its `5`, then carries
/// its frames to the lobby until either side closes.
async fn take_over(session: Rc<Session>, socket: WebSocket) {
    let Ok(mut events) = socket.events() else {
        return;
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(WebsocketEvent::Message(message)) => {
                let text = message.text();
                match (session.phase(), text.as_deref()) {
                    (Phase::Upgraded, Some(text)) => {
                        let _ = session.inner.send_with_str(text);
                    }
                    (Phase::Upgraded, None) => {
                        let _ = session
                            .inner
                            .send_with_bytes(message.bytes().unwrap_or_default());
                    }
                    (Phase::Polling, Some(PROBE)) => {
                        let _ = socket.send_with_str(PROBE_ANSWER);
                        session.probed(socket.clone());
                    }
                    (Phase::Probing, Some(engine::UPGRADE)) => session.upgraded(),
                    (Phase::Ended, _) => return,
                    _ => {}
                }
            }
            Ok(WebsocketEvent::Close(closed)) => {
                if session.phase() == Phase::Upgraded {
                    session.ended_by_client(
                        crate::protocol::echoable_close_code(closed.code()),
                        &closed.reason(),
                    );
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// A body for the client, as socket.io's server sends it.
fn text(status: u16, body: String) -> Result<Response, ApiError> {
    let mut res = Response::ok(body)?.with_status(status);
    res.headers_mut()
        .set("content-type", "text/plain; charset=UTF-8")?;
    Ok(res)
}

/// One of socket.io's own JSON errors.
fn engine_answer(status: u16, body: &str) -> Result<Response, ApiError> {
    let mut res = Response::ok(body)?.with_status(status);
    res.headers_mut().set("content-type", "application/json")?;
    Ok(res)
}
