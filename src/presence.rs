//! Presence: whether a user counts as online.
//!
//! A user is online while at least one device socket is open, and for a grace period after the
//! last one closes, so a phone that drops and reconnects (a tunnel, a network switch, a page
//! reload) never flickers offline. `last_seen` is when the user was last known online.
//!
//! A large room tells its audience who came and went in batches ([`PresenceChanges`]): one
//! `presence.changed` a second instead of one frame per socket for each join and leave.

use std::collections::BTreeSet;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    pub user_id: String,
    pub online: bool,
    pub devices: usize,
    /// Unix milliseconds; `None` for a user never seen.
    pub last_seen: Option<i64>,
}

/// Presence of a user with `devices` open sockets, whose last socket closed at `last_seen_ms`.
pub fn presence(
    user_id: &str,
    devices: usize,
    last_seen_ms: Option<i64>,
    now_ms: i64,
    grace_secs: i64,
) -> Presence {
    let within_grace = last_seen_ms.is_some_and(|seen| now_ms - seen < grace_secs * 1000);
    Presence {
        user_id: user_id.to_owned(),
        online: devices > 0 || within_grace,
        devices,
        last_seen: if devices > 0 {
            Some(now_ms)
        } else {
            last_seen_ms
        },
    }
}

/// A large room's joins and leaves go out together at most this often (`presence.changed`).
pub const PRESENCE_INTERVAL_MS: i64 = 1000;

/// Who came and went since the last `presence.changed`: net of each other, so a user who
/// left and came back within the interval is in neither.
#[derive(Default)]
pub struct PresenceChanges {
    pub joined: BTreeSet<String>,
    pub left: BTreeSet<String>,
    /// When the next `presence.changed` is due, if anything is noted.
    pub due: Option<i64>,
}

impl PresenceChanges {
    /// `user` joined (or left) at `now`.
    pub fn note(&mut self, user: &str, joined: bool, now: i64) {
        let (to, from) = if joined {
            (&mut self.joined, &mut self.left)
        } else {
            (&mut self.left, &mut self.joined)
        };
        if !from.remove(user) {
            to.insert(user.to_owned());
        }
        self.due.get_or_insert(now + PRESENCE_INTERVAL_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_with_devices() {
        let p = presence("a", 2, None, 1_000, 10);
        assert!(p.online);
        assert_eq!(p.last_seen, Some(1_000));
    }

    #[test]
    fn online_during_grace_then_offline() {
        assert!(presence("a", 0, Some(1_000), 10_999, 10).online);
        let after = presence("a", 0, Some(1_000), 11_000, 10);
        assert!(!after.online);
        assert_eq!(after.last_seen, Some(1_000));
    }

    #[test]
    fn never_seen() {
        let p = presence("a", 0, None, 5, 10);
        assert!(!p.online);
        assert_eq!(p.last_seen, None);
    }
}
