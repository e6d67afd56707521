//! Socket.IO connections in a hub: what both hubs share.
//!
//! A Socket.IO socket is a device socket whose attachment carries a [`Session`]. The UserHub
//! holds connections to a user (`hubs::user::socketio`: the user's stream, direct messages and
//! rooms relayed over the one connection); a Room holds connections to that room alone
//! (`hubs::room::socketio`: the room's own sockets, at a room socket's cost). Both go through
//! this file for what Socket.IO itself requires. The Engine.IO session in front (the open
//! packet, the heartbeat, long-polling) is the relay's (`api::lobby`): every Socket.IO socket
//! reaches its hub through one, so an idle connection never wakes its hub.
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | an admitted Socket.IO socket         | socket attachment with a [`Session`]    | —                                      |
//! | CONNECT `nsp` (+ `token`, `pid`, `offset`) | the namespace and its `pid`       | CONNECT_ERROR for a namespace not served, one past `SOCKETIO_MAX_NAMESPACES`, another user's or a bad token; else the hub's [`Host::open_namespace`] |
//! | EVENT                                | —                                       | the hub's [`Host::on_event`]            |
//! | DISCONNECT `nsp`, Engine.IO close    | the namespace removed; the hub's [`Host::ended_for_good`] | —                         |
//! | a malformed packet, a binary frame   | —                                       | `error` event `bad_frame` on the main namespace |
//!
//! A connection's own stream, broadcasts and notices travel on its main namespace alone (the
//! first it connected: `Session::main`), so a client that opens many namespaces costs what one
//! does. Final closes (revocation, removal, deletion, the socket cap) send DISCONNECT for every
//! namespace first (`Sockets::close`), so the client stops reconnecting (`io server
//! disconnect`), as socket.io's own server does.

use serde_json::{json, Value};
use worker::{Env, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::common::attachment::SocketInfo;
use super::common::dialect;
use super::common::gate::{Gate, Screened};
use super::common::object;
use super::common::sockets::Sockets;
use crate::auth::jwt::Identity;
use crate::auth::token::{self, Carrier, ExtractError};
use crate::command::Request as ClientRequest;
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::protocol::{close, code, ServerFrame};
use crate::quota::Rate;
use crate::socketio::packet::{Kind, Packet};
use crate::socketio::{engine, packet, reason, Namespace, Session};

/// What the engine uses of the object that holds the connection.
pub(super) struct Parts<'a> {
    pub sockets: &'a Sockets,
    pub gate: &'a Gate,
    pub env: &'a Env,
}

/// A namespace a client may connect, as the engine hands it to the hub.
pub(super) struct Opening<'a> {
    pub ws: &'a WebSocket,
    pub info: SocketInfo,
    pub nsp: &'a str,
    /// The recovery the CONNECT asked for: its `pid` and offset.
    pub resume: Option<(&'a str, &'a str)>,
    /// The CONNECT's `auth`, as the client sent it.
    pub auth: Option<&'a Value>,
}

