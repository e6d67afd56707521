//! `/socket.io/`: a Socket.IO client's upgrade, or its long-polling requests.
//!
//! The same checks as `GET /v1/connect` run before any Durable Object is addressed: Engine.IO
//! 4 on a known transport (else 400 with socket.io's own `Transport unknown` or `Unsupported
//! protocol version` body), an allowed Origin (else 403), a token that verifies, the
//! connect rate (else a plain `429 rate_limited`: the client's reconnection backs off and tries
//! again, which is what a rate asks of it). An admitted client's socket goes to the user's
//! UserHub, or with `room_id` in the query to that Room, as the room's own socket (a member's
//! only, like a room socket), and the Worker relays it (`super::lobby`: it keeps the Engine.IO
//! heartbeat, so an idle connection never wakes its hub). HTTP long-polling (the client's
//! default first transport) is served by a session object per `sid` (`super::polling`).
//!
//! A refused token is different: an HTTP 401 would reach a socket.io client as a bare
//! `websocket error` it retries forever, so the Worker accepts the socket only to refuse in the
//! client's own terms (`super::refusal`). An upgrade with no token at all is held by the Worker
//! until its CONNECT packet's `auth.token` proves the user (`super::lobby`).

use worker::{Method, Request, Response};

use super::call::{validation, Answer, Call};
use super::connect;
use super::lobby::{self, Destination};
use super::pending::{client_address, Pending};
use super::refusal::{Refusal, Screen};
use crate::auth::token::{self, Carrier};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::http::header;
use crate::hubs::stubs::polling::{self, Opening, PollingCall};
use crate::socketio::engine;
use crate::socketio::handshake::{self, Handshake};

pub async fn connect(call: Call<'_>) -> Answer {
    if call.query("EIO").as_deref() != Some("4") {
        return engine_error(400, engine::UNSUPPORTED_VERSION);
    }
    let is_upgrade = call
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let sid = call.query("sid");
    match (call.query("transport").as_deref(), sid, is_upgrade) {
        (Some("websocket"), None, true) => upgrade(call).await,
        (Some("websocket"), Some(sid), true) => {
            polling::forward(call.env, &sid, PollingCall::Upgrade, None).await
        }
        (Some("polling"), None, false) if call.req.method() == Method::Get => handshake(call).await,
        (Some("polling"), Some(sid), false) => session_request(call, &sid).await,
        _ => engine_error(400, engine::UNKNOWN_TRANSPORT),
    }
}

/// A WebSocket from the start: admitted here and relayed to its hub, or held in the lobby
/// without a token.
async fn upgrade(call: Call<'_>) -> Answer {
    let destination = destination(&call)?;
    let admitted = match connect::authenticate(&call).await {
        Ok(admitted) => admitted,
        Err(err) if err.code == "token_missing" => return lobby::hold(&call, destination),
        Err(err) if err.status == 401 => return refuse(&call, err),
        Err(err) => return Err(err),
    };
    let hub = match destination.open(call.env, &admitted).await {
        Ok(res) => crate::hubs::stubs::accepted_socket(res).await,
        Err(err) => Err(err),
    };
    match hub {
        Ok(hub) => lobby::relayed(&call.config.limits, hub, admitted.subprotocol()),
        Err(err) if matches!(err.status, 400 | 401 | 403 | 404 | 429) => refuse(&call, err),
        Err(err) => Err(err),
    }
}

/// A long-polling handshake: a new session in its own object (`api::polling`), which waits
/// for the CONNECT as the lobby does. A token in the query or `Authorization` is checked then,
/// in place of the CONNECT's `auth.token`.
async fn handshake(call: Call<'_>) -> Answer {
    if !origin_allowed(&call)? {
        return engine_error(403, engine::FORBIDDEN);
    }
    let destination = destination(&call)?;
    let token = token::extract(
        call.header("authorization").as_deref(),
        None,
        call.query("token").as_deref(),
    )
    .ok();
    let opening = Opening {
        sid: uuid::Uuid::new_v4().simple().to_string(),
        query: destination.query,
        room_id: destination.room_id,
        token,
        origin: call.header("origin"),
        address: client_address(&call.req),
        handshake: destination.handshake,
    };
    plain(polling::open(call.env, &opening).await?).await
}

