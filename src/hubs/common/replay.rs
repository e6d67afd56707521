//! Replays: a batch of a hub's stream after a resume point, and the budgets that bound them.
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
//! larger. A connect's resume sends its batch only when the budget covers it whole, else no
//! entry (`synced {more:true}` at `since`, and the client pages on). A `sync` books its batch —
//! the next one, cut to what the budget covers within [`MAX_WAIT_MS`] — and waits on a timer
//! until the budget covers it: never a crumb, so a client that pages as the protocol says
//! sends one `sync` per batch, not one per entry (it used to be answered as soon as anything
//! was available, one entry or two, and its `sync`s tripped the frame limit: closed 4008). A
//! socket's answers also draw on a pace of half its frame allowance (`RATE_LIMIT_*`), so that
//! batches far cheaper than the budget cannot outrun that limit either. At most one `sync` per
//! socket waits (another is refused with `replay_limited`), and one whose user's debt alone
//! outlasts [`MAX_WAIT_MS`] (other sockets of the user booked it) is refused with how long to
//! wait. Waiting is a timer, not work: other frames, sends of every other member among them,
//! are handled meanwhile. However many sockets a user opens, the hub sends them at most the
//! budget's bytes of replay, so it spends at most that much time on them and a client that
//! never reads can make it buffer no more.
//!
//! Budgets live in memory: a hub that hibernates starts them full again, which it could only do
//! after ten idle seconds, by which time any budget has refilled anyway.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use worker::Delay;

use super::attachment::SocketInfo;
use super::peer::Peer;
use super::sockets::Sockets;
use crate::clock::now_ms;
use crate::config::Limits;
use crate::error::ApiError;
use crate::protocol::ServerFrame;
use crate::ratelimit::Budget;
use crate::stream::{Batch, BatchLimit, ReplayPlan};

/// A `sync` waits at most this long for its user's budget.
pub const MAX_WAIT_MS: i64 = 10_000;
/// The error code of a `sync` refused by the replay budget.
pub const LIMITED: &str = "replay_limited";

/// What one `sync` answer costs of its socket's frame allowance: two frames, so the `sync`s a
/// client is asked for take at most half of it and leave the rest to its own frames.
const SYNC_FRAMES: usize = 2;

/// Entries a replay reads from storage at a time (each at most a frame's size).
const REPLAY_PAGE: i64 = 64;

/// Socket paces kept before the full ones are dropped (the least; then twice what was kept).
const PACES_KEPT: usize = 64;

/// One stream entry as a replay reads it: its seq and its frame, serialised.
pub struct Entry {
    pub seq: i64,
    pub text: String,
}

/// A hub's stream as a replay reads it.
pub trait Source {
    /// The resume from `since`: which seqs, and whether every entry after `since` is kept.
    fn plan(&self, since: i64) -> Result<ReplayPlan, ApiError>;
    /// Up to `n` entries with `from <= seq <= through`, in seq order.
    fn read(&self, from: i64, through: i64, n: i64) -> Result<Vec<Entry>, ApiError>;
    /// What `synced` adds when entries after `since` are gone (where to page back).
    fn unrecovered(&self, plan: &ReplayPlan) -> Value;
}

/// One socket's resume: where it is held, whose budget it draws on, what it reads.
pub struct Resume<'a, S> {
    pub sockets: &'a Sockets,
    pub peer: &'a Peer,
    pub user: &'a str,
    pub limits: &'a Limits,
    pub source: &'a S,
}

/// A `sync` whose turn has come: where it resumes, and the bytes it booked.
pub struct Turn {
    since: i64,
    booked: usize,
}

/// Per socket: its `sync` answers (a budget of its frame allowance), and whether one waits.
struct Pace {
    answers: Budget,
    waiting: bool,
}

/// Per user, the replay bytes left; per socket, its `sync` answers.
#[derive(Default)]
pub struct Replays {
    budgets: RefCell<HashMap<String, Budget>>,
    paces: RefCell<HashMap<String, Pace>>,
    prune_at: Cell<usize>,
}

