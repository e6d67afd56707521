//! Typed, validated configuration.
//!
//! `[vars]` in wrangler.toml carry policy (origins, issuer, audience, limits, retention); secrets
//! (`JWT_SECRET`, `JWT_PUBLIC_KEYS`, `INTERNAL_API_TOKEN`) come from `wrangler secret put`, or
//! from `.dev.vars` locally. Everything is parsed in one place from a lookup function so the
//! rules are unit-tested on the host; a bad value is an error naming the variable, never a
//! silent default.
//!
//! Some combinations are refused because they fail open: public keys without `JWT_AUDIENCE`
//! (an identity provider shared with other applications mints tokens this gateway would accept),
//! the development secrets of `.dev.vars.example` without `DEV_MODE`, and an
//! `INTERNAL_API_TOKEN` shorter than [`MIN_SECRET_BYTES`]. Every problem is reported at
//! once, so an operator fixes them in one pass.

use std::cell::RefCell;
use std::rc::Rc;

use crate::auth::jwt::Verifier;
use crate::auth::origin::OriginPolicy;
use crate::socketio::Namespaces;
use crate::vars::{number, MIN_SECRET_BYTES};

/// The committed development values, refused as secrets unless `DEV_MODE` is on.
const DEV_VARS_EXAMPLE: &str = include_str!("../.dev.vars.example");

/// The value `.dev.vars.example` gives `name`, if it gives one.
fn example_value(name: &str) -> Option<&'static str> {
    DEV_VARS_EXAMPLE
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
}

/// Declares every numeric limit once: its field and doc, its variable, its default and its bounds
/// `[min, max]`. Makes [`Limits`], its `Default` and the function that reads and checks them.
macro_rules! limits {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $var:ident, $default:expr, [$min:expr, $max:expr];)*) => {
        /// Numeric limits and retention, with their defaults.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Limits {
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Default for Limits {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        /// The numeric limits, each within its bounds.
        fn limits(get: &impl Fn(&str) -> Option<String>) -> Result<Limits, String> {
            Ok(Limits {
                $($field: number(get, stringify!($var), $default, $min, $max)?,)*
            })
        }
    };
}

