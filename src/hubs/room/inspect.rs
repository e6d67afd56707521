//! What an operator sees of a Room: its numbers (`GET /stats`, the Worker's
//! `GET /internal/v1/rooms/{id}/stats`). docs/PROTOCOL.md ("Internal API") says what each field
//! means.
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | `GET /stats`                         | — (reads only)                           | sockets per object (shards asked), members, the window, the D1 copy's lag, pending notes, the alarm and why |
//!
//! It only reads: nothing here creates a table or writes a value. The alarm's reasons are
//! worked out now from what is stored, with the plan `schedule_alarm` sets (without recording
//! anything), beside the time set.

use serde_json::{json, Value};

use super::sockets::total_sockets;
use super::Room;
use crate::clock::now_ms;
use crate::config::Limits;
use crate::hubs::common::alarm::{alarm_view, d1_batches};
use crate::hubs::common::object::Answer;

impl Room {
    /// `GET /stats`: the room's numbers. What this object stores is read first, in one turn;
    /// then the shards are asked for their counts.
    pub(super) async fn stats(&self, room_id: &str) -> Answer {
        let log = self.log();
        let members = log.member_count()?;
        let users = self.users_present()?;
        let stream = self.window_view()?;
        let copy = self.copy_view()?;
        let activity = self.activity_view()?;
        let plan = self.alarm_plan(false)?;
        let shards = self.shard_counts(room_id).await?;
        let report = json!({
            "room_id": room_id,
            "sockets": {
                "total": total_sockets(&shards),
                "users": users,
                "shard_sockets": Limits::of(&self.env).room_shard_sockets,
                "shards": shards,
            },
            "members": members,
            "stream": stream,
            "copy": copy,
            "activity": activity,
            "alarm": alarm_view(&self.local, &self.sockets, &plan).await?,
        });
        Ok(crate::http::json(200, &report)?)
    }

    /// The newest seq and the messages the room keeps itself (older ones only D1 has).
    fn window_view(&self) -> worker::Result<Value> {
        let log = self.log();
        let (oldest, kept) = log.window()?;
        Ok(json!({
            "head_seq": log.last_seq()?,
            "oldest_kept_seq": oldest,
            "messages_kept": kept,
            "pruned_through": log.pruned_through()?,
            "window_messages": Limits::of(&self.env).room_window_messages,
        }))
    }

    /// How far D1's copy has got, how far behind it is, and its retries.
    fn copy_view(&self) -> worker::Result<Value> {
        let log = self.log();
        let flushed = log.flushed_through()?;
        let now = now_ms();
        Ok(json!({
            "flushed_through": flushed,
            "lag": (log.last_seq()? - flushed).max(0),
            "oldest_uncopied_age_ms": log.oldest_uncopied_at()?.map(|at| (now - at).max(0)),
            "cursors_waiting": log.dirty_cursor_count()?,
            "running": self.copying.get(),
            "due_at": log.meta("flush_due")?,
            "failures": log.meta("flush_failures")?.unwrap_or(0),
            "retry_at": log.meta("flush_retry_at")?,
            "batches": d1_batches(&self.local)?,
        }))
    }

    /// The `room.activity` notes waiting to go out to absent members.
    fn activity_view(&self) -> worker::Result<Value> {
        let log = self.log();
        Ok(json!({
            "pending_since": log.meta("activity_pending")?,
            "due_at": self.activity_due()?,
            "last_sent_at": log.meta("activity_sent_at")?,
        }))
    }
}
