//! `POST /internal/v1/push`: a backend's event to up to 1,000 users in one call.
//!
//! The body is validated as a whole before any hub is touched; then each user's UserHub appends
//! the event to that user's stream and delivers it. The answer lists, per user, the seq assigned
//! and how many devices got it live. A retry with the same `idempotency_key` is safe: a hub that
//! already has the key answers with the original seq and stores nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::call::{respond, Answer, Call};
use crate::error::ApiError;
use crate::hubs::stubs::user::{PushOutcome, PushRequest};
use crate::metrics::{self, Kind, Point};
use crate::notify::NotifyRequest;
use crate::stream::Class;

pub const MAX_USERS: usize = 1000;
pub const MAX_KEY_LEN: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    pub users: Vec<String>,
    pub event: String,
    #[serde(default)]
    pub data: Value,
    pub idempotency_key: Option<String>,
    /// Notify users whose devices do not take the event in time.
    pub notify: Option<NotifyRequest>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum UserResult {
    Delivered {
        user: String,
        seq: i64,
        devices: usize,
        duplicate: bool,
    },
    Failed {
        user: String,
        error: Value,
    },
}

/// Checks a push body; returns the users, deduplicated in their given order.
pub fn validate(body: &PushBody, max_data_bytes: usize) -> Result<Vec<String>, ApiError> {
    if body.users.is_empty() {
        return Err(ApiError::bad_request(
            "validation",
            "users must name at least one user",
        ));
    }
    if body.users.len() > MAX_USERS {
        return Err(ApiError::new(
            413,
            "batch_too_large",
            format!("at most {MAX_USERS} users per push"),
        ));
    }
    let mut users: Vec<String> = Vec::with_capacity(body.users.len());
    for user in &body.users {
        crate::ids::validate_user_id(user)
            .map_err(|why| ApiError::bad_request("validation", format!("users: {why}")))?;
        if !users.contains(user) {
            users.push(user.clone());
        }
    }
    validate_event(
        &body.event,
        &body.data,
        body.idempotency_key.as_deref(),
        max_data_bytes,
    )?;
    if let Some(notify) = &body.notify {
        notify
            .validate()
            .map_err(|why| ApiError::bad_request("validation", why))?;
    }
    Ok(users)
}

/// Checks what a backend sends (a push's or a broadcast's): the event name (not reserved),
/// the size of its data, the idempotency key.
pub fn validate_event(
    event: &str,
    data: &Value,
    idempotency_key: Option<&str>,
    max_data_bytes: usize,
) -> Result<(), ApiError> {
    crate::protocol::validate_event_name(event)
        .map_err(|why| ApiError::bad_request("validation", format!("event: {why}")))?;
    if data.to_string().len() > max_data_bytes {
        return Err(ApiError::too_large(format!(
            "data is larger than {max_data_bytes} bytes"
        )));
    }
    if let Some(key) = idempotency_key {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::bad_request(
                "validation",
                format!("idempotency_key must be 1 to {MAX_KEY_LEN} characters"),
            ));
        }
    }
    Ok(())
}

pub async fn push(call: Call<'_>) -> Answer {
    call.internal()?;
    deliver(call).await
}

/// Validates a push body and delivers it to every user's hub; the answer lists each outcome.
pub async fn deliver(mut call: Call<'_>) -> Answer {
    let body: PushBody = call.body().await?;
    let users = validate(&body, call.config.limits.max_frame_bytes - 512)?;
    let request = PushRequest {
        event: body.event,
        data: body.data,
        idempotency_key: body.idempotency_key,
        class: Class::Backend,
        notify: body.notify,
    };
    let started = crate::clock::now_ms();
    let bytes = request.data.to_string().len();
    let outcomes = crate::hubs::stubs::user::push_all(call.env, &users, &request).await;
    observe(
        &request,
        &users,
        &outcomes,
        bytes,
        crate::clock::now_ms() - started,
    );
    let results: Vec<UserResult> = users
        .into_iter()
        .zip(outcomes)
        .map(|(user, outcome)| match outcome {
            Ok(PushOutcome {
                seq,
                devices,
                duplicate,
            }) => UserResult::Delivered {
                user,
                seq,
                devices,
                duplicate,
            },
            Err(err) => UserResult::Failed {
                user,
                error: err.body()["error"].clone(),
            },
        })
        .collect();
    let all_delivered = results
        .iter()
        .all(|r| matches!(r, UserResult::Delivered { .. }));
    let status = if all_delivered { 200 } else { 502 };
    respond(status, &serde_json::json!({"results": results}))
}

/// `push` (info) with the event name, recipients, outcome, size and time (never the data), and
/// the data points: the push's time, and the devices it reached live.
fn observe(
    request: &PushRequest,
    users: &[String],
    outcomes: &[Result<PushOutcome, ApiError>],
    bytes: usize,
    ms: i64,
) {
    let delivered = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let devices: usize = outcomes
        .iter()
        .flatten()
        .map(|outcome| outcome.devices)
        .sum();
    metrics::record(Point::new(Kind::Push, "backend").value(ms as f64));
    metrics::record(
        Point::new(Kind::Delivery, "user")
            .count(devices as f64)
            .value(ms as f64),
    );
    let level = crate::log::outcome(delivered < users.len());
    if !crate::log::enabled(level) {
        return;
    }
    crate::log::emit(
        level,
        "push",
        serde_json::json!({
            "name": request.event,
            "users": users.len(),
            "delivered": delivered,
            "failed": users.len() - delivered,
            "devices": devices,
            "bytes": bytes,
            "notify": request.notify.is_some(),
            "ms": ms,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> PushBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn accepts_and_dedupes() {
        let b = body(
            json!({"users": ["a", "b", "a"], "event": "permission.changed", "data": {"x": 1}}),
        );
        assert_eq!(validate(&b, 1000).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn refusals() {
        let cases = [
            (json!({"users": [], "event": "a.b"}), 400),
            (json!({"users": ["a/b"], "event": "a.b"}), 400),
            (json!({"users": ["a"], "event": "message"}), 400),
            (json!({"users": ["a"], "event": "Bad Name"}), 400),
            (
                json!({"users": ["a"], "event": "a.b", "idempotency_key": ""}),
                400,
            ),
            (
                json!({"users": ["a"], "event": "a.b", "data": "x".repeat(2000)}),
                413,
            ),
        ];
        for (value, status) in cases {
            assert_eq!(
                validate(&body(value.clone()), 1000).unwrap_err().status,
                status,
                "{value}"
            );
        }
        let many: Vec<String> = (0..=MAX_USERS).map(|i| format!("u{i}")).collect();
        assert_eq!(
            validate(&body(json!({"users": many, "event": "a.b"})), 1000)
                .unwrap_err()
                .status,
            413
        );
    }
}
