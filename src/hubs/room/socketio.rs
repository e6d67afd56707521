//! Socket.IO connections to one room, held by the Room itself: a room's own sockets at a room
//! socket's cost (`/socket.io/?…&room_id=<id>`). A connection to the user relays every room it
//! joins through its UserHub (`user::relay`), which costs a second hop per message; this one is
//! the room socket of the gateway's protocol in Socket.IO's wire.
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | CONNECT `nsp` (checked by `hubs::socketio`) | the namespace and its `pid`       | CONNECT `{sid, pid}`, `ready`, `presence`; on recovery of the main namespace (offset = the room's seq) the missed messages and changes |
//! | EVENT `room.send`, `room.typing`, `room.read`, `room.edit`, `room.delete`, `auth` | as the room socket's `send`, `typing`, `read`, `edit`, `delete`, `auth` | the same [`Command`]s; their `ack` / `error` as the client's ack (`protocol::Reply`) |
//! | EVENT of any other name              | —                                       | to the backend hook, its answer the ack |
//! | every room event                     | —                                       | EVENT `[event, data + room_id, seq]` on the main namespace (`Sockets::fan_out`) |

use serde_json::{json, Value};
use worker::WebSocket;

use super::{entry_frame, Room};
use crate::command::{Command, Request as ClientRequest};
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::dialect;
use crate::hubs::common::object;
use crate::hubs::common::peer::Peer;
use crate::hubs::socketio::{self as shared, Host, Opening, Parts};
use crate::protocol::{code, Reply, RequestId, ServerFrame};
use crate::socketio::packet::Packet;
use crate::socketio::{Namespace, Session};
use crate::stream::plan_replay;

impl Host for Room {
    fn parts(&self) -> Parts<'_> {
        Parts {
            sockets: &self.sockets,
            gate: &self.gate,
            env: &self.env,
        }
    }

    async fn on_request(&self, ws: &WebSocket, info: SocketInfo, request: ClientRequest) {
        self.on_member_request(&Peer::Socket(ws.clone()), info, request)
            .await;
    }

    fn revoked_before(&self, user: &str) -> Result<Option<i64>, ApiError> {
        Ok(self.log().revoked_before(user)?)
    }

    async fn open_namespace(&self, opening: Opening<'_>) -> Result<(), ApiError> {
        let Opening {
            ws,
            info,
            nsp,
            resume,
            ..
        } = opening;
        let room_id = self.room_id()?.unwrap_or_default();
        let main = info.sio.as_ref().and_then(Session::main).is_none();
        let missed = match resume {
            Some((pid, _)) if !main => Some((pid.to_owned(), Vec::new())),
            Some((pid, offset)) => self
                .recover(&room_id, &info.user_id, nsp, offset)?
                .map(|texts| (pid.to_owned(), texts)),
            None => None,
        };
        let pid = match &missed {
            Some((pid, _)) => pid.clone(),
            None => shared::new_pid(),
        };
        let namespace = Namespace {
            name: nsp.to_owned(),
            pid: pid.clone(),
            has_rooms: false,
        };
        let info = shared::add_namespace(&self.sockets, ws, info, namespace)?;
        shared::reply_connect(ws, nsp, &info.conn_id, &pid);
        let log = self.log();
        let ready = json!({
            "user_id": info.user_id,
            "conn_id": info.conn_id,
            "device": info.device,
            "seq": log.last_seq()?,
            "read_seq": log.read_seq(&info.user_id)?.unwrap_or(0),
            "unread": log.unread(&info.user_id)?,
            "expires_at": info.expires_at,
        });
        let presence = json!(self.presence()?);
        for frame in [
            ServerFrame::event("ready", ready),
            ServerFrame::event("presence", presence),
        ] {
            let _ = ws.send_with_str(dialect::room_event(nsp, &room_id, &frame));
        }
        for text in missed.map(|(_, texts)| texts).unwrap_or_default() {
            let _ = ws.send_with_str(text);
        }
        Ok(())
    }

    async fn on_event(&self, ws: &WebSocket, info: SocketInfo, nsp: &Namespace, packet: Packet) {
        let Some((name, args)) = packet.event() else {
            return;
        };
        let reply = RequestId::SocketIo(Reply {
            nsp: nsp.name.clone(),
            id: packet.id,
            event: name.to_owned(),
        });
        let room_id = self.room_id().ok().flatten().unwrap_or_default();
        let mut data = args.first().cloned().unwrap_or(Value::Null);
        let event = match name {
            "room.send" => "send",
            "room.typing" => "typing",
            "room.read" => "read",
            "room.edit" => "edit",
            "room.delete" => "delete",
            "auth" => "auth",
            "room.join" | "room.leave" => {
                let answer = Err(ApiError::bad_request(
                    code::VALIDATION,
                    format!("this connection is to room '{room_id}' alone; connect without room_id to join and leave rooms"),
                ));
                answer_with(ws, &reply, answer);
                return;
            }
            _ => {
                let answer = match object::config(&self.env) {
                    Ok(config) => {
                        shared::call_hook(&self.env, &config, &info, &nsp.name, name, args).await
                    }
                    Err(err) => Err(err),
                };
                answer_with(ws, &reply, answer);
                return;
            }
        };
        if let Some(object) = data.as_object_mut() {
            match object.remove("room_id") {
                Some(Value::String(named)) if named != room_id => {
                    let answer = Err(ApiError::bad_request(
                        code::VALIDATION,
                        format!("this connection is to room '{room_id}', not '{named}'"),
                    ));
                    answer_with(ws, &reply, answer);
                    return;
                }
                _ => {}
            }
        }
        let request = ClientRequest {
            command: Command::parse(event, data),
            id: Some(reply),
        };
        self.on_member_request(&Peer::Socket(ws.clone()), info, request)
            .await;
    }

    fn forget(&self, _conn_id: &str, _nsp: Option<&str>) {}
}

impl Room {
    /// The room's entries after an offset (the room's seq), encoded for `nsp`, when they are
    /// all still kept and fit one replay batch within the member's budget: then the connection
    /// is recovered. Only the main namespace is: another one never gets the room's events.
    fn recover(
        &self,
        room_id: &str,
        user: &str,
        nsp: &str,
        offset: &str,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(since) = offset.parse::<i64>().ok().filter(|seq| *seq >= 0) else {
            return Ok(None);
        };
        let log = self.log();
        let plan = plan_replay(since, log.last_seq()?, log.pruned_through()?);
        let read = |from, through, n| {
            Ok(log
                .stream_entries(room_id, from, through, n)?
                .iter()
                .map(|entry| dialect::room_event(nsp, room_id, &entry_frame(room_id, entry)))
                .collect())
        };
        self.replays.whole(user, &Limits::of(&self.env), plan, read)
    }
}

/// Answers a request the room's own handlers do not run.
fn answer_with(ws: &WebSocket, reply: &RequestId, answer: Result<Value, ApiError>) {
    let frame = match answer {
        Ok(data) => ServerFrame::ack(reply, data),
        Err(err) => ServerFrame::error(Some(reply), err.code, &err.message),
    };
    dialect::send(ws, &frame);
}
