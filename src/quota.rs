//! Per-user rates across isolates: the platform's Rate Limiting binding.
//!
//! The per-socket bucket (`ratelimit`) stops one noisy socket; it cannot stop a user who spreads
//! the same traffic over many sockets, REST calls, rooms and edge locations. These limits count
//! per user id wherever the request lands, in a counter the platform shares between isolates,
//! so they live in the bindings declared in wrangler.toml (`[[ratelimits]]`), not in memory:
//!
//! - [`Rate::Send`]: direct and room messages a user sends, over REST and sockets together.
//! - [`Rate::Rest`]: every authenticated `/v1` REST call of a user.
//! - [`Rate::Connect`]: upgrade attempts (user and room sockets), refused before the upgrade.
//!
//! Over a limit is `429 rate_limited` with `Retry-After` over HTTP and an `error` event with
//! `rate_limited` on a socket. The platform counts in windows of the binding's `period`; the
//! wrangler.toml bindings use [`PERIOD_SECS`], which is what `Retry-After` says. A gateway
//! without a binding (or whose limiter call fails) does not limit that kind: the limiter guards
//! capacity, and failing closed would turn its outage into everyone's.

use worker::Env;

use crate::error::ApiError;

/// The window of every `[[ratelimits]]` binding in wrangler.toml, in seconds.
pub const PERIOD_SECS: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Send,
    Rest,
    Connect,
}

impl Rate {
    pub const fn binding(self) -> &'static str {
        match self {
            Rate::Send => "SEND_RATE",
            Rate::Rest => "REST_RATE",
            Rate::Connect => "CONNECT_RATE",
        }
    }

    const fn refusal(self) -> &'static str {
        match self {
            Rate::Send => "too many messages sent",
            Rate::Rest => "too many requests",
            Rate::Connect => "too many connection attempts",
        }
    }
}

/// Counts one `rate` event for `user`; `429 rate_limited` when the user is over the limit.
pub async fn check(env: &Env, rate: Rate, user: &str) -> Result<(), ApiError> {
    let Ok(limiter) = env.rate_limiter(rate.binding()) else {
        return Ok(());
    };
    match limiter.limit(user.to_owned()).await {
        Ok(outcome) if !outcome.success => Err(ApiError::rate_limited(
            format!("{}; try again in {PERIOD_SECS} s", rate.refusal()),
            PERIOD_SECS,
        )),
        Ok(_) => Ok(()),
        Err(err) => {
            crate::log::error(
                "quota.limiter_failed",
                serde_json::json!({"binding": rate.binding(), "error": err.to_string()}),
            );
            Ok(())
        }
    }
}
