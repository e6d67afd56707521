//! The room's messages: stored with the next seq in arrival order, edited and recalled as
//! changes with seqs of their own, read through by members — over a socket (`send`, `edit`,
//! `delete`, `typing`, `read`) or over REST and the internal API (`RoomCall::Post`, `Read`,
//! `Edit`, `Recall`), by the same code. The table of what arrives, what is stored and what is
//! sent is the room's (`hubs::room`).

use serde_json::{json, Value};
use worker::Request;

use super::{change_frame, message_frame, not_a_member, Room};
use crate::clock::now_ms;
use crate::config::Limits;
use crate::error::ApiError;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::object::Answer;
use crate::hubs::common::peer::Peer;
use crate::hubs::stubs::room::{
    Changed, EditRequest, Post, Posted, ReadOutcome, ReadRequest, RecallRequest,
};
use crate::message::{Content, RoomChange, RoomMessage};
use crate::protocol::{code, RequestId, ServerFrame};
use crate::store::rooms;
use crate::typing::Typing;

impl Room {
    /// `RoomCall::Post`: a member's message sent over REST, or a backend's (with or without a
    /// sender); delivered exactly as a socket `send`.
    pub(super) async fn post_call(&self, mut req: Request, room_id: &str) -> Answer {
        let post: Post = crate::http::read_hub_json(&mut req).await?;
        if let Some(sender) = &post.sender {
            self.admit_member(room_id, sender).await?;
        }
        if let Some(sender) = &post.sender {
            self.restart_typing(sender);
        }
        let posted = self.store(room_id, post.sender, post.content)?;
        if !posted.duplicate {
            self.broadcast(message_frame(&posted.message), None);
            self.after_append().await?;
            self.copy_to_d1(now_ms()).await?;
        }
        let status = if posted.duplicate { 200 } else { 201 };
        Ok(crate::http::json(status, &posted)?)
    }
    /// Stores a message with the next seq, or finds the one its sender already stored with
    /// the same `client_id`. Never yields: the caller delivers it before anything else runs.
    fn store(
        &self,
        room_id: &str,
        sender: Option<String>,
        content: Content,
    ) -> Result<Posted, ApiError> {
        let log = self.log();
        if let Some(client_id) = &content.client_id {
            if let Some(message) = log.by_client_id(room_id, sender.as_deref(), client_id)? {
                return Ok(Posted {
                    message,
                    duplicate: true,
                });
            }
        }
        let message = log.append(RoomMessage {
            id: crate::message::new_id(),
            seq: 0,
            room_id: room_id.to_owned(),
            sender_id: sender,
            content,
            created_at: now_ms(),
            edited_at: None,
            deleted_at: None,
        })?;
        crate::metrics::record(
            crate::metrics::Point::new(crate::metrics::Kind::Message, "room")
                .subject(room_id)
                .value(message.content.body.len() as f64),
        );
        Ok(Posted {
            message,
            duplicate: false,
        })
    }
    /// `RoomCall::Read`: a member's cursor moved over REST, exactly as the socket `read`.
    pub(super) async fn read_call(&self, mut req: Request, room_id: &str) -> Answer {
        let read: ReadRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &read.user_id).await?;
        let outcome = self.read_through(&read.user_id, read.seq).await?;
        Ok(crate::http::json(200, &outcome)?)
    }
    /// `RoomCall::Edit`: a member edits a message over REST.
    pub(super) async fn edit_call(&self, mut req: Request, room_id: &str) -> Answer {
        let edit: EditRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &edit.user_id).await?;
        let changed = self
            .edit(room_id, &edit.user_id, &edit.message_id, &edit.body)
            .await?;
        Ok(crate::http::json(200, &changed)?)
    }
    /// `RoomCall::Recall`: a member recalls (or a moderator deletes) a message over REST.
    pub(super) async fn recall_call(&self, mut req: Request, room_id: &str) -> Answer {
        let recall: RecallRequest = crate::http::read_hub_json(&mut req).await?;
        self.admit_member(room_id, &recall.user_id).await?;
        let changed = self
            .recall(
                room_id,
                &recall.user_id,
                &recall.message_id,
                recall.moderator,
            )
            .await?;
        Ok(crate::http::json(200, &changed)?)
    }
    /// The message `id` as it is now: from the room's own window, else from D1 (older
    /// messages; brought up to date with the edits and recalls of it the room still keeps), so
    /// a sender, an owner or an admin reaches every message D1 still holds.
    async fn find_message(&self, room_id: &str, id: &str) -> Result<RoomMessage, ApiError> {
        let log = self.log();
        if let Some(message) = log.by_id(room_id, id)? {
            return Ok(message);
        }
        let db = crate::store::d1::db(&self.env)?;
        match rooms::message(&db, room_id, id).await? {
            Some(message) => Ok(self.log().with_kept_changes(message)?),
            None => Err(ApiError::not_found(format!(
                "no message '{id}' in this room"
            ))),
        }
    }
    /// Sets the body of `user`'s own message: `message.updated` to every socket, in order with
    /// the messages around it. The same body again changes nothing.
    async fn edit(
        &self,
        room_id: &str,
        user: &str,
        id: &str,
        body: &str,
    ) -> Result<Changed, ApiError> {
        let message = self.find_message(room_id, id).await?;
        if message.sender_id.as_deref() != Some(user) {
            return Err(ApiError::forbidden(
                "not_sender",
                "only the sender edits a message",
            ));
        }
        if message.deleted_at.is_some() {
            return Err(ApiError::new(
                409,
                "message_deleted",
                "the message was deleted",
            ));
        }
        if message.content.body == body {
            return Ok(Changed {
                message,
                changed: false,
            });
        }
        let edited = Content {
            body: body.to_owned(),
            ..message.content.clone()
        };
        edited
            .validate()
            .map_err(|err| ApiError::bad_request(code::VALIDATION, err.to_string()))?;
        let change = self.log().edit(&message, body, now_ms())?;
        self.announce_change(room_id, &change).await
    }
    /// Empties a message for everyone, keeping its seq: its sender within
    /// `RECALL_WINDOW_SECONDS`, a moderator at any time. `message.deleted` to every socket; a
    /// message already deleted changes nothing.
    async fn recall(
        &self,
        room_id: &str,
        user: &str,
        id: &str,
        moderator: bool,
    ) -> Result<Changed, ApiError> {
        let message = self.find_message(room_id, id).await?;
        if message.deleted_at.is_some() {
            return Ok(Changed {
                message,
                changed: false,
            });
        }
        let now = now_ms();
        if !moderator {
            if message.sender_id.as_deref() != Some(user) {
                return Err(ApiError::forbidden(
                    "not_sender",
                    "only the sender, the room's owner or an admin deletes a message",
                ));
            }
            let window = Limits::of(&self.env).recall_window_secs;
            crate::message::within_recall_window(message.created_at, now, window)?;
        }
        let change = self.log().recall(&message, now)?;
        self.announce_change(room_id, &change).await
    }
    /// Sends an edit or recall just stored to every socket, schedules its D1 copy, and answers
    /// with the message as it now is.
    async fn announce_change(
        &self,
        room_id: &str,
        change: &RoomChange,
    ) -> Result<Changed, ApiError> {
        self.broadcast(change_frame(room_id, change), None);
        self.after_append().await?;
        self.copy_to_d1(now_ms()).await?;
        Ok(Changed {
            message: self.find_message(room_id, &change.message_id).await?,
            changed: true,
        })
    }
    /// `send {type, body, client_id, …}`: store, ack, deliver — in that order, without yielding.
    pub(super) async fn on_send(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        content: Content,
        id: Option<&RequestId>,
    ) -> Result<(), ApiError> {
        let room_id = self
            .room_id()?
            .ok_or_else(|| ApiError::internal("the room does not know its id"))?;
        let posted = self.store(&room_id, Some(info.user_id.clone()), content)?;
        self.restart_typing(&info.user_id);
        peer.ack(id, json!(posted));
        if !posted.duplicate {
            self.broadcast(message_frame(&posted.message), None);
            self.after_append().await?;
        }
        Ok(())
    }
    /// A member's message ends the typing it announced: their typing count starts afresh.
    fn restart_typing(&self, user: &str) {
        if let Some(typing) = self.typing.borrow_mut().get_mut(user) {
            *typing = typing.after_message();
        }
    }
    /// `typing {active}`: relayed to the other users, not stored.
    pub(super) fn on_typing(&self, info: &SocketInfo, active: bool) -> Result<Value, ApiError> {
        let interval = Limits::of(&self.env).typing_interval_ms;
        // Nor is a large room told who is typing (each start a frame to every socket).
        let forwarded = !self.presence_batched()? && {
            let mut typing = self.typing.borrow_mut();
            let last = typing.get(&info.user_id).copied();
            let next = Typing::forward(last, active, now_ms(), interval);
            if let Some(next) = next {
                typing.insert(info.user_id.clone(), next);
            }
            next.is_some()
        };
        if forwarded {
            self.broadcast(
                ServerFrame::event("typing", json!({"user_id": info.user_id, "active": active})),
                Some(&info.user_id),
            );
        }
        Ok(json!({ "forwarded": forwarded }))
    }
    /// `edit {id, body}`: the sender edits a message.
    pub(super) async fn on_edit(
        &self,
        info: &SocketInfo,
        message_id: &str,
        body: &str,
    ) -> Result<Value, ApiError> {
        let room_id = self.room_id()?.unwrap_or_default();
        let changed = self.edit(&room_id, &info.user_id, message_id, body).await?;
        Ok(json!(changed))
    }
    /// `delete {id}`: the sender recalls a message within the window; an admin or the room's
    /// owner deletes any (the role is read from D1 only when nothing else already allows it).
    pub(super) async fn on_delete(
        &self,
        info: &SocketInfo,
        message_id: &str,
    ) -> Result<Value, ApiError> {
        let room_id = self.room_id()?.unwrap_or_default();
        let message = self.find_message(&room_id, message_id).await?;
        let window = Limits::of(&self.env).recall_window_secs;
        let sender_may = message.sender_id.as_deref() == Some(info.user_id.as_str())
            && crate::message::within_recall_window(message.created_at, now_ms(), window).is_ok();
        let moderator =
            info.admin || (!sender_may && self.is_owner(&room_id, &info.user_id).await?);
        let changed = self
            .recall(&room_id, &info.user_id, message_id, moderator)
            .await?;
        Ok(json!(changed))
    }
    /// Whether `user` owns the room (D1 holds roles; the room does not).
    async fn is_owner(&self, room_id: &str, user: &str) -> Result<bool, ApiError> {
        let db = crate::store::d1::db(&self.env)?;
        Ok(rooms::member(&db, room_id, user)
            .await?
            .is_some_and(|member| member.role == rooms::OWNER))
    }
    /// `read {seq}`: the member has read through `seq`.
    pub(super) async fn on_read(&self, info: &SocketInfo, seq: i64) -> Result<Value, ApiError> {
        let outcome = self.read_through(&info.user_id, seq).await?;
        Ok(json!(outcome))
    }
    /// Moves a member's cursor to `seq`: forward only, never past the newest message; a move
    /// is announced to every socket as a read receipt.
    async fn read_through(&self, user_id: &str, seq: i64) -> Result<ReadOutcome, ApiError> {
        let log = self.log();
        let last_seq = log.last_seq()?;
        if seq > last_seq {
            return Err(ApiError::bad_request(
                code::VALIDATION,
                format!("seq {seq} is ahead of the room ({last_seq})"),
            ));
        }
        let moved = log.advance_read(user_id, seq)?;
        let read_seq = log.read_seq(user_id)?.ok_or_else(not_a_member)?;
        let outcome = ReadOutcome {
            read_seq,
            unread: log.unread(user_id)?,
        };
        if moved {
            // A large room's audience is not told who read what: one frame to every socket for
            // each member's read is O(N²) frames for a room that reads along.
            if !self.presence_batched()? {
                self.broadcast(
                    ServerFrame::event("read", json!({"user_id": user_id, "seq": read_seq})),
                    None,
                );
            }
            self.schedule_alarm().await?;
        }
        Ok(outcome)
    }
}