/// A poll or a POST of session `sid`, within `MAX_FRAME_BYTES` when its length is declared.
async fn session_request(mut call: Call<'_>, sid: &str) -> Answer {
    if !origin_allowed(&call)? {
        return engine_error(403, engine::FORBIDDEN);
    }
    if !is_sid(sid) {
        return engine_error(400, engine::SESSION_UNKNOWN);
    }
    if call.req.method() == Method::Get {
        return plain(polling::forward(call.env, sid, PollingCall::Poll, None).await?).await;
    }
    let declared = call
        .header("content-length")
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > call.config.limits.max_frame_bytes) {
        return plain(polling::forward(call.env, sid, PollingCall::TooLarge, None).await?).await;
    }
    let body = call.req.text().await?;
    plain(polling::forward(call.env, sid, PollingCall::Send, Some(body)).await?).await
}

/// Whether a page on this Origin may open a session (a request without one is not a browser's).
fn origin_allowed(call: &Call<'_>) -> Result<bool, ApiError> {
    let own = call.req.url()?.origin().ascii_serialization();
    Ok(call
        .config
        .origins
        .allows_from(call.header("origin").as_deref(), &own))
}

/// Whether `sid` is one this gateway could have issued (32 hex digits), before any object is
/// addressed by it.
fn is_sid(sid: &str) -> bool {
    sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An object's answer made the Worker's own, so that the entry can add its CORS headers.
async fn plain(mut res: Response) -> Answer {
    let status = res.status_code();
    let content_type = res
        .headers()
        .get("content-type")?
        .unwrap_or_else(|| "text/plain; charset=UTF-8".to_owned());
    let mut own = Response::ok(res.text().await?)?.with_status(status);
    own.headers_mut().set("content-type", &content_type)?;
    Ok(own)
}

/// Where the client's socket goes: `device` and `room_id` (a connection to one room, the
/// room's own Socket.IO socket, admitted as a room socket is) checked before anything else.
fn destination(call: &Call<'_>) -> Result<Destination, ApiError> {
    let mut query = String::from("dialect=socketio");
    if let Some(device) = call.query("device") {
        crate::ids::validate_device_id(&device).map_err(validation)?;
        query.push_str(&format!("&device={device}"));
    }
    let room_id = call.query("room_id");
    if let Some(room_id) = &room_id {
        crate::ids::validate_room_id(room_id).map_err(validation)?;
    }
    let handshake = match room_id {
        Some(_) => None,
        None => Some(handshake_of(&call.req)?),
    };
    Ok(Destination {
        query,
        room_id,
        handshake,
    })
}

/// The client's first request as socket.io handlers see it (`socket.handshake`).
fn handshake_of(req: &Request) -> Result<Handshake, ApiError> {
    let url = req.url()?;
    let own_origin = url.origin().ascii_serialization();
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    Ok(Handshake::of(handshake::Request {
        headers: req.headers().entries().collect(),
        query: url.query_pairs().into_owned().collect(),
        url: &path,
        address: client_address(req),
        own_origin: &own_origin,
        secure: url.scheme() == "https",
        issued: now_ms(),
    }))
}

/// socket.io's own answer to a request it cannot take: the status and a small JSON body.
fn engine_error(status: u16, body: &str) -> Answer {
    let mut res = Response::ok(body)?.with_status(status);
    res.headers_mut().set("content-type", "application/json")?;
    Ok(res)
}

/// Accepts the socket only to say why the client is refused, in the client's own terms; a
/// `429 too_many_pending` instead when its address holds too many such sockets already.
fn refuse(call: &Call<'_>, err: ApiError) -> Answer {
    let limits = &call.config.limits;
    let pending = Pending::hold(client_address(&call.req), limits.max_pending_per_address)?;
    let pair = lobby::opened(limits)?;
    let server = pair.server;
    let code = err.code;
    let refusal = Refusal::new(err, Screen::new(limits.clone(), now_ms()));
    worker::wasm_bindgen_futures::spawn_local(async move {
        if let Ok(mut events) = server.events() {
            refusal.run(&server, &mut events, pending).await;
        }
    });
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
