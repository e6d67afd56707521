//! RoomShard: holds a large room's sockets beyond what the room's own object holds.
//!
//! A room is one object that orders and stores (seq, idempotency, the D1 copy, cursors,
//! membership) and, while it is small, holds every member socket itself. Once it holds
//! `ROOM_SHARD_SOCKETS`, the room sends each new connect to a shard (`placement`): shard 1, 2,
//! … of the room, each an object of this class named after the room and its index. A shard
//! holds sockets and delivers; it decides nothing. Every frame a socket sends goes to the room
//! over the shard's link (`common::link`), and the room answers it exactly as it answers
//! its own sockets' (`common::peer`), so membership, rates across the platform, typing throttles,
//! replay budgets and presence are the room's, once, however many shards a room has.
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                                   | stored                          | sent |
//! |-------------------------------------------|---------------------------------|------|
//! | `GET /connect` (placed by the room)        | socket attachment (paging until the room answers) | the link opened if it is not; the room's `ready`, `presence`; `resume` to the room (with the token's `iat`); 4009 beyond the cap |
//! | frame `ping`                               | —                               | `pong` |
//! | any other frame, screened (open, rate, size, JSON) | —                      | `act` to the room, which answers on the link |
//! | link: `deliver {frame, except}`            | —                               | the frame to every open socket (not `except`'s; a stream entry not to a socket paging a resume) |
//! | link: `to {conn, text}`                    | —                               | the text to that socket |
//! | link: `close` / `close_user` / `close_all` | the sockets marked closing      | close with the room's code; `count` |
//! | link: `save {info}`                        | the socket's attachment (`syncing`, expiry, role) | — |
//! | link closes or fails                       | every socket marked closing     | close 1012: clients resume from the room's stream |
//! | a socket closed here (4008, 1009, 1007, 4009, 4001, or the room's close) | the socket marked closing | `count {user, sockets, held}` to the room: it no longer counts in presence, but still toward the cap while the client holds it |
//! | socket closes                              | alarm re-planned                | `count {user, sockets, held}` to the room |
//! | alarm (token expiry)                       | —                               | `token.expired` + 4001 |
//!
//! The shard holds sockets only while its link is open. The link keeps the shard awake (an
//! outgoing socket cannot hibernate), which is the price of its order: see docs/ARCHITECTURE.md,
//! "Rooms beyond one object".

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{
    durable_object, Delay, DurableObject, Env, Request, Response, State, WebSocket,
    WebSocketIncomingMessage, WebsocketEvent,
};

use crate::clock::now_ms;
use crate::command::Command;
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::common::alarm::{Alarm, AlarmPlan};
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::dialect;
use crate::hubs::common::gate::{Gate, Screened};
use crate::hubs::common::link::{same_socket, Down, Up};
use crate::hubs::common::object::{self, upgrade_response, Answer};
use crate::hubs::common::sockets::Sockets;
use crate::hubs::stubs::room::room_of;
use crate::hubs::stubs::shard::{placed_on, ShardCall, ShardCount};
use crate::protocol::{self, close, ServerFrame};

#[durable_object]
pub struct RoomShard {
    shard: Rc<Shard>,
}

/// The shard's state, shared with the task that reads its link.
struct Shard {
    sockets: Sockets,
    env: Env,
    gate: Gate,
    alarm: Alarm,
    link: RefCell<Option<WebSocket>>,
    /// A connect is opening the link; others wait for it rather than open a second.
    linking: Cell<bool>,
}

