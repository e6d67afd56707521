//! A backend's events for a room (`POST /emit`, from `api::sockets`: socket.io's
//! `io.to(room).emit(event, ...args)`).
//!
//! | arrives                  | stored                                            | sent |
//! |--------------------------|---------------------------------------------------|------|
//! | `POST /emit`             | the event with the next seq (`store::room_log`'s `emits`), unless `volatile` | the event to every socket of the room, here or on its shards, but those `except` names |
//!
//! An emitted event takes a seq in the room's stream like a message, so members see it in
//! order among the messages, and a resume (a room socket's `since`, a Socket.IO connection's
//! recovery, a relay's rejoin) replays it; it is not history (D1 never has it) and it does not
//! count as room activity. No membership is checked: the backend is the authority.
//! Each socket reads it in its dialect: the gateway's protocol gets `{"event", "data", "seq",
//! "args", "except"}` (`data` is the first argument), Socket.IO gets EVENT `[event, ...args]`
//! with the recovery offset; a relayed room (`user::namespace`) leaves out its client's socket
//! when `except` names it or one of its rooms.

use worker::Request;

use super::Room;
use crate::clock::now_ms;
use crate::hubs::common::object::Answer;
use crate::hubs::stubs::room::{EmitOutcome, EmitRequest};
use crate::protocol::{Emitted, ServerFrame};
use crate::store::room_log::RoomEmit;

impl Room {
    /// `RoomCall::Emit`: stored (unless volatile), then fanned out as a message is.
    pub(super) async fn emit_call(&self, mut req: Request) -> Answer {
        let body: EmitRequest = crate::http::read_hub_json(&mut req).await?;
        let seq = if body.volatile {
            None
        } else {
            let stored = self
                .log()
                .append_emit(&body.event, &body.args, &body.except, now_ms())?;
            Some(stored.seq)
        };
        let emitted = Emitted {
            args: body.args,
            except: body.except,
        };
        self.broadcast(ServerFrame::emitted(&body.event, seq, emitted), None);
        Ok(crate::http::json(200, &EmitOutcome { seq })?)
    }
}

/// A stored emitted event as a frame (for a resume's replay).
pub(super) fn frame(emit: &RoomEmit) -> ServerFrame<'_> {
    let emitted = Emitted {
        args: emit.args.clone(),
        except: emit.except.clone(),
    };
    ServerFrame::emitted(&emit.event, Some(emit.seq), emitted)
}
