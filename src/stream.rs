//! Pure rules of a durable, ordered event stream (a user's events, a room's messages).
//!
//! A stream assigns consecutive `seq` numbers from 1. Old entries are pruned by a retention rule,
//! and the highest pruned seq is remembered, so a client resuming from `since` can be told whether
//! everything after `since` is still there (`recovered: true`) or whether it must refetch
//! (`recovered: false`). The Durable Objects store; this module decides.

/// What to do for a client that resumes from `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPlan {
    /// Replay entries with `from <= seq <= through` (empty when `from > through`).
    pub from: i64,
    pub through: i64,
    /// False when entries after `since` were pruned, or `since` is ahead of the stream.
    pub recovered: bool,
}

/// Plans a resume from `since` given the newest seq and the highest pruned seq. Any `since`,
/// however large, is safe: nothing overflows.
pub fn plan_replay(since: i64, last_seq: i64, pruned_through: i64) -> ReplayPlan {
    let recovered = since >= pruned_through && since <= last_seq;
    ReplayPlan {
        from: since.max(pruned_through).saturating_add(1),
        through: last_seq,
        recovered,
    }
}

/// How much one replay batch may send: a resume is answered in batches so that no single turn
/// of a hub holds or sends an unbounded backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    pub events: i64,
    pub bytes: usize,
}

/// Counts what a batch has taken. The first entry is always admitted, whatever its size, so a
/// batch always makes progress.
#[derive(Debug, Default)]
pub struct Batch {
    events: i64,
    bytes: usize,
}

impl Batch {
    /// True when an entry of `bytes` fits; it is then counted.
    pub fn admit(&mut self, bytes: usize, limit: BatchLimit) -> bool {
        let fits = self.events == 0
            || (self.events < limit.events && self.bytes.saturating_add(bytes) <= limit.bytes);
        if fits {
            self.events += 1;
            self.bytes = self.bytes.saturating_add(bytes);
        }
        fits
    }
}

/// Retention keeps the newest `keep_events` entries and every entry younger than the age limit,
/// whichever keeps more: an entry is pruned only if both rules allow. This is the highest seq
/// the count rule allows to prune, given the newest seq.
pub fn prune_ceiling(last_seq: i64, keep_events: i64) -> i64 {
    (last_seq - keep_events).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_inside_retention() {
        let plan = plan_replay(5, 9, 0);
        assert_eq!((plan.from, plan.through, plan.recovered), (6, 9, true));
    }

    #[test]
    fn resume_at_head_replays_nothing() {
        let plan = plan_replay(9, 9, 3);
        assert!(plan.from > plan.through);
        assert!(plan.recovered);
    }

    #[test]
    fn resume_from_zero_on_a_fresh_stream() {
        let plan = plan_replay(0, 0, 0);
        assert!(plan.from > plan.through && plan.recovered);
    }

    #[test]
    fn resume_past_retention_replays_what_is_left() {
        let plan = plan_replay(2, 9, 4);
        assert_eq!((plan.from, plan.through, plan.recovered), (5, 9, false));
    }

    #[test]
    fn resume_exactly_at_the_pruned_edge_is_complete() {
        assert!(plan_replay(4, 9, 4).recovered);
        assert!(!plan_replay(3, 9, 4).recovered);
    }

    #[test]
    fn a_since_ahead_of_the_stream_is_not_recovered() {
        let plan = plan_replay(12, 9, 0);
        assert!(!plan.recovered);
        assert!(plan.from > plan.through);
    }

    #[test]
    fn the_largest_since_does_not_overflow() {
        let plan = plan_replay(i64::MAX, 9, 0);
        assert!(!plan.recovered);
        assert!(plan.from > plan.through);
    }

    #[test]
    fn batches_are_cut_by_count_and_bytes_but_always_progress() {
        let limit = BatchLimit {
            events: 3,
            bytes: 100,
        };
        let mut batch = Batch::default();
        assert!(batch.admit(500, limit), "the first entry always goes");
        assert!(!batch.admit(1, limit), "then the bytes are spent");
        let mut batch = Batch::default();
        assert!((0..3).all(|_| batch.admit(10, limit)));
        assert!(!batch.admit(10, limit), "then the count is spent");
    }

    #[test]
    fn retention_ceiling() {
        assert_eq!(prune_ceiling(1500, 1000), 500);
        assert_eq!(prune_ceiling(10, 1000), 0);
    }
}