limits! {
    /// Largest accepted WebSocket text frame; larger ones close the socket with 1009.
    max_frame_bytes: usize = MAX_FRAME_BYTES, 64 * 1024, [1024, 1 << 20];
    /// Largest accepted HTTP body.
    max_body_bytes: usize = MAX_BODY_BYTES, 1024 * 1024, [1024, 8 << 20];
    /// Per-user stream retention, for each class of event on its own: keep at least this many
    /// newest events...
    retention_events: i64 = RETENTION_EVENTS, 1000, [1, 1_000_000];
    /// ...and at least every event younger than this many days.
    retention_days: i64 = RETENTION_DAYS, 7, [0, 3650];
    /// How often a hub with stored events runs its retention pass.
    prune_interval_secs: i64 = PRUNE_INTERVAL_SECONDS, 3600, [1, 86_400];
    /// A user who reconnects within this many seconds never appears offline.
    presence_grace_secs: i64 = PRESENCE_GRACE_SECONDS, 10, [0, 3600];
    /// Frames a socket may send at once...
    rate_limit_burst: u32 = RATE_LIMIT_BURST, 100, [1, 100_000];
    /// ...and per second after that; beyond it the socket is closed with 4008.
    rate_limit_per_second: u32 = RATE_LIMIT_PER_SECOND, 20, [1, 100_000];
    /// A resume sends at most this many stream entries before `synced {more:true}`...
    replay_batch_events: i64 = REPLAY_BATCH_EVENTS, 500, [1, 10_000];
    /// ...and at most this many bytes of frames (one entry always goes, whatever its size).
    replay_batch_bytes: usize = REPLAY_BATCH_BYTES, 1024 * 1024, [4096, 8 << 20];
    /// Replay bytes (resumes and `sync` pages) one user may draw from one hub or room per
    /// second, with a burst of one second's worth or one batch, whichever is larger; a `sync`
    /// beyond it waits its turn (`hubs::common::replay`).
    replay_bytes_per_second: usize = REPLAY_BYTES_PER_SECOND, 1024 * 1024, [4096, 1 << 30];
    /// A user stream keeps at most this many bytes of events of each class, whatever their age.
    retention_bytes: i64 = RETENTION_BYTES, 16 * 1024 * 1024, [64 * 1024, 1 << 30];
    /// A room keeps this many newest messages in its own storage (older ones, once D1 has
    /// them, are read from D1).
    room_window_messages: i64 = ROOM_WINDOW_MESSAGES, 10_000, [10, 1_000_000];
    /// Sockets one user may hold on one hub or room; a new one closes the oldest with 4009.
    max_sockets_per_user: usize = MAX_SOCKETS_PER_USER, 20, [1, 1000];
    /// A member's repeated `typing` start is forwarded at most once per this many
    /// milliseconds, and at most three starts per interval (a stop only after a forwarded start:
    /// `typing`).
    typing_interval_ms: i64 = TYPING_INTERVAL_MS, 3000, [0, 60_000];
    /// Members one room may have (its sockets spread over shards: `room_shard_sockets`).
    max_room_members: usize = MAX_ROOM_MEMBERS, 100_000, [2, 1_000_000];
    /// Sockets one room object holds before new connects go to its shards (`hubs::room::shard`).
    room_shard_sockets: usize = ROOM_SHARD_SOCKETS, 1000, [1, 30_000];
    /// From this many users present in a room, joins and leaves go out batched, as one
    /// `presence.changed` per second, and `presence` on open carries the count, not the list.
    room_presence_batch_users: usize = ROOM_PRESENCE_BATCH_USERS, 100, [1, 1_000_000];
    /// Rooms one user may create over REST in 24 hours.
    max_rooms_per_day: i64 = MAX_ROOMS_PER_DAY, 100, [1, 1_000_000];
    /// A sender may recall (delete for everyone) a room or direct message this long after
    /// sending it; room owners and admins may delete any room message at any time.
    recall_window_secs: i64 = RECALL_WINDOW_SECONDS, 900, [0, 30 * 24 * 3600];
    /// Socket.IO connections: the relay in front of the hub pings every this many ms (the hub
    /// never wakes for it: docs/ARCHITECTURE.md)...
    socketio_ping_interval_ms: u64 = SOCKETIO_PING_INTERVAL_MS, 25_000, [1000, 600_000];
    /// ...and a client that has not answered for the interval plus this long is closed; the
    /// client gives the server as long before it reconnects.
    socketio_ping_timeout_ms: u64 = SOCKETIO_PING_TIMEOUT_MS, 20_000, [1000, 300_000];
    /// Namespaces one Socket.IO connection may connect at once; a CONNECT beyond is refused
    /// with `too_many_namespaces`.
    socketio_max_namespaces: usize = SOCKETIO_MAX_NAMESPACES, 8, [1, 32];
    /// Sockets the Worker holds at once for one client address before (or instead of)
    /// admitting them: a refused Socket.IO handshake held to tell the client why. Beyond it the
    /// upgrade is `429 too_many_pending`.
    max_pending_per_address: usize = MAX_PENDING_PER_ADDRESS, 32, [1, 100_000];
    /// A Socket.IO upgrade without a token waits in the Worker at most this long for the
    /// CONNECT whose `auth.token` proves the user (socket.io's `connectTimeout`); then it is
    /// closed 4003 `connect_timeout`.
    socketio_connect_timeout_ms: u64 = SOCKETIO_CONNECT_TIMEOUT_MS, 10_000, [500, 10_000];
}

impl Limits {
    /// What a Socket.IO open packet tells the client: the heartbeat and the largest packet.
    pub fn engine_timing(&self) -> crate::socketio::engine::Timing {
        crate::socketio::engine::Timing {
            ping_interval_ms: self.socketio_ping_interval_ms,
            ping_timeout_ms: self.socketio_ping_timeout_ms,
            max_payload: self.max_frame_bytes,
        }
    }

    /// The isolate's limits; the defaults when the configuration cannot be read (an object
    /// must still close expired sockets and run its alarm).
    pub fn of(env: &worker::Env) -> Self {
        Config::shared(env)
            .map(|config| config.limits.clone())
            .unwrap_or_default()
    }
}

/// Everything wrong with a configuration, one sentence per problem, naming variables (never
/// their values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

pub struct Config {
    pub origins: OriginPolicy,
    pub verifier: Verifier,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub internal_token: Option<String>,
    pub dev_mode: bool,
    pub limits: Limits,
    /// The Socket.IO namespaces clients may connect to (`SOCKETIO_NAMESPACES`, every one by
    /// default).
    pub namespaces: Namespaces,
    pub hook: Option<crate::hook::HookConfig>,
    /// Web Push and the notification webhook (`notify`).
    pub notify: crate::notify::NotifyConfig,
}

