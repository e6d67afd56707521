//! User-level routes: `GET /v1/presence` (JWT) and the backends'
//! `POST /internal/v1/users/{id}/disconnect`.

use futures_util::future::join_all;
use serde::Deserialize;
use worker::{Env, Method, Request, Response};

use crate::config::Config;
use crate::error::ApiError;
use crate::hubs::user::{DisconnectRequest, HubPresence};
use crate::presence::{presence as presence_of, Presence};

/// Users one presence query may ask about.
pub const MAX_PRESENCE_USERS: usize = 100;

pub async fn presence(req: Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    super::authenticate(&req, config)?;
    let users = parse_user_list(crate::http::query_param(&req, "users").as_deref())?;
    let out = presence_of_users(env, config, &users).await?;
    Ok(crate::http::json(200, &serde_json::json!({"users": out}))?)
}

/// Each user's presence, asked of their UserHubs at once.
pub async fn presence_of_users(
    env: &Env,
    config: &Config,
    users: &[String],
) -> Result<Vec<Presence>, ApiError> {
    let answers = join_all(users.iter().map(|user| async move {
        let stub = super::user_hub(env, user)?;
        crate::http::call_hub_json::<HubPresence>(&stub, Method::Get, "/presence", None::<&()>)
            .await
    }))
    .await;
    let now = crate::hubs::now_ms();
    let mut out = Vec::with_capacity(users.len());
    for (user, answer) in users.iter().zip(answers) {
        let hub = answer?;
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
}

fn default_reason() -> String {
    "disconnected by the server".into()
}

pub async fn disconnect(
    mut req: Request,
    env: &Env,
    config: &Config,
    user_id: &str,
) -> Result<Response, ApiError> {
    super::authenticate_internal(&req, config)?;
    crate::ids::validate_user_id(user_id)
        .map_err(|why| ApiError::bad_request("validation", why))?;
    let body: DisconnectBody = crate::http::read_json(&mut req, 16 * 1024).await?;
    if body.reason.len() > 123 {
        return Err(ApiError::bad_request(
            "validation",
            "reason must be at most 123 bytes (a close reason)",
        ));
    }
    let stub = super::user_hub(env, user_id)?;
    let answer: serde_json::Value = crate::http::call_hub_json(
        &stub,
        Method::Post,
        "/disconnect",
        Some(&DisconnectRequest {
            reason: body.reason,
        }),
    )
    .await?;
    Ok(crate::http::json(
        200,
        &serde_json::json!({"user": user_id, "devices": answer["devices"]}),
    )?)
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
