//! The way into a room's shards (`hubs::room::shard`): shard `k` of a room holds sockets the
//! room placed there, and is asked for them and for its count.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Request, Response, Stub};

use crate::auth::jwt::Identity;
use crate::error::ApiError;

calls! {
    /// What a RoomShard is asked.
    ShardCall {
        /// A socket the room placed here, with its [`Welcome`].
        Connect = Get "/connect",
        /// How many sockets it holds ([`ShardCount`]).
        Count = Get "/count",
    }
}

/// The header naming the shard a connect was placed on.
const SHARD_HEADER: &str = "x-switchboard-shard";
/// The header carrying what the room says to a socket on open ([`Welcome`]).
const WELCOME_HEADER: &str = "x-switchboard-welcome";

/// What a socket placed on a shard is told on open, as the room knows it at that moment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// `ready`'s room fields (`room_id`, `user_id`, `seq`, `read_seq`, `unread`); the shard adds
    /// the socket's own.
    pub ready: Value,
    pub presence: Value,
}

/// How many sockets a shard holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardCount {
    pub sockets: usize,
}

fn stub(env: &Env, room_id: &str, shard: u32) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("ROOM_SHARD")?
        .id_from_name(&format!("{room_id}#{shard}"))?
        .get_stub()?)
}

/// Hands a member's connect (`query` as the client sent it) to shard `shard`, with what the
/// socket is told on open.
pub async fn connect(
    env: &Env,
    room_id: &str,
    shard: u32,
    identity: &Identity,
    query: &str,
    subprotocol: bool,
    welcome: &Welcome,
) -> Result<Response, ApiError> {
    let headers = super::room::headers(room_id)?;
    headers.set(SHARD_HEADER, &shard.to_string())?;
    let welcome =
        serde_json::to_string(welcome).map_err(|err| ApiError::internal(err.to_string()))?;
    headers.set(WELCOME_HEADER, &welcome)?;
    let path = format!("{}?{query}", ShardCall::Connect.path());
    let upgrade = super::upgrade(&path, identity, subprotocol, headers)?;
    crate::http::call_hub(&stub(env, room_id, shard)?, upgrade).await
}

/// The shard and welcome a placed connect carries.
pub fn placed_on(req: &Request) -> Result<(u32, Welcome), ApiError> {
    let shard = crate::http::header(req, SHARD_HEADER)
        .and_then(|raw| raw.parse::<u32>().ok())
        .ok_or_else(|| ApiError::bad_request("validation", "no shard"))?;
    let welcome = crate::http::header(req, WELCOME_HEADER)
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .ok_or_else(|| ApiError::bad_request("validation", "no welcome"))?;
    Ok((shard, welcome))
}

/// How many sockets shard `shard` holds.
pub async fn count(env: &Env, room_id: &str, shard: u32) -> Result<ShardCount, ApiError> {
    let call = ShardCall::Count;
    crate::http::call_hub_json(
        &stub(env, room_id, shard)?,
        call.method(),
        call.path(),
        None::<&()>,
    )
    .await
}
