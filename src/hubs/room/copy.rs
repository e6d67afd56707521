//! The Room's D1 copy and its notes to absent members.
//!
//! A room's messages are durable in its own storage before they are acked; D1 gets a copy (for
//! history, unread counts and search over REST) right after delivery, or once a second while the
//! room is busy, retried with backoff until it lands. Members not on a room socket hear that the
//! room moved on through their UserHub (`room.activity`), at most once a second. Both run from
//! `after_append` and the alarm (`Room::schedule_alarm` plans it).
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | after a message, edit or recall is delivered | D1 copy progress (unless a copy ran in the last second); messages D1 holds pruned beyond the window of `ROOM_WINDOW_MESSAGES` messages (edits do not count) | — |
//! | alarm (only for work due then)       | a busy room's D1 copy (≤ 1/s); a copy that failed or never finished (retried) | `room.activity` to absent members (≤ 1/s) |

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::Room;
use crate::clock::now_ms;
use crate::config::Limits;
use crate::hubs::common::alarm::count_d1_batch;
use crate::hubs::stubs::user;
use crate::message::RoomMessage;
use crate::store::room_log::RoomEntry;
use crate::store::rooms;
use crate::stream::{Batch, BatchLimit};

/// A member absent from the room socket hears about activity at most this often.
pub const ACTIVITY_INTERVAL_MS: i64 = 1000;

/// Rooms with more members send no `room.activity`: a note per absent member per second is a
/// UserHub woken and a subrequest each, and an audience of 100,000 would pass the platform's
/// 10,000 subrequests per invocation; their members see activity in `GET /v1/rooms`.
pub(super) const ACTIVITY_MAX_MEMBERS: i64 = 5_000;
/// UserHubs told about activity at once.
pub(super) const ACTIVITY_FAN_OUT: usize = 50;

/// One D1 copy batch carries at most this many messages, of at most this many bytes in all,
/// and this many cursors, so a batch of large messages or a huge room can never wedge the copy.
pub(super) const COPY_LIMIT: BatchLimit = BatchLimit {
    events: 100,
    bytes: 512 * 1024,
};

pub(super) const COPY_CURSORS: i64 = 100;

/// D1 copy retries back off from 1 s to this.
pub(super) const MAX_FLUSH_BACKOFF_MS: i64 = 60_000;

/// A message is copied to D1 right after it is delivered; the alarm copies it instead if that
/// copy has not finished this long after the append (the object was evicted mid-copy).
pub(super) const COPY_BACKSTOP_MS: i64 = 5_000;

/// Socket messages are copied to D1 at most once per interval (the `room.activity` cadence):
/// a busy room's messages of one second go in one D1 batch, made in the same alarm as its
/// activity notes, instead of one batch (one D1 transaction) each.
pub(super) const COPY_INTERVAL_MS: i64 = ACTIVITY_INTERVAL_MS;

