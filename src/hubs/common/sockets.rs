//! A hub's sockets: the hibernatable WebSockets it accepted, each with its [`SocketInfo`].
//!
//! The attachment is where a socket's state lives, because it survives hibernation. Reading it
//! is not cheap, though: it crosses into JavaScript, deserialises a structured clone and walks
//! the object back into Rust. Reading every socket's attachment per delivery made a message to
//! a room of 1,000 members cost 1,000 such reads before a single `send` (a third of the room's
//! time in the profiles, docs/BENCHMARKS.md).
//!
//! So a hub keeps its roster in memory: every socket's handle and state, loaded from the
//! attachments once per wake (the first time anything asks after the object starts) and kept in
//! step afterwards, because every change goes through here: a socket accepted, its state saved
//! (attachment and copy written together), closed, or gone (its close or error event). The
//! attachments stay the truth; the roster is never written where they are not. Losing it
//! (hibernation) only means reading them again.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde_json::json;
use worker::{State, Storage, WebSocket, WebSocketPair};

use super::attachment::SocketInfo;
use super::dialect;
use crate::auth::jwt::Identity;
use crate::auth::token::Carrier;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::protocol::{self, close, ServerFrame};
use crate::socketio::Session;

pub struct Sockets {
    state: State,
    /// Which kind of object holds them (`user`, `room`, `shard`), for the log.
    object: &'static str,
    /// `None` until first read after the object started (or woke from hibernation).
    roster: RefCell<Option<Vec<(WebSocket, SocketInfo)>>>,
    /// How many users have an open socket, once counted; kept in step as sockets come and go,
    /// forgotten when one is marked closing (a large room's joins and leaves ask for it each).
    users: Cell<Option<usize>>,
    /// The users whose sockets were marked closing since [`Sockets::take_closed`] last asked,
    /// when the owner wants to know ([`Sockets::reporting_closes`]: a shard tells its room).
    closed: Option<RefCell<Vec<String>>>,
}

impl Sockets {
    pub fn new(state: State, object: &'static str) -> Self {
        Self {
            state,
            object,
            roster: RefCell::new(None),
            users: Cell::new(None),
            closed: None,
        }
    }

    /// Keeps the users whose sockets this object starts closing, for [`Sockets::take_closed`].
    pub fn reporting_closes(mut self) -> Self {
        self.closed = Some(RefCell::default());
        self
    }

    /// The users (each once) whose sockets were marked closing since the last call.
    pub fn take_closed(&self) -> Vec<String> {
        let mut users = self
            .closed
            .as_ref()
            .map(|closed| std::mem::take(&mut *closed.borrow_mut()))
            .unwrap_or_default();
        users.sort_unstable();
        users.dedup();
        users
    }

    pub fn storage(&self) -> Storage {
        self.state.storage()
    }

    /// The object's state, for sockets that are not members' (`hubs::common::link`).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The open socket with this connection id.
    pub fn by_conn(&self, conn_id: &str) -> Option<(WebSocket, SocketInfo)> {
        self.with(|roster| {
            open_in(roster)
                .find(|(_, info)| info.conn_id == conn_id)
                .cloned()
        })
    }

    /// Runs `f` on the roster, loading it from the attachments first when this wake has not.
    fn with<R>(&self, f: impl FnOnce(&mut Vec<(WebSocket, SocketInfo)>) -> R) -> R {
        let mut roster = self.roster.borrow_mut();
        let roster = roster.get_or_insert_with(|| {
            self.state
                .get_websockets()
                .into_iter()
                .filter_map(|ws| SocketInfo::of(&ws).map(|info| (ws, info)))
                .collect()
        });
        f(roster)
    }

    /// Every socket that is open for business (not closing), with its state.
    pub fn open(&self) -> Vec<(WebSocket, SocketInfo)> {
        self.with(|roster| open_in(roster).cloned().collect())
    }

    /// The open Socket.IO sockets, with their state (`hubs::socketio`).
    pub fn socketio(&self) -> Vec<(WebSocket, SocketInfo)> {
        self.with(|roster| {
            open_in(roster)
                .filter(|(_, info)| info.sio.is_some())
                .cloned()
                .collect()
        })
    }

    /// The open sockets of one user.
    pub fn of_user(&self, user_id: &str) -> Vec<(WebSocket, SocketInfo)> {
        self.with(|roster| {
            open_in(roster)
                .filter(|(_, info)| info.user_id == user_id)
                .cloned()
                .collect()
        })
    }