impl Replays {
    /// A connect's resume: the next batch after `since` when the user's budget covers it now,
    /// else no entry (`synced {more:true}` at `since`, and the client pages on with `sync`).
    /// Does not yield.
    pub fn resume<S: Source>(&self, to: &Resume<S>, since: i64) -> Result<(), ApiError> {
        let limit = self.resume_limit(to.user, to.limits, to.source, since, now_ms())?;
        self.send(to, Turn { since, booked: 0 }, limit)
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
        let events = limits.replay_batch_events;
        if !plan.recovered || plan.through - plan.from + 1 > events {
            return Ok(None);
        }
        let texts = if plan.from <= plan.through {
            read(plan.from, plan.through, events)?
        } else {
            Vec::new()
        };
        let bytes: usize = texts.iter().map(String::len).sum();
        let available = self.available(user, limits, now_ms());
        if bytes > available.min(limits.replay_batch_bytes) {
            return Ok(None);
        }
        self.with_budget(user, limits, |budget, _, _| budget.settle(0, bytes));
        Ok(Some(texts))
    }

    /// `sync {since}` from `info`'s socket: books the next batch and waits until it is covered
    /// (see [`Replays::book`]); `None` when the socket started closing meanwhile. The turn is
    /// then served with [`Replays::serve`].
    pub async fn sync<S: Source>(
        &self,
        to: &Resume<'_, S>,
        info: &SocketInfo,
        since: i64,
    ) -> Result<Option<Turn>, ApiError> {
        let conn = &info.conn_id;
        let (booked, wait) = self.book(to.user, to.limits, to.source, conn, since, now_ms())?;
        if wait > 0 {
            self.set_waiting(conn, true);
            Delay::from(Duration::from_millis(wait.unsigned_abs())).await;
            self.set_waiting(conn, false);
        }
        if to.peer.info().is_some_and(|now| !now.closing) {
            return Ok(Some(Turn { since, booked }));
        }
        self.with_budget(to.user, to.limits, |budget, _, _| budget.settle(booked, 0));
        Ok(None)
    }

    /// Sends the batch a turn booked, then `synced`. Does not yield.
    pub fn serve<S: Source>(&self, to: &Resume<S>, turn: Turn) -> Result<(), ApiError> {
        let limit = self.serve_limit(to.user, to.limits, turn.booked, now_ms());
        self.send(to, turn, limit)
    }

    /// Sends one batch within `limit` and settles what it sent against what the turn booked.
    fn send<S: Source>(
        &self,
        to: &Resume<S>,
        turn: Turn,
        limit: BatchLimit,
    ) -> Result<(), ApiError> {
        let plan = to.source.plan(turn.since)?;
        let sent = replay_batch(to, plan, limit)?;
        self.with_budget(to.user, to.limits, |budget, _, _| {
            budget.settle(turn.booked, sent)
        });
        Ok(())
    }

    /// The batch a connect's resume sends: the next whole batch when the budget covers it now
    /// (read to measure it, unless the budget covers any batch or is spent), else none.
    fn resume_limit(
        &self,
        user: &str,
        limits: &Limits,
        source: &impl Source,
        since: i64,
        now: i64,
    ) -> Result<BatchLimit, ApiError> {
        let full = full_batch(limits);
        let available = self.available(user, limits, now);
        if available >= full.bytes || (available > 0 && measure(source, since, full)? <= available)
        {
            Ok(full)
        } else {
            Ok(BatchLimit { bytes: 0, ..full })
        }
    }

