//! Socket.IO namespaces being opened, and the backend's calls on them held until they are open.
//!
//! socket.io runs a `connection` handler after the CONNECT is answered, so what the handler does
//! to its socket (`socket.join(room)`, `socket.emit(…)`) finds it connected. Here the handler
//! runs in the backend during the `connection` call (`user::lifecycle`), and the CONNECT is
//! answered after that call returns: a backend's call naming the socket can reach the hub
//! before that (`@switchboard/nestjs` sends the socket's own calls once its answer is written,
//! and the hub may not have read the answer yet; a handler may also `await` a call before it
//! answers). Such a call is held, counted as reaching the socket, and done in order right after
//! the CONNECT (and a recovery's missed events); if the connection is refused it reaches
//! nothing, as socket.io's calls on a socket refused by middleware do. `fetch` is never held:
//! it answers with the sockets open now. At most [`MAX_HELD`] calls are held per opening.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::hubs::stubs::user::SocketOp;

/// The most calls held for one opening; beyond it a call reaches nothing (an opening lasts at
/// most `EVENT_HOOK_TIMEOUT_MS`, and a handler makes a few calls on its socket, not hundreds).
pub const MAX_HELD: usize = 64;

/// The namespaces being opened, by connection id and namespace, with the calls held for each.
#[derive(Default)]
pub struct Openings {
    pending: RefCell<HashMap<(String, String), Vec<SocketOp>>>,
}

impl Openings {
    /// `conn_id`'s namespace `nsp` is being opened: calls naming it are held from now on.
    pub fn begin(&self, conn_id: &str, nsp: &str) {
        self.pending
            .borrow_mut()
            .entry((conn_id.to_owned(), nsp.to_owned()))
            .or_default();
    }

    /// Holds `op` if `conn_id`'s namespace `nsp` is being opened and fewer than [`MAX_HELD`]
    /// calls are held for it; false (not held) if not.
    pub fn hold(&self, conn_id: &str, nsp: &str, op: &SocketOp) -> bool {
        match self
            .pending
            .borrow_mut()
            .get_mut(&(conn_id.to_owned(), nsp.to_owned()))
        {
            Some(held) if held.len() < MAX_HELD => {
                held.push(op.clone());
                true
            }
            _ => false,
        }
    }

    /// The opening ended (open, refused or gone): the calls held for it, in order.
    pub fn end(&self, conn_id: &str, nsp: &str) -> Vec<SocketOp> {
        self.pending
            .borrow_mut()
            .remove(&(conn_id.to_owned(), nsp.to_owned()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(event: &str) -> SocketOp {
        SocketOp::Emit {
            event: event.to_owned(),
            args: Vec::new(),
        }
    }

    #[test]
    fn nothing_is_held_for_a_namespace_not_being_opened() {
        let openings = Openings::default();
        assert!(!openings.hold("a~1", "/chat", &emit("x")));
        openings.begin("a~1", "/chat");
        assert!(!openings.hold("a~1", "/", &emit("x")));
        assert!(!openings.hold("a~2", "/chat", &emit("x")));
    }

    #[test]
    fn held_calls_come_back_once_in_order() {
        let openings = Openings::default();
        openings.begin("a~1", "/chat");
        assert!(openings.hold("a~1", "/chat", &emit("first")));
        assert!(openings.hold("a~1", "/chat", &emit("second")));
        let held: Vec<String> = openings
            .end("a~1", "/chat")
            .into_iter()
            .map(|op| match op {
                SocketOp::Emit { event, .. } => event,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(held, ["first", "second"]);
        assert!(openings.end("a~1", "/chat").is_empty());
        assert!(!openings.hold("a~1", "/chat", &emit("late")));
    }

    #[test]
    fn at_most_max_held_calls_are_held() {
        let openings = Openings::default();
        openings.begin("a~1", "/chat");
        for _ in 0..MAX_HELD {
            assert!(openings.hold("a~1", "/chat", &emit("x")));
        }
        assert!(!openings.hold("a~1", "/chat", &emit("one too many")));
        assert_eq!(openings.end("a~1", "/chat").len(), MAX_HELD);
    }
}
