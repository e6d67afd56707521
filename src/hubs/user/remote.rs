//! A backend's hand on the user's Socket.IO sockets (`POST /sockets`, asked by `api::sockets`
//! for socket.io's `to(…).emit`, `socketsJoin`, `socketsLeave`, `disconnectSockets` and
//! `fetchSockets`). The Worker has found which hubs hold the sockets; this hub picks its own
//! with the [`SocketSelector`] and acts on each chosen namespace:
//!
//! | op           | stored                                   | sent                                   |
//! |--------------|------------------------------------------|----------------------------------------|
//! | `emit`       | —                                        | EVENT `[event, ...args]` on the namespace |
//! | `join`       | the `pid`'s rooms (`store::joined_rooms`) | — (the room's relay opens, as a `room.join`'s does) |
//! | `leave`      | the room forgotten for the `pid`         | — (the relay closes)                   |
//! | `disconnect` | the `pid`'s rooms forgotten              | DISCONNECT on the namespace, or with `close` on every namespace and close 4003 |
//! | `fetch`      | —                                        | — (the answer lists the sockets)       |
//! | `data`       | `socket.data` in the attachment          | —                                      |
//! | a broadcast's namespace emit (`POST /broadcast`) | —                  | EVENT `[event, ...args]` to every socket of the namespace but those `except` names |
//!
//! A call that names a socket whose namespace is being opened (the backend's `connection` call
//! under way) is held and done right after its CONNECT (`user::opening`); `fetch` is not held.
//!
//! A backend's join is the authority: the Worker has made the user a member of the room before
//! it asks (`api::sockets`), so the room admits the relay as it admits any member's.

use std::rc::Rc;

use serde_json::Value;
use worker::{Request, WebSocket};

use super::namespace::NamespaceState;
use super::relay::Join;
use super::UserHub;
use crate::error::ApiError;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::object::Answer;
use crate::hubs::socketio::end_namespace;
use crate::hubs::stubs::user::{
    NamespaceEmit, RemoteSocket, SocketOp, SocketSelector, SocketsOutcome, SocketsRequest,
};
use crate::protocol::close;
use crate::socketio::{reason, Namespace};
use crate::store::joined_rooms::JoinedRooms;

/// One chosen namespace of one socket.
struct Chosen {
    ws: WebSocket,
    info: SocketInfo,
    nsp: Namespace,
    state: Rc<NamespaceState>,
}

impl UserHub {
    /// `POST /sockets`: the operation on every chosen socket; how many it reached. A socket
    /// named by id whose namespace is being opened gets it right after its CONNECT
    /// (`user::opening`).
    pub(super) async fn sockets_call(&self, mut req: Request) -> Answer {
        let body: SocketsRequest = crate::http::read_hub_json(&mut req).await?;
        let mut outcome = SocketsOutcome {
            sockets: 0,
            found: Vec::new(),
        };
        if !matches!(body.op, SocketOp::Fetch) {
            let named = body.select.ids.iter();
            for id in named.filter(|id| body.select.matches(id, &[])) {
                if self.openings.hold(id, &body.select.namespace, &body.op) {
                    outcome.sockets += 1;
                }
            }
        }
        for socket in self.choose(&body.select) {
            outcome.sockets += 1;
            self.apply(socket, &body.op, &mut outcome).await?;
        }
        Ok(crate::http::json(200, &outcome)?)
    }

    /// The calls held while the socket's namespace `nsp` was being opened, in order, each on
    /// the socket as it is after the one before; a failed one is logged and the rest go on.
    pub(super) async fn do_held(&self, conn_id: &str, nsp: &str, held: Vec<SocketOp>) {
        let select = SocketSelector {
            namespace: nsp.to_owned(),
            ids: vec![conn_id.to_owned()],
            ..SocketSelector::default()
        };
        let mut outcome = SocketsOutcome::default();
        for op in held {
            let Some(socket) = self.choose(&select).pop() else {
                return;
            };
            if let Err(err) = self.apply(socket, &op, &mut outcome).await {
                crate::log::warn(
                    "sockets.held_failed",
                    serde_json::json!({"namespace": nsp, "code": err.code, "error": err.message}),
                );
            }
        }
    }

