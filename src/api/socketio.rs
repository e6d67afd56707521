//! `GET /socket.io/`: a Socket.IO client's upgrade.
//!
//! The same checks as `GET /v1/connect` run before any Durable Object is addressed: a
//! WebSocket upgrade on Engine.IO 4 (else 400 with socket.io's own `Transport unknown` or
//! `Unsupported protocol version` body, which is also what HTTP long-polling, the client's
//! default first transport, gets), an allowed Origin (else 403), a token that verifies, the
//! connect rate (else a plain `429 rate_limited`: the client's reconnection backs off and tries
//! again, which is what a rate asks of it). An admitted client's socket goes to the user's
//! UserHub, or with `room_id` in the query to that Room, as the room's own socket (a member's
//! only, like a room socket).
//!
//! A refused token is different. An HTTP 401 on the upgrade reaches a socket.io client as a
//! bare `websocket error`, without status or body, and the client retries it forever. So the
//! Worker itself answers the handshake on a socket no Durable Object ever sees, answers each
//! namespace's first CONNECT with CONNECT_ERROR (`connect_error` whose message is the code:
//! `token_expired`, `token_invalid`, `token_revoked` and `not_a_member` come from the hubs,
//! …, with `{code, message, status}` as its `data`), which stops the client's retries, and
//! closes the socket once the client lets go, or after [`REFUSAL_LINGER_MS`]. Such a socket is
//! bounded like any other: the frame rate and `MAX_FRAME_BYTES` apply (4008 / 1009), it answers
//! at most `SOCKETIO_MAX_NAMESPACES` namespaces once each and nothing else, and it counts
//! against its address's `MAX_PENDING_PER_ADDRESS` until the client lets go of it
//! ([`super::pending`]).

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{Delay, Env, Request, Response, WebSocket, WebSocketPair, WebsocketEvent};

use super::call::{validation, Answer, Call};
use super::connect;
use super::pending::{client_address, Pending};
use crate::auth::token::{self, Carrier};
use crate::config::Limits;
use crate::error::ApiError;
use crate::http::header;
use crate::protocol::close;
use crate::ratelimit::Bucket;
use crate::socketio::{engine, packet};

/// How long a refused client's socket is held for its CONNECT packets.
pub const REFUSAL_LINGER_MS: u64 = 10_000;

pub async fn connect(call: Call<'_>) -> Answer {
    if call.query("EIO").as_deref() != Some("4") {
        return engine_error(engine::UNSUPPORTED_VERSION);
    }
    let is_upgrade = call
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if call.query("transport").as_deref() != Some("websocket") || !is_upgrade {
        return engine_error(engine::UNKNOWN_TRANSPORT);
    }
    match connect::authenticate(&call).await {
        Ok(admitted) => {
            let mut query = String::from("dialect=socketio");
            if let Some(device) = call.query("device") {
                crate::ids::validate_device_id(&device).map_err(validation)?;
                query.push_str(&format!("&device={device}"));
            }
            let opened = match call.query("room_id") {
                Some(room_id) => open_room(call.env, &admitted, &room_id, &query).await,
                None => admitted.open_user_socket(call.env, &query).await,
            };
            match opened {
                Ok(res) if matches!(res.status_code(), 401 | 403 | 404 | 429) => {
                    refuse(&call, crate::http::error_of(res).await)
                }
                Ok(res) => Ok(res),
                Err(err) if matches!(err.status, 400 | 401 | 403 | 404 | 429) => refuse(&call, err),
                Err(err) => Err(err),
            }
        }
        Err(err) if err.status == 401 => refuse(&call, err),
        Err(err) => Err(err),
    }
}

/// A connection to one room (`room_id` in the query): the room's own Socket.IO socket, admitted
/// as a room socket is (the room exists, the user is a member, the token is not revoked).
async fn open_room(
    env: &Env,
    admitted: &connect::Admitted,
    room_id: &str,
    query: &str,
) -> Result<Response, ApiError> {
    crate::ids::validate_room_id(room_id).map_err(validation)?;
    admitted.open_room_socket(env, room_id, query).await
}

