//! Directory: who is online, in [`SHARDS`] Durable Objects, and the broadcast that reaches them.
//!
//! A broadcast goes to every socket open at that moment, so something must know which of the
//! millions of UserHubs have sockets. One object that every connect wrote to would be the
//! ceiling of the whole deployment's connect rate (one object serves about a thousand requests a
//! second), so the directory is sharded: a user belongs to shard `online-<k>`, `k` a stable hash
//! of the user id ([`shard_of`]), and no object sees every user.
//!
//! What arrives, what is stored, what is sent (per shard):
//!
//! | arrives                                   | stored                                          | sent                                   |
//! |-------------------------------------------|-------------------------------------------------|----------------------------------------|
//! | `POST /join {user, stamp}` (a UserHub's first open socket, or its first accept since waking) | the user listed under the stamp (a newer stamp wins) | — |
//! | `POST /leave {user, stamp}` (its last socket gone) | the user unlisted, unless listed under a newer stamp | — |
//! | `POST /broadcast {event, data, idempotency_key}` | the key (before sending: a repeat sends nothing) and what it reached; hubs found with no socket unlisted, hubs failing [`MAX_FAILURES`] broadcasts in a row unlisted | `POST /broadcast` to every listed UserHub, [`HUB_FAN_OUT`] at once; the answer `{hubs, devices, duplicate}` |
//! | `GET /online?after=&limit=`               | —                                               | `{count, users}`: the users listed after `after`, in user order |
//!
//! Races. A hub stamps each join and leave later than any it sent before ([`Listing`]), and the
//! shard compares stamps (`store::online`): a leave that arrives after a later join removes
//! nothing. A lost leave (the hub was evicted mid-call, the call failed) leaves a user listed
//! with no socket: the next broadcast finds that hub with 0 devices and drops it — a hub that is
//! gone is dropped, not retried forever. A join that arrives after a later leave lists a user
//! with no socket the same way, and is repaired the same way. A lost join is retried by the
//! hub's next accept, because a hub re-registers on accept whenever it does not know itself
//! listed since it woke; a hub that a broadcast found empty forgets that it is listed, so its
//! next socket lists it again.
//!
//! Cost. A connect that lists its hub costs one subrequest (bounded by [`LISTING_DEADLINE`],
//! and never a refused connect: a directory that cannot be reached is logged). A broadcast costs
//! the Worker [`SHARDS`] subrequests and each shard one per listed user; see
//! docs/ARCHITECTURE.md for where that breaks.

use std::cell::Cell;
use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, State, Stub};

use super::now_ms;
use crate::error::ApiError;
use crate::store::local::Local;
use crate::store::online::{Member, OnlineLog, Reached};

/// How many shards the directory has. Each is one Durable Object named `online-<k>`; the count
/// is part of where a user is listed, so changing it moves users between shards (listings on
/// the old shards are then dropped by their next broadcast, and hubs list themselves again on
/// their next accept after a restart).
pub const SHARDS: usize = 16;

/// UserHubs one shard calls at once during a broadcast.
pub const HUB_FAN_OUT: usize = 50;

/// Broadcasts in a row a hub may fail (error, timeout) before its user is unlisted.
pub const MAX_FAILURES: i64 = 3;

/// How long a connect waits for its join (or a close for its leave) before going on without.
pub const LISTING_DEADLINE: Duration = Duration::from_secs(3);

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

fn stub(env: &Env, k: usize) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("DIRECTORY")?
        .id_from_name(&shard_name(k))?
        .get_stub()?)
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
}

/// What a broadcast sends a UserHub: the event, for the sockets open there now.
#[derive(Debug, Serialize, Deserialize)]
pub struct Announcement {
    pub event: String,
    pub data: Value,
}

