//! Operators' views, with the internal token: `GET /internal/v1/users/{id}` (a user's devices,
//! stream, cursors, revocation, push state and alarm, from their UserHub) and `GET
//! /internal/v1/rooms/{id}/stats` (a room's sockets per shard, window, D1 copy, pending notes and
//! alarm, from the Room). The objects answer (`hubs::user::inspect`, `hubs::room::inspect`); the
//! Worker checks the token and the id, and for a room that D1 has it, so asking about a room that
//! does not exist is a 404 that never addresses a Room object. A user has no such record: an
//! unknown user's hub answers an empty report, and creates nothing for the asking.

use super::call::{ok, Answer, Call};
use crate::hubs::stubs::room::RoomCall;

/// `GET /internal/v1/users/{id}`.
pub async fn user(call: Call<'_>, user_id: &str) -> Answer {
    super::users::internal_user(&call, user_id)?;
    ok(&crate::hubs::stubs::user::inspect(call.env, user_id).await?)
}

/// `GET /internal/v1/rooms/{id}/stats`.
pub async fn room(call: Call<'_>, room_id: &str) -> Answer {
    super::rooms::internal_view(call, room_id, RoomCall::Stats).await
}
