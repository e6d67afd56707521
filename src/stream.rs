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

/// Plans a resume from `since` given the newest seq and the highest pruned seq.
pub fn plan_replay(since: i64, last_seq: i64, pruned_through: i64) -> ReplayPlan {
    let recovered = since >= pruned_through && since <= last_seq;
    ReplayPlan {
        from: since.max(pruned_through) + 1,
        through: last_seq,
        recovered,
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
    fn retention_ceiling() {
        assert_eq!(prune_ceiling(1500, 1000), 500);
        assert_eq!(prune_ceiling(10, 1000), 0);
    }
}