    /// Books a `sync`'s batch: the next one after `since`, cut to what `user`'s budget covers
    /// within [`MAX_WAIT_MS`] (read to measure it, unless the budget covers that much
    /// already), and one answer on `conn`'s pace. Returns the bytes booked and how long to wait
    /// until both cover it. Refused, with nothing booked, while another `sync` of the socket
    /// waits, or when the user's debt alone outlasts [`MAX_WAIT_MS`].
    fn book(
        &self,
        user: &str,
        limits: &Limits,
        source: &impl Source,
        conn: &str,
        since: i64,
        now: i64,
    ) -> Result<(usize, i64), ApiError> {
        if self.is_waiting(conn) {
            return Err(limited(
                "a sync of this socket is already waiting: one replay at a time".into(),
            ));
        }
        let reach = self.with_budget(user, limits, |budget, rate, capacity| {
            budget.reach(now, rate, capacity, MAX_WAIT_MS)
        });
        let Some(limit) = sync_limit(reach, limits) else {
            return Err(limited(format!(
                "too many replay bytes for this user: sync again in {} s",
                retry_secs(reach, limits.replay_bytes_per_second)
            )));
        };
        let need = if self.available(user, limits, now) >= limit.bytes {
            limit.bytes
        } else {
            measure(source, since, limit)?
        };
        let bytes_wait = self.with_budget(user, limits, |budget, rate, capacity| {
            budget.book(now, rate, capacity, need)
        });
        let pace_wait = self.pace(conn, limits, now);
        Ok((need, bytes_wait.max(pace_wait).min(MAX_WAIT_MS)))
    }

    /// The batch a turn's answer sends: what it booked and what the budget holds besides, up
    /// to a whole batch.
    fn serve_limit(&self, user: &str, limits: &Limits, booked: usize, now: i64) -> BatchLimit {
        let full = full_batch(limits);
        let covered = booked.saturating_add(self.available(user, limits, now));
        BatchLimit {
            bytes: full.bytes.min(covered),
            ..full
        }
    }

    /// Books one `sync` answer on `conn`'s pace, a budget of the socket's frame allowance: the
    /// milliseconds until it is covered. Paces that say nothing new (full, nothing waiting)
    /// are dropped whenever their number has doubled, so sockets that went cost nothing.
    fn pace(&self, conn: &str, limits: &Limits, now: i64) -> i64 {
        let rate = limits.rate_limit_per_second as usize;
        let burst = limits.rate_limit_burst as usize;
        let mut paces = self.paces.borrow_mut();
        if paces.len() >= self.prune_at.get() {
            paces.retain(|_, pace| pace.waiting || !pace.answers.is_full(now, rate, burst));
            self.prune_at.set((paces.len() * 2).max(PACES_KEPT));
        }
        paces
            .entry(conn.to_owned())
            .or_insert_with(|| Pace {
                answers: Budget::full(burst, now),
                waiting: false,
            })
            .answers
            .book(now, rate, burst, SYNC_FRAMES)
    }

    fn is_waiting(&self, conn: &str) -> bool {
        self.paces
            .borrow()
            .get(conn)
            .is_some_and(|pace| pace.waiting)
    }

    fn set_waiting(&self, conn: &str, waiting: bool) {
        if let Some(pace) = self.paces.borrow_mut().get_mut(conn) {
            pace.waiting = waiting;
        }
    }

    fn available(&self, user: &str, limits: &Limits, now: i64) -> usize {
        self.with_budget(user, limits, |budget, rate, capacity| {
            budget.available(now, rate, capacity)
        })
    }

    fn with_budget<R>(
        &self,
        user: &str,
        limits: &Limits,
        f: impl FnOnce(&mut Budget, usize, usize) -> R,
    ) -> R {
        let rate = limits.replay_bytes_per_second;
        let capacity = rate.max(limits.replay_batch_bytes);
        let mut budgets = self.budgets.borrow_mut();
        let budget = budgets
            .entry(user.to_owned())
            .or_insert_with(|| Budget::full(capacity, now_ms()));
        f(budget, rate, capacity)
    }
}

/// The configured batch.
fn full_batch(limits: &Limits) -> BatchLimit {
    BatchLimit {
        events: limits.replay_batch_events,
        bytes: limits.replay_batch_bytes,
    }
}

/// The batch a `sync` may book: the configured one, cut to `reach`, what the user's budget
/// covers within [`MAX_WAIT_MS`]; `None` when the debt alone outlasts that.
fn sync_limit(reach: i64, limits: &Limits) -> Option<BatchLimit> {
    let reach = usize::try_from(reach).ok().filter(|reach| *reach > 0)?;
    let full = full_batch(limits);
    Some(BatchLimit {
        bytes: full.bytes.min(reach),
        ..full
    })
}

