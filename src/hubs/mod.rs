//! The Durable Objects: [`user::UserHub`] (one per user: device sockets and the user's event
//! stream) and [`room::Room`] (one per room: member sockets and the room's message stream). This
//! module holds what both need: the per-socket attachment, the checks every incoming frame
//! passes, token refresh and expiry, and small helpers to answer frames.
//!
//! Nothing authoritative lives only in memory: a hub may hibernate between any two events, so
//! per-socket state is in the socket attachment and everything else in storage.

pub mod room;
pub mod user;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Env, Request, Response, Storage, WebSocket, WebSocketIncomingMessage};

use crate::auth::jwt::Identity;
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::protocol::{self, close, code, ClientFrame, RequestId, ServerFrame};
use crate::ratelimit::Bucket;

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

/// The verified identity the Worker put on a connect request.
pub fn identity_of(req: &Request) -> Result<Identity, ApiError> {
    crate::http::header(req, IDENTITY_HEADER)
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .ok_or_else(|| ApiError::unauthorized("token_missing", "no verified identity"))
}

/// The configuration, read once per hub instance.
pub fn config<'a>(cell: &'a OnceCell<Config>, env: &Env) -> Result<&'a Config, ApiError> {
    if let Some(config) = cell.get() {
        return Ok(config);
    }
    let config = Config::from_env(env).map_err(|err| {
        worker::console_error!("configuration: {err}");
        ApiError::internal("the gateway is misconfigured")
    })?;
    Ok(cell.get_or_init(|| config))
}

/// The configured limits; the defaults if the configuration cannot be read (a hub must still
/// close expired sockets and run its alarm).
pub fn limits(cell: &OnceCell<Config>, env: &Env) -> Limits {
    config(cell, env)
        .map(|config| config.limits.clone())
        .unwrap_or_default()
}

/// Answers a close the client started, as the hibernation API requires (1005/1006 may not be
/// echoed and become 1000).
pub fn reciprocate_close(ws: &WebSocket, code: usize) {
    let code = u16::try_from(code).unwrap_or(close::NORMAL);
    let _ = ws.close(Some(protocol::echoable_close_code(code)), Some(""));
}

/// The checks every incoming frame passes before a hub looks at its event: socket state
/// present, token not expired (4001), within the rate limit (4008), text (else `bad_frame`),
/// within the size limit (1009), and a well-formed frame (else `bad_frame`).
///
/// Rate-limit buckets live in memory by connection id; see `ratelimit`.
#[derive(Default)]
pub struct Gate {
    buckets: RefCell<HashMap<String, Bucket>>,
}

impl Gate {
    pub fn screen(
        &self,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
        limits: &Limits,
    ) -> Option<(SocketInfo, ClientFrame)> {
        let Some(info) = SocketInfo::of(ws) else {
            let _ = ws.close(Some(close::NORMAL), Some("socket state lost; reconnect"));
            return None;
        };
        let now = now_ms();
        if info.is_expired(now) {
            expire(ws, &info);
            return None;
        }
        if !self.allow(&info.conn_id, now, limits) {
            let _ = ws.close(Some(close::RATE_LIMITED), Some("rate limited"));
            return None;
        }
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(_) => {
                send_error(
                    ws,
                    None,
                    code::BAD_FRAME,
                    "binary frames are not supported; send JSON text",
                );
                return None;
            }
        };
        if text.len() > limits.max_frame_bytes {
            let _ = ws.close(Some(close::TOO_BIG), Some("frame too big"));
            return None;
        }
        match protocol::parse_client_frame(&text) {
            Ok(frame) => Some((info, frame)),
            Err(err) => {
                send_error(ws, err.id.as_ref(), code::BAD_FRAME, &err.message);
                None
            }
        }
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

    pub fn forget(&self, conn_id: &str) {
        self.buckets.borrow_mut().remove(conn_id);
    }
}

/// `auth {token}`: extends a socket's life with a fresh token for the same user.
pub fn refresh_token(
    ws: &WebSocket,
    mut info: SocketInfo,
    frame: &ClientFrame,
    config: &Config,
) -> Result<(), ApiError> {
    let token = frame
        .data
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "auth needs data.token"))?;
    let identity = config
        .verifier
        .verify(token, chrono::Utc::now())
        .map_err(|err| ApiError::unauthorized(err.code(), err.message()))?;
    if identity.user_id != info.user_id {
        return Err(ApiError::forbidden(
            code::FORBIDDEN,
            "the token is for another user",
        ));
    }
    info.expires_at = identity.expires_at;
    ws.serialize_attachment(&info)?;
    send_ack(
        ws,
        frame.id.as_ref(),
        json!({"expires_at": info.expires_at}),
    );
    Ok(())
}

/// Tells a socket its token expired and closes it with 4001.
pub fn expire(ws: &WebSocket, info: &SocketInfo) {
    send(
        ws,
        &ServerFrame::event("token.expired", json!({"expires_at": info.expires_at})),
    );
    let _ = ws.close(Some(close::TOKEN_EXPIRED), Some("token expired"));
}

/// Closes every socket whose token has expired.
pub fn expire_sockets(sockets: &[WebSocket], now_ms: i64) {
    for ws in sockets {
        if let Some(info) = SocketInfo::of(ws) {
            if info.is_expired(now_ms) {
                expire(ws, &info);
            }
        }
    }
}

/// The soonest future token expiry among these sockets (unix ms).
pub fn next_expiry(sockets: &[WebSocket], now_ms: i64) -> Option<i64> {
    sockets
        .iter()
        .filter_map(SocketInfo::of)
        .map(|info| info.expires_at * 1000)
        .filter(|at| *at > now_ms)
        .min()
}

/// Moves the alarm earlier to `wanted` (unix ms) if it is not already due by then.
pub async fn alarm_by(storage: &Storage, wanted: i64) -> worker::Result<()> {
    match storage.get_alarm().await? {
        Some(current) if current <= wanted => Ok(()),
        // An i64 would be read as an offset from now; the alarm is an absolute time.
        _ => match chrono::DateTime::from_timestamp_millis(wanted) {
            Some(at) => storage.set_alarm(at).await,
            None => Ok(()),
        },
    }
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

/// The 101 answer that hands the client end of a new socket back through the Worker.
pub fn upgrade_response(req: &Request, client: WebSocket) -> Result<Response, ApiError> {
    let headers = worker::Headers::new();
    if crate::http::header(req, SUBPROTOCOL_HEADER).is_some() {
        headers.set("sec-websocket-protocol", crate::auth::token::SUBPROTOCOL)?;
    }
    Ok(worker::ResponseBuilder::new()
        .with_status(101)
        .with_headers(headers)
        .with_websocket(client)
        .empty())
}