/// socket.io's own answer to a request it cannot take over HTTP: 400 and a small JSON body.
fn engine_error(body: &str) -> Answer {
    let mut res = Response::ok(body)?.with_status(400);
    res.headers_mut().set("content-type", "application/json")?;
    Ok(res)
}

/// Accepts the socket only to say why the client is refused, in the client's own terms; a
/// `429 too_many_pending` instead when its address holds too many such sockets already.
fn refuse(call: &Call<'_>, err: ApiError) -> Answer {
    let limits = &call.config.limits;
    let pending = Pending::hold(client_address(&call.req), limits.max_pending_per_address)?;
    let pair = WebSocketPair::new()?;
    let server = pair.server;
    server.accept()?;
    let sid = uuid::Uuid::new_v4().simple().to_string();
    server.send_with_str(engine::open(
        &sid,
        limits.socketio_ping_interval_ms,
        limits.socketio_ping_timeout_ms,
        limits.max_frame_bytes,
    ))?;
    let code = err.code;
    let refusal = Refusal::new(err, limits.clone());
    worker::wasm_bindgen_futures::spawn_local(refusal.run(server, pending));
    let mut res = Response::from_websocket(pair.client)?;
    res.headers_mut().set(connect::REFUSAL_HEADER, code)?;
    if offered_subprotocol(&call.req) {
        res.headers_mut()
            .set("sec-websocket-protocol", token::SUBPROTOCOL)?;
    }
    Ok(res)
}

fn offered_subprotocol(req: &Request) -> bool {
    token::extract(None, header(req, "sec-websocket-protocol").as_deref(), None)
        .is_ok_and(|extracted| extracted.carrier == Carrier::Subprotocol)
}

/// A refused client's socket: what it was refused with, and what it has been answered.
struct Refusal {
    code: &'static str,
    data: Value,
    limits: Limits,
    bucket: Bucket,
    /// The namespaces answered (each once).
    answered: Vec<String>,
}

/// What a refused client's frame calls for.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send this CONNECT_ERROR.
    Answer(String),
    /// Nothing to say (not a CONNECT, or a namespace answered already).
    Ignore,
    /// Close with this code and reason: over the frame rate or size, or past the namespaces.
    Close(u16, &'static str),
}

impl Refusal {
    fn new(err: ApiError, limits: Limits) -> Self {
        let data = json!({"code": err.code, "message": err.message, "status": err.status});
        let bucket = Bucket::full(limits.rate_limit_burst, crate::clock::now_ms());
        Self {
            code: err.code,
            data,
            limits,
            bucket,
            answered: Vec::new(),
        }
    }

    /// Answers CONNECTs until the client closes, breaks a limit or the linger ends; then closes
    /// and waits for the client to let go, holding its address's count until it does.
    async fn run(mut self, server: WebSocket, pending: Pending) {
        let Ok(mut events) = server.events() else {
            return;
        };
        let mut deadline = Box::pin(Delay::from(std::time::Duration::from_millis(
            REFUSAL_LINGER_MS,
        )));
        let (code, reason) = loop {
            match select(events.next(), deadline).await {
                Either::Left((Some(Ok(WebsocketEvent::Message(message))), rest)) => {
                    deadline = rest;
                    let step = self.step(message.text().as_deref(), crate::clock::now_ms());
                    match step {
                        Step::Answer(reply) => {
                            let _ = server.send_with_str(reply);
                        }
                        Step::Ignore => {}
                        Step::Close(code, reason) => break (code, reason),
                    }
                }
                Either::Left(_) => return,
                Either::Right(_) => break (close::FORBIDDEN, self.code),
            }
        };
        let _ = server.close(Some(code), Some(reason));
        while let Some(Ok(event)) = events.next().await {
            if matches!(event, WebsocketEvent::Close(_)) {
                break;
            }
        }
        drop(pending);
    }

