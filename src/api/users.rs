//! User-level routes: `GET /v1/presence` (JWT) and the backends'
//! `POST /internal/v1/users/{id}/disconnect`.
//!
//! Presence answers only about the caller and users who share a room with them; anyone else is
//! answered exactly as an id nobody uses (offline, never seen), so presence reveals neither who
//! exists nor who is active.
//!
//! A forced disconnect reaches every socket of the user: their UserHub and each room they are a
//! member of. With `revoke`, the cut-off is written to D1 first (REST and room connects read it
//! there), then to the hub and each room as they close the sockets (user connects, room
//! accepts and `auth` read it there), so from the moment the call answers no old token works
//! anywhere.

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::json;
use worker::Env;

use super::call::{ok, validation, Answer, Call};
use crate::config::Config;
use crate::error::ApiError;
use crate::hubs::stubs::room::{self, DisconnectUser};
use crate::hubs::stubs::user::{self, DisconnectRequest, Disconnected};
use crate::presence::{presence as presence_of, Presence};
use crate::store::{d1, push_endpoints, revocations, rooms};

/// Rooms told about a forced disconnect at once.
const ROOM_FAN_OUT: usize = 50;

/// Users one presence query may ask about.
pub const MAX_PRESENCE_USERS: usize = 100;

pub async fn presence(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let users = parse_user_list(call.query("users").as_deref())?;
    let others: Vec<String> = users
        .iter()
        .filter(|u| **u != me.user_id)
        .cloned()
        .collect();
    let visible = rooms::sharing_a_room(&d1::db(call.env)?, &me.user_id, &others).await?;
    let out = presence_of_users(call.env, call.config, &users, |user| {
        user == me.user_id || visible.iter().any(|v| v == user)
    })
    .await?;
    ok(&json!({"users": out}))
}

/// Each user's presence, asked of their UserHubs at once; a user `visible` refuses is answered
/// as an unknown id, without asking.
pub async fn presence_of_users(
    env: &Env,
    config: &Config,
    users: &[String],
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<Presence>, ApiError> {
    let answers = join_all(users.iter().map(|user| {
        let asked = visible(user);
        async move {
            if !asked {
                return Ok(None);
            }
            user::presence(env, user).await.map(Some)
        }
    }))
    .await;
    let now = crate::clock::now_ms();
    let mut out = Vec::with_capacity(users.len());
    for (user, answer) in users.iter().zip(answers) {
        let hub = answer?.unwrap_or(crate::hubs::stubs::user::HubPresence {
            devices: 0,
            last_seen: None,
        });
        out.push(presence_of(
            user,
            hub.devices,
            hub.last_seen,
            now,
            config.limits.presence_grace_secs,
        ));
    }
    Ok(out)
}

/// `users=a,b,c`: 1 to [`MAX_PRESENCE_USERS`] valid ids, deduplicated.
pub fn parse_user_list(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let raw = raw
        .filter(|raw| !raw.is_empty())
        .ok_or_else(|| ApiError::bad_request("validation", "users is required: ?users=a,b"))?;
    let mut users: Vec<String> = Vec::new();
    for user in raw.split(',').map(str::trim) {
        crate::ids::validate_user_id(user)
            .map_err(|why| ApiError::bad_request("validation", format!("users: {why}")))?;
        if !users.iter().any(|u| u == user) {
            users.push(user.to_owned());
        }
    }
    if users.len() > MAX_PRESENCE_USERS {
        return Err(ApiError::bad_request(
            "validation",
            format!("at most {MAX_PRESENCE_USERS} users"),
        ));
    }
    Ok(users)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    #[serde(default = "default_reason")]
    reason: String,
    #[serde(default)]
    revoke: bool,
}

fn default_reason() -> String {
    "disconnected by the server".into()
}

pub async fn disconnect(mut call: Call<'_>, user_id: &str) -> Answer {
    internal_user(&call, user_id)?;
    let body: DisconnectBody = call.body_within(16 * 1024).await?;
    if body.reason.len() > 123 {
        return Err(validation(
            "reason must be at most 123 bytes (a close reason)",
        ));
    }
    end_sessions(call.env, user_id, body, false).await
}

/// `DELETE /internal/v1/users/{id}`: account deletion. Revokes every token issued until now,
/// closes every socket (4003 `account deleted`), and forgets the user's push subscriptions,
/// pending notifications and room levels. Messages stay in D1 for their other parties.
pub async fn delete(call: Call<'_>, user_id: &str) -> Answer {
    internal_user(&call, user_id)?;
    let body = DisconnectBody {
        reason: "account deleted".into(),
        revoke: true,
    };
    end_sessions(call.env, user_id, body, true).await
}

/// An internal call about one user: the internal token, and a well-formed user id.
pub(super) fn internal_user(call: &Call<'_>, user_id: &str) -> Result<(), ApiError> {
    call.internal()?;
    crate::ids::validate_user_id(user_id).map_err(validation)
}

/// Closes the user's sockets; when revoking, first records the cut-off in D1 and forgets the
/// user's push endpoints (their hub forgets the subscriptions); `forget` also drops the
/// user's room levels.
async fn end_sessions(env: &Env, user_id: &str, body: DisconnectBody, forget: bool) -> Answer {
    let now = crate::clock::now_ms();
    let revoke_before = body.revoke.then(|| crate::auth::revocation::cutoff_at(now));
    let db = d1::db(env)?;
    if let Some(cutoff) = revoke_before {
        revocations::revoke(&db, user_id, cutoff, now).await?;
        push_endpoints::release(&db, user_id, None).await?;
    }
    let hub_request = DisconnectRequest {
        reason: body.reason.clone(),
        revoke_before,
        forget,
    };
    let hub = user::disconnect(env, user_id, &hub_request);
    let room_request = DisconnectUser {
        user_id: user_id.to_owned(),
        reason: body.reason,
        revoke_before,
    };
    let rooms = rooms::rooms_of(&db, user_id).await?;
    let room_calls = stream::iter(rooms)
        .map(|room_id| {
            let request = &room_request;
            async move { room::disconnect(env, &room_id, request).await }
        })
        .buffer_unordered(ROOM_FAN_OUT)
        .collect::<Vec<Result<Disconnected, ApiError>>>();
    let (hub, room_answers) = futures_util::join!(hub, room_calls);
    let devices = hub?.sockets;
    let mut room_sockets = 0;
    for answer in room_answers {
        room_sockets += answer?.sockets;
    }
    ok(&json!({
        "user": user_id,
        "devices": devices,
        "room_sockets": room_sockets,
        "sockets": devices + room_sockets,
        "revoked_before": revoke_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lists() {
        assert_eq!(parse_user_list(Some("a,b,a")).unwrap(), vec!["a", "b"]);
        assert!(parse_user_list(None).is_err());
        assert!(parse_user_list(Some("a,,b")).is_err());
        let many: Vec<String> = (0..=MAX_PRESENCE_USERS).map(|i| format!("u{i}")).collect();
        assert!(parse_user_list(Some(&many.join(","))).is_err());
    }
}
