//! Pure rules of a durable, ordered event stream (a user's events, a room's messages).
//!
//! A stream assigns consecutive `seq` numbers from 1. Old entries are pruned by a retention rule,
//! and the highest pruned seq is remembered, so a client resuming from `since` can be told whether
//! everything after `since` is still there (`recovered: true`) or whether it must refetch
//! (`recovered: false`). The Durable Objects store; this module decides.
//!
//! A user stream holds two classes of event ([`Class`]), each pruned against its own budget, so
//! the events one class keeps can lie below the other class's highest pruned seq: its replay
//! starts right after `since` and reads what is kept ([`plan_sparse_replay`]). It also lets a
//! newer `room.updated` replace the older ones it makes obsolete ([`supersedes`]), so repeated
//! renames leave one event, not one each.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// As [`plan_replay`], for a stream whose kept entries may lie below its highest pruned seq (a
/// user stream prunes each [`Class`] on its own): the replay starts right after `since`, and
/// `recovered` is still false whenever any entry after `since` was pruned.
pub fn plan_sparse_replay(since: i64, last_seq: i64, pruned_through: i64) -> ReplayPlan {
    ReplayPlan {
        from: since.saturating_add(1),
        ..plan_replay(since, last_seq, pruned_through)
    }
}

/// The two classes of event in a user stream, each with its own retention budget, so that what
/// other users do can never push out what a backend pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A backend's event (`POST /internal/v1/push`): the stream is its only copy.
    Backend,
    /// An event the gateway makes of a change whose state D1 holds — a direct message, its read
    /// or deletion, a room added, renamed or removed — whoever caused it. A client that lost
    /// some (`recovered:false`) refetches that state over REST.
    Chat,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Backend, Class::Chat];

    /// How the class is stored (the `class` column).
    pub fn code(self) -> i64 {
        match self {
            Class::Backend => 0,
            Class::Chat => 1,
        }
    }
}

/// The room whose older `event`s a new one may replace: `room.updated` carries the changed
/// fields of one room (`{room_id, name}` on a rename, `{room_id, role}` on a role change), so
/// only its newest value per field matters. Other events are never replaced.
pub fn coalescing_room<'a>(event: &str, data: &'a Value) -> Option<&'a str> {
    (event == "room.updated")
        .then(|| data.get("room_id").and_then(Value::as_str))
        .flatten()
}

/// True when `newer` makes `older` obsolete: it carries every field `older` has (a rename
/// replaces an older rename, never a role change it does not repeat).
pub fn supersedes(newer: &Value, older: &Value) -> bool {
    match (newer.as_object(), older.as_object()) {
        (Some(newer), Some(older)) => older.keys().all(|key| newer.contains_key(key)),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `plan_replay(since, last_seq, pruned_through)`: the seqs it replays (`None`: nothing,
    /// `from > through`) and whether it recovered.
    #[test]
    fn resumes_plan_their_replay() {
        for (since, last_seq, pruned, replays, recovered, case) in [
            (5, 9, 0, Some((6, 9)), true, "inside retention"),
            (9, 9, 3, None, true, "at the head"),
            (0, 0, 0, None, true, "from zero, fresh stream"),
            (2, 9, 4, Some((5, 9)), false, "past retention"),
            (4, 9, 4, Some((5, 9)), true, "at the pruned edge"),
            (3, 9, 4, Some((5, 9)), false, "below the pruned edge"),
            (12, 9, 0, None, false, "ahead of the stream"),
            (i64::MAX, 9, 0, None, false, "the largest since"),
        ] {
            let plan = plan_replay(since, last_seq, pruned);
            match replays {
                Some(seqs) => assert_eq!((plan.from, plan.through), seqs, "{case}"),
                None => assert!(plan.from > plan.through, "{case}"),
            }
            assert_eq!(plan.recovered, recovered, "{case}");
        }
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
    fn a_sparse_replay_reads_below_the_pruned_edge_but_says_what_was_lost() {
        let plan = plan_sparse_replay(0, 9, 4);
        assert_eq!((plan.from, plan.through, plan.recovered), (1, 9, false));
        let plan = plan_sparse_replay(4, 9, 4);
        assert_eq!((plan.from, plan.through, plan.recovered), (5, 9, true));
        let plan = plan_sparse_replay(i64::MAX, 9, 0);
        assert!(plan.from > plan.through && !plan.recovered);
    }

    #[test]
    fn classes_are_stored_as_distinct_codes() {
        assert_eq!(Class::ALL.map(Class::code), [0, 1]);
        assert_eq!(serde_json::to_value(Class::Chat).unwrap(), "chat");
    }

    #[test]
    fn only_room_updated_coalesces_and_only_per_room() {
        let rename = serde_json::json!({"room_id": "team", "name": "New"});
        assert_eq!(coalescing_room("room.updated", &rename), Some("team"));
        assert_eq!(coalescing_room("room.added", &rename), None);
        assert_eq!(coalescing_room("message", &rename), None);
        assert_eq!(
            coalescing_room("room.updated", &serde_json::json!({"name": "x"})),
            None
        );
    }

    #[test]
    fn a_newer_update_replaces_only_updates_whose_fields_it_repeats() {
        let rename = serde_json::json!({"room_id": "team", "name": "B"});
        let older_rename = serde_json::json!({"room_id": "team", "name": "A"});
        let role = serde_json::json!({"room_id": "team", "role": "owner"});
        assert!(supersedes(&rename, &older_rename));
        assert!(!supersedes(&rename, &role));
        assert!(!supersedes(&role, &rename));
        assert!(!supersedes(&rename, &serde_json::json!("not an object")));
    }
}
