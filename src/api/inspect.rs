//! Operators' views, with the internal token: `GET /internal/v1/users/{id}` (a user's devices,
//! stream, cursors, revocation, push state and alarm, from their UserHub) and
//! `GET /internal/v1/rooms/{id}/stats` (a room's sockets per shard, window, D1 copy, pending
//! notes and alarm, from the Room). The hubs answer (`hubs::inspect`); the Worker checks the
//! token and the id, and for a room that D1 has it, so asking about a room that does not exist
//! is a 404 that never addresses a Room object. A user has no such record: an unknown user's
//! hub answers an empty report, and creates nothing for the asking.

use serde_json::Value;
use worker::{Env, Method, Request, Response};

use crate::config::Config;
use crate::error::ApiError;

/// `GET /internal/v1/users/{id}`.
pub async fn user(
    req: Request,
    env: &Env,
    config: &Config,
    user_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    crate::ids::validate_user_id(user_id)
        .map_err(|why| ApiError::bad_request("validation", why))?;
    let report: Value =
        crate::hubs::user::call(env, user_id, Method::Get, "/inspect", None::<&()>).await?;
    Ok(crate::http::json(200, &report)?)
}

/// `GET /internal/v1/rooms/{id}/stats`.
pub async fn room(
    req: Request,
    env: &Env,
    config: &Config,
    room_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    crate::ids::validate_room_id(room_id)
        .map_err(|why| ApiError::bad_request("validation", why))?;
    super::rooms::existing_room(&crate::store::d1::db(env)?, room_id).await?;
    let stats: Value =
        crate::hubs::room::call(env, room_id, Method::Get, "/stats", None::<&()>).await?;
    Ok(crate::http::json(200, &stats)?)
}