/// Whole seconds until a debt that leaves `reach` is within reach again.
fn retry_secs(reach: i64, rate: usize) -> u64 {
    1 + reach.unsigned_abs() / u64::try_from(rate.max(1)).unwrap_or(u64::MAX)
}

fn limited(message: String) -> ApiError {
    ApiError::new(429, LIMITED, message)
}

/// The bytes of the batch `limit` allows after `since`, read and not sent.
fn measure(source: &impl Source, since: i64, limit: BatchLimit) -> Result<usize, ApiError> {
    let mut bytes = 0;
    walk(&source.plan(since)?, limit, source, |entry| {
        bytes += entry.text.len()
    })?;
    Ok(bytes)
}

/// Reads the batch `limit` allows of `plan`, page by page, handing each entry to `take`; true
/// when entries remain after it (a limit of zero bytes takes none).
fn walk(
    plan: &ReplayPlan,
    limit: BatchLimit,
    source: &impl Source,
    mut take: impl FnMut(Entry),
) -> Result<bool, ApiError> {
    if limit.bytes == 0 {
        return Ok(plan.from <= plan.through);
    }
    let mut batch = Batch::default();
    let mut next = plan.from;
    while next <= plan.through {
        let page = source.read(next, plan.through, REPLAY_PAGE.min(limit.events))?;
        let Some(last) = page.last() else { break };
        next = last.seq.saturating_add(1);
        for entry in page {
            if !batch.admit(entry.text.len(), limit) {
                return Ok(true);
            }
            take(entry);
        }
    }
    Ok(false)
}

