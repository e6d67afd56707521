//! A room's own sockets get what it broadcasts after the turn that stored it.
//!
//! The runtime holds every frame an object sends until the writes made before it are durable
//! (the output gate), and the writes of a turn commit only when the turn ends. A message's ack
//! and its copies to the shards are sent first, but a fan-out to the room's thousand sockets in
//! the same turn kept them all waiting for as long as that fan-out took. So [`Outbox::push`]
//! queues what the room's own sockets get and sends it on a zero timer, after the commit; the
//! ack and the shards' copies leave at the commit.
//!
//! Nothing else changes: the room hands over the queue ([`Outbox::flush`]) at the start of every
//! event it handles, so whatever that event sends (a `sync` answer, a resume's batch, the next
//! message, a close) comes after what was queued, and the queued frames go to the sockets that
//! were open when they were queued, as a fan-out in the storing turn did.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use crate::hubs::common::sockets::Sockets;
use crate::protocol::{Emitted, ServerFrame};

/// A broadcast waiting for its turn to end.
struct Queued {
    /// The frame as the gateway's protocol writes it (rendered once, also for the shards).
    text: String,
    event: String,
    data: Value,
    seq: Option<i64>,
    emitted: Option<Emitted>,
    except_user: Option<String>,
}

pub(super) struct Outbox {
    sockets: Rc<Sockets>,
    queue: Rc<RefCell<Vec<Queued>>>,
}

impl Outbox {
    pub(super) fn new(sockets: Rc<Sockets>) -> Self {
        Self {
            sockets,
            queue: Rc::default(),
        }
    }

    /// Queues `frame` (rendered as `text`) for every open socket of the room's own, except
    /// those of `except_user`; the first frame of a turn starts the timer that sends them.
    pub(super) fn push(&self, frame: ServerFrame<'_>, text: String, except_user: Option<&str>) {
        let first = {
            let mut queue = self.queue.borrow_mut();
            queue.push(Queued {
                text,
                event: frame.event.to_owned(),
                data: frame.data,
                seq: frame.seq,
                emitted: frame.emitted,
                except_user: except_user.map(str::to_owned),
            });
            queue.len() == 1
        };
        if first {
            let (sockets, queue) = (self.sockets.clone(), self.queue.clone());
            worker::wasm_bindgen_futures::spawn_local(async move {
                worker::Delay::from(Duration::ZERO).await;
                send(&sockets, &queue);
            });
        }
    }

    /// Sends what is queued now (an event about to be handled goes after it).
    pub(super) fn flush(&self) {
        send(&self.sockets, &self.queue);
    }
}

fn send(sockets: &Sockets, queue: &RefCell<Vec<Queued>>) {
    let queued = std::mem::take(&mut *queue.borrow_mut());
    for item in queued {
        let frame = ServerFrame {
            event: &item.event,
            id: None,
            data: item.data,
            seq: item.seq,
            emitted: item.emitted,
        };
        sockets.fan_out(
            &item.text,
            item.seq.is_some(),
            Some(&frame),
            item.except_user.as_deref(),
        );
    }
}