    async fn apply(
        &self,
        socket: Chosen,
        op: &SocketOp,
        outcome: &mut SocketsOutcome,
    ) -> Result<(), ApiError> {
        match op {
            SocketOp::Emit { event, args } => socket.state.emit_args(event, args),
            SocketOp::Join { rooms } => self.join_all(&socket, rooms).await?,
            SocketOp::Leave { rooms } => self.leave_all(&socket, rooms)?,
            SocketOp::Disconnect { close } => self.disconnect_socket(socket, *close),
            SocketOp::Fetch => outcome.found.push(describe(&socket)),
            SocketOp::Data { data } => self.set_data(socket, data.clone())?,
        }
        Ok(())
    }

    /// A backend's emit to every Socket.IO socket of a namespace, from a broadcast; how many
    /// got it.
    pub(super) fn emit_to_namespace(&self, event: &str, emitted: &NamespaceEmit) -> usize {
        let select = SocketSelector {
            namespace: emitted.namespace.clone(),
            all: true,
            except: emitted.except.clone(),
            ..SocketSelector::default()
        };
        let chosen = self.choose(&select);
        for socket in &chosen {
            socket.state.emit_args(event, &emitted.args);
        }
        chosen.len()
    }

    /// The open Socket.IO sockets connected to the selector's namespace that it chooses.
    fn choose(&self, select: &SocketSelector) -> Vec<Chosen> {
        let mut chosen = Vec::new();
        for (ws, info) in self.sockets.socketio() {
            let Some(nsp) = info
                .sio
                .as_ref()
                .and_then(|session| session.namespace(&select.namespace))
                .cloned()
            else {
                continue;
            };
            let Some(state) = self.namespace_state(&ws, &info, &nsp) else {
                continue;
            };
            if select.matches(&info.conn_id, &state.rooms()) {
                chosen.push(Chosen {
                    ws,
                    info,
                    nsp,
                    state,
                });
            }
        }
        chosen
    }

    /// Joins the socket's namespace to each room not joined yet, recorded for its recovery.
    async fn join_all(&self, socket: &Chosen, rooms: &[String]) -> Result<(), ApiError> {
        let identity = socket
            .info
            .sio
            .as_ref()
            .map(|session| session.identity.clone())
            .ok_or_else(|| ApiError::internal("not a Socket.IO socket"))?;
        for room_id in rooms {
            let join = Join {
                identity: &identity,
                device: &socket.info.device,
                room_id,
                since: None,
                ack: None,
            };
            socket.state.join(&self.env, join).await?;
            JoinedRooms::new(&self.local).add(&socket.nsp.pid, room_id, crate::clock::now_ms())?;
        }
        self.remember_rooms(&socket.ws, &socket.state);
        Ok(())
    }

    fn leave_all(&self, socket: &Chosen, rooms: &[String]) -> Result<(), ApiError> {
        for room_id in rooms {
            socket.state.leave(room_id);
            JoinedRooms::new(&self.local).remove(&socket.nsp.pid, room_id)?;
        }
        self.remember_rooms(&socket.ws, &socket.state);
        Ok(())
    }

    /// `socket.data` replaced; every later hook call carries it.
    fn set_data(&self, socket: Chosen, data: Value) -> Result<(), ApiError> {
        let mut info = socket.info;
        if let Some(session) = info.sio.as_mut() {
            session.data = Some(data).filter(|data| !data.is_null());
        }
        Ok(self.sockets.save(&socket.ws, &info)?)
    }

    /// socket.io's `disconnect(close)`: the namespace alone, or the whole connection.
    fn disconnect_socket(&self, socket: Chosen, close: bool) {
        if close {
            self.sockets
                .close(&socket.ws, close::FORBIDDEN, "disconnected by the backend");
            return;
        }
        let _ = socket.ws.send_with_str(crate::socketio::engine::message(
            &crate::socketio::packet::disconnect(&socket.nsp.name),
        ));
        end_namespace(
            self,
            &socket.ws,
            socket.info,
            &socket.nsp.name,
            reason::SERVER_NAMESPACE,
        );
    }
}

/// A socket as `fetchSockets` shows it.
fn describe(socket: &Chosen) -> RemoteSocket {
    let session = socket.info.sio.as_ref();
    RemoteSocket {
        id: socket.info.conn_id.clone(),
        user_id: socket.info.user_id.clone(),
        namespace: socket.nsp.name.clone(),
        rooms: socket.state.rooms(),
        data: session.and_then(|session| session.data.clone()),
        handshake: session.and_then(|session| session.handshake.clone()),
    }
}