/// What one UserHub's sockets got.
#[derive(Debug, Serialize, Deserialize)]
pub struct HubReach {
    pub devices: usize,
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

/// Sends a broadcast to every shard at once; each shard's outcome, in shard order.
pub async fn broadcast(env: &Env, request: &BroadcastRequest) -> Vec<Result<ShardReach, ApiError>> {
    join_all((0..SHARDS).map(|k| async move {
        crate::http::call_hub_json(&stub(env, k)?, Method::Post, "/broadcast", Some(request)).await
    }))
    .await
}

/// Asks shard `k` for its count and up to `limit` users after `after`.
pub async fn page(
    env: &Env,
    k: usize,
    after: Option<&str>,
    limit: i64,
) -> Result<ShardPage, ApiError> {
    let mut path = format!("/online?limit={limit}");
    if let Some(after) = after {
        path.push_str("&after=");
        path.push_str(after);
    }
    crate::http::call_hub_json(&stub(env, k)?, Method::Get, &path, None::<&()>).await
}

/// A UserHub's registration in its shard, as far as this wake of the hub knows. Memory only:
/// after a wake it is unknown, and the next accept lists the hub again (one subrequest).
#[derive(Default)]
pub struct Listing {
    /// `Some(true)`: a join succeeded since the last leave; `Some(false)`: left, or found empty
    /// by a broadcast; `None`: unknown (the hub woke since).
    listed: Cell<Option<bool>>,
    /// The newest stamp handed out: every join and leave gets a later one.
    stamp: Cell<i64>,
    /// The stamp of the last leave: a join that answers after it does not count as listed.
    left: Cell<i64>,
}

impl Listing {
    fn next_stamp(&self) -> i64 {
        let stamp = now_ms().max(self.stamp.get() + 1);
        self.stamp.set(stamp);
        stamp
    }

    /// A socket of `user` was accepted: list the hub unless it knows it is listed. A failure
    /// is logged and the connect goes on; the next accept tries again.
    pub async fn join(&self, env: &Env, user: &str) {
        if self.listed.get() == Some(true) {
            return;
        }
        let stamp = self.next_stamp();
        match register(env, user, stamp, "/join").await {
            Ok(()) if stamp > self.left.get() => self.listed.set(Some(true)),
            Ok(()) => {}
            Err(err) => crate::log::warn(
                "directory.join_failed",
                serde_json::json!({"user_id": user, "error": err.to_string()}),
            ),
        }
    }

    /// The last socket of `user` is gone: unlist the hub unless it knows it is not listed.
    pub async fn leave(&self, env: &Env, user: &str) {
        if self.listed.get() == Some(false) {
            return;
        }
        let stamp = self.next_stamp();
        self.left.set(stamp);
        self.listed.set(Some(false));
        if let Err(err) = register(env, user, stamp, "/leave").await {
            crate::log::warn(
                "directory.leave_failed",
                serde_json::json!({"user_id": user, "error": err.to_string()}),
            );
        }
    }

    /// A broadcast found no socket here: its shard drops the hub, so the next accept lists it.
    pub fn dropped(&self) {
        self.left.set(self.next_stamp());
        self.listed.set(Some(false));
    }
}

async fn register(env: &Env, user: &str, stamp: i64, path: &str) -> Result<(), ApiError> {
    let registration = Registration {
        user: user.to_owned(),
        stamp,
    };
    let call = async {
        let stub = stub(env, shard_of(user))?;
        crate::http::call_hub_json::<Value>(&stub, Method::Post, path, Some(&registration)).await
    };
    let deadline = worker::Delay::from(LISTING_DEADLINE);
    let outcome = match select(Box::pin(call), Box::pin(deadline)).await {
        Either::Left((answer, _)) => answer.map(|_| ()),
        Either::Right(_) => Err(ApiError::unavailable(
            "the directory did not answer in time",
        )),
    };
    outcome
}

#[durable_object]
pub struct Directory {
    local: Local,
    env: Env,
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        super::observe(&env);
        let local = Local::new(state.storage().sql());
        if let Err(err) = OnlineLog::new(&local).migrate() {
            crate::log::error(
                "hub.schema_failed",
                serde_json::json!({"object": "directory", "error": err.to_string()}),
            );
        }
        Self { local, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match (req.method(), req.path().as_str()) {
            (Method::Post, "/join") => self.join(req).await,
            (Method::Post, "/leave") => self.leave(req).await,
            (Method::Post, "/broadcast") => self.broadcast(req).await,
            (Method::Get, "/online") => self.online(&req),
            _ => Err(ApiError::not_found("no such directory route")),
        };
        result.or_else(super::error_response)
    }
}

impl Directory {
    fn log(&self) -> OnlineLog<'_> {
        OnlineLog::new(&self.local)
    }

