//! Directory: who is online, in `SHARDS` Durable Objects, and the broadcast that reaches them.
//!
//! A broadcast goes to every socket open at that moment, so something must know which of the
//! millions of UserHubs have sockets. One object that every connect wrote to would be the
//! ceiling of the whole deployment's connect rate (one object serves about a thousand requests a
//! second), so the directory is sharded: a user belongs to shard `online-<k>`, `k` a stable hash
//! of the user id (`stubs::directory::shard_of`), and no object sees every user.
//!
//! What arrives, what is stored, what is sent (per shard):
//!
//! | arrives                                   | stored                                          | sent                                   |
//! |-------------------------------------------|-------------------------------------------------|----------------------------------------|
//! | `POST /join {user, stamp}` (a UserHub's first open socket, or its first accept since waking) | the user listed under the stamp (a newer stamp wins) | — |
//! | `POST /leave {user, stamp}` (its last socket gone) | the user unlisted, unless listed under a newer stamp | — |
//! | `POST /broadcast {event, data, idempotency_key}` | the key (a repeat sends nothing); hubs with no socket, or failing [`MAX_FAILURES`] times, unlisted | `POST /broadcast` to each listed UserHub, [`HUB_FAN_OUT`] at once |
//! | `GET /online?after=&limit=`               | —                                               | `{count, users}`: the users listed after `after`, in user order |
//!
//! Races. A hub stamps each join and leave later than any it sent before (`user::listing`), and the
//! shard compares stamps (`store::online`): a leave that arrives after a later join removes
//! nothing. A lost leave (the hub was evicted mid-call, the call failed) leaves a user listed with
//! no socket: the next broadcast finds that hub with 0 devices and drops it — a hub that is gone is
//! dropped, not retried forever. A join that arrives after a later leave lists a user with no
//! socket the same way, and is repaired the same way. A lost join is retried by the hub's next
//! accept, because a hub re-registers on accept whenever it does not know itself listed since it
//! woke (`user::listing`); a hub that a broadcast found empty forgets that it is listed, so its
//! next socket lists it again.
//!
//! Cost. A connect that lists its hub costs one subrequest (bounded by `LISTING_DEADLINE`,
//! and never a refused connect: a directory that cannot be reached is logged). A broadcast costs
//! the Worker `SHARDS` subrequests and each shard one per listed user; see
//! docs/ARCHITECTURE.md for where that breaks.

use futures_util::stream::{self, StreamExt};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use super::common::object::{self, Answer};
use super::stubs::directory::{
    BroadcastRequest, DirectoryCall, Registration, ShardPage, ShardReach,
};
use super::stubs::user::{self, Announcement, HubReach};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::store::local::Local;
use crate::store::online::{Member, OnlineLog, Reached};

/// UserHubs one shard calls at once during a broadcast.
pub const HUB_FAN_OUT: usize = 50;

/// Broadcasts in a row a hub may fail (error, timeout) before its user is unlisted.
pub const MAX_FAILURES: i64 = 3;

#[durable_object]
pub struct Directory {
    local: Local,
    env: Env,
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        let local = object::open_storage(&state, &env);
        object::migrated("directory", OnlineLog::new(&local).migrate());
        Self { local, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match DirectoryCall::of(&req) {
            Some(DirectoryCall::Join) => self.join(req).await,
            Some(DirectoryCall::Leave) => self.leave(req).await,
            Some(DirectoryCall::Broadcast) => self.broadcast(req).await,
            Some(DirectoryCall::Online) => self.online(&req),
            None => Err(ApiError::not_found("no such directory route")),
        };
        result.or_else(object::error_response)
    }
}

impl Directory {
    fn log(&self) -> OnlineLog<'_> {
        OnlineLog::new(&self.local)
    }

    async fn join(&self, mut req: Request) -> Answer {
        let body: Registration = crate::http::read_hub_json(&mut req).await?;
        self.log().join(&body.user, body.stamp)?;
        Ok(crate::http::json(200, &serde_json::json!({}))?)
    }

    async fn leave(&self, mut req: Request) -> Answer {
        let body: Registration = crate::http::read_hub_json(&mut req).await?;
        self.log().leave(&body.user, body.stamp)?;
        Ok(crate::http::json(200, &serde_json::json!({}))?)
    }

    /// Sends the event to every listed hub ([`HUB_FAN_OUT`] at once) and sums what they
    /// reached; a repeated key answers what the first reached and sends nothing.
    async fn broadcast(&self, mut req: Request) -> Answer {
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
            emitted: body.emitted,
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
                let answer = user::broadcast(env, &member.user, announcement).await;
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
                Ok(HubReach { open: 0, .. }) => log.drop_member(&member)?,
                Ok(HubReach { devices, .. }) => {
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

    fn online(&self, req: &Request) -> Answer {
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