thread_local! {
    /// The configuration, parsed once per isolate and shared by the Worker and every Durable
    /// Object in it: vars and secrets cannot change while an isolate lives (changing them
    /// deploys a new version), and parsing them (the JWT keys included) on every request, or
    /// once per object, was a measurable share of a push and of a first connect.
    static SHARED: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

impl Config {
    /// The isolate's configuration, parsed on first use.
    pub fn shared(env: &worker::Env) -> Result<Rc<Self>, Problems> {
        if let Some(config) = SHARED.with(|cell| cell.borrow().clone()) {
            return Ok(config);
        }
        let config = Rc::new(Self::from_env(env)?);
        SHARED.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&config)));
        Ok(config)
    }

    /// Reads every variable from the Worker or Durable Object environment.
    pub fn from_env(env: &worker::Env) -> Result<Self, Problems> {
        Self::from_lookup(|name| {
            env.var(name)
                .ok()
                .map(|value| value.to_string())
                .or_else(|| env.secret(name).ok().map(|value| value.to_string()))
        })
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let jwt_secret = get("JWT_SECRET");
        let jwt_issuer = get("JWT_ISSUER");
        let jwt_audience = get("JWT_AUDIENCE");
        let public_keys = get("JWT_PUBLIC_KEYS");
        let internal_token = get("INTERNAL_API_TOKEN");
        let dev_mode = get("DEV_MODE").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut problems = Vec::new();
        if public_keys.is_some() && jwt_audience.is_none() {
            problems.push(
                "JWT_PUBLIC_KEYS needs JWT_AUDIENCE: without it, tokens minted for any application of the same identity provider would be accepted".to_owned(),
            );
        }
        if internal_token
            .as_ref()
            .is_some_and(|token| token.len() < MIN_SECRET_BYTES)
        {
            problems.push(format!(
                "INTERNAL_API_TOKEN must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        if !dev_mode {
            for (name, value) in [
                ("JWT_SECRET", &jwt_secret),
                ("INTERNAL_API_TOKEN", &internal_token),
                ("VAPID_PRIVATE_KEY", &get("VAPID_PRIVATE_KEY")),
            ] {
                if value.is_some() && value.as_deref() == example_value(name) {
                    problems.push(format!(
                        "{name} is the development value from .dev.vars.example; set a secret of your own (wrangler secret put {name})"
                    ));
                }
            }
        }
        let hook = crate::hook::HookConfig::from_lookup(&get)
            .map_err(|hook_problems| problems.extend(hook_problems))
            .unwrap_or_default();
        if get("LOG_LEVEL").is_some_and(|level| crate::log::Level::parse(&level).is_none()) {
            problems.push("LOG_LEVEL must be error, warn, info or debug".to_owned());
        }
        let notify = crate::notify::NotifyConfig::from_lookup(&get, dev_mode)
            .map_err(|notify_problems| problems.extend(notify_problems))
            .unwrap_or_default();
        let verifier = Verifier::new(
            jwt_secret.as_deref(),
            public_keys.as_deref(),
            jwt_issuer.as_deref(),
            jwt_audience.as_deref(),
        )
        .map(|verifier| verifier.with_dev_tokens(dev_mode));
        let limits = limits(&get);
        let namespaces = Namespaces::parse(&get("SOCKETIO_NAMESPACES").unwrap_or_default())
            .map_err(|why| format!("SOCKETIO_NAMESPACES: {why}"));
        if let Err(why) = &namespaces {
            problems.push(why.clone());
        }
        let (verifier, limits) = match (verifier, limits) {
            (Ok(verifier), Ok(limits)) if problems.is_empty() => (verifier, limits),
            (verifier, limits) => {
                problems.extend(verifier.err().map(|err| err.0));
                problems.extend(limits.err());
                return Err(Problems(problems));
            }
        };
        Ok(Self {
            origins: OriginPolicy::parse(&get("ALLOWED_ORIGINS").unwrap_or_default()),
            verifier,
            jwt_secret,
            jwt_issuer,
            jwt_audience,
            internal_token,
            dev_mode,
            limits,
            namespaces: namespaces.unwrap_or(Namespaces::Any),
            hook,
            notify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned()).map_err(|p| p.to_string())
    }

    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");
    const LONG_TOKEN: &str = "an-internal-token-of-at-least-32-bytes";

    #[test]
    fn public_keys_need_an_audience() {
        let jwks = r#"{"keys":[]}"#;
        let err = load(&[SECRET, ("JWT_PUBLIC_KEYS", jwks)]).err().unwrap();
        assert!(err.contains("JWT_AUDIENCE"), "{err}");
        assert!(load(&[SECRET, ("JWT_PUBLIC_KEYS", jwks), ("JWT_AUDIENCE", "app")]).is_ok());
    }

    #[test]
    fn short_internal_tokens_are_refused() {
        let err = load(&[SECRET, ("INTERNAL_API_TOKEN", "tok")])
            .err()
            .unwrap();
        assert!(err.contains("INTERNAL_API_TOKEN"), "{err}");
    }

    #[test]
    fn development_secrets_only_in_dev_mode() {
        let secret = example_value("JWT_SECRET").expect("the example names JWT_SECRET");
        let internal = example_value("INTERNAL_API_TOKEN").expect("and INTERNAL_API_TOKEN");
        let pairs = [("JWT_SECRET", secret), ("INTERNAL_API_TOKEN", internal)];
        let err = load(&pairs).err().unwrap();
        assert!(err.contains("JWT_SECRET is the development value"), "{err}");
        assert!(
            err.contains("INTERNAL_API_TOKEN is the development value"),
            "{err}"
        );
        let dev = load(&[pairs[0], pairs[1], ("DEV_MODE", "true")]).unwrap();
        assert!(dev.dev_mode);
    }

    #[test]
    fn the_development_vapid_key_pair_notifies_only_in_dev_mode() {
        let vapid = ["VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY", "VAPID_SUBJECT"].map(|name| {
            (
                name,
                example_value(name).expect("the example has a VAPID pair"),
            )
        });
        let pairs = [SECRET, vapid[0], vapid[1], vapid[2]];
        let err = load(&pairs).err().unwrap();
        assert!(
            err.contains("VAPID_PRIVATE_KEY is the development value"),
            "{err}"
        );
        let dev = load(&[SECRET, vapid[0], vapid[1], vapid[2], ("DEV_MODE", "true")]).unwrap();
        assert!(
            dev.notify.web_push.is_some(),
            "make dev notifies out of the box"
        );
    }

    #[test]
    fn an_unknown_log_level_is_a_problem() {
        let err = load(&[SECRET, ("LOG_LEVEL", "verbose")]).err().unwrap();
        assert!(err.contains("LOG_LEVEL"), "{err}");
        assert!(load(&[SECRET, ("LOG_LEVEL", "debug")]).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load(&[("INTERNAL_API_TOKEN", "x"), ("RETENTION_DAYS", "-1")])
            .err()
            .unwrap();
        for name in ["INTERNAL_API_TOKEN", "JWT_SECRET", "RETENTION_DAYS"] {
            assert!(err.contains(name), "{name} in {err}");
        }
    }

    #[test]
    fn defaults() {
        let config = load(&[SECRET]).unwrap();
        assert_eq!(config.limits, Limits::default());
        assert!(!config.dev_mode);
        assert_eq!(config.internal_token, None);
        assert!(!config.origins.allows(Some("https://x.example")));
    }

    #[test]
    fn values() {
        let config = load(&[
            SECRET,
            ("DEV_MODE", "true"),
            ("ALLOWED_ORIGINS", "*"),
            ("RETENTION_EVENTS", "5"),
            ("INTERNAL_API_TOKEN", LONG_TOKEN),
        ])
        .unwrap();
        assert!(config.dev_mode);
        assert!(config.origins.allows(Some("https://x.example")));
        assert_eq!(config.limits.retention_events, 5);
        assert_eq!(config.internal_token.as_deref(), Some(LONG_TOKEN));
    }

    #[test]
    fn socketio_settings() {
        let config = load(&[
            SECRET,
            ("SOCKETIO_PING_INTERVAL_MS", "60000"),
            ("SOCKETIO_NAMESPACES", "/,/chat"),
        ])
        .unwrap();
        assert_eq!(config.limits.socketio_ping_interval_ms, 60_000);
        assert_eq!(config.limits.socketio_ping_timeout_ms, 20_000);
        assert!(config.namespaces.allows("/chat") && !config.namespaces.allows("/admin"));
        let err = load(&[SECRET, ("SOCKETIO_NAMESPACES", "chat")])
            .err()
            .unwrap();
        assert!(err.contains("SOCKETIO_NAMESPACES"), "{err}");
        let err = load(&[SECRET, ("SOCKETIO_PING_INTERVAL_MS", "10")])
            .err()
            .unwrap();
        assert!(err.contains("SOCKETIO_PING_INTERVAL_MS"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = load(&[SECRET, ("RETENTION_EVENTS", "lots")]).err().unwrap();
        assert!(err.contains("RETENTION_EVENTS"), "{err}");
        let err = load(&[SECRET, ("MAX_FRAME_BYTES", "10")]).err().unwrap();
        assert!(err.contains("MAX_FRAME_BYTES"), "{err}");
        let err = load(&[]).err().unwrap();
        assert!(err.contains("JWT_SECRET"), "{err}");
    }
}
