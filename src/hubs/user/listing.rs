//! A UserHub's listing in the directory of who is online (`hubs::directory`).
//!
//! A hub lists itself in its shard when it accepts a socket and does not know itself listed
//! since it woke — its first socket, and the first accept after each wake — and unlists itself
//! when its last open socket goes. Stamps are the hub's clock, made strictly increasing within
//! a wake, so the shard can tell a late leave from a newer join (see the directory's races).
//!
//! The join does not hold up the connect: it is sent as the socket is accepted and answered
//! after the 101 (a connect costs no round trip to the directory). The hub counts itself listed
//! from the moment it sends, so the accepts that follow send nothing; a join that fails is
//! logged and forgotten, and the next accept sends another.

use std::cell::Cell;
use std::rc::Rc;

use worker::Env;

use crate::clock::now_ms;
use crate::hubs::stubs::directory::{self, DirectoryCall};

/// The hub's registration in its shard, as far as this wake of the hub knows. Memory only:
/// after a wake it is unknown, and the next accept lists the hub again (one subrequest).
#[derive(Default)]
pub struct Listing {
    /// `Some(true)`: a join was sent since the last leave (and has not failed); `Some(false)`:
    /// left, or found empty by a broadcast; `None`: unknown (the hub woke since, or a join
    /// failed).
    listed: Cell<Option<bool>>,
    /// The newest stamp handed out: every join and leave gets a later one.
    stamp: Cell<i64>,
    /// The stamp of the last leave: a join that fails after it changes nothing.
    left: Cell<i64>,
}

impl Listing {
    fn next_stamp(&self) -> i64 {
        let stamp = now_ms().max(self.stamp.get() + 1);
        self.stamp.set(stamp);
        stamp
    }

    /// A socket of `user` was accepted: list the hub unless it knows it is listed, without
    /// waiting for the directory's answer. A failure is logged; the next accept tries again.
    pub fn join(self: &Rc<Self>, env: &Env, user: &str) {
        if self.listed.get() == Some(true) {
            return;
        }
        let stamp = self.next_stamp();
        self.listed.set(Some(true));
        let (listing, env, user) = (Rc::clone(self), env.clone(), user.to_owned());
        worker::wasm_bindgen_futures::spawn_local(async move {
            let Err(err) = directory::register(&env, DirectoryCall::Join, &user, stamp).await
            else {
                return;
            };
            if listing.left.get() < stamp {
                listing.listed.set(None);
            }
            crate::log::warn(
                "directory.join_failed",
                serde_json::json!({"user_id": user, "error": err.to_string()}),
            );
        });
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
