//! Direct messages through user streams: the operation behind both `POST /v1/messages` and the
//! user socket's `message.send`, and the deletion of a message for everyone.
//!
//! Sending stores first and delivers second. The message and its receipts are one D1
//! transaction; only then is it pushed through each receiver's user stream (and the sender's,
//! for their other devices) with the message id as the idempotency key. A repeated `client_id`
//! finds the stored message and pushes it again, which the streams ignore where it already
//! arrived — so a client whose send failed half-way simply retries.
//!
//! Deleting for everyone empties the message in D1 first (REST no longer shows it; its row stays
//! as a tombstone), then asks every party's UserHub to turn the message's stream events into
//! tombstones and to send `message.deleted`, so neither a live device nor a replay with `since`
//! shows the content again. A retry of a deleted message's `client_id` finds the tombstone: it is
//! answered as a duplicate with the tombstone and pushed nowhere, never stored again.

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use worker::{D1Database, Env};

use crate::direct::DirectMessage;
use crate::error::ApiError;
use crate::hubs::stubs::user::{push, redact, PushRequest};
use crate::quota::Rate;
use crate::store::d1;
use crate::store::direct as store;
use crate::stream::Class;

/// User streams called at once.
pub const FAN_OUT: usize = 50;

/// A message sent: what is stored, and whether it was already (a repeated client id).
pub struct SendOutcome {
    pub message: DirectMessage,
    pub duplicate: bool,
}

/// Stores a direct message and pushes it to its audience, except `skip` (a UserHub sending for
/// its own user appends to its own stream itself). A repeated `client_id` answers the stored
/// message as a duplicate (pushed again unless it was deleted for everyone).
pub async fn send(
    env: &Env,
    sender: &str,
    body: Value,
    skip: Option<&str>,
) -> Result<SendOutcome, ApiError> {
    let (to, content) = crate::direct::parse_send(body)
        .map_err(|err| ApiError::bad_request("validation", err.to_string()))?;
    crate::quota::check(env, Rate::Send, sender).await?;
    let db = d1::db(env)?;
    let existing = match &content.client_id {
        Some(client_id) => store::by_client_id(&db, sender, client_id).await?,
        None => None,
    };
    let outcome = match existing {
        Some(message) => SendOutcome {
            message,
            duplicate: true,
        },
        None => {
            store_new(
                &db,
                DirectMessage::new(sender, to, content, crate::clock::now_ms()),
            )
            .await?
        }
    };
    if outcome.message.deleted_at.is_none() {
        deliver(env, &outcome.message, skip).await?;
    }
    Ok(outcome)
}

/// Inserts a new message; a client id taken by a concurrent send yields that send's message.
async fn store_new(db: &D1Database, message: DirectMessage) -> Result<SendOutcome, ApiError> {
    match store::insert(db, &message).await {
        Ok(()) => {
            crate::metrics::record(
                crate::metrics::Point::new(crate::metrics::Kind::Message, "direct")
                    .value(message.content.body.len() as f64),
            );
            Ok(SendOutcome {
                message,
                duplicate: false,
            })
        }
        Err(err) if d1::is_conflict(&err) => {
            let client_id = message.content.client_id.as_deref().unwrap_or_default();
            let message = store::by_client_id(db, &message.sender_id, client_id)
                .await?
                .ok_or_else(|| ApiError::internal("a conflicting message vanished"))?;
            Ok(SendOutcome {
                message,
                duplicate: true,
            })
        }
        Err(err) => Err(err.into()),
    }
}

/// Pushes a stored message through its audience's user streams. A stream that could not be
/// reached makes the call fail with `delivery_incomplete`: the message is stored, and a retry
/// with the same client id completes the delivery without duplicating it.
async fn deliver(env: &Env, message: &DirectMessage, skip: Option<&str>) -> Result<(), ApiError> {
    let request = PushRequest {
        event: "message".into(),
        data: json!(message),
        idempotency_key: Some(message.stream_key()),
        class: Class::Chat,
        notify: None,
    };
    let users: Vec<String> = message
        .audience()
        .into_iter()
        .filter(|user| Some(user.as_str()) != skip)
        .collect();
    let failed = unreached(users, |user| {
        let request = &request;
        async move { push(env, &user, request).await }
    })
    .await;
    if failed.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        502,
        "delivery_incomplete",
        format!(
            "message {} is stored but did not reach {}; retry with the same client_id",
            message.id,
            failed.join(", ")
        ),
    ))
}

/// Takes a deleted message's content out of its parties' streams and tells their devices.
/// Returns the users whose hubs could not be reached (the call may be repeated: it is
/// idempotent).
pub async fn recall(env: &Env, message_id: &str, parties: Vec<String>) -> Vec<String> {
    unreached(parties, |party| async move {
        redact(env, &party, message_id).await
    })
    .await
}

/// Runs `call` for every user, [`FAN_OUT`] at a time; the users for whom it failed.
async fn unreached<F, Fut, T>(users: Vec<String>, call: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    stream::iter(users)
        .map(|user| {
            let attempt = call(user.clone());
            async move { (user, attempt.await.is_ok()) }
        })
        .buffer_unordered(FAN_OUT)
        .filter_map(|(user, ok)| async move { (!ok).then_some(user) })
        .collect()
        .await
}