    async fn join(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: Registration = crate::http::read_hub_json(&mut req).await?;
        self.log().join(&body.user, body.stamp)?;
        Ok(crate::http::json(200, &serde_json::json!({}))?)
    }

    async fn leave(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: Registration = crate::http::read_hub_json(&mut req).await?;
        self.log().leave(&body.user, body.stamp)?;
        Ok(crate::http::json(200, &serde_json::json!({}))?)
    }

    /// Sends the event to every listed hub ([`HUB_FAN_OUT`] at once) and sums what they
    /// reached; a repeated key answers what the first reached and sends nothing.
    async fn broadcast(&self, mut req: Request) -> Result<Response, ApiError> {
        let body: BroadcastRequest = crate::http::read_hub_json(&mut req).await?;
        let now = now_ms();
        if let Some(key) = &body.idempotency_key {
            if let Some(reached) = self.log().remembered(key, now)? {
                let answer = ShardReach {
                    hubs: reached.hubs,
                    devices: reached.devices,
                    duplicate: true,
                };
                return Ok(crate::http::json(200, &answer)?);
            }
            self.log().claim(key, now)?;
        }
        let announcement = Announcement {
            event: body.event,
            data: body.data,
        };
        let reached = self.fan_out(&announcement).await?;
        if let Some(key) = &body.idempotency_key {
            self.log().record(key, reached)?;
        }
        let answer = ShardReach {
            hubs: reached.hubs,
            devices: reached.devices,
            duplicate: false,
        };
        Ok(crate::http::json(200, &answer)?)
    }

    /// Calls every listed hub and keeps the listing honest: a hub with no socket is unlisted, a
    /// failing one after [`MAX_FAILURES`] broadcasts in a row.
    async fn fan_out(&self, announcement: &Announcement) -> Result<Reached, ApiError> {
        let members = self.log().members()?;
        let env = &self.env;
        let answers: Vec<(Member, Result<HubReach, ApiError>)> = stream::iter(members)
            .map(|member| async move {
                let answer = super::user::call(
                    env,
                    &member.user,
                    Method::Post,
                    "/broadcast",
                    Some(announcement),
                )
                .await;
                (member, answer)
            })
            .buffer_unordered(HUB_FAN_OUT)
            .collect()
            .await;
        let log = self.log();
        let mut reached = Reached {
            hubs: 0,
            devices: 0,
        };
        for (member, answer) in answers {
            match answer {
                Ok(HubReach { devices: 0 }) => log.drop_member(&member)?,
                Ok(HubReach { devices }) => {
                    log.reached(&member)?;
                    reached.hubs += 1;
                    reached.devices += devices as i64;
                }
                Err(err) => {
                    crate::log::warn(
                        "broadcast.hub_failed",
                        serde_json::json!({"user_id": member.user, "error": err.to_string()}),
                    );
                    log.failed(&member, MAX_FAILURES)?;
                }
            }
        }
        Ok(reached)
    }

    fn online(&self, req: &Request) -> Result<Response, ApiError> {
        let after = crate::http::query_param(req, "after");
        let limit = crate::http::query_param(req, "limit")
            .and_then(|raw| raw.parse::<i64>().ok())
            .unwrap_or(0);
        let log = self.log();
        let page = ShardPage {
            count: log.count()?,
            users: log.page(after.as_deref(), limit)?,
        };
        Ok(crate::http::json(200, &page)?)
    }
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
