//! `GET /socket.io/`: a Socket.IO client's upgrade.
//!
//! The same checks as `GET /v1/connect` run before any Durable Object is addressed: a
//! WebSocket upgrade on Engine.IO 4 (else 400 with socket.io's own `Transport unknown` or
//! `Unsupported protocol version` body, which is also what HTTP long-polling, the client's
//! default first transport, gets), an allowed Origin (else 403), a token that verifies, the
//! connect rate. An admitted client's socket goes to the user's UserHub, or with `room_id` in
//! the query to that Room, as the room's own socket (a member's only, like a room socket).
//!
//! A refused token is different. An HTTP 401 on the upgrade reaches a socket.io client as a
//! bare `websocket error`, without status or body, and the client retries it forever. So the
//! Worker itself answers the handshake on a socket no Durable Object ever sees, answers each
//! namespace CONNECT with CONNECT_ERROR (`connect_error` whose message is the code:
//! `token_expired`, `token_invalid`, `token_revoked` and `not_a_member` come from the hubs,
//! `rate_limited`, …,
//! with `{code, message}` as its `data`), which stops the client's retries, and closes the
//! socket once the client lets go, or after [`REFUSAL_LINGER_MS`].

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::json;
use worker::{Delay, Env, Request, Response, WebSocket, WebSocketPair, WebsocketEvent};

use super::connect;
use crate::auth::token::{self, Carrier};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::{header, query_param};
use crate::socketio::{engine, packet};

/// How long a refused client's socket is held for its CONNECT packets.
pub const REFUSAL_LINGER_MS: u64 = 10_000;

pub async fn connect(req: Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    if query_param(&req, "EIO").as_deref() != Some("4") {
        return engine_error(engine::UNSUPPORTED_VERSION);
    }
    let is_upgrade = header(&req, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if query_param(&req, "transport").as_deref() != Some("websocket") || !is_upgrade {
        return engine_error(engine::UNKNOWN_TRANSPORT);
    }
    match connect::admit(&req, env, config).await {
        Ok(admitted) => {
            let mut path = String::from("/connect?dialect=socketio");
            if let Some(device) = query_param(&req, "device") {
                crate::ids::validate_device_id(&device)
                    .map_err(|why| ApiError::bad_request("validation", why))?;
                path.push_str(&format!("&device={device}"));
            }
            let opened = match query_param(&req, "room_id") {
                Some(room_id) => open_room(env, &admitted, &room_id, &path).await,
                None => {
                    let stub = crate::hubs::user::stub(env, &admitted.identity.user_id)?;
                    let upgrade = connect::upgrade_request(&path, &admitted)?;
                    crate::http::call_hub(&stub, upgrade).await
                }
            };
            match opened {
                Ok(res) if matches!(res.status_code(), 401 | 403 | 404 | 429) => {
                    refuse(&req, crate::http::error_of(res).await, config)
                }
                Ok(res) => Ok(res),
                Err(err) if matches!(err.status, 400 | 401 | 403 | 404 | 429) => {
                    refuse(&req, err, config)
                }
                Err(err) => Err(err),
            }
        }
        Err(err) if err.status == 401 || err.status == 429 => refuse(&req, err, config),
        Err(err) => Err(err),
    }
}

/// A connection to one room (`room_id` in the query): the room's own Socket.IO socket, admitted
/// as a room socket is (the room exists, the user is a member, the token is not revoked).
async fn open_room(
    env: &Env,
    admitted: &connect::Admitted,
    room_id: &str,
    path: &str,
) -> Result<Response, ApiError> {
    crate::ids::validate_room_id(room_id)
        .map_err(|why| ApiError::bad_request("validation", why))?;
    let subprotocol = admitted.carrier == Carrier::Subprotocol;
    crate::hubs::room::open_socket(env, &admitted.identity, room_id, path, subprotocol).await
}

/// socket.io's own answer to a request it cannot take over HTTP: 400 and a small JSON body.
fn engine_error(body: &str) -> Result<Response, ApiError> {
    let mut res = Response::ok(body)?.with_status(400);
    res.headers_mut().set("content-type", "application/json")?;
    Ok(res)
}

/// Accepts the socket only to say why the client is refused, in the client's own terms.
fn refuse(req: &Request, err: ApiError, config: &Config) -> Result<Response, ApiError> {
    let pair = WebSocketPair::new()?;
    let server = pair.server;
    server.accept()?;
    let sid = uuid::Uuid::new_v4().simple().to_string();
    let limits = &config.limits;
    server.send_with_str(engine::open(
        &sid,
        limits.socketio_ping_interval_ms,
        limits.socketio_ping_timeout_ms,
        limits.max_frame_bytes,
    ))?;
    let code = err.code;
    worker::wasm_bindgen_futures::spawn_local(answer_connects(server, err));
    let mut res = Response::from_websocket(pair.client)?;
    res.headers_mut().set(connect::REFUSAL_HEADER, code)?;
    if offered_subprotocol(req) {
        res.headers_mut()
            .set("sec-websocket-protocol", token::SUBPROTOCOL)?;
    }
    Ok(res)
}

fn offered_subprotocol(req: &Request) -> bool {
    token::extract(None, header(req, "sec-websocket-protocol").as_deref(), None)
        .is_ok_and(|extracted| extracted.carrier == Carrier::Subprotocol)
}

/// Answers every CONNECT with CONNECT_ERROR until the client closes or the linger ends.
async fn answer_connects(server: WebSocket, err: ApiError) {
    let data = json!({"code": err.code, "message": err.message, "status": err.status});
    if let Ok(mut events) = server.events() {
        let mut deadline = Box::pin(Delay::from(std::time::Duration::from_millis(
            REFUSAL_LINGER_MS,
        )));
        while let Either::Left((Some(Ok(WebsocketEvent::Message(message))), rest)) =
            select(events.next(), deadline).await
        {
            deadline = rest;
            let reply = message
                .text()
                .and_then(|text| refusal_for(&text, err.code, &data));
            if let Some(reply) = reply {
                let _ = server.send_with_str(reply);
            }
        }
    }
    let _ = server.close(Some(4003), Some(err.code));
}

/// The CONNECT_ERROR for a client's CONNECT; nothing for any other packet.
fn refusal_for(text: &str, code: &str, data: &serde_json::Value) -> Option<String> {
    let engine::Packet::Message(inner) = engine::parse(text).ok()? else {
        return None;
    };
    let packet = packet::parse(inner).ok()?;
    (packet.kind == packet::Kind::Connect)
        .then(|| engine::message(&packet::connect_error(&packet.nsp, code, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connect_is_refused_in_its_namespace() {
        let data = json!({"code": "token_expired"});
        assert_eq!(
            refusal_for("40/chat,{\"token\":\"x\"}", "token_expired", &data).as_deref(),
            Some(r#"44/chat,{"data":{"code":"token_expired"},"message":"token_expired"}"#)
        );
        assert!(refusal_for("3", "token_expired", &data).is_none());
        assert!(refusal_for("42[\"x\"]", "token_expired", &data).is_none());
    }
}
