//! The Durable Objects: [`user::UserHub`] (one per user: device sockets and the user's event
//! stream), [`room::Room`] (one per room: member sockets and the room's message stream) and
//! [`directory::Directory`] (one per shard of who is online, for broadcasts), with
//! the calls that reach them from outside (`user::push`, `room::call`, …) and [`direct`], the
//! direct-message operation that both the REST API and a UserHub run. This module holds what
//! both hubs need: the per-socket attachment and its in-memory roster with every change to a
//! socket's state, token refresh included ([`sockets`]), the checks every incoming frame passes,
//! token expiry, and small helpers to answer frames.
//!
//! Nothing authoritative lives only in memory: a hub may hibernate between any two events, so
//! per-socket state is in the socket attachment and everything else in storage. What is in
//! memory (the roster, rate buckets, the alarm last set) is a copy or may be lost.

pub mod direct;
pub mod directory;
pub mod inspect;
pub mod notifier;
pub mod peer;
pub mod relay;
pub mod replay;
pub mod room;
pub mod room_copy;
pub mod room_shard;
pub mod room_socketio;
pub mod room_sockets;
pub mod shard_link;
pub mod socketio;
pub mod sockets;
pub mod user;
pub mod user_socketio;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Env, Request, Response, Storage, WebSocket, WebSocketIncomingMessage};

pub use peer::Peer;
pub use sockets::Sockets;

use crate::auth::jwt::Identity;
use crate::auth::token::Carrier;
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::protocol::{self, close, code, ClientFrame, RequestId, ServerFrame};
use crate::ratelimit::Bucket;
use crate::socketio::{self as sio, Session};
use crate::store::local::Local;

/// Per-socket state, kept in the hibernatable socket's attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SocketInfo {
    pub user_id: String,
    pub conn_id: String,
    pub device: String,
    /// Unix seconds at which the socket's token expires.
    pub expires_at: i64,
    /// Set when the server starts closing the socket: from then on it is not open for anything
    /// (no frame it sends is processed, nothing is delivered to it, it is not counted), even if
    /// the client never answers the close.
    #[serde(default)]
    pub closing: bool,
    /// Set while the client is paging through a resume (`synced` said `more:true`): live stream
    /// entries are not sent to it then, the next batch carries them, so it sees the stream in
    /// order with no gap and no duplicate.
    #[serde(default)]
    pub syncing: bool,
    /// Unix ms when the socket was accepted (the oldest goes first when a user has too many).
    #[serde(default)]
    pub opened_at: i64,
    /// The token has the `admin` role (a room socket's `delete` may then delete any message).
    #[serde(default)]
    pub admin: bool,
    /// Present on a Socket.IO connection (`hubs::socketio`): its wire is Engine.IO packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sio: Option<Session>,
    /// How the client sent its token, when the Worker said ([`CARRIER_HEADER`]; user sockets):
    /// an operator's report shows it. Absent in attachments made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<Carrier>,
}

impl SocketInfo {
    pub fn of(ws: &WebSocket) -> Option<SocketInfo> {
        ws.deserialize_attachment().ok().flatten()
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at.saturating_mul(1000)
    }
}

/// The request header the Worker uses to hand a verified identity to a hub.
pub const IDENTITY_HEADER: &str = "x-switchboard-identity";
/// Set by the Worker when the client offered the `bearer` subprotocol.
pub const SUBPROTOCOL_HEADER: &str = "x-switchboard-subprotocol";
/// Set by the Worker on a user connect: how the token came (`header`, `subprotocol`, `query`).
pub const CARRIER_HEADER: &str = "x-switchboard-carrier";

