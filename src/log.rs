//! Structured logs: one JSON line per meaningful thing, with stable field names.
//!
//! Workers Logs indexes JSON lines, and `wrangler tail --format json` shows them as objects, so
//! an operator searches `event = "connect.refused" AND code = "token_expired"` instead of
//! grepping prose. Every line has `ts` (RFC 3339, UTC, ms), `level`, `event` (a dotted name from
//! the list in docs/OPERATIONS.md) and the event's own fields. What is never logged: a token, a
//! secret, a request header or query, a push endpoint's path, a message body or preview — the
//! fields are chosen at each call site from ids, codes, counts, sizes and durations only.
//!
//! `LOG_LEVEL` (`error`, `warn`, `info` — the default — or `debug`) is read once per isolate.
//! Nothing is logged per frame at `info`: frames are logged only when they change something an
//! operator asks about (a socket opened or closed, a limit hit).

use std::cell::Cell;

use serde_json::{Map, Value};

/// How much is logged: each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Self::Error),
            "warn" => Some(Self::Warn),
            "info" => Some(Self::Info),
            "debug" => Some(Self::Debug),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

thread_local! {
    /// The isolate's level, read from `LOG_LEVEL` by [`init`]; `info` until then.
    static LEVEL: Cell<Option<Level>> = const { Cell::new(None) };
}

/// Reads `LOG_LEVEL` once per isolate (the Worker entry and each Durable Object call this as
/// they start; vars cannot change while an isolate lives). A value that is not a level is
/// `info` (`GET /health` names it).
pub fn init(env: &worker::Env) {
    if LEVEL.get().is_none() {
        let level = env
            .var("LOG_LEVEL")
            .ok()
            .and_then(|value| Level::parse(&value.to_string()))
            .unwrap_or(Level::Info);
        LEVEL.set(Some(level));
    }
}

/// Whether lines at `level` are written: a caller whose fields cost something to gather (one
/// per connect or close) asks first.
pub fn enabled(level: Level) -> bool {
    level <= LEVEL.get().unwrap_or(Level::Info)
}

/// The line for `event` at `level` with `fields` (an object; anything else is logged under
/// `detail`), stamped at `now_ms`.
pub fn line(level: Level, event: &str, fields: Value, now_ms: i64) -> String {
    let mut out = Map::new();
    let ts = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    out.insert("ts".into(), Value::from(ts));
    out.insert("level".into(), Value::from(level.as_str()));
    out.insert("event".into(), Value::from(event));
    match fields {
        Value::Object(fields) => {
            for (key, value) in fields {
                out.entry(key).or_insert(value);
            }
        }
        Value::Null => {}
        other => {
            out.insert("detail".into(), other);
        }
    }
    Value::Object(out).to_string()
}

/// Logs `event` when `level` is enabled.
pub fn emit(level: Level, event: &str, fields: Value) {
    if !enabled(level) {
        return;
    }
    // Always `console.log`: the level is a field of the line, and `console.warn`/`error` are
    // decorated by `wrangler dev` (a coloured `[WARNING]` prefix), which would make local lines
    // stop being JSON.
    worker::console_log!(
        "{}",
        line(level, event, fields, chrono::Utc::now().timestamp_millis())
    );
}

/// The level of a request's own line: `debug` when it went as asked, `warn` when part of it
/// failed (an operator's log is for what went wrong; metrics count the rest).
pub fn outcome(failed: bool) -> Level {
    if failed {
        Level::Warn
    } else {
        Level::Debug
    }
}

pub fn error(event: &str, fields: Value) {
    emit(Level::Error, event, fields);
}

pub fn warn(event: &str, fields: Value) {
    emit(Level::Warn, event, fields);
}

pub fn info(event: &str, fields: Value) {
    emit(Level::Info, event, fields);
}

pub fn debug(event: &str, fields: Value) {
    emit(Level::Debug, event, fields);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_is_one_json_object_whose_stable_fields_a_caller_cannot_replace() {
        let text = line(
            Level::Warn,
            "limit.hit",
            json!({"limit": "rate_limited", "level": "spoofed"}),
            0,
        );
        assert!(!text.contains('\n'));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(parsed["level"], "warn");
        assert_eq!(parsed["event"], "limit.hit");
        assert_eq!(parsed["limit"], "rate_limited");
    }

    #[test]
    fn fields_that_are_not_an_object_go_under_detail() {
        let parsed: Value =
            serde_json::from_str(&line(Level::Error, "x", json!("why"), 0)).unwrap();
        assert_eq!(parsed["detail"], "why");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" DEBUG "), Some(Level::Debug));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Info);
    }
}