    /// One frame: counted against the frame rate and size like any socket's, and answered when
    /// it is the first CONNECT of its namespace.
    fn step(&mut self, text: Option<&str>, now: i64) -> Step {
        let limits = &self.limits;
        if !self
            .bucket
            .take(now, limits.rate_limit_per_second, limits.rate_limit_burst)
        {
            return Step::Close(close::RATE_LIMITED, "rate limited");
        }
        let Some(text) = text else {
            return Step::Ignore;
        };
        if text.len() > limits.max_frame_bytes {
            return Step::Close(close::TOO_BIG, "frame too big");
        }
        let Some(nsp) = connect_namespace(text) else {
            return Step::Ignore;
        };
        if self.answered.contains(&nsp) {
            return Step::Ignore;
        }
        if self.answered.len() >= limits.socketio_max_namespaces {
            return Step::Close(close::FORBIDDEN, self.code);
        }
        let reply = engine::message(&packet::connect_error(&nsp, self.code, &self.data));
        self.answered.push(nsp);
        Step::Answer(reply)
    }
}

/// The namespace of a client's CONNECT; nothing for any other packet.
fn connect_namespace(text: &str) -> Option<String> {
    let engine::Packet::Message(inner) = engine::parse(text).ok()? else {
        return None;
    };
    let packet = packet::parse(inner).ok()?;
    (packet.kind == packet::Kind::Connect).then_some(packet.nsp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(limits: Limits) -> Refusal {
        Refusal::new(ApiError::unauthorized("token_expired", "expired"), limits)
    }

    #[test]
    fn each_namespace_is_refused_once_in_its_own_terms() {
        let mut refusal = refusal(Limits::default());
        let Step::Answer(reply) = refusal.step(Some("40/chat,{\"token\":\"x\"}"), 0) else {
            panic!("no answer");
        };
        assert_eq!(
            reply,
            r#"44/chat,{"data":{"code":"token_expired","message":"expired","status":401},"message":"token_expired"}"#
        );
        assert_eq!(refusal.step(Some("40/chat,"), 0), Step::Ignore);
        assert_eq!(refusal.step(Some("3"), 0), Step::Ignore);
        assert_eq!(refusal.step(Some("42[\"x\"]"), 0), Step::Ignore);
        assert_eq!(refusal.step(None, 0), Step::Ignore);
        assert!(matches!(refusal.step(Some("40"), 0), Step::Answer(_)));
    }

    #[test]
    fn a_refused_socket_keeps_the_frame_rate_the_size_and_the_namespace_cap() {
        let limits = Limits {
            rate_limit_burst: 3,
            rate_limit_per_second: 1,
            socketio_max_namespaces: 2,
            max_frame_bytes: 1024,
            ..Limits::default()
        };
        let mut flood = refusal(limits.clone());
        for _ in 0..3 {
            assert_eq!(flood.step(Some("3"), 0), Step::Ignore);
        }
        assert_eq!(
            flood.step(Some("3"), 0),
            Step::Close(close::RATE_LIMITED, "rate limited")
        );

        let mut big = refusal(limits.clone());
        let huge = format!("40/a,{{\"x\":\"{}\"}}", "y".repeat(2000));
        assert_eq!(
            big.step(Some(&huge), 0),
            Step::Close(close::TOO_BIG, "frame too big")
        );

        let mut many = refusal(limits);
        assert!(matches!(many.step(Some("40/a,"), 0), Step::Answer(_)));
        assert!(matches!(many.step(Some("40/b,"), 0), Step::Answer(_)));
        assert_eq!(
            many.step(Some("40/c,"), 0),
            Step::Close(close::FORBIDDEN, "token_expired")
        );
    }
}
