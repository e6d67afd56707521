//! `POST /internal/v1/broadcast`: a backend's event to every socket open at that moment, and
//! `GET /internal/v1/online`: who those sockets belong to. Both go through the directory's
//! shards (`hubs::directory`), all [`SHARDS`] of them at once.
//!
//! A broadcast is not durable: it is in no user's stream and has no seq, so a user who connects
//! later never gets it and a resume never replays it. A backend that needs every user to see an
//! event pushes it to them (`POST /internal/v1/push`). The event is validated exactly as a push's
//! (`push::validate_event`). With an `idempotency_key`, each shard remembers the key for 24 hours
//! before it sends, so a repeat answers what the first reached and sends nothing: a broadcast is
//! delivered at most once per key, and a retry after a 502 reaches only the shards that did not
//! run it.

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{json, Value};

use super::call::{ok, Answer, Call};
use crate::cursor::{decode_parts, encode_parts};
use crate::error::ApiError;
use crate::hubs::stubs::directory::{self, BroadcastRequest, ShardReach, SHARDS};
use crate::ids::validate_user_id;

/// Users `GET /internal/v1/online` lists per page by default, and at most.
pub const DEFAULT_ONLINE_PAGE: i64 = 100;
pub const MAX_ONLINE_PAGE: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    pub event: String,
    #[serde(default)]
    pub data: Value,
    pub idempotency_key: Option<String>,
}

pub async fn broadcast(mut call: Call<'_>) -> Answer {
    call.internal()?;
    let body: BroadcastBody = call.body().await?;
    super::push::validate_event(
        &body.event,
        &body.data,
        body.idempotency_key.as_deref(),
        call.config.limits.max_frame_bytes - 512,
    )?;
    let request = BroadcastRequest {
        event: body.event,
        data: body.data,
        idempotency_key: body.idempotency_key,
        emitted: None,
    };
    let started = crate::clock::now_ms();
    let outcomes = directory::broadcast(call.env, &request).await;
    let failed = outcomes.iter().filter(|outcome| outcome.is_err()).count();
    let reached: i64 = outcomes.iter().flatten().map(|reach| reach.devices).sum();
    let level = crate::log::outcome(failed > 0);
    if crate::log::enabled(level) {
        crate::log::emit(
            level,
            "broadcast",
            json!({
                "name": request.event,
                "bytes": request.data.to_string().len(),
                "devices": reached,
                "shards_failed": failed,
                "ms": crate::clock::now_ms() - started,
            }),
        );
    }
    if failed > 0 {
        return Err(ApiError::new(
            502,
            "unavailable",
            format!(
                "{failed} of {SHARDS} directory shards did not answer; a retry with the same idempotency_key sends only where this one did not run"
            ),
        ));
    }
    let reaches: Vec<ShardReach> = outcomes.into_iter().flatten().collect();
    let answer = json!({
        "hubs": reaches.iter().map(|r| r.hubs).sum::<i64>(),
        "devices": reaches.iter().map(|r| r.devices).sum::<i64>(),
        "duplicate": request.idempotency_key.is_some() && reaches.iter().all(|r| r.duplicate),
    });
    ok(&answer)
}

/// Where a listing of online users continues: after `user` in shard `shard`. On the wire it is
/// `<shard>.<user id>`, opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineCursor {
    pub shard: usize,
    pub user: String,
}

impl OnlineCursor {
    pub fn encode(&self) -> String {
        encode_parts(self.shard, &self.user)
    }

    /// Reads a cursor this API gave out; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let (shard, user) = decode_parts(raw, validate_user_id, |k: &usize| *k < SHARDS)?;
        Some(Self { shard, user })
    }
}

/// `GET /internal/v1/online?limit=&cursor=`: the count of online users over every shard, and a
/// page of them in shard order, then user order.
pub async fn online(call: Call<'_>) -> Answer {
    call.internal()?;
    let limit = call.limit_within(DEFAULT_ONLINE_PAGE, MAX_ONLINE_PAGE)?;
    let cursor = call.cursor(OnlineCursor::decode)?;
    let start = cursor.as_ref().map_or(0, |c| c.shard);
    let after = |k: usize| {
        cursor
            .as_ref()
            .filter(|c| c.shard == k)
            .map(|c| c.user.as_str())
    };
    // Shards before the cursor's are asked only for their count; the others for one more user
    // than the page holds, which tells whether a next page exists.
    let pages = join_all((0..SHARDS).map(|k| {
        let wanted = if k < start { 0 } else { limit + 1 };
        directory::page(call.env, k, after(k), wanted)
    }))
    .await;
    let mut count = 0;
    let mut listed: Vec<OnlineCursor> = Vec::new();
    for (k, page) in pages.into_iter().enumerate() {
        let page = page.map_err(|err| {
            ApiError::new(
                502,
                "unavailable",
                format!("directory shard {k} did not answer: {}", err.message),
            )
        })?;
        count += page.count;
        listed.extend(
            page.users
                .into_iter()
                .map(|user| OnlineCursor { shard: k, user }),
        );
    }
    let more = listed.len() as i64 > limit;
    listed.truncate(limit as usize);
    let next_cursor = listed.last().filter(|_| more).map(OnlineCursor::encode);
    let users: Vec<String> = listed.into_iter().map(|entry| entry.user).collect();
    ok(&json!({"count": count, "users": users, "next_cursor": next_cursor}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_cursors_round_trip() {
        let cursor = OnlineCursor {
            shard: 15,
            user: "a.b@c".into(),
        };
        assert_eq!(OnlineCursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["16.alice", "x.alice", "3", "3.a/b", "-1.a", ""] {
            assert_eq!(OnlineCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn broadcast_bodies_are_strict() {
        let parsed: Result<BroadcastBody, _> =
            serde_json::from_value(json!({"event": "a.b", "users": ["x"]}));
        assert!(parsed.is_err());
    }
}
