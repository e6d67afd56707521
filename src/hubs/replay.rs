//! Replays: a batch of a hub's stream after a resume point, and the budget that bounds them.
//!
//! A resume (`?since=` on connect) and every `sync {since}` page read stored entries and send
//! them, up to a batch (`REPLAY_BATCH_EVENTS` / `REPLAY_BATCH_BYTES`). Left alone, that is the
//! cheapest amplification a member has: one small `sync {since:0}` frame makes the hub read and
//! send a whole batch, and at the per-socket frame rate from a few sockets it kept a room's one
//! thread busy (other members' sends waited seconds) while a client that never read grew the
//! runtime's buffers without bound.
//!
//! So replays draw on a byte budget per user in each hub or room ([`Replays`]):
//! `REPLAY_BYTES_PER_SECOND`, with a burst of one second's worth or one batch, whichever is
//! larger. A batch takes what it sends (it may go into debt by its last entry); while the user
//! is in debt, a connect's resume sends no entry (`synced {more:true}` at `since`, and the client
//! pages on), and a `sync` waits its turn — at most one per socket (a second one is refused with
//! `replay_limited`), and never longer than [`MAX_WAIT_MS`] (beyond that it is refused with
//! `replay_limited` and how long to wait). Waiting is a timer, not work: other frames, sends of
//! every other member among them, are handled meanwhile. However many sockets a user opens, the
//! hub sends them at most the budget's bytes of replay, so it spends at most that much time on
//! them and a client that never reads can make it buffer no more.
//!
//! Budgets live in memory: a hub that hibernates starts them full again, which it could only do
//! after ten idle seconds, by which time any budget has refilled anyway.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use worker::Delay;

use super::{now_ms, Peer, SocketInfo, Sockets};
use crate::config::Limits;
use crate::error::ApiError;
use crate::protocol::{code, ClientFrame, ServerFrame};
use crate::ratelimit::ByteBudget;
use crate::stream::{Batch, BatchLimit, ReplayPlan};

/// A `sync` waits at most this long for its user's budget; beyond it, it is refused.
pub const MAX_WAIT_MS: i64 = 10_000;
/// The error code of a `sync` refused by the replay budget.
pub const LIMITED: &str = "replay_limited";

/// One stream entry as a replay reads it: its seq and its frame, serialised.
pub struct Entry {
    pub seq: i64,
    pub text: String,
}

/// Entries a replay reads from storage at a time (each at most a frame's size).
const REPLAY_PAGE: i64 = 64;

/// Per user, the replay bytes left; per socket, whether a `sync` is waiting.
#[derive(Default)]
pub struct Replays {
    budgets: RefCell<HashMap<String, ByteBudget>>,
    waiting: RefCell<HashSet<String>>,
}

impl Replays {
    /// The batch a replay for `user` may send now: the configured batch, cut to what the
    /// user's budget allows (zero bytes while in debt: nothing is sent).
    pub fn limit(&self, user: &str, limits: &Limits) -> BatchLimit {
        let available = self.with_budget(user, limits, |budget, rate, capacity| {
            budget.available(now_ms(), rate, capacity)
        });
        BatchLimit {
            events: limits.replay_batch_events,
            bytes: available.min(limits.replay_batch_bytes),
        }
    }

    /// Charges what a replay sent to its user.
    pub fn spend(&self, user: &str, bytes: usize, limits: &Limits) {
        self.with_budget(user, limits, |budget, _, _| budget.spend(bytes));
    }

    /// A resume in one piece, as a Socket.IO recovery needs it (its client cannot page): the
    /// texts `read(from, through, n)` makes of every entry `plan` names, when the plan
    /// recovers and they fit one batch within `user`'s replay budget, which they then spend;
    /// `None` when they do not. Does not yield.
    pub fn whole(
        &self,
        user: &str,
        limits: &Limits,
        plan: ReplayPlan,
        read: impl FnOnce(i64, i64, i64) -> Result<Vec<String>, ApiError>,
    ) -> Result<Option<Vec<String>>, ApiError> {
        if !plan.recovered {
            return Ok(None);
        }
        let limit = self.limit(user, limits);
        if plan.through - plan.from + 1 > limit.events {
            return Ok(None);
        }
        let texts = if plan.from <= plan.through {
            read(plan.from, plan.through, limit.events)?
        } else {
            Vec::new()
        };
        let bytes: usize = texts.iter().map(String::len).sum();
        if bytes > limit.bytes {
            return Ok(None);
        }
        self.spend(user, bytes, limits);
        Ok(Some(texts))
    }

