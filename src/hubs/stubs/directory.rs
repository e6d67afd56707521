//! The way into the directory of who is online (`hubs::directory`): [`SHARDS`] objects, a user
//! listed in the one [`shard_of`] names.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Headers, Stub};

use super::user::NamespaceEmit;
use crate::error::ApiError;

calls! {
    /// What a directory shard is asked.
    DirectoryCall {
        /// A UserHub lists itself ([`Registration`]).
        Join = Post "/join",
        /// A UserHub unlists itself ([`Registration`]).
        Leave = Post "/leave",
        /// A backend's broadcast ([`BroadcastRequest`]).
        Broadcast = Post "/broadcast",
        /// Who is listed: `?after=&limit=`.
        Online = Get "/online",
    }
}

/// How many shards the directory has. Each is one Durable Object named `online-<k>`; the count
/// is part of where a user is listed, so changing it moves users between shards (listings on
/// the old shards are then dropped by their next broadcast, and hubs list themselves again on
/// their next accept after a restart).
pub const SHARDS: usize = 16;

/// How long a connect waits for its join (or a close for its leave) before going on without.
pub const LISTING_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// The shard a user is listed in: FNV-1a (32 bits) of the user id, modulo [`SHARDS`]. Stable
/// across isolates, builds and platforms.
pub fn shard_of(user: &str) -> usize {
    let hash = user.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash as usize % SHARDS
}

/// The Durable Object name of shard `k`.
pub fn shard_name(k: usize) -> String {
    format!("online-{k}")
}

/// A hub's join or leave.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registration {
    pub user: String,
    pub stamp: i64,
}

/// A backend's broadcast, as the Worker forwards it to each shard after validation.
#[derive(Debug, Serialize, Deserialize)]
pub struct BroadcastRequest {
    pub event: String,
    pub data: Value,
    pub idempotency_key: Option<String>,
    /// Set for a backend's emit to a whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emitted: Option<NamespaceEmit>,
}

/// What a broadcast reached in one shard: hubs with at least one socket, and sockets.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct ShardReach {
    pub hubs: i64,
    pub devices: i64,
    pub duplicate: bool,
}

/// One shard's part of `GET /internal/v1/online`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardPage {
    pub count: i64,
    pub users: Vec<String>,
}

fn stub(env: &Env, k: usize) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("DIRECTORY")?
        .id_from_name(&shard_name(k))?
        .get_stub()?)
}

/// Asks shard `k` `call` (with `query` after its path) and reads its JSON answer.
async fn ask<T: serde::de::DeserializeOwned>(
    env: &Env,
    k: usize,
    call: DirectoryCall,
    query: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let path = format!("{}{query}", call.path());
    crate::http::call_hub_json_with(&stub(env, k)?, call.method(), &path, Headers::new(), body)
        .await
}

/// Lists (`Join`) or unlists (`Leave`) `user` under `stamp`, within [`LISTING_DEADLINE`].
pub async fn register(
    env: &Env,
    call: DirectoryCall,
    user: &str,
    stamp: i64,
) -> Result<(), ApiError> {
    let registration = Registration {
        user: user.to_owned(),
        stamp,
    };
    let asked = ask::<Value>(env, shard_of(user), call, "", Some(&registration));
    crate::http::within(LISTING_DEADLINE, asked)
        .await
        .unwrap_or_else(|| {
            Err(ApiError::unavailable(
                "the directory did not answer in time",
            ))
        })
        .map(|_| ())
}

/// Sends a broadcast to every shard at once; each shard's outcome, in shard order.
pub async fn broadcast(env: &Env, request: &BroadcastRequest) -> Vec<Result<ShardReach, ApiError>> {
    join_all((0..SHARDS).map(|k| ask(env, k, DirectoryCall::Broadcast, "", Some(request)))).await
}

/// Asks shard `k` for its count and up to `limit` users after `after`.
pub async fn page(
    env: &Env,
    k: usize,
    after: Option<&str>,
    limit: i64,
) -> Result<ShardPage, ApiError> {
    let mut query = format!("?limit={limit}");
    if let Some(after) = after {
        query.push_str("&after=");
        query.push_str(after);
    }
    ask(env, k, DirectoryCall::Online, &query, None::<&()>).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of(""), 0x811c_9dc5_usize % SHARDS);
        assert_eq!(shard_of("alice"), shard_of("alice"));
        assert_eq!(shard_name(3), "online-3");
        let mut counts = [0usize; SHARDS];
        for i in 0..16_000 {
            counts[shard_of(&format!("user-{i}"))] += 1;
        }
        assert!(counts.iter().all(|n| (800..1200).contains(n)), "{counts:?}");
    }
}
