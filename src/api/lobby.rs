//! A Socket.IO upgrade without a token: the Worker holds it until its CONNECT proves the user.
//!
//! socket.io-client sends `auth` (`io(url, {auth: {token}})`) in its CONNECT packet, once the
//! WebSocket is open, so that token cannot be checked before the upgrade. Nothing
//! unauthenticated reaches a user's Durable Object all the same: the Worker completes the
//! Engine.IO handshake itself on a socket that counts against its address
//! (`MAX_PENDING_PER_ADDRESS`, [`super::pending`]) and keeps the frame rate and size
//! ([`Screen`]), and waits at most `SOCKETIO_CONNECT_TIMEOUT_MS` (socket.io's `connectTimeout`)
//! for a CONNECT whose `auth.token`, with or without `Bearer `, verifies.
//!
//! Then the user's socket opens in their UserHub (or the room, with `room_id`) exactly as with
//! a token on the upgrade (the carrier is `connect`), and the Worker relays frames both ways for
//! the life of the connection: the hub's own Engine.IO handshake is dropped (the client has the
//! Worker's), the CONNECT is the hub's first frame, and a close on either side closes the other
//! with its code. The relay costs a Worker turn per frame and keeps the connection in the
//! Worker (it does not hibernate there; the hub behind it does): a token on the upgrade stays
//! the fast path.
//!
//! A CONNECT without a token, or whose token does not verify, or that the hub refuses (revoked,
//! over the connect rate or the socket cap, not a member) is answered CONNECT_ERROR with the
//! code, and the socket goes on as a refused one ([`Refusal`]): the client stops. A socket
//! that sends no CONNECT in time is closed 4003 `connect_timeout`.

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use worker::{Delay, Env, EventStream, Response, WebSocket, WebSocketPair, WebsocketEvent};

use super::call::{Answer, Call};
use super::connect::{self, Admitted};
use super::pending::{client_address, Pending};
use super::refusal::{close_and_let_go, Refusal, Screen, Screened};
use crate::auth::token::{self, Carrier, ExtractError, Extracted};
use crate::clock::now_ms;
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::protocol::{close, echoable_close_code};
use crate::socketio::engine::{self, Upgrades};
use crate::socketio::packet::Packet;

/// Where an admitted Socket.IO client's socket goes: the user's hub, or with `room_id` that
/// room, with the hub's query (`dialect=socketio`, `device`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    pub query: String,
    pub room_id: Option<String>,
}

impl Destination {
    /// Opens the socket in its hub for `admitted`; the hub's answer as it came.
    pub async fn open(&self, env: &Env, admitted: &Admitted) -> Answer {
        match &self.room_id {
            Some(room_id) => admitted.open_room_socket(env, room_id, &self.query).await,
            None => admitted.open_user_socket(env, &self.query).await,
        }
    }
}

/// Accepts an upgrade that carries no token, to wait for its CONNECT.
pub fn hold(call: &Call<'_>, destination: Destination) -> Answer {
    let limits = &call.config.limits;
    let pending = Pending::hold(client_address(&call.req), limits.max_pending_per_address)?;
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    pair.server.send_with_str(engine::open(
        &uuid::Uuid::new_v4().simple().to_string(),
        Upgrades::None,
        limits.socketio_ping_interval_ms,
        limits.socketio_ping_timeout_ms,
        limits.max_frame_bytes,
    ))?;
    let held = Held::new(call.env, limits, destination, call.header("origin"), None);
    worker::wasm_bindgen_futures::spawn_local(held.wait(pair.server, pending));
    let mut res = Response::from_websocket(pair.client)?;
    res.headers_mut().set(connect::LOBBY_HEADER, "1")?;
    Ok(res)
}

/// A connection waiting for its CONNECT: what it needs to be admitted, and since when it waits.
pub struct Held {
    env: Env,
    screen: Screen,
    destination: Destination,
    origin: Option<String>,
    since: i64,
    /// A token the connection's first request carried (a polling handshake's query or
    /// header): it proves the user in place of the CONNECT's `auth.token`.
    token: Option<Extracted>,
}

impl Held {
    pub fn new(
        env: &Env,
        limits: &Limits,
        destination: Destination,
        origin: Option<String>,
        token: Option<Extracted>,
    ) -> Self {
        Self {
            env: env.clone(),
            screen: Screen::new(limits.clone(), now_ms()),
            destination,
            origin,
            since: now_ms(),
            token,
        }
    }