impl Room {
    /// After a message is stored: it must reach D1, and absent members must hear of it. Each
    /// piece of work records when it is due, once, so the alarm plan stays put while messages
    /// keep coming. When no copy was made in the last [`COPY_INTERVAL_MS`], the caller copies
    /// as soon as the message is delivered ([`Room::copy_to_d1`]) and the alarm is its
    /// backstop, [`COPY_BACKSTOP_MS`] later (an alarm per message cost an alarm write and a
    /// wake each: ~3 ms of CPU per message in a 100-member room, docs/BENCHMARKS.md, and a
    /// billed request each in production). Otherwise the alarm copies when the interval is up,
    /// and not before the activity notes are due, so that one wake does both.
    ///
    /// Called once the change is delivered: every member not here now has missed it.
    pub(super) async fn after_append(&self) -> worker::Result<()> {
        self.caught_up.borrow_mut().clear();
        let log = self.log();
        let now = now_ms();
        let mut changed = false;
        if log.meta("activity_pending")?.is_none() {
            log.set_meta("activity_pending", now)?;
            changed = true;
        }
        if log.meta("flush_due")?.is_none() {
            let next_copy_at = self.next_copy_at();
            let due = if now >= next_copy_at {
                now + COPY_BACKSTOP_MS
            } else {
                next_copy_at.max(self.activity_due()?.unwrap_or(0))
            };
            log.set_meta("flush_due", due)?;
            changed = true;
        }
        if changed {
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    /// Copies what D1 does not have yet, unless a copy is already running: that one goes on
    /// until nothing is left, so it takes this too. A failed copy is retried by the alarm.
    pub(super) async fn copy_to_d1(&self, now: i64) -> worker::Result<()> {
        if !self.log().has_unflushed()? || self.copying.replace(true) {
            return Ok(());
        }
        self.copied_at.set(now);
        let copied = self.flush(now).await;
        self.copying.set(false);
        copied?;
        if self.log().meta("flush_retry_at")?.is_some() {
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    /// Copies unflushed messages and cursors to D1. A failure is logged and retried by a later
    /// alarm, backing off to [`MAX_FLUSH_BACKOFF_MS`].
    pub(super) async fn flush(&self, now: i64) -> worker::Result<()> {
        let log = self.log();
        if log.meta("flush_retry_at")?.is_some_and(|at| at > now) {
            return Ok(());
        }
        loop {
            match self.flush_page().await {
                Ok(true) => continue,
                Ok(false) => {
                    log.clear_meta("flush_retry_at")?;
                    log.clear_meta("flush_failures")?;
                    log.clear_meta("flush_due")?;
                    log.prune_window(Limits::of(&self.env).room_window_messages)?;
                    return Ok(());
                }
                Err(err) => {
                    let failures = log.meta("flush_failures")?.unwrap_or(0) + 1;
                    let behind = log.last_seq()? - log.flushed_through()?;
                    crate::metrics::record(
                        crate::metrics::Point::new(crate::metrics::Kind::D1Copy, "failed")
                            .count(0.0)
                            .value(behind as f64),
                    );
                    crate::log::warn(
                        "d1_copy.failed",
                        json!({"failures": failures, "behind": behind, "error": err.to_string()}),
                    );
                    let backoff = (1000_i64 << failures.min(6)).min(MAX_FLUSH_BACKOFF_MS);
                    log.set_meta("flush_failures", failures)?;
                    log.set_meta("flush_retry_at", now + backoff)?;
                    return Ok(());
                }
            }
        }
    }

    /// Copies one batch (within [`COPY_LIMIT`] and [`COPY_CURSORS`]); true when more is
    /// waiting.
    pub(super) async fn flush_page(&self) -> worker::Result<bool> {
        let log = self.log();
        let Some(room_id) = self.room_id()? else {
            return Ok(false);
        };
        let newest = log.last_seq()?;
        let page = log.entries(
            &room_id,
            log.flushed_through()? + 1,
            newest,
            COPY_LIMIT.events,
        )?;
        let fetched = page.len();
        let mut batch = Batch::default();
        let entries: Vec<RoomEntry> = page
            .into_iter()
            .take_while(|entry| {
                let size = match entry {
                    RoomEntry::Message(m) => json!(m).to_string().len(),
                    RoomEntry::Change(c) => json!(c).to_string().len(),
                    RoomEntry::Emit(_) => 0,
                };
                batch.admit(size, COPY_LIMIT)
            })
            .collect();
        let cursors = log.dirty_cursors(COPY_CURSORS)?;
        // What this batch leaves behind: through `newest` when it took every entry there
        // (the emitted events between them are not D1's to have).
        let whole = entries.len() == fetched && (fetched as i64) < COPY_LIMIT.events;
        let through = if whole {
            newest
        } else {
            entries.last().map_or(0, RoomEntry::seq)
        };
        if entries.is_empty() && cursors.is_empty() {
            log.mark_flushed(through, &[])?;
            return Ok(false);
        }
        let db = self.env.d1("DB")?;
        db.batch(rooms::copy_statements(&db, &room_id, &entries, &cursors)?)
            .await?;
        count_d1_batch(&self.local)?;
        log.mark_flushed(through, &cursors)?;
        let behind = log.last_seq()? - log.flushed_through()?;
        crate::metrics::record(
            crate::metrics::Point::new(crate::metrics::Kind::D1Copy, "ok")
                .subject(&room_id)
                .count(entries.len() as f64)
                .value(behind as f64),
        );
        crate::log::debug(
            "d1_copy",
            json!({"room_id": room_id, "entries": entries.len(), "cursors": cursors.len(), "through": through, "behind": behind}),
        );
        // More is waiting when this batch was cut short or full, or messages came meanwhile.
        Ok(entries.len() < fetched
            || fetched as i64 == COPY_LIMIT.events
            || cursors.len() as i64 == COPY_CURSORS
            || log.flushed_through()? < log.last_seq()?)
    }

    /// Tells members who are not on a room socket, and were not when the room last changed, that
    /// the room moved on: `room.activity` through their UserHub, at most once per
    /// [`ACTIVITY_INTERVAL_MS`] (measured from when the notes go out, after any D1 copy). A
    /// member who saw every change live and then left is not told (a room everyone leaves at
    /// once would otherwise wake every member's hub for nothing).
    pub(super) async fn announce_activity(&self, now: i64) -> worker::Result<()> {
        let log = self.log();
        let sent_at = log.meta("activity_sent_at")?.unwrap_or(0);
        if log.meta("activity_pending")?.is_none() || now < sent_at + ACTIVITY_INTERVAL_MS {
            return Ok(());
        }
        log.clear_meta("activity_pending")?;
        log.set_meta("activity_sent_at", now)?;
        let Some(room_id) = self.room_id()? else {
            return Ok(());
        };
        let notes = self.activity_notes(&room_id, now)?;
        let env = &self.env;
        stream::iter(notes)
            .for_each_concurrent(ACTIVITY_FAN_OUT, |(user, note)| async move {
                if let Err(err) = user::activity(env, &user, &note).await {
                    crate::log::warn(
                        "activity.failed",
                        json!({"user_id": user, "error": err.to_string()}),
                    );
                }
            })
            .await;
        Ok(())
    }

    /// One `room.activity` note per member to tell: not here now, and not caught up. Each says
    /// whether the messages since the last notes mentioned the member (`mentioned`, which their
    /// UserHub reads to decide on a notification and does not pass to devices).
    pub(super) fn activity_notes(
        &self,
        room_id: &str,
        now: i64,
    ) -> worker::Result<Vec<(String, Value)>> {
        let log = self.log();
        if log.member_count()? > ACTIVITY_MAX_MEMBERS {
            return Ok(Vec::new());
        }
        let seq = log.last_seq()?;
        let last_message = log
            .newest_message(room_id)?
            .as_ref()
            .map(RoomMessage::preview);
        let present = self.presence()?.users;
        let mentioned = log.mentioned_after(log.meta("activity_noted_seq")?.unwrap_or(0))?;
        log.set_meta("activity_noted_seq", seq)?;
        let caught_up = self.caught_up.borrow();
        let mut notes = Vec::new();
        for user in log.members()? {
            if !present.contains_key(&user) && !caught_up.contains(&user) {
                let unread = log.unread(&user)?;
                let note = json!({"room_id": room_id, "seq": seq, "unread": unread, "last_message": last_message, "at": now, "mentioned": mentioned.contains(&user)});
                notes.push((user, note));
            }
        }
        Ok(notes)
    }

    /// The earliest a copy that is not due at once may be made: [`COPY_INTERVAL_MS`] after the
    /// last one started.
    pub(super) fn next_copy_at(&self) -> i64 {
        self.copied_at.get() + COPY_INTERVAL_MS
    }

    /// When the pending activity notes may go out, if any are pending.
    pub(super) fn activity_due(&self) -> worker::Result<Option<i64>> {
        let log = self.log();
        let Some(pending_at) = log.meta("activity_pending")? else {
            return Ok(None);
        };
        let sent_at = log.meta("activity_sent_at")?.unwrap_or(0);
        Ok(Some(pending_at.max(sent_at + ACTIVITY_INTERVAL_MS)))
    }

    /// When the D1 copy is due, if anything waits for it: as an append planned it, or its
    /// retry. Work that no append planned (a moved cursor) is due at once, or when the interval
    /// since the last copy is up; with `record`, that time is kept so later plans agree.
    pub(super) fn flush_due(&self, record: bool) -> worker::Result<Option<i64>> {
        let log = self.log();
        if !log.has_unflushed()? {
            return Ok(None);
        }
        let due = match log.meta("flush_due")? {
            Some(due) => due,
            None => {
                let due = now_ms().max(self.next_copy_at());
                if record {
                    log.set_meta("flush_due", due)?;
                }
                due
            }
        };
        let due = log.meta("flush_retry_at")?.unwrap_or(due);
        // A copy still running past its backstop: look again a backstop later, not at once.
        Ok(Some(if self.copying.get() {
            due.max(now_ms() + COPY_BACKSTOP_MS)
        } else {
            due
        }))
    }
}