impl DurableObject for RoomShard {
    fn new(state: State, env: Env) -> Self {
        object::observe(&env);
        object::answer_pings(&state);
        Self {
            shard: Rc::new(Shard {
                sockets: Sockets::new(state, "shard").reporting_closes(),
                env,
                gate: Gate::default(),
                alarm: Alarm::new(false),
                link: RefCell::new(None),
                linking: Cell::new(false),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match ShardCall::of(&req) {
            Some(ShardCall::Connect) => self.shard.accept(&req).await,
            Some(ShardCall::Count) => crate::http::json(
                200,
                &ShardCount {
                    sockets: self.shard.sockets.count(),
                },
            )
            .map_err(ApiError::from),
            None => Err(ApiError::not_found("no such shard route")),
        };
        result.or_else(object::error_response)
    }

    object::socket_events!(shard.sockets, shard.on_message, shard.on_socket_gone);

    async fn alarm(&self) -> worker::Result<Response> {
        let now = now_ms();
        let plan = AlarmPlan::of(&[("token_expiry", self.shard.sockets.next_expiry())]);
        self.shard.alarm.fired("shard", None, &plan, now)?;
        self.shard.sockets.expire_due(now);
        self.shard.report(Vec::new());
        self.shard.schedule_alarm().await?;
        Response::ok("")
    }
}

impl Shard {
    /// A connect the room placed here: opens the link if needed, accepts, welcomes, and asks
    /// the room for the resume batch (it comes back on the link, before anything newer).
    async fn accept(self: &Rc<Self>, req: &Request) -> Answer {
        let identity = crate::hubs::stubs::identity_of(req)?;
        let room_id = room_of(req)?;
        let (shard, welcome) = placed_on(req)?;
        let since = crate::http::query_param(req, "since").and_then(|s| s.parse::<i64>().ok());
        let device = crate::http::query_param(req, "device");
        let link = self.link(&room_id, shard).await?;

        let max = Limits::of(&self.env).max_sockets_per_user;
        self.sockets.refuse_if_held(&identity.user_id, max)?;
        let (pair, mut info) = self.sockets.accept(&identity, device, None, None)?;
        let ws = pair.server;
        self.sockets.enforce_cap(&identity.user_id, max);
        let mut ready = welcome.ready.clone();
        ready["conn_id"] = json!(info.conn_id);
        ready["device"] = json!(info.device);
        ready["expires_at"] = json!(info.expires_at);
        dialect::send(&ws, &ServerFrame::event("ready", ready));
        dialect::send(&ws, &ServerFrame::event("presence", welcome.presence));
        // Deliveries of stream entries skip the socket until the room's answer to this, which
        // carries everything after `since` (or after the seq `ready` told, for what arrived
        // while the connect travelled).
        info.syncing = true;
        self.sockets.save(&ws, &info)?;
        let told = welcome
            .ready
            .get("seq")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let resume = Up::Resume {
            info,
            since: since.unwrap_or(told).max(0),
            synced: since.is_some(),
            issued_at: identity.issued_at,
        };
        let _ = link.send_with_str(resume.text());
        self.report(Vec::new());
        self.schedule_alarm().await?;
        upgrade_response(req, pair.client)
    }

    /// The open link to the room, opened when there is none.
    async fn link(self: &Rc<Self>, room_id: &str, shard: u32) -> Result<WebSocket, ApiError> {
        loop {
            if let Some(link) = self.link.borrow().clone() {
                return Ok(link);
            }
            if !self.linking.replace(true) {
                break;
            }
            Delay::from(Duration::from_millis(5)).await;
        }
        let opened = crate::hubs::stubs::room::link(&self.env, room_id, shard).await;
        self.linking.set(false);
        let link = opened?;
        *self.link.borrow_mut() = Some(link.clone());
        worker::wasm_bindgen_futures::spawn_local(pump(Rc::clone(self), link.clone()));
        Ok(link)
    }

    /// A frame from a socket: a ping is answered here, anything else goes to the room; a
    /// socket the screening closed is reported.
    async fn on_message(
        &self,
        ws: &WebSocket,
        frame: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        self.forward(ws, frame);
        self.report(Vec::new());
        Ok(())
    }

    fn forward(&self, ws: &WebSocket, message: WebSocketIncomingMessage) {
        let limits = Limits::of(&self.env);
        // A shard holds sockets of the gateway's protocol only (`room::socketio`).
        let Some(Screened::Request(info, request)) =
            self.gate.screen(&self.sockets, ws, message, &limits)
        else {
            return;
        };
        if request.command == Command::Ping {
            let _ = ws.send_with_str(protocol::PONG);
            return;
        }
        match self.link.borrow().as_ref() {
            Some(link) => {
                let _ = link.send_with_str(Up::Act { info, request }.text());
            }
            None => self
                .sockets
                .close(ws, close::SERVICE_RESTART, "room link lost; resume"),
        }
    }

    async fn on_socket_gone(
        &self,
        _ws: &WebSocket,
        gone: Option<SocketInfo>,
    ) -> worker::Result<()> {
        if let Some(info) = gone {
            self.gate.forget(&info.conn_id);
            self.report(vec![info.user_id]);
        }
        self.schedule_alarm().await
    }

    /// Tells the room how many sockets each of `users`, and each user whose socket was closed
    /// here since the last report, has here now: open ones (presence, load) and held ones (open
    /// and closing: while the client holds any, the room sends the user's next connect here,
    /// where they count toward the socket cap).
    fn report(&self, mut users: Vec<String>) {
        users.extend(self.sockets.take_closed());
        if users.is_empty() {
            return;
        }
        users.sort_unstable();
        users.dedup();
        let link = self.link.borrow();
        let Some(link) = link.as_ref() else {
            return;
        };
        for user in users {
            let count = Up::Count {
                sockets: self.sockets.count_of(&user),
                held: self.sockets.held_of(&user),
                user,
            };
            let _ = link.send_with_str(count.text());
        }
    }

    /// What the room sent on the link.
    fn on_down(&self, down: Down) {
        match down {
            Down::Deliver {
                text,
                stream,
                except,
            } => {
                self.sockets.fan_out(&text, stream, None, except.as_deref());
            }
            Down::Answer { conn, text } => {
                if let Some((ws, _)) = self.sockets.by_conn(&conn) {
                    let _ = ws.send_with_str(text);
                }
            }
            Down::Close { conn, code, reason } => {
                if let Some((ws, _)) = self.sockets.by_conn(&conn) {
                    self.sockets.close(&ws, code, &reason);
                }
            }
            Down::CloseUser { user, code, reason } => {
                for (ws, _) in self.sockets.of_user(&user) {
                    self.sockets.close(&ws, code, &reason);
                }
            }
            Down::CloseAll { code, reason } => self.close_all(code, &reason),
            Down::UpdateSocket { info } => {
                if let Some((ws, mut held)) = self.sockets.by_conn(&info.conn_id) {
                    held.syncing = info.syncing;
                    held.expires_at = info.expires_at;
                    held.admin = info.admin;
                    let _ = self.sockets.save(&ws, &held);
                }
            }
        }
        self.report(Vec::new());
    }

    fn close_all(&self, code: u16, reason: &str) {
        for (ws, _) in self.sockets.open() {
            self.sockets.close(&ws, code, reason);
        }
    }

    /// The link is gone: without it nothing reaches these sockets in order, so they are closed
    /// and resume from the room's stream (a new connect opens a new link).
    fn link_lost(&self, link: &WebSocket) {
        let current = self.link.borrow().clone();
        if current.is_some_and(|held| same_socket(&held, link)) {
            self.link.borrow_mut().take();
            self.close_all(close::SERVICE_RESTART, "room link lost; resume");
            // No room to tell: it forgets this shard's users with the link.
            self.sockets.take_closed();
        }
    }

    async fn schedule_alarm(&self) -> worker::Result<()> {
        let wanted = self.sockets.next_expiry();
        self.alarm.plan(&self.sockets.storage(), wanted).await
    }
}

/// Applies what the room sends until the link closes.
async fn pump(shard: Rc<Shard>, link: WebSocket) {
    if let Ok(mut events) = link.events() {
        while let Some(Ok(event)) = events.next().await {
            match event {
                WebsocketEvent::Message(message) => {
                    let down = message.text().and_then(|text| Down::decode(&text));
                    match down {
                        Some(down) => shard.on_down(down),
                        None => crate::log::error("shard.link_unreadable", serde_json::Value::Null),
                    }
                }
                WebsocketEvent::Close(_) => break,
            }
        }
    }
    let _ = link.close(Some(close::NORMAL), Some("link closed"));
    shard.link_lost(&link);
    if let Err(err) = shard.schedule_alarm().await {
        crate::log::error(
            "shard.alarm_failed",
            serde_json::json!({"error": err.to_string()}),
        );
    }
}