    /// Waits on `server` (the client's socket as the lobby holds it) for the CONNECT, then
    /// relays to the hub, or refuses; `pending` counts it against its address until then.
    pub async fn wait(mut self, server: WebSocket, pending: Pending) {
        let Ok(mut events) = server.events() else {
            return;
        };
        let timeout = self.screen.limits().socketio_connect_timeout_ms;
        let mut deadline = Box::pin(Delay::from(std::time::Duration::from_millis(timeout)));
        let (text, packet) = loop {
            match select(events.next(), deadline).await {
                Either::Left((Some(Ok(WebsocketEvent::Message(message))), rest)) => {
                    deadline = rest;
                    match self.screen.frame(message.text(), now_ms()) {
                        Screened::Connect(text, packet) => break (text, packet),
                        Screened::Other => {}
                        Screened::Close(code, reason) => {
                            close_and_let_go(&server, &mut events, code, reason, pending).await;
                            return;
                        }
                    }
                }
                Either::Left(_) => return,
                Either::Right(_) => {
                    let reason = "connect_timeout";
                    close_and_let_go(&server, &mut events, close::FORBIDDEN, reason, pending).await;
                    return;
                }
            }
        };
        let carrier = self.token.as_ref().map_or(Carrier::Connect, |t| t.carrier);
        let admitted = admit(&self.env, self.token.take(), &packet, &self.destination).await;
        let refused = admitted
            .as_ref()
            .err()
            .map(|err| (101, err.code.to_owned()));
        let elapsed = now_ms() - self.since;
        connect::log_decided(
            "socketio",
            carrier.as_str(),
            self.origin.as_deref(),
            refused,
            elapsed,
        );
        match admitted {
            Ok(hub) => {
                drop(pending);
                relay(&server, &mut events, &hub, text).await;
            }
            Err(err) => {
                let mut refusal = Refusal::new(err, self.screen);
                refusal.answer(&server, &packet.nsp);
                refusal.run(&server, &mut events, pending).await;
            }
        }
    }
}

/// The token (the first request's, else the CONNECT's) verified, counted against the user's
/// connect rate, and the socket opened in its hub (accepted here, to relay).
async fn admit(
    env: &Env,
    token: Option<Extracted>,
    packet: &Packet,
    destination: &Destination,
) -> Result<WebSocket, ApiError> {
    let config = Config::shared(env).map_err(|problems| {
        ApiError::internal(format!("the gateway is misconfigured: {problems}"))
    })?;
    let extracted = match token {
        Some(extracted) => extracted,
        None => from_connect(packet)?,
    };
    let admitted = connect::admit(env, &config, extracted).await?;
    let res = destination.open(env, &admitted).await?;
    crate::hubs::stubs::accepted_socket(res).await
}

/// The token in a CONNECT's `auth`.
fn from_connect(packet: &Packet) -> Result<Extracted, ApiError> {
    let token = token::from_connect_auth(packet.data.as_ref()).map_err(|err| match err {
        ExtractError::Missing => ApiError::unauthorized(
            "token_missing",
            "send a token: auth: {token} in the client's options, Authorization: Bearer, or ?token=",
        ),
        ExtractError::Malformed(why) => ApiError::unauthorized("token_malformed", why),
    })?;
    Ok(Extracted {
        token,
        carrier: Carrier::Connect,
    })
}

/// Relays frames both ways until either side closes: the hub's handshake is dropped and the
/// client's CONNECT (`connect`) is the hub's first frame.
async fn relay(
    client: &WebSocket,
    from_client: &mut EventStream<'_>,
    hub: &WebSocket,
    connect: String,
) {
    let Ok(mut from_hub) = hub.events() else {
        let _ = client.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
        return;
    };
    if !matches!(from_hub.next().await, Some(Ok(WebsocketEvent::Message(_)))) {
        let _ = client.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
        return;
    }
    if hub.send_with_str(connect).is_err() {
        let _ = client.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
        return;
    }
    loop {
        let open = match select(from_client.next(), from_hub.next()).await {
            Either::Left((event, _)) => pass(event, hub),
            Either::Right((event, _)) => pass(event, client),
        };
        if !open {
            return;
        }
    }
}

/// Hands one event on to `to`: a frame as it came, a close with its code (false once either
/// side closed or failed).
fn pass(event: Option<worker::Result<WebsocketEvent>>, to: &WebSocket) -> bool {
    match event {
        Some(Ok(WebsocketEvent::Message(message))) => {
            let sent = match (message.text(), message.bytes()) {
                (Some(text), _) => to.send_with_str(text),
                (None, Some(bytes)) => to.send_with_bytes(bytes),
                (None, None) => Ok(()),
            };
            sent.is_ok()
        }
        Some(Ok(WebsocketEvent::Close(closed))) => {
            let code = echoable_close_code(closed.code());
            let _ = to.close(Some(code), Some(closed.reason()));
            false
        }
        _ => {
            let _ = to.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
            false
        }
    }
}
