//! Typed, validated configuration.
//!
//! `[vars]` in wrangler.toml carry policy (origins, issuer, audience, limits, retention); secrets
//! (`JWT_SECRET`, `JWT_PUBLIC_KEYS`, `INTERNAL_API_TOKEN`) come from `wrangler secret put`, or
//! from `.dev.vars` locally. Everything is parsed in one place from a lookup function so the
//! rules are unit-tested on the host; a bad value is an error naming the variable, never a
//! silent default.

use crate::auth::jwt::Verifier;
use crate::auth::origin::OriginPolicy;

/// Numeric limits and retention, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted WebSocket text frame; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest accepted HTTP body.
    pub max_body_bytes: usize,
    /// Per-user stream retention: keep at least this many newest events...
    pub retention_events: i64,
    /// ...and at least every event younger than this many days.
    pub retention_days: i64,
    /// How often a hub with stored events runs its retention pass.
    pub prune_interval_secs: i64,
    /// A user who reconnects within this many seconds never appears offline.
    pub presence_grace_secs: i64,
    /// Frames a socket may send at once...
    pub rate_limit_burst: u32,
    /// ...and per second after that; beyond it the socket is closed with 4008.
    pub rate_limit_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            retention_events: 1000,
            retention_days: 7,
            prune_interval_secs: 3600,
            presence_grace_secs: 10,
            rate_limit_burst: 100,
            rate_limit_per_second: 20,
        }
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
}

impl Config {
    /// Reads every variable from the Worker or Durable Object environment.
    pub fn from_env(env: &worker::Env) -> Result<Self, String> {
        Self::from_lookup(|name| {
            env.var(name)
                .ok()
                .map(|value| value.to_string())
                .or_else(|| env.secret(name).ok().map(|value| value.to_string()))
        })
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let jwt_secret = get("JWT_SECRET");
        let jwt_issuer = get("JWT_ISSUER");
        let jwt_audience = get("JWT_AUDIENCE");
        let verifier = Verifier::new(
            jwt_secret.as_deref(),
            get("JWT_PUBLIC_KEYS").as_deref(),
            jwt_issuer.as_deref(),
            jwt_audience.as_deref(),
        )
        .map_err(|err| err.0)?;
        let defaults = Limits::default();
        let limits = Limits {
            max_frame_bytes: number(
                &get,
                "MAX_FRAME_BYTES",
                defaults.max_frame_bytes,
                1024,
                1 << 20,
            )?,
            max_body_bytes: number(
                &get,
                "MAX_BODY_BYTES",
                defaults.max_body_bytes,
                1024,
                8 << 20,
            )?,
            retention_events: number(
                &get,
                "RETENTION_EVENTS",
                defaults.retention_events,
                1,
                1_000_000,
            )?,
            retention_days: number(&get, "RETENTION_DAYS", defaults.retention_days, 0, 3650)?,
            prune_interval_secs: number(
                &get,
                "PRUNE_INTERVAL_SECONDS",
                defaults.prune_interval_secs,
                1,
                86_400,
            )?,
            presence_grace_secs: number(
                &get,
                "PRESENCE_GRACE_SECONDS",
                defaults.presence_grace_secs,
                0,
                3600,
            )?,
            rate_limit_burst: number(
                &get,
                "RATE_LIMIT_BURST",
                defaults.rate_limit_burst,
                1,
                100_000,
            )?,
            rate_limit_per_second: number(
                &get,
                "RATE_LIMIT_PER_SECOND",
                defaults.rate_limit_per_second,
                1,
                100_000,
            )?,
        };
        Ok(Self {
            origins: OriginPolicy::parse(&get("ALLOWED_ORIGINS").unwrap_or_default()),
            verifier,
            jwt_secret,
            jwt_issuer,
            jwt_audience,
            internal_token: get("INTERNAL_API_TOKEN"),
            dev_mode: get("DEV_MODE").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            limits,
        })
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(format!("{name} must be a whole number from {min} to {max}")),
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
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

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
            ("INTERNAL_API_TOKEN", "tok"),
        ])
        .unwrap();
        assert!(config.dev_mode);
        assert!(config.origins.allows(Some("https://x.example")));
        assert_eq!(config.limits.retention_events, 5);
        assert_eq!(config.internal_token.as_deref(), Some("tok"));
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
