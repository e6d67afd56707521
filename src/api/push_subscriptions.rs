//! Web Push subscriptions and notification levels over REST.
//!
//! A browser subscribes with the gateway's VAPID public key (`GET /v1/push/public-key`), then
//! hands the gateway its `PushSubscription` (`POST /v1/push-subscriptions`). The Worker checks
//! it — the endpoint must be a known push service (`push_endpoint::check_endpoint`: this is what
//! keeps the gateway from being made to call other hosts), the keys a P-256 point and 16
//! bytes — and from then on knows the endpoint only in its canonical spelling, so every
//! spelling of one endpoint is one subscription with one id. It records in D1 that the endpoint
//! now belongs to this user (a previous holder's hub is told to drop it) and stores it in the
//! user's UserHub, where notifications are decided.

use serde::Deserialize;
use serde_json::json;
use worker::{Env, Response};

use super::call::{ok, respond, validation, Answer, Call};
use crate::config::Config;
use crate::error::ApiError;
use crate::hubs::stubs::user::{self, SubscribeRequest};
use crate::notify::WebPushConfig;
use crate::push_endpoint::check_endpoint;
use crate::store::{d1, push_endpoints};
use crate::webpush::SubscriptionKeys;

/// What a browser's `PushSubscription.toJSON()` holds, plus the SDK's device id.
#[derive(Debug, Deserialize)]
struct SubscriptionBody {
    endpoint: String,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<serde_json::Value>,
    keys: Keys,
    device: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Keys {
    p256dh: String,
    auth: String,
}

fn web_push(config: &Config) -> Result<&WebPushConfig, ApiError> {
    config.notify.web_push.as_ref().ok_or_else(|| {
        ApiError::new(
            404,
            "push_disabled",
            "Web Push is not configured on this gateway (VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY)",
        )
    })
}

/// `GET /v1/push/public-key`: the key for `pushManager.subscribe({applicationServerKey})`.
pub fn public_key(call: Call<'_>) -> Answer {
    let web_push = web_push(call.config)?;
    ok(&json!({"public_key": web_push.vapid.public_key()}))
}

/// `POST /v1/push-subscriptions`: 201 with the subscription, 200 when this user had it.
pub async fn subscribe(mut call: Call<'_>) -> Answer {
    let identity = call.user().await?;
    let (env, config) = (call.env, call.config);
    let web_push = web_push(config)?;
    let body: SubscriptionBody = call.body_within(8 * 1024).await?;
    let endpoint = check_endpoint(&body.endpoint, &web_push.hosts, config.dev_mode)
        .map_err(|err| ApiError::bad_request(err.code(), err.reason()))?;
    SubscriptionKeys::parse(&body.keys.p256dh, &body.keys.auth).map_err(validation)?;
    if let Some(device) = &body.device {
        crate::ids::validate_device_id(device)
            .map_err(|why| validation(format!("device: {why}")))?;
    }
    let user_id = &identity.user_id;
    let id = endpoint.id();
    let db = d1::db(env)?;
    let previous = push_endpoints::claim(&db, &id, user_id, crate::clock::now_ms()).await?;
    let request = SubscribeRequest {
        id: id.clone(),
        endpoint: endpoint.as_str().to_owned(),
        p256dh: body.keys.p256dh,
        auth: body.keys.auth,
        device: body.device,
    };
    let stored = user::subscribe(env, user_id, &request).await?;
    if let Some(previous) = previous {
        drop_from(env, &previous, &id).await?;
    }
    if !stored.dropped.is_empty() {
        push_endpoints::release(&db, user_id, Some(&stored.dropped)).await?;
    }
    let status = if stored.created { 201 } else { 200 };
    respond(status, &stored.subscription)
}

/// Tells `user`'s hub to forget subscription `id`; whether it had it.
async fn drop_from(env: &Env, user: &str, id: &str) -> Result<bool, ApiError> {
    user::unsubscribe(env, user, id).await
}

/// `GET /v1/push-subscriptions`: the caller's subscriptions, oldest first.
pub async fn list(call: Call<'_>) -> Answer {
    let identity = call.user().await?;
    let subscriptions = user::subscriptions(call.env, &identity.user_id).await?;
    ok(&json!({"subscriptions": subscriptions}))
}

/// `DELETE /v1/push-subscriptions/{id}`: 204, or 404 when the caller has no such subscription.
pub async fn unsubscribe(call: Call<'_>, id: &str) -> Answer {
    let identity = call.user().await?;
    let env = call.env;
    if !drop_from(env, &identity.user_id, id).await? {
        return Err(ApiError::not_found("no such push subscription"));
    }
    push_endpoints::release(&d1::db(env)?, &identity.user_id, Some(&[id.to_owned()])).await?;
    Ok(Response::empty()?.with_status(204))
}
