//! The Room's sockets: where each is held, and who is present.
//!
//! A room holds its first `ROOM_SHARD_SOCKETS` member sockets itself; past that, each new connect
//! goes to a shard (`placement`, `room::shard`), which reaches the room over its link
//! (`hubs::common::link`) and whose sockets the room answers as its own (`hubs::common::peer`).
//! This file is that half of the Room: accepting, placing, fanning out to both kinds, closing a
//! user's sockets wherever they are, and the one view of presence over all of them. What orders and
//! stores is `hubs::room`; the D1 copy and activity notes are `hubs::room::copy`.
//!
//! What arrives, what is stored, what is sent:
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | `GET /connect`, placed here (`placement`) | socket attachment | `ready`, `presence`; with `since`: a replay batch, `synced`; `user.joined` on a user's first socket; 4009 beyond the cap |
//! | `GET /connect` otherwise             | the user's shard and socket count (`store::room_shards`), before the shard answers | the connect handed to the shard with what the socket is told on open; `user.joined` as above |
//! | `GET /link` (a shard)                | the link socket                          | from then on every frame for the shard's sockets, in order |
//! | link: `act {info, text}`             | as for a frame from a socket here        | the answer to that socket through the link    |
//! | link: `resume {since, synced, issued_at}` | —                                   | the socket's replay batch and `synced` (after its `ready` without a `since`); 4003 if removed or revoked meanwhile |
//! | link: `count {user, sockets, held}`  | the user's open socket count; the row forgotten once the shard holds none | `user.left` when it was their last open one |
//! | link closes                          | the shard's users forgotten              | `user.left` for each                          |
//! | `GET /shards` (Worker; `GET /stats` too) | —                                    | the objects holding the room's sockets, each asked for its count |
//! | a join or leave with `ROOM_PRESENCE_BATCH_USERS` present | noted in memory      | one `presence.changed {joined, left, count}` per second (alarm), not `user.joined` / `user.left` |
//! | socket closes                        | alarm re-planned                         | `user.left` on a user's last socket           |
//!
//! One user's sockets are all in one place (here, or one shard), so a user's socket cap, the
//! closes of a removal and presence per user need no coordination between shards.

use serde_json::{json, Value};
use worker::{Request, WebSocket, WebSocketIncomingMessage};

use super::{entry_frame, Room};
use crate::auth::jwt::Identity;
use crate::clock::now_ms;
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::dialect;
use crate::hubs::common::link::{Down, LinkInfo, Up};
use crate::hubs::common::object::upgrade_response;
use crate::hubs::common::object::Answer;
use crate::hubs::common::peer::Peer;
use crate::hubs::stubs::room::{revoked_before_of, RoomPresence};
use crate::hubs::stubs::shard::{self, Welcome};
use crate::protocol::{close, code, ServerFrame};
use crate::socketio::Session;
use crate::store::room_shards::RoomShards;

/// The sockets of a [`Room::shard_counts`], all objects together.
pub(super) fn total_sockets(shards: &[Value]) -> u64 {
    shards
        .iter()
        .filter_map(|shard| shard["sockets"].as_u64())
        .sum()
}