/// What a hub does with its Socket.IO connections beyond what Engine.IO and Socket.IO require.
pub(super) trait Host {
    /// The object's parts the engine uses.
    fn parts(&self) -> Parts<'_>;
    /// A request of the gateway's own protocol, from a socket of either dialect's hub.
    async fn on_request(&self, ws: &WebSocket, info: SocketInfo, request: ClientRequest);
    /// The user's revocation cut-off as this hub knows it.
    fn revoked_before(&self, user: &str) -> Result<Option<i64>, ApiError>;
    /// A namespace the client may connect: record it ([`add_namespace`]), answer CONNECT
    /// ([`reply_connect`]), recovering from the [`Opening`]'s `resume` when the hub can.
    async fn open_namespace(&self, opening: Opening<'_>) -> Result<(), ApiError>;
    /// An EVENT on a connected namespace.
    async fn on_event(&self, ws: &WebSocket, info: SocketInfo, nsp: &Namespace, packet: Packet);
    /// A namespace ended (`Some`) or the whole connection (`None`): what memory holds for it goes.
    fn forget(&self, conn_id: &str, nsp: Option<&str>);
    /// A namespace (`Some`) or the connection (`None`) ended for good — by the client
    /// (DISCONNECT, Engine.IO close) or a backend (`disconnectSockets`): nothing of it is
    /// recovered later. After [`Host::forget`].
    fn ended_for_good(&self, _info: &SocketInfo, _nsp: Option<&str>) {}
    /// A namespace ended, for `reason` (`socketio::reason`): the backend may be told.
    fn disconnected(&self, _info: &SocketInfo, _nsp: &str, _reason: &str) {}
}

/// Accepts a Socket.IO socket (for one room when `room_id` is set). The Engine.IO session
/// (its open packet and heartbeat) is the relay's in front (`api::lobby`); the hub takes
/// Socket.IO packets. The caller answers the upgrade.
pub(super) fn accept(
    host: &impl Host,
    identity: &Identity,
    device: Option<String>,
    session: Session,
    carrier: Option<Carrier>,
) -> Result<WebSocketPair, ApiError> {
    let sockets = host.parts().sockets;
    let (pair, info) = sockets.accept(identity, device, Some(session), carrier)?;
    let limits = Limits::of(host.parts().env);
    sockets.enforce_cap(&info.user_id, limits.max_sockets_per_user);
    Ok(pair)
}

/// Every frame a hub's socket sends comes in here. The gate screens it (`common::gate`); a
/// request of the gateway's own protocol goes to the hub ([`Host::on_request`]), a Socket.IO
/// frame to the engine.
pub(super) async fn on_message(host: &impl Host, ws: &WebSocket, frame: WebSocketIncomingMessage) {
    let parts = host.parts();
    let limits = Limits::of(parts.env);
    match parts.gate.screen(parts.sockets, ws, frame, &limits) {
        Some(Screened::Request(info, request)) => host.on_request(ws, info, request).await,
        Some(Screened::SocketIo(info, text)) => on_frame(host, ws, info, text).await,
        None => {}
    }
}

/// A frame from a Socket.IO socket, past the gate: its text, or `None` for a binary frame
/// (Socket.IO attachments, which the gateway does not take).
async fn on_frame(host: &impl Host, ws: &WebSocket, info: SocketInfo, text: Option<String>) {
    match text {
        Some(text) => on_text(host, ws, info, &text).await,
        None => refuse_frame(ws, &info, &packet::PacketError::Binary.message()),
    }
}

/// A text frame from a Socket.IO socket.
async fn on_text(host: &impl Host, ws: &WebSocket, info: SocketInfo, text: &str) {
    match engine::parse(text) {
        Ok(engine::Packet::Pong(_) | engine::Packet::Ping(_)) => {}
        Ok(engine::Packet::Close) => {
            host.forget(&info.conn_id, None);
            host.ended_for_good(&info, None);
            for nsp in info.sio.iter().flat_map(|session| &session.namespaces) {
                host.disconnected(&info, &nsp.name, reason::TRANSPORT);
            }
            let sockets = host.parts().sockets;
            let mut ended = info;
            if let Some(session) = ended.sio.as_mut() {
                session.namespaces.clear();
            }
            let _ = sockets.save(ws, &ended);
            sockets.close(ws, close::NORMAL, "client closed");
        }
        Ok(engine::Packet::Upgrade | engine::Packet::Noop) => {}
        Ok(engine::Packet::Message(inner)) => match packet::parse(inner) {
            Ok(packet) => on_packet(host, ws, info, packet).await,
            Err(err) => refuse_frame(ws, &info, &err.message()),
        },
        Err(why) => refuse_frame(ws, &info, &why),
    }
}

async fn on_packet(host: &impl Host, ws: &WebSocket, info: SocketInfo, packet: Packet) {
    match packet.kind {
        Kind::Connect => {
            if let Err(err) = connect(host, ws, info, &packet).await {
                let data = json!({"code": err.code, "message": err.message});
                let refusal = packet::connect_error(&packet.nsp, err.code, &data);
                let _ = ws.send_with_str(engine::message(&refusal));
            }
        }
        Kind::Disconnect => end_namespace(host, ws, info, &packet.nsp, reason::CLIENT_NAMESPACE),
        Kind::Event => {
            let nsp = info
                .sio
                .as_ref()
                .and_then(|session| session.namespace(&packet.nsp))
                .cloned();
            match nsp {
                Some(nsp) => host.on_event(ws, info, &nsp, packet).await,
                None => not_connected(ws, &packet),
            }
        }
        Kind::Ack | Kind::ConnectError => {}
    }
}

/// CONNECT to a namespace: served, the same user if a token rides along; then the hub's.
async fn connect(
    host: &impl Host,
    ws: &WebSocket,
    info: SocketInfo,
    packet: &Packet,
) -> Result<(), ApiError> {
    let config = object::config(host.parts().env)?;
    if !config.namespaces.allows(&packet.nsp) {
        return Err(ApiError::new(
            404,
            "namespace_not_served",
            format!(
                "namespace '{}' is not served (SOCKETIO_NAMESPACES)",
                packet.nsp
            ),
        ));
    }
    let auth = packet.data.as_ref();
    let text = |key: &str| auth.and_then(|a| a.get(key)).and_then(Value::as_str);
    match token::from_connect_auth(auth) {
        Ok(token) => {
            let revoked_before = host.revoked_before(&info.user_id)?;
            super::common::reauth::verify_for(&token, &info.user_id, &config, revoked_before)?;
        }
        Err(ExtractError::Missing) => {}
        Err(ExtractError::Malformed(why)) => {
            return Err(ApiError::unauthorized("token_malformed", why));
        }
    }
    let Some(session) = info.sio.as_ref() else {
        return Err(ApiError::internal("not a Socket.IO socket"));
    };
    if let Some(known) = session.namespace(&packet.nsp) {
        reply_connect(ws, &packet.nsp, &info.conn_id, &known.pid);
        return Ok(());
    }
    let max = Limits::of(host.parts().env).socketio_max_namespaces;
    if session.namespaces.len() >= max {
        return Err(ApiError::bad_request(
            "too_many_namespaces",
            format!(
                "a connection connects at most {max} namespaces at once (SOCKETIO_MAX_NAMESPACES)"
            ),
        ));
    }
    let resume = text("pid").zip(text("offset"));
    host.open_namespace(Opening {
        ws,
        info,
        nsp: &packet.nsp,
        resume,
        auth,
    })
    .await
}

/// Records a connected namespace in the socket's attachment; the updated state.
pub(super) fn add_namespace(
    sockets: &Sockets,
    ws: &WebSocket,
    mut info: SocketInfo,
    namespace: Namespace,
) -> Result<SocketInfo, ApiError> {
    if let Some(session) = info.sio.as_mut() {
        session.namespaces.push(namespace);
        sockets.save(ws, &info)?;
    }
    Ok(info)
}

/// A namespace ends (the client's DISCONNECT, or a backend's `disconnectSockets`): its rooms
/// are left and forgotten for its `pid`, and the connection goes on without it.
pub(super) fn end_namespace(
    host: &impl Host,
    ws: &WebSocket,
    info: SocketInfo,
    nsp: &str,
    why: &str,
) {
    host.forget(&info.conn_id, Some(nsp));
    host.ended_for_good(&info, Some(nsp));
    if info
        .sio
        .as_ref()
        .is_some_and(|s| s.namespace(nsp).is_some())
    {
        host.disconnected(&info, nsp, why);
    }
    remove_namespace(host.parts().sockets, ws, info, nsp);
}

fn remove_namespace(sockets: &Sockets, ws: &WebSocket, mut info: SocketInfo, nsp: &str) {
    if let Some(session) = info.sio.as_mut() {
        session.namespaces.retain(|known| known.name != nsp);
        let _ = sockets.save(ws, &info);
    }
}

/// CONNECT accepted: the session id and the namespace's `pid`.
pub(super) fn reply_connect(ws: &WebSocket, nsp: &str, sid: &str, pid: &str) {
    let _ = ws.send_with_str(engine::message(&packet::connect(nsp, sid, pid)));
}

/// A fresh recovery id.
pub(super) fn new_pid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An EVENT on a namespace the socket never connected: its ack, if it asked for one, says so.
fn not_connected(ws: &WebSocket, packet: &Packet) {
    if let Some(id) = packet.id {
        let refusal = crate::socketio::error_argument(
            "not_connected",
            &format!("connect to namespace '{}' first", packet.nsp),
        );
        let ack = packet::ack(&packet.nsp, id, &refusal);
        let _ = ws.send_with_str(engine::message(&ack));
    }
}

/// A custom event: to the backend hook, once the user's send rate allows.
pub(super) async fn call_hook(
    env: &Env,
    config: &Config,
    info: &SocketInfo,
    nsp: &str,
    event: &str,
    args: &[Value],
) -> Result<Value, ApiError> {
    let Some(hook) = config.hook.as_ref() else {
        return Err(ApiError::bad_request(
            code::UNKNOWN_EVENT,
            format!("unknown event '{event}' (no EVENT_HOOK_URL is configured)"),
        ));
    };
    crate::quota::check(env, Rate::Send, &info.user_id).await?;
    let session = info.sio.as_ref();
    let mut call = crate::hook::HookCall::event(&info.user_id, &info.conn_id, nsp, event, args);
    call.data = session.and_then(|session| session.data.as_ref());
    // A backend that takes connection calls is a socket.io server: its handlers (and guards)
    // read `socket.handshake` on every event.
    let handshake = session
        .and_then(|session| session.handshake.as_ref())
        .filter(|_| hook.connections)
        .map(|handshake| json!(handshake));
    call.handshake = handshake.as_ref();
    crate::hook::call(hook, &call).await.map_err(ApiError::from)
}

/// `data.room_id`, required.
pub(super) fn room_id_of(data: &Value) -> Result<String, ApiError> {
    data.get("room_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "data.room_id is required"))
}

/// A frame that is not a packet the gateway takes: an `error` event on the main namespace (once,
/// however many the socket connected); the socket stays open.
fn refuse_frame(ws: &WebSocket, info: &SocketInfo, why: &str) {
    dialect::emit(
        ws,
        info,
        &ServerFrame::event("error", json!({"code": code::BAD_FRAME, "message": why})),
    );
}
