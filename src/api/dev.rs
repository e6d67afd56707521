//! Development-only routes, answered only when `DEV_MODE=true` (404 otherwise):
//! `POST /dev/token` mints tokens; `POST /dev/push` is `POST /internal/v1/push` without the
//! internal token (the demo's "push from a backend" button); `GET /client.js`, `GET /demo/…` and
//! `GET /ops/…` serve the built client SDK, the demo app and the operator page (static assets
//! from `client/dist`; the operator page asks for the internal token and calls the internal
//! API's inspection routes with it); and
//! `GET /dev/users/{id}/alarm` / `GET /dev/rooms/{id}/alarm` report a hub's alarm (when it is
//! set, how often it has woken), so tests can prove a hub wakes only for work.
//!
//! `DEV_MODE` is set in `.dev.vars.example` and never in wrangler.toml, so a deployed gateway
//! answers 404 here unless an operator deliberately sets the secret. Every token minted here
//! carries the `sb_dev` claim, and a gateway without `DEV_MODE` refuses such tokens, so a token
//! minted on a development gateway that shares a secret with production is useless there.

use serde::Deserialize;

use super::call::{ok, validation, Answer, Call};
use crate::config::Config;
use crate::error::ApiError;
use crate::hubs::stubs::room::{self, RoomCall};
use crate::hubs::stubs::user;

/// Longest development token lifetime: 30 days.
const MAX_TTL_SECS: i64 = 30 * 24 * 60 * 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default = "default_ttl")]
    ttl: i64,
}

fn default_ttl() -> i64 {
    3600
}

pub async fn token(mut call: Call<'_>) -> Answer {
    let config = call.config;
    let secret = match (&config.jwt_secret, config.dev_mode) {
        (Some(secret), true) => secret,
        _ => return Err(ApiError::not_found("no such route")),
    };
    let body: TokenRequest = call.body_within(16 * 1024).await?;
    crate::ids::validate_user_id(&body.sub).map_err(|why| validation(format!("sub: {why}")))?;
    if !(1..=MAX_TTL_SECS).contains(&body.ttl) {
        return Err(validation(format!(
            "ttl must be 1 to {MAX_TTL_SECS} seconds"
        )));
    }
    let now = chrono::Utc::now();
    let expires_at = now + chrono::Duration::seconds(body.ttl);
    let mut claims = serde_json::json!({
        "sub": body.sub,
        "roles": body.roles,
        crate::auth::jwt::DEV_CLAIM: true,
    });
    if let Some(iss) = &config.jwt_issuer {
        claims["iss"] = iss.clone().into();
    }
    if let Some(aud) = &config.jwt_audience {
        claims["aud"] = aud.clone().into();
    }
    let token = crate::auth::jwt::mint_hs256(secret, &claims, expires_at, now)
        .map_err(ApiError::internal)?;
    ok(&serde_json::json!({"token": token, "expires_at": expires_at.timestamp()}))
}

fn dev_only(config: &Config) -> Result<(), ApiError> {
    if config.dev_mode {
        Ok(())
    } else {
        Err(ApiError::not_found("no such route"))
    }
}

pub async fn push(call: Call<'_>) -> Answer {
    dev_only(call.config)?;
    super::push::deliver(call).await
}

/// Serves one file of the built client from the `ASSETS` binding (`client/dist`, built by
/// `make client`). `path` comes from the route table: `/switchboard.js`, `/demo/<file>` or
/// `/ops/<file>`.
pub async fn asset(call: Call<'_>, path: &str) -> Answer {
    dev_only(call.config)?;
    let file = path.rsplit('/').next().unwrap_or_default();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if file.is_empty() || file.starts_with('.') || !file.chars().all(plain) {
        return Err(ApiError::not_found("no such file"));
    }
    let assets = call
        .env
        .assets("ASSETS")
        .map_err(|_| ApiError::not_found("the client is not built here (run `make client`)"))?;
    let res = assets
        .fetch(format!("https://assets.local{path}"), None)
        .await?;
    if res.status_code() == 200 {
        Ok(res)
    } else {
        Err(ApiError::not_found("no such file"))
    }
}

pub async fn user_alarm(call: Call<'_>, user_id: &str) -> Answer {
    dev_only(call.config)?;
    crate::ids::validate_user_id(user_id).map_err(validation)?;
    ok(&user::alarm(call.env, user_id).await?)
}

pub async fn room_alarm(call: Call<'_>, room_id: &str) -> Answer {
    dev_only(call.config)?;
    crate::ids::validate_room_id(room_id).map_err(validation)?;
    ok(&room::view(call.env, room_id, RoomCall::Alarm).await?)
}
