//! `POST /dev/token`: development tokens, only when `DEV_MODE=true`.
//!
//! `DEV_MODE` is set in `.dev.vars.example` and never in wrangler.toml, so a deployed gateway
//! answers 404 here unless an operator deliberately sets the secret.

use serde::Deserialize;
use worker::{Request, Response};

use crate::config::Config;
use crate::error::ApiError;

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

pub async fn token(mut req: Request, config: &Config) -> Result<Response, ApiError> {
    let secret = match (&config.jwt_secret, config.dev_mode) {
        (Some(secret), true) => secret,
        _ => return Err(ApiError::not_found("no such route")),
    };
    let body: TokenRequest = crate::http::read_json(&mut req, 16 * 1024).await?;
    crate::ids::validate_user_id(&body.sub)
        .map_err(|why| ApiError::bad_request("validation", format!("sub: {why}")))?;
    if !(1..=MAX_TTL_SECS).contains(&body.ttl) {
        return Err(ApiError::bad_request(
            "validation",
            format!("ttl must be 1 to {MAX_TTL_SECS} seconds"),
        ));
    }
    let now = chrono::Utc::now();
    let expires_at = now + chrono::Duration::seconds(body.ttl);
    let mut claims = serde_json::json!({"sub": body.sub, "roles": body.roles});
    if let Some(iss) = &config.jwt_issuer {
        claims["iss"] = iss.clone().into();
    }
    if let Some(aud) = &config.jwt_audience {
        claims["aud"] = aud.clone().into();
    }
    let token = crate::auth::jwt::mint_hs256(secret, &claims, expires_at, now)
        .map_err(ApiError::internal)?;
    Ok(crate::http::json(
        200,
        &serde_json::json!({"token": token, "expires_at": expires_at.timestamp()}),
    )?)
}