/// How a connect's token came, as the Worker said ([`CARRIER_HEADER`]); `None` when it did not.
pub fn carrier_of(req: &Request) -> Option<Carrier> {
    crate::http::header(req, CARRIER_HEADER).and_then(|name| Carrier::parse(&name))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The verified identity the Worker put on a connect request.
pub fn identity_of(req: &Request) -> Result<Identity, ApiError> {
    crate::http::header(req, IDENTITY_HEADER)
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .ok_or_else(|| ApiError::unauthorized("token_missing", "no verified identity"))
}

/// The isolate's configuration ([`Config::shared`]).
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    Config::shared(env).map_err(|err| {
        crate::log::error("config.invalid", json!({"problems": err.0}));
        ApiError::internal("the gateway is misconfigured")
    })
}

/// The configured limits; the defaults if the configuration cannot be read (a hub must still
/// close expired sockets and run its alarm).
pub fn limits(env: &Env) -> Limits {
    config(env)
        .map(|config| config.limits.clone())
        .unwrap_or_default()
}

/// The checks every incoming frame passes before a hub looks at its event: socket state
/// present and not closing (else the frame is dropped), token not expired (4001), within the
/// rate limit (4008), text (else `bad_frame`), within the size limit (1009), valid UTF-8 (1007;
/// see `close::INVALID_PAYLOAD`), and a well-formed frame (else `bad_frame`).
///
/// Rate-limit buckets live in memory by connection id; see `ratelimit`.
#[derive(Default)]
pub struct Gate {
    buckets: RefCell<HashMap<String, Bucket>>,
}

/// What [`Gate::admit`] lets through: a text frame from an open socket, or a binary one.
pub enum Admitted {
    Text(SocketInfo, String),
    Binary(SocketInfo),
}

impl Gate {
    /// The gateway protocol's checks: [`Gate::admit`], then the frame parsed.
    pub fn screen(
        &self,
        sockets: &Sockets,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
        limits: &Limits,
    ) -> Option<(SocketInfo, ClientFrame)> {
        parse_admitted(ws, self.admit(sockets, ws, message, limits)?)
    }

    /// The checks every frame passes, whatever the socket's protocol: state present and not
    /// closing, token not expired, within the rate limit, within the size limit, valid UTF-8.
    pub fn admit(
        &self,
        sockets: &Sockets,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
        limits: &Limits,
    ) -> Option<Admitted> {
        let Some(info) = SocketInfo::of(ws) else {
            sockets.close(ws, close::NORMAL, "socket state lost; reconnect");
            return None;
        };
        if info.closing {
            return None;
        }
        let now = now_ms();
        if info.is_expired(now) {
            expire(sockets, ws, &info);
            return None;
        }
        if !self.allow(&info.conn_id, now, limits) {
            sockets.close(ws, close::RATE_LIMITED, "rate limited");
            return None;
        }
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(_) => return Some(Admitted::Binary(info)),
        };
        if text.len() > limits.max_frame_bytes {
            sockets.close(ws, close::TOO_BIG, "frame too big");
            return None;
        }
        if text.contains(char::REPLACEMENT_CHARACTER) {
            sockets.close(ws, close::INVALID_PAYLOAD, "frame is not valid UTF-8");
            return None;
        }
        Some(Admitted::Text(info, text))
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

/// Parses an admitted frame of the gateway's own protocol; a binary or malformed one is
/// answered with `bad_frame`.
pub fn parse_admitted(ws: &WebSocket, admitted: Admitted) -> Option<(SocketInfo, ClientFrame)> {
    let (info, text) = match admitted {
        Admitted::Text(info, text) => (info, text),
        Admitted::Binary(_) => {
            send_error(
                ws,
                None,
                code::BAD_FRAME,
                "binary frames are not supported; send JSON text",
            );
            return None;
        }
    };
    match protocol::parse_client_frame(&text) {
        Ok(frame) => Some((info, frame)),
        Err(err) => {
            send_error(ws, err.id.as_ref(), code::BAD_FRAME, &err.message);
            None
        }
    }
}

/// Tells a socket its token expired and closes it with 4001.
pub fn expire(sockets: &Sockets, ws: &WebSocket, info: &SocketInfo) {
    emit(
        ws,
        info,
        &ServerFrame::event("token.expired", json!({"expires_at": info.expires_at})),
    );
    sockets.close(ws, close::TOKEN_EXPIRED, "token expired");
}

/// Closes every open socket whose token has expired.
pub fn expire_sockets(sockets: &Sockets, now_ms: i64) {
    for (ws, info) in sockets.open() {
        if info.is_expired(now_ms) {
            expire(sockets, &ws, &info);
        }
    }
}

/// A hub's alarm, set to exactly the time of the next piece of work, or deleted when there is
/// none: a hub never wakes for a reason that went away. The last value set is remembered so
/// that an unchanged plan costs no storage call.
pub struct Alarm {
    /// `Some(x)`: the alarm is known to be `x` (unix ms, or none). `None`: unknown.
    known: Cell<Option<Option<i64>>>,
}

impl Alarm {
    /// Storage just created has no alarm, so its first plan need not ask (a first connect's
    /// storage read); otherwise the first plan reads what is set.
    pub fn new(new_storage: bool) -> Self {
        Self {
            known: Cell::new(new_storage.then_some(None)),
        }
    }