/// Sends `to` one batch of `plan` (at most `limit`), then
/// `synced {seq, recovered, more}`; `seq` is the last entry sent while `more` is true (the
/// point before `plan.from` when none was), the stream's newest seq once it is false. The
/// socket is marked `syncing` while more remain, so live entries wait for the next batch.
/// Nothing here yields, so no entry can be appended between the read and `synced`. Returns the
/// bytes of entries sent.
fn replay_batch<S: Source>(
    to: &Resume<S>,
    plan: ReplayPlan,
    limit: BatchLimit,
) -> Result<usize, ApiError> {
    let mut last_sent = None;
    let mut sent_bytes = 0;
    let more = walk(&plan, limit, to.source, |entry| {
        last_sent = Some(entry.seq);
        sent_bytes += entry.text.len();
        to.peer.send_text(entry.text);
    })?;
    if let Some(mut info) = to.peer.info().filter(|info| info.syncing != more) {
        info.syncing = more;
        to.peer.save(to.sockets, &info)?;
    }
    let seq = if more {
        last_sent.unwrap_or(plan.from.saturating_sub(1))
    } else {
        plan.through
    };
    let mut synced = json!({"seq": seq, "recovered": plan.recovered, "more": more});
    if let (false, Value::Object(extra), Some(fields)) = (
        plan.recovered,
        to.source.unrecovered(&plan),
        synced.as_object_mut(),
    ) {
        fields.extend(extra);
    }
    to.peer.send(&ServerFrame::event("synced", synced));
    Ok(sent_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Bucket;
    use crate::stream::plan_replay;

    /// A stream whose entry `seq` (from 1) is `sizes[seq - 1]` bytes long.
    struct Backlog(Vec<usize>);

    impl Source for Backlog {
        fn plan(&self, since: i64) -> Result<ReplayPlan, ApiError> {
            Ok(plan_replay(since, self.0.len() as i64, 0))
        }

        fn read(&self, from: i64, through: i64, n: i64) -> Result<Vec<Entry>, ApiError> {
            Ok((from..=through)
                .take(n as usize)
                .map(|seq| Entry {
                    seq,
                    text: "x".repeat(self.0[seq as usize - 1]),
                })
                .collect())
        }

        fn unrecovered(&self, _plan: &ReplayPlan) -> Value {
            Value::Null
        }
    }

    /// One batch as a replay sends it.
    struct Sent {
        entries: usize,
        bytes: usize,
        last: i64,
        more: bool,
    }

    fn batch(backlog: &Backlog, since: i64, limit: BatchLimit) -> Sent {
        let mut sent = Sent {
            entries: 0,
            bytes: 0,
            last: since,
            more: false,
        };
        let plan = backlog.plan(since).unwrap();
        sent.more = walk(&plan, limit, backlog, |entry| {
            sent.entries += 1;
            sent.bytes += entry.text.len();
            sent.last = entry.seq;
        })
        .unwrap();
        sent
    }

    /// A connect at `now` that resumes from 0, then a client that sends `sync` the moment each
    /// `synced {more:true}` arrives: every `sync` must pass the socket's frame limit, and no
    /// wait may pass [`MAX_WAIT_MS`]. Returns the batches and when the last one was answered.
    fn page_to_end(limits: &Limits, backlog: &Backlog, mut now: i64) -> (Vec<Sent>, i64) {
        let replays = Replays::default();
        let (burst, per_second) = (limits.rate_limit_burst, limits.rate_limit_per_second);
        let mut gate = Bucket::full(burst, now);
        let limit = replays.resume_limit("u", limits, backlog, 0, now).unwrap();
        let mut sent = vec![batch(backlog, 0, limit)];
        replays.with_budget("u", limits, |budget, _, _| budget.settle(0, sent[0].bytes));
        while let Some(previous) = sent.last().filter(|sent| sent.more) {
            let since = previous.last;
            assert!(
                gate.take(now, per_second, burst),
                "sync {} passes",
                sent.len()
            );
            let (booked, wait) = replays.book("u", limits, backlog, "c", since, now).unwrap();
            assert!((0..=MAX_WAIT_MS).contains(&wait), "{wait} ms");
            now += wait;
            let answer = batch(
                backlog,
                since,
                replays.serve_limit("u", limits, booked, now),
            );
            replays.with_budget("u", limits, |budget, _, _| {
                budget.settle(booked, answer.bytes)
            });
            sent.push(answer);
        }
        (sent, now)
    }

    const MIB: usize = 1024 * 1024;

    /// Default limits, nothing booked yet, and a moment a second from now.
    fn fresh() -> (Limits, Replays, i64) {
        (Limits::default(), Replays::default(), now_ms() + 1000)
    }

    #[test]
    fn a_client_paging_by_the_rules_gets_whole_batches_within_the_frame_limit() {
        let limits = Limits::default();
        let backlog = Backlog(vec![900; 3000]);
        let start = now_ms() + 1000;
        let (sent, end) = page_to_end(&limits, &backlog, start);
        let counts: Vec<usize> = sent.iter().map(|sent| sent.entries).collect();
        assert_eq!(
            counts, [500; 6],
            "whole batches of REPLAY_BATCH_EVENTS, never a crumb"
        );
        let seconds = (end - start) as f64 / 1000.0;
        let served = sent.iter().map(|sent| sent.bytes).sum::<usize>() as f64;
        let bound = MIB as f64 * (1.0 + seconds);
        assert!(
            served <= bound,
            "{served} bytes in {seconds} s: over the budget"
        );
    }

    #[test]
    fn a_batch_beyond_what_the_wait_buys_is_cut_to_it_and_never_refused() {
        let limits = Limits {
            replay_bytes_per_second: 4096,
            ..Limits::default()
        };
        let backlog = Backlog(vec![1000; 300]);
        let (sent, _) = page_to_end(&limits, &backlog, now_ms() + 1000);
        assert_eq!(sent.iter().map(|sent| sent.entries).sum::<usize>(), 300);
        let buys = 4096 * MAX_WAIT_MS as usize / 1000;
        for sent in &sent[1..] {
            assert!(sent.bytes <= buys, "{} bytes", sent.bytes);
            assert!(
                sent.bytes + 1000 > buys || !sent.more,
                "not a crumb: {}",
                sent.bytes
            );
        }
    }

    #[test]
    fn batches_smaller_than_the_budget_are_answered_at_half_the_frame_rate() {
        let limits = Limits {
            replay_batch_events: 1,
            ..Limits::default()
        };
        let backlog = Backlog(vec![50; 400]);
        let start = now_ms() + 1000;
        let (sent, end) = page_to_end(&limits, &backlog, start);
        assert_eq!(sent.len(), 400);
        let seconds = (end - start) as f64 / 1000.0;
        let allowed = (100.0 + 20.0 * seconds) / 2.0 + 1.0;
        assert!(
            sent.len() as f64 <= allowed,
            "{} in {seconds} s",
            sent.len()
        );
    }

    #[test]
    fn a_connect_sends_a_whole_batch_or_none() {
        let (limits, replays, now) = fresh();
        let large = Backlog(vec![900; 1000]);
        let small = Backlog(vec![500; 2]);
        assert_eq!(
            replays
                .resume_limit("u", &limits, &large, 0, now)
                .unwrap()
                .bytes,
            MIB
        );
        replays.with_budget("u", &limits, |budget, _, _| budget.settle(0, MIB - 2000));
        let limit = replays.resume_limit("u", &limits, &large, 0, now).unwrap();
        assert_eq!(limit.bytes, 0, "not covered: nothing");
        let sent = batch(&large, 0, limit);
        assert!(sent.more && sent.entries == 0 && sent.last == 0);
        let limit = replays.resume_limit("u", &limits, &small, 0, now).unwrap();
        let sent = batch(&small, 0, limit);
        assert!(
            !sent.more && sent.entries == 2,
            "the rest of the backlog is covered"
        );
    }

    #[test]
    fn a_second_sync_of_a_socket_while_one_waits_is_refused() {
        let (limits, replays, now) = fresh();
        let backlog = Backlog(vec![4000; 1000]);
        replays.with_budget("u", &limits, |budget, _, _| budget.settle(0, 3 * MIB));
        let (_, wait) = replays.book("u", &limits, &backlog, "c", 0, now).unwrap();
        assert!(wait > 0);
        replays.set_waiting("c", true);
        let refused = replays
            .book("u", &limits, &backlog, "c", 0, now)
            .unwrap_err();
        assert_eq!(refused.code, LIMITED);
        assert!(
            replays.book("u", &limits, &backlog, "d", 0, now).is_ok(),
            "another socket waits"
        );
    }

    #[test]
    fn bookings_beyond_the_longest_wait_are_refused_and_book_nothing() {
        let (limits, replays, now) = fresh();
        let backlog = Backlog(vec![4000; 1000]);
        let mut accepted = 0;
        let refused = loop {
            match replays.book("u", &limits, &backlog, &format!("c{accepted}"), 0, now) {
                Ok((_, wait)) => {
                    assert!(wait <= MAX_WAIT_MS);
                    accepted += 1;
                }
                Err(err) => break err,
            }
        };
        assert_eq!(refused.code, LIMITED);
        assert!(
            refused.message.contains("sync again in 1 s"),
            "{}",
            refused.message
        );
        // The burst and ten seconds' worth of whole batches (1 MiB, then 262 entries of 4000
        // bytes), then what is left of the ten seconds: one entry, then one that overdraws it.
        assert_eq!(accepted, 13);
        let reach = |at| replays.with_budget("u", &limits, |b, r, c| b.reach(at, r, c, 0));
        let before = reach(now);
        assert!(replays
            .book("u", &limits, &backlog, "late", 0, now)
            .is_err());
        assert_eq!(reach(now), before, "a refusal books nothing");
    }

    #[test]
    fn paces_of_sockets_that_went_are_dropped() {
        let (limits, replays, now) = fresh();
        for n in 0..1000 {
            replays.pace(&format!("c{n}"), &limits, now);
        }
        for n in 0..100 {
            replays.pace(&format!("late{n}"), &limits, now + 60_000);
        }
        let paces = replays.paces.borrow();
        assert!(paces.len() <= 100, "{} kept", paces.len());
        assert!((0..100).all(|n| paces.contains_key(&format!("late{n}"))));
    }
}