    /// `sync {since}`: the point to resume from, once `info`'s user may replay again; `None` when
    /// the socket started closing meanwhile.
    pub async fn sync(
        &self,
        peer: &Peer,
        info: &SocketInfo,
        frame: &ClientFrame,
        limits: &Limits,
    ) -> Result<Option<i64>, ApiError> {
        let since = sync_since(frame)?;
        self.turn(info, limits).await?;
        Ok(peer.info().filter(|now| !now.closing).map(|_| since))
    }

    /// Waits until `info`'s user may replay again: at once when the budget allows, else on a
    /// timer, one `sync` per socket at a time and never longer than [`MAX_WAIT_MS`].
    async fn turn(&self, info: &SocketInfo, limits: &Limits) -> Result<(), ApiError> {
        let wait = self.with_budget(&info.user_id, limits, |budget, rate, capacity| {
            budget.wait_ms(now_ms(), rate, capacity)
        });
        if wait == 0 {
            return Ok(());
        }
        if wait > MAX_WAIT_MS {
            return Err(limited(format!(
                "too many replay bytes for this user: sync again in {} s",
                (wait + 999) / 1000
            )));
        }
        if !self.waiting.borrow_mut().insert(info.conn_id.clone()) {
            return Err(limited(
                "a sync of this socket is already waiting: one replay at a time".into(),
            ));
        }
        Delay::from(Duration::from_millis(wait.unsigned_abs())).await;
        self.waiting.borrow_mut().remove(&info.conn_id);
        Ok(())
    }

    fn with_budget<R>(
        &self,
        user: &str,
        limits: &Limits,
        f: impl FnOnce(&mut ByteBudget, usize, usize) -> R,
    ) -> R {
        let rate = limits.replay_bytes_per_second;
        let capacity = rate.max(limits.replay_batch_bytes);
        let mut budgets = self.budgets.borrow_mut();
        let budget = budgets
            .entry(user.to_owned())
            .or_insert_with(|| ByteBudget::full(capacity, now_ms()));
        f(budget, rate, capacity)
    }
}

fn limited(message: String) -> ApiError {
    ApiError::new(429, LIMITED, message)
}

/// Sends one batch of the stream after `since` (at most `limit`), then
/// `synced {seq, recovered, more}`; `seq` is the last entry sent while `more` is true (`since`
/// when none was), the stream's newest seq once it is false. The socket is marked `syncing`
/// while more remain, so live entries wait for the next batch. `read(from, through, n)` reads
/// up to `n` entries in order; `unrecovered` is added to `synced` when entries after `since` are
/// gone (where to page back). A limit of zero bytes sends no entry. Nothing here yields, so no
/// entry can be appended between the read and `synced`. Returns the bytes of entries sent.
pub fn replay_batch(
    sockets: &Sockets,
    peer: &Peer,
    plan: ReplayPlan,
    limit: BatchLimit,
    read: impl Fn(i64, i64, i64) -> Result<Vec<Entry>, ApiError>,
    unrecovered: Value,
) -> Result<usize, ApiError> {
    let mut batch = Batch::default();
    let mut next = plan.from;
    let mut last_sent = None;
    let mut sent_bytes = 0;
    let mut more = limit.bytes == 0 && plan.from <= plan.through;
    'pages: while !more && next <= plan.through {
        let page = read(next, plan.through, REPLAY_PAGE.min(limit.events))?;
        let Some(last) = page.last() else { break };
        next = last.seq.saturating_add(1);
        for entry in &page {
            if !batch.admit(entry.text.len(), limit) {
                more = true;
                break 'pages;
            }
            peer.send_text(entry.text.clone());
            last_sent = Some(entry.seq);
            sent_bytes += entry.text.len();
        }
    }
    if let Some(mut info) = peer.info().filter(|info| info.syncing != more) {
        info.syncing = more;
        peer.save(sockets, &info)?;
    }
    let seq = if more {
        last_sent.unwrap_or(plan.from.saturating_sub(1))
    } else {
        plan.through
    };
    let mut synced = json!({"seq": seq, "recovered": plan.recovered, "more": more});
    if let (false, Value::Object(extra), Some(fields)) =
        (plan.recovered, unrecovered, synced.as_object_mut())
    {
        fields.extend(extra);
    }
    peer.send(&ServerFrame::event("synced", synced));
    Ok(sent_bytes)
}

/// `sync {since}`: the next batch of a resume (see [`replay_batch`]).
fn sync_since(frame: &ClientFrame) -> Result<i64, ApiError> {
    frame
        .data
        .get("since")
        .and_then(Value::as_i64)
        .filter(|since| *since >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                code::VALIDATION,
                "sync needs data.since, a whole number >= 0",
            )
        })
}