    /// How many sockets are open.
    pub fn count(&self) -> usize {
        self.with(|roster| open_in(roster).count())
    }

    /// How many open sockets `user_id` has (no copies made: a join asks this of every socket).
    pub fn count_of(&self, user_id: &str) -> usize {
        self.with(|roster| {
            open_in(roster)
                .filter(|(_, info)| info.user_id == user_id)
                .count()
        })
    }

    /// How many sockets of `user_id` the object holds: open ones and those it is closing that
    /// the client has not let go of.
    pub fn held_of(&self, user_id: &str) -> usize {
        self.with(|roster| {
            roster
                .iter()
                .filter(|(_, info)| info.user_id == user_id)
                .count()
        })
    }

    /// How many users have an open socket.
    pub fn user_count(&self) -> usize {
        if let Some(users) = self.users.get() {
            return users;
        }
        let users = self.with(|roster| {
            open_in(roster)
                .map(|(_, info)| info.user_id.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len()
        });
        self.users.set(Some(users));
        users
    }

    /// Open sockets per user, in user order.
    pub fn per_user(&self) -> BTreeMap<String, usize> {
        self.with(|roster| {
            let mut users = BTreeMap::new();
            for (_, info) in open_in(roster) {
                *users.entry(info.user_id.clone()).or_insert(0) += 1;
            }
            users
        })
    }

    /// The soonest token expiry among the open sockets (unix ms). An expiry already past (a
    /// token accepted within the clock leeway) is due at once.
    pub fn next_expiry(&self) -> Option<i64> {
        self.with(|roster| {
            open_in(roster)
                .map(|(_, info)| info.expires_at.saturating_mul(1000))
                .min()
        })
    }

    /// Every socket in the roster, closing ones too, with its state (an operator's report).
    pub fn all(&self) -> Vec<SocketInfo> {
        self.with(|roster| roster.iter().map(|(_, info)| info.clone()).collect())
    }

    /// Accepts a new hibernatable socket for a verified identity and attaches its state
    /// (`carrier`: how its token came, when the Worker said).
    pub fn accept(
        &self,
        identity: &Identity,
        device: Option<String>,
        sio: Option<Session>,
        carrier: Option<Carrier>,
    ) -> Result<(WebSocketPair, SocketInfo), ApiError> {
        let pair = WebSocketPair::new()?;
        let info = SocketInfo {
            user_id: identity.user_id.clone(),
            conn_id: crate::ids::new_socket_id(&identity.user_id),
            device: device.unwrap_or_else(|| format!("d-{}", uuid::Uuid::new_v4().simple())),
            expires_at: identity.expires_at,
            closing: false,
            syncing: false,
            opened_at: now_ms(),
            admin: identity.is_admin(),
            sio,
            carrier,
        };
        // Inside `with`: the roster is loaded before the new socket exists, so it is added once.
        self.with(|roster| {
            self.state.accept_web_socket(&pair.server);
            pair.server.serialize_attachment(&info)?;
            self.user_came(roster, &info.user_id);
            roster.push((pair.server.clone(), info.clone()));
            Ok::<_, ApiError>(())
        })?;
        self.log_opened(&info);
        Ok((pair, info))
    }

    /// `socket.opened` (debug): who, which socket, which protocol.
    fn log_opened(&self, info: &SocketInfo) {
        if !crate::log::enabled(crate::log::Level::Debug) {
            return;
        }
        crate::log::debug(
            "socket.opened",
            json!({
                "object": self.object,
                "user_id": info.user_id,
                "conn_id": info.conn_id,
                "device": info.device,
                "protocol": if info.sio.is_some() { "socketio" } else { "switchboard" },
            }),
        );
    }

    /// `socket.closed` (debug) for a socket whose close event arrived: its code and reason as
    /// the client sent them, and how long it was open. Counted by close code.
    pub fn log_closed(&self, gone: Option<&SocketInfo>, code: usize, reason: &str) {
        let Some(info) = gone else {
            return;
        };
        let seconds = (now_ms() - info.opened_at).max(0) / 1000;
        let label = code.to_string();
        crate::metrics::record(
            crate::metrics::Point::new(crate::metrics::Kind::Close, &label).value(seconds as f64),
        );
        if !crate::log::enabled(crate::log::Level::Debug) {
            return;
        }
        crate::log::debug(
            "socket.closed",
            json!({
                "object": self.object,
                "user_id": info.user_id,
                "conn_id": info.conn_id,
                "code": code,
                "reason": protocol::close_reason(reason),
                "seconds": seconds,
            }),
        );
    }

    /// Writes a socket's changed state to its attachment and to the roster.
    pub fn save(&self, ws: &WebSocket, info: &SocketInfo) -> worker::Result<()> {
        ws.serialize_attachment(info)?;
        self.with(|roster| {
            if let Some((_, copy)) = roster
                .iter_mut()
                .find(|(_, copy)| copy.conn_id == info.conn_id)
            {
                if copy.closing != info.closing {
                    self.users.set(None);
                }
                *copy = info.clone();
            }
        });
        Ok(())
    }

    /// A socket's close or error event: it leaves the roster; its last state, if it had one.
    pub fn gone(&self, ws: &WebSocket) -> Option<SocketInfo> {
        let info = SocketInfo::of(ws)?;
        self.with(|roster| {
            let was_open = open_in(roster).any(|(_, copy)| copy.conn_id == info.conn_id);
            roster.retain(|(_, copy)| copy.conn_id != info.conn_id);
            if was_open {
                self.user_went(roster, &info.user_id);
            }
        });
        Some(info)
    }

    /// Keeps the user count in step with a socket of `user_id` about to join the roster.
    fn user_came(&self, roster: &[(WebSocket, SocketInfo)], user_id: &str) {
        if let Some(users) = self.users.get() {
            if !open_in(roster).any(|(_, info)| info.user_id == user_id) {
                self.users.set(Some(users + 1));
            }
        }
    }

    /// Keeps the user count in step with an open socket of `user_id` gone from the roster.
    fn user_went(&self, roster: &[(WebSocket, SocketInfo)], user_id: &str) {
        if let Some(users) = self.users.get() {
            if !open_in(roster).any(|(_, info)| info.user_id == user_id) {
                self.users.set(Some(users.saturating_sub(1)));
            }
        }
    }

    /// Sends a frame to every open socket, except those of `except_user` and, for a stream
    /// entry (`stream`), those still paging a resume (their next batch carries it); returns how
    /// many. `text` is the frame as the gateway's protocol writes it, rendered once by the
    /// caller for every socket (a room's shards get the same text). A room's own Socket.IO
    /// sockets get `frame` as an EVENT on their main namespace (`dialect::room_event`); a
    /// UserHub's are the UserHub's to serve (`user::socketio`: their offsets are per connection).
    pub fn fan_out(
        &self,
        text: &str,
        stream: bool,
        frame: Option<&ServerFrame<'_>>,
        except_user: Option<&str>,
    ) -> usize {
        let mut packets: Vec<(String, String)> = Vec::new();
        let shared = dialect::SharedText::new(text);
        self.with(|roster| {
            let mut sent = 0;
            let emitted = frame.and_then(|frame| frame.emitted.as_ref());
            for (ws, info) in open_in(roster) {
                if Some(info.user_id.as_str()) == except_user || (stream && info.syncing) {
                    continue;
                }
                if emitted.is_some_and(|emitted| emitted.skips(&info.conn_id, &[])) {
                    continue;
                }
                match (&info.sio, frame) {
                    (None, _) => shared.send(ws),
                    (Some(session), Some(frame)) => {
                        let (Some(room_id), Some(nsp)) = (&session.room_id, session.main()) else {
                            continue;
                        };
                        let packet = match packets.iter().find(|(name, _)| *name == nsp.name) {
                            Some((_, packet)) => packet,
                            None => {
                                let packet = dialect::room_event(&nsp.name, room_id, frame);
                                packets.push((nsp.name.clone(), packet));
                                &packets[packets.len() - 1].1
                            }
                        };
                        let _ = ws.send_with_str(packet);
                    }
                    (Some(_), None) => continue,
                }
                sent += 1;
            }
            sent
        })
    }

    /// Starts closing a socket from the server side. Its state is marked first, so nothing the
    /// client sends afterwards is processed, whether or not it ever answers the close.
    /// A Socket.IO client is sent DISCONNECT first when the close is final (removed, revoked,
    /// room deleted, over the socket cap): told `io server disconnect`, it does not reconnect.
    pub fn close(&self, ws: &WebSocket, code: u16, reason: &str) {
        if let Some(info) = self.mark_closing(ws) {
            self.log_closing(&info, code);
            if let Some(closed) = &self.closed {
                closed.borrow_mut().push(info.user_id.clone());
            }
            if matches!(
                code,
                close::FORBIDDEN | close::ROOM_DELETED | close::TOO_MANY_SOCKETS
            ) {
                dialect::farewell(ws, &info);
            }
        }
        let _ = ws.close(Some(code), Some(protocol::close_reason(reason)));
    }

    /// A close the gateway starts: `limit.hit` (warn) when a per-socket limit made it, else
    /// `socket.closing` (debug).
    fn log_closing(&self, info: &SocketInfo, code: u16) {
        let limit = match code {
            close::RATE_LIMITED => Some("frame_rate"),
            close::TOO_BIG => Some("frame_size"),
            close::TOO_MANY_SOCKETS => Some("socket_cap"),
            _ => None,
        };
        let fields = json!({
            "object": self.object,
            "user_id": info.user_id,
            "conn_id": info.conn_id,
            "code": code,
            "limit": limit,
        });
        match limit {
            Some(limit) => {
                crate::metrics::record(crate::metrics::Point::new(
                    crate::metrics::Kind::Limit,
                    limit,
                ));
                crate::log::warn("limit.hit", fields);
            }
            None => crate::log::debug("socket.closing", fields),
        }
    }

    /// Marks a socket closing; its state, unless it was closing already.
    fn mark_closing(&self, ws: &WebSocket) -> Option<SocketInfo> {
        let mut info = SocketInfo::of(ws).filter(|info| !info.closing)?;
        info.closing = true;
        let _ = self.save(ws, &info);
        Some(info)
    }

    /// Tells a socket its token expired and closes it with 4001.
    pub fn expire(&self, ws: &WebSocket, info: &SocketInfo) {
        let frame = ServerFrame::event("token.expired", json!({"expires_at": info.expires_at}));
        dialect::emit(ws, info, &frame);
        self.close(ws, close::TOKEN_EXPIRED, "token expired");
    }

    /// Closes every open socket whose token has expired by `now_ms` (the alarm's).
    pub fn expire_due(&self, now_ms: i64) {
        for (ws, info) in self.open() {
            if info.is_expired(now_ms) {
                self.expire(&ws, &info);
            }
        }
    }

    /// How many sockets of `user_id` the hub has closed that the client has not let go of.
    fn closing_of(&self, user_id: &str) -> usize {
        self.with(|roster| {
            roster
                .iter()
                .filter(|(_, info)| info.closing && info.user_id == user_id)
                .count()
        })
    }

    /// Refuses a new socket of `user_id` while `max` of their sockets are closing and not let
    /// go: a socket the hub closed still holds a connection until the client answers the close,
    /// and the runtime offers no way to drop it, so a client that never answers would otherwise
    /// hold any number of them.
    pub fn refuse_if_held(&self, user_id: &str, max: usize) -> Result<(), ApiError> {
        let closing = self.closing_of(user_id);
        if closing >= max {
            return Err(ApiError::new(
                429,
                "too_many_sockets",
                format!(
                    "{closing} sockets of this user were closed and never let go; answer their close frames before connecting again"
                ),
            ));
        }
        Ok(())
    }

    /// Closes the oldest open sockets of `user_id` with 4009 so that their open and closing
    /// sockets together are at most `max` (the newest stays: `admit` left room for it); returns
    /// how many.
    pub fn enforce_cap(&self, user_id: &str, max: usize) -> usize {
        let mut mine = self.of_user(user_id);
        let allowed = max.saturating_sub(self.closing_of(user_id)).max(1);
        if mine.len() <= allowed {
            return 0;
        }
        mine.sort_by_key(|(_, info)| info.opened_at);
        let extra = mine.len() - allowed;
        for (ws, _) in mine.iter().take(extra) {
            self.close(
                ws,
                close::TOO_MANY_SOCKETS,
                "too many sockets for this user: the oldest was closed",
            );
        }
        extra
    }
}

/// The sockets of a roster that are open for business: not closing.
fn open_in(roster: &[(WebSocket, SocketInfo)]) -> impl Iterator<Item = &(WebSocket, SocketInfo)> {
    roster.iter().filter(|(_, info)| !info.closing)
}