    /// Called at the start of the alarm handler: the alarm that fired is no longer set.
    pub fn fired(&self) {
        self.known.set(Some(None));
    }

    pub async fn plan(&self, storage: &Storage, wanted: Option<i64>) -> worker::Result<()> {
        let current = match self.known.get() {
            Some(current) => current,
            None => storage.get_alarm().await?,
        };
        if current != wanted {
            match wanted {
                // An i64 would be read as an offset from now; the alarm is an absolute time.
                Some(at) => match chrono::DateTime::from_timestamp_millis(at) {
                    Some(at) => storage.set_alarm(at).await?,
                    None => return Ok(()),
                },
                None => storage.delete_alarm().await?,
            }
        }
        self.known.set(Some(wanted));
        Ok(())
    }
}

/// The pieces of work a hub's alarm waits for, each named, with its time: the alarm is set to
/// the earliest, and an operator's report lists them all (why the alarm is set).
pub struct AlarmPlan(Vec<(&'static str, i64)>);

impl AlarmPlan {
    /// The reasons that exist now (`None`: no such work).
    pub fn of(reasons: &[(&'static str, Option<i64>)]) -> Self {
        Self(
            reasons
                .iter()
                .filter_map(|(reason, at)| at.map(|at| (*reason, at)))
                .collect(),
        )
    }

    /// The reasons due at `now`.
    pub fn due(&self, now: i64) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(reason, _)| *reason)
            .collect()
    }

    /// When the alarm must fire: the earliest reason's time, or never.
    pub fn earliest(&self) -> Option<i64> {
        self.0.iter().map(|(_, at)| *at).min()
    }

    /// `[{"reason","at"}]`, soonest first.
    pub fn reasons(&self) -> Value {
        let mut reasons = self.0.clone();
        reasons.sort_by_key(|(_, at)| *at);
        reasons
            .into_iter()
            .map(|(reason, at)| json!({"reason": reason, "at": at}))
            .collect()
    }
}

/// A hub's alarm as an operator sees it: when it is set to fire, how often it has, and why it is
/// set (`plan`, worked out now from what is stored).
pub async fn alarm_view(
    local: &Local,
    sockets: &Sockets,
    plan: &AlarmPlan,
) -> worker::Result<Value> {
    Ok(json!({
        "at": sockets.storage().get_alarm().await?,
        "wakes": local.meta(WAKES_KEY)?.unwrap_or(0),
        "reasons": plan.reasons(),
    }))
}

/// Counts a hub's alarm wakes in its `meta` table (read by the development route
/// `GET /dev/hubs/...`, so tests can prove that a hub does not wake for nothing).
/// What every Durable Object does as it is constructed: read the log level and find the metrics
/// binding, once per isolate.
pub fn observe(env: &Env) {
    crate::log::init(env);
    crate::metrics::init(env);
}

/// Logs an alarm wake (`alarm`, with the reasons of `plan` due now) and counts it.
pub fn log_wake(object: &'static str, plan: &AlarmPlan, now: i64) {
    crate::metrics::record(crate::metrics::Point::new(
        crate::metrics::Kind::Alarm,
        object,
    ));
    crate::log::info("alarm", json!({"object": object, "reasons": plan.due(now)}));
}

pub fn count_wake(local: &Local) -> worker::Result<()> {
    count(local, WAKES_KEY)
}

/// Counts one D1 copy batch, for the same report (a room copies to D1; a UserHub never does).
pub fn count_d1_batch(local: &Local) -> worker::Result<()> {
    count(local, D1_BATCHES_KEY)
}

/// D1 copy batches a room has made ([`count_d1_batch`]).
pub fn d1_batches(local: &Local) -> worker::Result<i64> {
    Ok(local.meta(D1_BATCHES_KEY)?.unwrap_or(0))
}

fn count(local: &Local, key: &str) -> worker::Result<()> {
    let n = local.meta(key)?.unwrap_or(0);
    local.set_meta(key, n + 1)
}

const WAKES_KEY: &str = "alarm_wakes";
const D1_BATCHES_KEY: &str = "d1_batches";

/// What the development route reports about a hub's alarm.
pub async fn alarm_report(local: &Local, sockets: &Sockets) -> Result<Response, ApiError> {
    let report = json!({
        "alarm_at": sockets.storage().get_alarm().await?,
        "alarm_wakes": local.meta(WAKES_KEY)?.unwrap_or(0),
        "d1_batches": local.meta(D1_BATCHES_KEY)?.unwrap_or(0),
        "open_sockets": sockets.count(),
    });
    Ok(crate::http::json(200, &report)?)
}

/// Sends a frame; a socket that is already closing simply misses it.
pub fn send(ws: &WebSocket, frame: &ServerFrame<'_>) {
    let text = frame.to_text();
    if !text.is_empty() {
        let _ = ws.send_with_str(text);
    }
}

/// Sends an event in the socket's own protocol: on a Socket.IO connection, on its main
/// namespace ([`Session::main`]; without a recovery offset: see `hubs::socketio` for stream
/// events), and nothing before one is connected.
pub fn emit(ws: &WebSocket, info: &SocketInfo, frame: &ServerFrame<'_>) {
    match &info.sio {
        None => send(ws, frame),
        Some(session) => {
            if let Some(nsp) = session.main() {
                let packet = sio::packet::event(&nsp.name, frame.event, &frame.data, None);
                let _ = ws.send_with_str(sio::engine::message(&packet));
            }
        }
    }
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

/// The request a hub receives to open a socket: an upgrade carrying the verified identity (and
/// whether the client offered the `bearer` subprotocol, which the answer must then select).
pub fn upgrade_request(
    path: &str,
    identity: &Identity,
    subprotocol: bool,
    headers: worker::Headers,
) -> Result<Request, ApiError> {
    headers.set("upgrade", "websocket")?;
    let identity =
        serde_json::to_string(identity).map_err(|e| ApiError::internal(e.to_string()))?;
    headers.set(IDENTITY_HEADER, &identity)?;
    if subprotocol {
        headers.set(SUBPROTOCOL_HEADER, crate::auth::token::SUBPROTOCOL)?;
    }
    Ok(crate::http::hub_request(
        worker::Method::Get,
        path,
        headers,
        None,
    )?)
}

/// The socket a room handed back to this object (a relay, a shard's link), accepted; a refusal
/// is the room's error.
pub async fn accepted_socket(res: Response) -> Result<WebSocket, ApiError> {
    if res.status_code() != 101 {
        return Err(crate::http::error_of(res).await);
    }
    let ws = res
        .websocket()
        .ok_or_else(|| ApiError::internal("the room answered without a socket"))?;
    ws.accept()?;
    Ok(ws)
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
