//! A UserHub's listing in the directory of who is online (`hubs::directory`).
//!
//! A hub lists itself in its shard when it accepts a socket and does not know itself listed
//! since it woke — its first socket, and the first accept after each wake — and unlists itself
//! when its last open socket goes. Stamps are the hub's clock, made strictly increasing within
//! a wake, so the shard can tell a late leave from a newer join (see the directory's races).

use std::cell::Cell;

use worker::Env;

use crate::clock::now_ms;
use crate::hubs::stubs::directory::{self, DirectoryCall};

/// The hub's registration in its shard, as far as this wake of the hub knows. Memory only:
/// after a wake it is unknown, and the next accept lists the hub again (one subrequest).
#[derive(Default)]
pub struct Listing {
    /// `Some(true)`: a join succeeded since the last leave; `Some(false)`: left, or found empty
    /// by a broadcast; `None`: unknown (the hub woke since).
    listed: Cell<Option<bool>>,
    /// The newest stamp handed out: every join and leave gets a later one.
    stamp: Cell<i64>,
    /// The stamp of the last leave: a join that answers after it does not count as listed.
    left: Cell<i64>,
}

impl Listing {
    fn next_stamp(&self) -> i64 {
        let stamp = now_ms().max(self.stamp.get() + 1);
        self.stamp.set(stamp);
        stamp
    }

    /// A socket of `user` was accepted: list the hub unless it knows it is listed. A failure
    /// is logged and the connect goes on; the next accept tries again.
    pub async fn join(&self, env: &Env, user: &str) {
        if self.listed.get() == Some(true) {
            return;
        }
        let stamp = self.next_stamp();
        match directory::register(env, DirectoryCall::Join, user, stamp).await {
            Ok(()) if stamp > self.left.get() => self.listed.set(Some(true)),
            Ok(()) => {}
            Err(err) => crate::log::warn(
                "directory.join_failed",
                serde_json::json!({"user_id": user, "error": err.to_string()}),
            ),
        }
    }

    /// The last socket of `user` is gone: unlist the hub unless it knows it is not listed.
    pub async fn leave(&self, env: &Env, user: &str) {
        if self.listed.get() == Some(false) {
            return;
        }
        let stamp = self.next_stamp();
        self.left.set(stamp);
        self.listed.set(Some(false));
        if let Err(err) = directory::register(env, DirectoryCall::Leave, user, stamp).await {
            crate::log::warn(
                "directory.leave_failed",
                serde_json::json!({"user_id": user, "error": err.to_string()}),
            );
        }
    }

    /// A broadcast found no socket here: its shard drops the hub, so the next accept lists it.
    pub fn dropped(&self) {
        self.left.set(self.next_stamp());
        self.listed.set(Some(false));
    }
}
