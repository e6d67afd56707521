//! The Worker in front of every Socket.IO connection: the Engine.IO session and the relay to
//! the hub, and the lobby where a connection without a token waits for its CONNECT.
//!
//! Every Socket.IO connection reaches its hub through a relay ([`relayed`] for a token on the
//! upgrade, [`Held`] for one without, `api::polling` for long-polling): the relay opens the
//! Engine.IO session, keeps its heartbeat (a ping every `SOCKETIO_PING_INTERVAL_MS`; the
//! client's pongs stop here), and hands every other frame and each close on. So an idle
//! connection costs its hub nothing: the hub sleeps (hibernates) until a frame or an event
//! needs it, as it does for a raw socket whose client pings. The price is a relay turn per
//! frame.
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
//! a token on the upgrade (the carrier is `connect`) and is relayed the same way, the CONNECT
//! its hub's first frame. A token on the upgrade stays the fast path to connect: nothing waits
//! for the CONNECT.
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
use crate::socketio::engine::{self, Heartbeat, Upgrades};
use crate::socketio::handshake::Handshake;
use crate::socketio::packet::Packet;

/// Where an admitted Socket.IO client's socket goes: the user's hub, or with `room_id` that
/// room, with the hub's query (`dialect=socketio`, `device`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    pub query: String,
    pub room_id: Option<String>,
    /// The client's first request, for the hub to keep (a user connection's).
    pub handshake: Option<Handshake>,
}

impl Destination {
    /// Opens the socket in its hub for `admitted`; the hub's answer as it came.
    pub async fn open(&self, env: &Env, admitted: &Admitted) -> Answer {
        match &self.room_id {
            Some(room_id) => admitted.open_room_socket(env, room_id, &self.query).await,
            None => {
                let handshake = self.handshake.as_ref();
                admitted.open_user_socket(env, &self.query, handshake).await
            }
        }
    }
}

/// A socket pair whose server end the Worker holds, the Engine.IO session opened on it (a
/// fresh `sid`, no upgrades: it is a WebSocket already).
pub fn opened(limits: &Limits) -> worker::Result<WebSocketPair> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    let sid = uuid::Uuid::new_v4().simple().to_string();
    pair.server
        .send_with_str(engine::open(&sid, Upgrades::None, limits.engine_timing()))?;
    Ok(pair)
}

/// Accepts an upgrade that carries no token, to wait for its CONNECT.
pub fn hold(call: &Call<'_>, destination: Destination) -> Answer {
    let limits = &call.config.limits;
    let pending = Pending::hold(client_address(&call.req), limits.max_pending_per_address)?;
    let pair = opened(limits)?;
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
                let limits = self.screen.limits().clone();
                relay(&server, &mut events, &hub, Some(text), &limits).await;
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

/// A client admitted with its token on the upgrade: its socket in the hub is `hub`; the Worker
/// opens the Engine.IO session and relays.
pub fn relayed(limits: &Limits, hub: WebSocket, subprotocol: bool) -> Answer {
    let pair = opened(limits)?;
    let limits = limits.clone();
    let server = pair.server;
    worker::wasm_bindgen_futures::spawn_local(async move {
        if let Ok(mut events) = server.events() {
            relay(&server, &mut events, &hub, None, &limits).await;
        }
    });
    let mut res = Response::from_websocket(pair.client)?;
    if subprotocol {
        res.headers_mut()
            .set("sec-websocket-protocol", token::SUBPROTOCOL)?;
    }
    Ok(res)
}

/// Relays frames both ways until either side closes (`first`, when given, is the hub's first
/// frame: the lobby's CONNECT), and keeps the Engine.IO heartbeat with the client itself: a
/// ping every interval, the client's pongs kept here, a client silent for the interval plus
/// the timeout closed (1000 `ping timeout`). So an idle connection never wakes its hub.
async fn relay(
    client: &WebSocket,
    from_client: &mut EventStream<'_>,
    hub: &WebSocket,
    first: Option<String>,
    limits: &Limits,
) {
    let Ok(mut from_hub) = hub.events() else {
        let _ = client.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
        return;
    };
    if first.is_some_and(|first| hub.send_with_str(first).is_err()) {
        let _ = client.close(Some(close::SERVICE_RESTART), Some("hub unreachable"));
        return;
    }
    let mut heartbeat = Heartbeat::new(
        limits.socketio_ping_interval_ms,
        limits.socketio_ping_timeout_ms,
        now_ms(),
    );
    let mut tick = Box::pin(Delay::from(heartbeat.interval()));
    loop {
        let open = match select(select(from_client.next(), from_hub.next()), tick).await {
            Either::Left((Either::Left((event, _)), rest)) => {
                tick = rest;
                from_the_client(event, client, hub, &mut heartbeat)
            }
            Either::Left((Either::Right((event, _)), rest)) => {
                tick = rest;
                pass(event, client)
            }
            Either::Right(_) => {
                tick = Box::pin(Delay::from(heartbeat.interval()));
                ping(client, hub, &heartbeat)
            }
        };
        if !open {
            return;
        }
    }
}

/// A client's event: its heartbeat answered here, anything else handed to the hub.
fn from_the_client(
    event: Option<worker::Result<WebsocketEvent>>,
    client: &WebSocket,
    hub: &WebSocket,
    heartbeat: &mut Heartbeat,
) -> bool {
    if let Some(Ok(WebsocketEvent::Message(message))) = &event {
        match message.text().as_deref().map(engine::parse) {
            Some(Ok(engine::Packet::Pong(_))) => {
                heartbeat.pong(now_ms());
                return true;
            }
            Some(Ok(engine::Packet::Ping(payload))) => {
                let _ = client.send_with_str(format!("{}{payload}", engine::PONG));
                return true;
            }
            _ => {}
        }
    }
    pass(event, hub)
}

/// The heartbeat's turn: a ping, or both sides closed when the client stopped answering.
fn ping(client: &WebSocket, hub: &WebSocket, heartbeat: &Heartbeat) -> bool {
    if heartbeat.is_dead(now_ms()) {
        let _ = client.close(Some(close::NORMAL), Some("ping timeout"));
        let _ = hub.close(Some(close::NORMAL), Some("ping timeout"));
        return false;
    }
    client.send_with_str(engine::PING).is_ok()
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
