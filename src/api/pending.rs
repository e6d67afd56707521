//! Pending sockets: the ones the Worker holds for a client it has not admitted.
//!
//! A refused Socket.IO handshake is completed by the Worker itself so that the client hears why
//! (`api::socketio`); until the client lets go of that socket, it holds a connection, a
//! request context and a few file handles of the runtime. Nothing about such a client is
//! known but its address, so that is what bounds them: at most `MAX_PENDING_PER_ADDRESS`
//! held at once per client address, counted from the upgrade until the client lets go — a
//! socket whose client ignores the close keeps counting. Beyond the bound the upgrade is a
//! plain `429 too_many_pending`, which costs what any refused request costs.
//!
//! The count lives in the isolate's memory: the runtime's resources it protects are the
//! isolate's own, and an attacker's sockets from one address reach the same few isolates.

use std::cell::RefCell;
use std::collections::HashMap;

use worker::Request;

use crate::error::ApiError;

thread_local! {
    static HELD: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// The address a request came from: the platform's `cf-connecting-ip` (locally absent: every
/// local client shares one address).
pub fn client_address(req: &Request) -> String {
    crate::http::header(req, "cf-connecting-ip").unwrap_or_else(|| "unknown".to_owned())
}

/// One socket held for an address; dropped when the client let go of it.
pub struct Pending {
    address: String,
}

impl Pending {
    /// Counts one more socket for `address`, unless `max` are held already.
    pub fn hold(address: String, max: usize) -> Result<Self, ApiError> {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            let count = held.entry(address.clone()).or_insert(0);
            if *count >= max {
                return Err(ApiError::new(
                    429,
                    "too_many_pending",
                    format!("{max} refused connections from this address are still open; let go of them first"),
                ));
            }
            *count += 1;
            Ok(Self { address })
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(count) = held.get_mut(&self.address) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    held.remove(&self.address);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_until_one_is_let_go() {
        let first = Pending::hold("a".into(), 2).unwrap();
        let _second = Pending::hold("a".into(), 2).unwrap();
        assert_eq!(Pending::hold("a".into(), 2).err().unwrap().status, 429);
        let _other = Pending::hold("b".into(), 2).unwrap();
        drop(first);
        let _third = Pending::hold("a".into(), 2).unwrap();
        assert!(Pending::hold("a".into(), 2).is_err());
    }
}