impl Room {
    /// A shard opens its link (`common::link`).
    pub(super) fn accept_link(&self, req: &Request) -> Answer {
        let shard = crate::http::query_param(req, "shard")
            .and_then(|raw| raw.parse::<u32>().ok())
            .filter(|shard| *shard > 0)
            .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "shard must be 1 or more"))?;
        let pair = self.links.accept(&self.sockets, shard)?;
        upgrade_response(req, pair.client)
    }

    /// What a shard sends on its link.
    pub(super) async fn on_link(
        &self,
        ws: &WebSocket,
        link: LinkInfo,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        let WebSocketIncomingMessage::String(text) = message else {
            return Ok(());
        };
        let up: Up = match serde_json::from_str(&text) {
            Ok(up) => up,
            Err(err) => {
                crate::log::error(
                    "shard.link_unreadable",
                    json!({"shard": link.shard, "error": err.to_string()}),
                );
                return Ok(());
            }
        };
        match up {
            Up::Act { info, request } => {
                let peer = Peer::Shard {
                    link: ws.clone(),
                    info: Box::new(info.clone()),
                };
                self.on_member_request(&peer, info, request).await;
            }
            Up::Resume {
                info,
                since,
                synced,
                issued_at,
            } => {
                let peer = Peer::Shard {
                    link: ws.clone(),
                    info: Box::new(info.clone()),
                };
                if let Some(reason) = self.refused_since_placed(&info.user_id, issued_at)? {
                    peer.close(&self.sockets, close::FORBIDDEN, reason);
                    return Ok(());
                }
                if let Err(err) = self.resume_remote(&peer, &info, since, synced) {
                    peer.error(None, err.code, &err.message);
                }
            }
            Up::Count {
                user,
                sockets,
                held,
            } => {
                let shards = RoomShards::new(&self.local);
                if shards.set(&user, link.shard, sockets as i64, held as i64)? {
                    self.after_last_socket(&user)?;
                    self.schedule_alarm().await?;
                }
            }
        }
        Ok(())
    }

    /// Why a socket a shard just accepted may not stay open, if it may not: the room checked
    /// membership and revocation before it placed the connect, but a removal or a revocation
    /// that landed while the connect travelled to the shard closed the user's sockets before
    /// this one existed there. The shard's `resume` is the room's first word of the socket, and
    /// anything the room sends after it reaches the socket.
    fn refused_since_placed(
        &self,
        user: &str,
        issued_at: Option<i64>,
    ) -> worker::Result<Option<&'static str>> {
        let log = self.log();
        if !log.is_member(user)? {
            return Ok(Some("removed from the room"));
        }
        if crate::auth::revocation::is_revoked(issued_at, log.revoked_before(user)?) {
            return Ok(Some("token revoked"));
        }
        Ok(None)
    }

    /// The first batch of a resume for a socket a shard just accepted (`since` the client's,
    /// or the `ready` seq it was told when it gave none: then no `synced`, only what it missed
    /// while the connect travelled).
    pub(super) fn resume_remote(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        since: i64,
        synced: bool,
    ) -> Result<(), ApiError> {
        let room_id = self.room_id()?.unwrap_or_default();
        if synced {
            return self.replay(peer, &room_id, &info.user_id, since);
        }
        let log = self.log();
        let last = log.last_seq()?;
        if since < last {
            for entry in log.stream_entries(&room_id, since + 1, last, last - since)? {
                peer.send(&entry_frame(&room_id, &entry));
            }
        }
        let mut info = info.clone();
        info.syncing = false;
        Ok(peer.save(&self.sockets, &info)?)
    }

    /// A link closed: its shard holds no socket any more, so its users are gone unless they
    /// are here too.
    pub(super) async fn on_link_gone(&self, link: &LinkInfo) -> worker::Result<()> {
        if !self.links.gone(&self.sockets, link) {
            return Ok(());
        }
        for user in RoomShards::new(&self.local).drop_shard(link.shard)? {
            self.after_last_socket(&user)?;
        }
        Ok(())
    }

    /// `GET /shards`: the objects holding the room's sockets and how many each holds (the
    /// shards asked, so the numbers are theirs).
    pub(super) async fn shards(&self, room_id: &str) -> Answer {
        let shards = self.shard_counts(room_id).await?;
        let answer = json!({
            "room_id": room_id,
            "shard_sockets": Limits::of(&self.env).room_shard_sockets,
            "sockets": total_sockets(&shards),
            "shards": shards,
        });
        Ok(crate::http::json(200, &answer)?)
    }

    /// Each object holding the room's sockets (`{shard, sockets, users}`, shard 0 this one),
    /// every shard asked for its own count. `GET /shards` and `GET /stats` show it.
    pub(super) async fn shard_counts(&self, room_id: &str) -> Result<Vec<Value>, ApiError> {
        let loads = RoomShards::new(&self.local).loads()?;
        let mut shards = vec![json!({
            "shard": 0,
            "sockets": self.sockets.count(),
            "users": self.sockets.per_user().len(),
        })];
        for shard in self.links.shards(&self.sockets) {
            let count = shard::count(&self.env, room_id, shard).await?;
            let users = loads
                .iter()
                .find(|load| load.shard == shard)
                .map_or(0, |load| load.users);
            shards.push(json!({"shard": shard, "sockets": count.sockets, "users": users}));
        }
        Ok(shards)
    }

    /// Accepts a member's socket. The Worker has checked membership and revocation in D1; the
    /// room checks its own state too, after any wait: a member removed or a token revoked a
    /// moment ago (D1 may not say so yet) is refused, and a member it has not heard of is
    /// learnt from D1 unless the room has seen them removed.
    pub(super) async fn accept_member(&self, req: &Request, room_id: &str) -> Answer {
        let identity = crate::hubs::stubs::identity_of(req)?;
        let user_id = identity.user_id.clone();
        self.admit_member(room_id, &user_id).await?;
        let log = self.log();
        let told = revoked_before_of(req);
        let known = log.revoked_before(&user_id)?;
        if told > known {
            log.revoke(&user_id, told.unwrap_or_default())?;
        }
        crate::auth::revocation::check(&identity, told.max(known))?;
        let since = crate::http::query_param(req, "since").and_then(|s| s.parse::<i64>().ok());
        let device = crate::http::query_param(req, "device");

        if crate::http::query_param(req, "dialect").as_deref() == Some("socketio") {
            self.sockets
                .refuse_if_held(&user_id, Limits::of(&self.env).max_sockets_per_user)?;
            let mut session = Session::new(identity.clone());
            session.room_id = Some(room_id.into());
            let pair = crate::hubs::socketio::accept(self, &identity, device, session, None)?;
            self.announce_join(&user_id)?;
            self.schedule_alarm().await?;
            return upgrade_response(req, pair.client);
        }
        let shard = self.place(&user_id)?;
        if shard > 0 {
            return self.connect_on_shard(req, room_id, &identity, shard).await;
        }
        self.sockets
            .refuse_if_held(&user_id, Limits::of(&self.env).max_sockets_per_user)?;
        let (pair, info) = self.sockets.accept(&identity, device, None, None)?;
        let ws = pair.server;
        self.sockets
            .enforce_cap(&user_id, Limits::of(&self.env).max_sockets_per_user);
        let ready = json!({
            "room_id": room_id,
            "user_id": user_id,
            "conn_id": info.conn_id,
            "device": info.device,
            "seq": log.last_seq()?,
            "read_seq": log.read_seq(&user_id)?.unwrap_or(0),
            "unread": log.unread(&user_id)?,
            "expires_at": info.expires_at,
        });
        dialect::send(&ws, &ServerFrame::event("ready", ready));
        dialect::send(
            &ws,
            &ServerFrame::event("presence", self.presence_on_open()?),
        );
        if let Some(since) = since {
            self.replay(&Peer::Socket(ws), room_id, &user_id, since.max(0))?;
        }
        self.announce_join(&user_id)?;
        self.schedule_alarm().await?;
        upgrade_response(req, pair.client)
    }

    /// Which object takes `user`'s new socket (`placement`): 0 for this one. Sockets of the
    /// user the gateway closed and the client holds on to keep the user where they are, so
    /// they count toward the user's cap ("Closing sockets count").
    pub(super) fn place(&self, user: &str) -> Result<u32, ApiError> {
        let cap = Limits::of(&self.env).room_shard_sockets;
        let here = self.sockets.count();
        let user_here = self.sockets.held_of(user) > 0;
        let shards = RoomShards::new(&self.local);
        let user_shard = shards.of(user)?.map(|(shard, _)| shard);
        let load = |shard| shards.load(shard).unwrap_or(0);
        Ok(crate::placement::place(here, user_here, user_shard, load, cap).shard)
    }

    /// Hands a connect to shard `shard` with what the socket is told on open. The socket is
    /// counted there before the shard answers, so the user's next connect follows it; a refusal
    /// takes it back (and the row, if this connect made it).
    pub(super) async fn connect_on_shard(
        &self,
        req: &Request,
        room_id: &str,
        identity: &Identity,
        shard: u32,
    ) -> Answer {
        let user_id = &identity.user_id;
        let shards = RoomShards::new(&self.local);
        let made = shards.of(user_id)?.is_none();
        shards.add(user_id, shard)?;
        let welcome = self.welcome(room_id, user_id)?;
        let query = req.url()?.query().map(str::to_owned).unwrap_or_default();
        let subprotocol = crate::hubs::stubs::offered_subprotocol(req);
        let handed = shard::connect(
            &self.env,
            room_id,
            shard,
            identity,
            &query,
            subprotocol,
            &welcome,
        );
        match handed.await {
            Ok(res) if res.status_code() == 101 => {
                self.announce_join(user_id)?;
                self.schedule_alarm().await?;
                Ok(res)
            }
            answer => {
                shards.unplace(user_id, shard, made)?;
                answer
            }
        }
    }

    /// What a socket placed on a shard is told on open, as the room knows it now (presence
    /// counting the socket already).
    fn welcome(&self, room_id: &str, user_id: &str) -> Result<Welcome, ApiError> {
        let log = self.log();
        Ok(Welcome {
            ready: json!({
                "room_id": room_id,
                "user_id": user_id,
                "seq": log.last_seq()?,
                "read_seq": log.read_seq(user_id)?.unwrap_or(0),
                "unread": log.unread(user_id)?,
            }),
            presence: self.presence_on_open()?,
        })
    }

    /// How many sockets `user` has in the room, here and on shards.
    pub(super) fn user_sockets(&self, user: &str) -> worker::Result<usize> {
        let here = self.sockets.count_of(user);
        let there = RoomShards::new(&self.local).of(user)?.map_or(0, |(_, n)| n);
        Ok(here + usize::try_from(there).unwrap_or(0))
    }

    /// How many users have a socket in the room (a user is here or on one shard, not both).
    pub(super) fn users_present(&self) -> worker::Result<usize> {
        let there = RoomShards::new(&self.local).user_count()?;
        Ok(self.sockets.user_count() + usize::try_from(there).unwrap_or(0))
    }

    /// A large room batches presence (`ROOM_PRESENCE_BATCH_USERS`).
    pub(super) fn presence_batched(&self) -> worker::Result<bool> {
        Ok(self.users_present()? >= Limits::of(&self.env).room_presence_batch_users)
    }

    /// `presence` for a socket that opens: who is here, or in a large room how many.
    pub(super) fn presence_on_open(&self) -> Result<Value, ApiError> {
        let count = self.users_present()?;
        if count >= Limits::of(&self.env).room_presence_batch_users {
            return Ok(json!({"users": {}, "count": count, "partial": true}));
        }
        Ok(json!(self.presence()?))
    }

    /// `user.joined` to the others when this is the user's first socket in the room.
    pub(super) fn announce_join(&self, user_id: &str) -> worker::Result<()> {
        if self.user_sockets(user_id)? == 1 {
            self.presence_changed(user_id, true)?;
        }
        Ok(())
    }

    /// A user came or went: `user.joined` / `user.left` to the others at once, or in a large
    /// room noted for the next `presence.changed` (one frame per interval for every join and
    /// leave in it, instead of one frame per socket for each: a room filling up cost O(N²)).
    /// Going from batched to not, what is noted goes out first, so the order holds.
    pub(super) fn presence_changed(&self, user: &str, joined: bool) -> worker::Result<()> {
        if self.presence_batched()? {
            self.presence_changes
                .borrow_mut()
                .note(user, joined, now_ms());
            return Ok(());
        }
        self.flush_presence()?;
        let event = if joined { "user.joined" } else { "user.left" };
        self.broadcast(
            ServerFrame::event(event, json!({"user_id": user})),
            Some(user),
        );
        Ok(())
    }

    /// Sends the noted joins and leaves as one `presence.changed`, if any.
    pub(super) fn flush_presence(&self) -> worker::Result<()> {
        let changes = std::mem::take(&mut *self.presence_changes.borrow_mut());
        if changes.joined.is_empty() && changes.left.is_empty() {
            return Ok(());
        }
        let data = json!({
            "joined": changes.joined,
            "left": changes.left,
            "count": self.users_present()?,
        });
        self.broadcast(ServerFrame::event("presence.changed", data), None);
        Ok(())
    }

    /// Open sockets per user. Every open socket is a member's: a removal closes the member's
    /// sockets (marking them closing) in the same turn, so no membership query is needed.
    pub(super) fn presence(&self) -> worker::Result<RoomPresence> {
        let mut users = self.sockets.per_user();
        for (user, sockets) in RoomShards::new(&self.local).users()? {
            *users.entry(user).or_insert(0) += usize::try_from(sockets).unwrap_or(0);
        }
        Ok(RoomPresence { users })
    }

    pub(super) fn presence_response(&self) -> Answer {
        Ok(crate::http::json(200, &self.presence()?)?)
    }

    /// Sends a frame to every open socket here and on every shard, except those of
    /// `except_user` (a message skips sockets still paging a resume: their next batch carries
    /// it). Rendered once, for this object's sockets and every shard's; the shards get it now,
    /// this object's sockets once the turn ends (`outbox`).
    pub(super) fn broadcast(&self, frame: ServerFrame<'_>, except_user: Option<&str>) {
        let text = frame.to_text();
        if self.links.any(&self.sockets) {
            let delivery = Down::delivery(&text, frame.seq.is_some(), except_user);
            self.links.send_text_all(&self.sockets, &delivery);
        }
        self.outbox.push(frame, text, except_user);
    }

    /// Closes a user's sockets with 4003, here or on their shard, and tells the others they
    /// left; returns how many.
    pub(super) fn close_user(&self, user: &str, reason: &str) -> worker::Result<usize> {
        let mut closed = 0;
        for (ws, _) in self.sockets.of_user(user) {
            self.sockets.close(&ws, close::FORBIDDEN, reason);
            closed += 1;
        }
        if let Some((shard, sockets)) = RoomShards::new(&self.local).close(user)? {
            if let Some(link) = self.links.of(&self.sockets, shard) {
                let down = Down::CloseUser {
                    user: user.to_owned(),
                    code: close::FORBIDDEN,
                    reason: reason.to_owned(),
                };
                down.send(&link);
            }
            closed += usize::try_from(sockets).unwrap_or(0);
        }
        if closed > 0 {
            self.presence_changed(user, false)?;
        }
        Ok(closed)
    }

    /// A socket went away: `user.left` when it was the user's last socket of any kind (a
    /// removed member was announced when removed), and the alarm stops waiting for its token's
    /// expiry.
    pub(super) async fn on_socket_gone(
        &self,
        ws: &WebSocket,
        gone: Option<SocketInfo>,
    ) -> worker::Result<()> {
        self.outbox.flush();
        if let Some(link) = self.links.find(&self.sockets, ws) {
            self.on_link_gone(&link).await?;
            return self.schedule_alarm().await;
        }
        let Some(info) = gone else {
            return self.schedule_alarm().await;
        };
        self.gate.forget(&info.conn_id);
        if self.user_sockets(&info.user_id)? == 0 {
            self.after_last_socket(&info.user_id)?;
        }
        self.schedule_alarm().await
    }

    /// A user's last socket (here or on a shard) went: they left, unless they were removed
    /// (announced then).
    pub(super) fn after_last_socket(&self, user: &str) -> worker::Result<()> {
        if self.log().is_member(user)? {
            self.caught_up.borrow_mut().insert(user.to_owned());
            self.presence_changed(user, false)?;
        }
        Ok(())
    }
}
