//! The event hook: client events the gateway does not know, answered by the operator's backend.
//!
//! A socket.io application keeps its business logic in server handlers
//! (`@SubscribeMessage('send-message')`). Switchboard cannot run those handlers, so it forwards
//! them: when a client emits an event the gateway has no meaning for, the UserHub POSTs it to
//! `EVENT_HOOK_URL` and the backend's JSON answer becomes the client's ack. A handler moves to a
//! plain HTTP endpoint of the backend, which can answer, refuse, and publish to rooms through the
//! internal API.
//!
//! The request is built here and nowhere else, so what a backend may rely on is in one place:
//!
//! - **Who is asking** is the verified identity of the socket (`user_id` is the token's `sub`),
//!   never anything the client wrote: a client cannot speak for another user.
//! - **That the gateway sent it, recently**: the body is signed with `EVENT_HOOK_SECRET` using
//!   Stripe's scheme, `x-switchboard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>">`. The timestamp is inside the MAC, so a captured request cannot be replayed
//!   later with a fresh timestamp; the backend checks `|now - t| <= 300` and compares the MAC in
//!   constant time (docs/PROTOCOL.md has a verifier).
//! - **One attempt, never retried.** A handler such as `send-message` is usually not idempotent:
//!   a retry after a timeout could post a message twice, and only the client knows whether to
//!   emit again. A failure is reported to the client in its ack instead.
//! - **Bounded**: the call is raced against `EVENT_HOOK_TIMEOUT_MS` (a slow backend holds a hub
//!   no longer than that), redirects are not followed (the operator configured one URL, and a
//!   redirect could lead the signed body elsewhere), and the answer is read up to
//!   `EVENT_HOOK_MAX_BYTES`, counted after decoding, so neither a large nor a compressed answer
//!   makes the hub hold more.
//!
//! The outcome is an ack value (`Ok`), or a [`HookError`]: the backend's own refusal (a 4xx with
//! `{"error":{"code","message"}}`), `hook_failed` or `hook_timeout`. Error messages name neither
//! the secret nor the URL's query (which may carry the backend's own credentials).

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use worker::{Headers, Response, ResponseBody, Url};

use crate::error::ApiError;
use crate::vars::{number, switch, MIN_SECRET_BYTES};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// Longest error code a backend may choose; a longer or malformed one becomes `hook_refused`.
pub const MAX_CODE_CHARS: usize = 64;

/// Where and how to call the backend.
#[derive(Clone, PartialEq, Eq)]
pub struct HookConfig {
    pub url: Url,
    pub secret: String,
    pub timeout_ms: u64,
    pub max_answer_bytes: usize,
    /// `EVENT_HOOK_CONNECTIONS`: Socket.IO sockets' `connection` and `disconnect` calls are
    /// made too (`hubs::user::lifecycle`). Off by default: a backend written for events alone
    /// would refuse them, and each costs a call per connect.
    pub connections: bool,
}

/// Never prints the secret or the URL's query.
impl std::fmt::Debug for HookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookConfig")
            .field("url", &redacted(&self.url))
            .field("secret", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("connections", &self.connections)
            .finish()
    }
}

impl HookConfig {
    pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
    pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 * 1024;

    /// Reads `EVENT_HOOK_URL`, `EVENT_HOOK_SECRET`, `EVENT_HOOK_TIMEOUT_MS` and
    /// `EVENT_HOOK_MAX_BYTES` (`get` answers `None` for an absent or empty variable). No URL is
    /// no hook (`Ok(None)`); the numbers are checked either way, so a mistake shows before the
    /// hook is switched on. Every problem names its variable, never a value.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<HookConfig>, Vec<String>> {
        let mut problems = Vec::new();
        let timeout_ms = number(
            get,
            "EVENT_HOOK_TIMEOUT_MS",
            Self::DEFAULT_TIMEOUT_MS,
            100,
            30_000,
        )
        .map_err(|problem| problems.push(problem))
        .ok();
        let max_answer_bytes = number(
            get,
            "EVENT_HOOK_MAX_BYTES",
            Self::DEFAULT_MAX_ANSWER_BYTES,
            256,
            1 << 20,
        )
        .map_err(|problem| problems.push(problem))
        .ok();
        let connections = switch(get, "EVENT_HOOK_CONNECTIONS", false)
            .map_err(|problem| problems.push(problem))
            .unwrap_or(false);
        let Some(raw_url) = get("EVENT_HOOK_URL") else {
            return if problems.is_empty() {
                Ok(None)
            } else {
                Err(problems)
            };
        };
        let url = parse_url(raw_url.trim()).map_err(|problem| problems.push(problem));
        let secret = match get("EVENT_HOOK_SECRET") {
            Some(secret) if secret.len() >= MIN_SECRET_BYTES => Some(secret),
            Some(_) => {
                problems.push(format!(
                    "EVENT_HOOK_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                ));
                None
            }
            None => {
                problems.push(
                    "EVENT_HOOK_URL needs EVENT_HOOK_SECRET: the backend must be able to tell the gateway's calls from anyone else's".to_owned(),
                );
                None
            }
        };
        match (url, secret, timeout_ms, max_answer_bytes) {
            (Ok(url), Some(secret), Some(timeout_ms), Some(max_answer_bytes)) => {
                Ok(Some(HookConfig {
                    url,
                    secret,
                    timeout_ms,
                    max_answer_bytes,
                    connections,
                }))
            }
            _ => Err(problems),
        }
    }
}

/// An absolute `http`/`https` URL with a host and no credentials (the signature is what
/// authenticates the gateway; a password in the URL would be logged and sent in the clear
/// elsewhere).
fn parse_url(raw: &str) -> Result<Url, String> {
    let url =
        Url::parse(raw).map_err(|_| "EVENT_HOOK_URL must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("EVENT_HOOK_URL must be an absolute http(s) URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "EVENT_HOOK_URL must not carry credentials (user:password@): the signature authenticates the gateway".to_owned(),
        );
    }
    Ok(url)
}

/// The URL without its query, fragment or credentials: what logs may show.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// What a hook call is about: a client's event, or a socket's life (socket.io's
/// `connection` and `disconnect`, `hubs::user::lifecycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Event,
    Connection,
    Disconnect,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Event => "event",
            HookKind::Connection => "connection",
            HookKind::Disconnect => "disconnect",
        }
    }
}

/// One call to forward. `user_id` must be the socket's verified user, never a value the client
/// sent.
#[derive(Debug, Clone, Copy)]
pub struct HookCall<'a> {
    pub kind: HookKind,
    pub user_id: &'a str,
    pub conn_id: &'a str,
    pub namespace: &'a str,
    /// The client's event; `connection` or `disconnect` for those kinds.
    pub event: &'a str,
    /// Every argument the client emitted before its ack callback (none for the other kinds).
    pub args: &'a [Value],
    /// `socket.data`, when the backend set it.
    pub data: Option<&'a Value>,
    /// A `connection` call's handshake (`socketio::handshake`, with the CONNECT's `auth`).
    pub handshake: Option<&'a Value>,
    /// A `disconnect` call's reason, in socket.io's words.
    pub reason: Option<&'a str>,
}

impl<'a> HookCall<'a> {
    /// A client's event.
    pub fn event(
        user_id: &'a str,
        conn_id: &'a str,
        namespace: &'a str,
        event: &'a str,
        args: &'a [Value],
    ) -> Self {
        Self {
            kind: HookKind::Event,
            user_id,
            conn_id,
            namespace,
            event,
            args,
            data: None,
            handshake: None,
            reason: None,
        }
    }
}

/// The JSON body of the POST: `kind` (`event`, `connection`, `disconnect`), `user_id`,
/// `socket_id` (the `socket.id` the client sees) and
/// `conn_id` (the same id, as `ready` names it), `namespace`, `event`, `args` (every
/// argument, once: a handler's first argument is `args[0]`) and `sent_at` (unix ms), so the
/// body is the client's arguments plus a small envelope. Key order is not part of the
/// contract; the signature covers the exact bytes. `data` is `socket.data` (null until the
/// backend sets it); a `connection` call adds `handshake`, a `disconnect` call `reason`.
pub fn request_body(call: &HookCall<'_>, now_ms: i64) -> String {
    let mut body = Map::new();
    body.insert("kind".into(), Value::from(call.kind.as_str()));
    body.insert("user_id".into(), Value::from(call.user_id));
    body.insert("socket_id".into(), Value::from(call.conn_id));
    body.insert("conn_id".into(), Value::from(call.conn_id));
    body.insert("namespace".into(), Value::from(call.namespace));
    body.insert("event".into(), Value::from(call.event));
    body.insert("args".into(), Value::Array(call.args.to_vec()));
    body.insert("data".into(), call.data.cloned().unwrap_or(Value::Null));
    if let Some(handshake) = call.handshake {
        body.insert("handshake".into(), handshake.clone());
    }
    if let Some(reason) = call.reason {
        body.insert("reason".into(), Value::from(reason));
    }
    body.insert("sent_at".into(), Value::from(now_ms));
    Value::Object(body).to_string()
}

/// The `x-switchboard-signature` value for `body` sent at unix second `t`:
/// `t=<t>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    format!("t={t},v1={hex}")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a hook call did not produce an ack value. `code` and `message` go to the client as the
/// ack's `{"error":{"code","message"}}`; `status` is what the same failure would be over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
}

impl HookError {
    /// The backend could not give an answer: unreachable, a status other than 2xx or a
    /// refusal, an answer that is not JSON or too large.
    pub const FAILED: &'static str = "hook_failed";
    /// The backend did not answer within `EVENT_HOOK_TIMEOUT_MS`.
    pub const TIMEOUT: &'static str = "hook_timeout";
    /// The backend refused with a code that is not snake_case of at most 64 characters.
    pub const REFUSED: &'static str = "hook_refused";

    fn failed(message: impl Into<String>) -> Self {
        Self {
            status: 502,
            code: Cow::Borrowed(Self::FAILED),
            message: message.into(),
        }
    }

    fn timeout(timeout_ms: u64) -> Self {
        Self {
            status: 504,
            code: Cow::Borrowed(Self::TIMEOUT),
            message: format!("the event hook did not answer within {timeout_ms} ms"),
        }
    }

    /// `{"error":{"code","message"}}`, the shape of every refusal.
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

thread_local! {
    /// Backend-chosen codes made `'static` for [`ApiError`], at most [`MAX_INTERNED_CODES`] per
    /// isolate: a backend uses a handful, and the bound keeps a backend that invents codes
    /// from growing memory.
    static CODES: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Distinct backend codes kept per isolate; further ones become `hook_refused`, their code
/// moved into the message.
pub const MAX_INTERNED_CODES: usize = 64;

/// A refusal keeps the backend's 4xx status, code and message; `hook_failed` is 502 and
/// `hook_timeout` 504.
impl From<HookError> for ApiError {
    fn from(err: HookError) -> Self {
        match err.code {
            Cow::Borrowed(code) => ApiError::new(err.status, code, err.message),
            Cow::Owned(code) => match intern(&code) {
                Some(code) => ApiError::new(err.status, code, err.message),
                None => ApiError::new(
                    err.status,
                    HookError::REFUSED,
                    format!("{code}: {}", err.message),
                ),
            },
        }
    }
}

fn intern(code: &str) -> Option<&'static str> {
    CODES.with(|codes| {
        let mut codes = codes.borrow_mut();
        if let Some(known) = codes.iter().find(|known| **known == code) {
            return Some(*known);
        }
        if codes.len() >= MAX_INTERNED_CODES {
            return None;
        }
        let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
        codes.push(leaked);
        Some(leaked)
    })
}

/// Calls the backend once — never retried: the event may not be idempotent (a retry after a
/// timeout could post a message twice), so the client decides whether to emit again. The call
/// and the reading of its answer together are raced against `timeout_ms`; on timeout the
/// request is aborted. Redirects are not followed (a 3xx is `hook_failed`).
pub async fn call(config: &HookConfig, call: &HookCall<'_>) -> Result<Value, HookError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = request_body(call, now_ms);
    let signature = sign(&config.secret, now_ms.div_euclid(1000), &body);
    let exchange = async {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set("accept", "application/json")?;
        headers.set(SIGNATURE_HEADER, &signature)?;
        let deadline = Duration::from_millis(config.timeout_ms);
        crate::http::post_within(
            config.url.as_str(),
            &headers,
            body.into(),
            deadline,
            |answer| read_answer(config, answer),
        )
        .await
    };
    match exchange.await {
        Ok(Some(result)) => result,
        Ok(None) => Err(HookError::timeout(config.timeout_ms)),
        Err(err) => {
            crate::log::error(
                "hook.request_failed",
                serde_json::json!({"url": redacted(&config.url), "error": err.to_string()}),
            );
            Err(HookError::failed(
                "the event hook request could not be built",
            ))
        }
    }
}

/// The backend's answer as the client's ack: read within `EVENT_HOOK_MAX_BYTES`.
async fn read_answer(
    config: &HookConfig,
    answer: worker::Result<Response>,
) -> Result<Value, HookError> {
    let response = answer.map_err(|err| {
        crate::log::warn(
            "hook.unreachable",
            serde_json::json!({"url": redacted(&config.url), "error": err.to_string()}),
        );
        HookError::failed("the event hook could not be reached")
    })?;
    let status = response.status_code();
    let answer = read_capped(response, config.max_answer_bytes).await?;
    outcome(status, &answer)
}

/// The answer's bytes, at most `max_bytes`: refused at once when `content-length` says more,
/// and counted as read otherwise (a compressed or chunked answer can be larger than it says).
async fn read_capped(mut response: Response, max_bytes: usize) -> Result<Vec<u8>, HookError> {
    let too_large = || {
        HookError::failed(format!(
            "the event hook's answer is larger than {max_bytes} bytes"
        ))
    };
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let unreadable = |err: worker::Error| {
        crate::log::warn(
            "hook.unreadable",
            serde_json::json!({"error": err.to_string()}),
        );
        HookError::failed("the event hook's answer could not be read")
    };
    let mut stream = match response.body() {
        ResponseBody::Empty => return Ok(Vec::new()),
        ResponseBody::Body(bytes) if bytes.len() > max_bytes => return Err(too_large()),
        ResponseBody::Body(bytes) => return Ok(bytes.clone()),
        ResponseBody::Stream(_) => response.stream().map_err(unreadable)?,
    };
    let mut answer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if answer.len().saturating_add(chunk.len()) > max_bytes {
            return Err(too_large());
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(answer)
}

/// What an answer means for the client (the pure half of [`call`]): a 2xx with a JSON body (or
/// an empty one, `null`: a handler that returns nothing) is the ack value; a 4xx with
/// `{"error":{"code","message"}}` is the backend's refusal; anything else is `hook_failed`.
pub fn outcome(status: u16, answer: &[u8]) -> Result<Value, HookError> {
    if (200..300).contains(&status) {
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(answer).map_err(|_| {
            HookError::failed(format!("the event hook answered {status} without JSON"))
        });
    }
    if (400..500).contains(&status) {
        if let Some(refusal) = refusal(status, answer) {
            return Err(refusal);
        }
    }
    Err(HookError::failed(format!(
        "the event hook answered {status}"
    )))
}

/// A 4xx body `{"error":{"code":"<snake_case>","message":"…"}}` as the backend's refusal; a
/// code that is not snake_case of at most 64 characters becomes `hook_refused`.
fn refusal(status: u16, answer: &[u8]) -> Option<HookError> {
    let body: Value = serde_json::from_slice(answer).ok()?;
    let error = body.get("error")?;
    let code = error.get("code")?.as_str()?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the backend refused the event");
    let code = if is_snake_case(code) {
        Cow::Owned(code.to_owned())
    } else {
        Cow::Borrowed(HookError::REFUSED)
    };
    Some(HookError {
        status,
        code,
        message: message.to_owned(),
    })
}

/// `^[a-z][a-z0-9_]*$`, at most [`MAX_CODE_CHARS`].
fn is_snake_case(code: &str) -> bool {
    let mut chars = code.chars();
    code.len() <= MAX_CODE_CHARS
        && matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    const SECRET: &str = "a-hook-secret-of-at-least-32-bytes";

    fn load(pairs: &[(&str, &str)]) -> Result<Option<HookConfig>, Vec<String>> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        HookConfig::from_lookup(&|name: &str| {
            map.get(name)
                .map(|v| v.to_string())
                .filter(|v| !v.trim().is_empty())
        })
    }

    fn problems(pairs: &[(&str, &str)]) -> String {
        load(pairs).expect_err("a problem").join("; ")
    }

    #[test]
    fn no_url_is_no_hook() {
        assert_eq!(load(&[]), Ok(None));
        assert_eq!(load(&[("EVENT_HOOK_URL", "")]), Ok(None));
        assert_eq!(load(&[("EVENT_HOOK_SECRET", "short")]), Ok(None));
    }

    #[test]
    fn a_hook_with_defaults_and_values() {
        let hook = load(&[
            ("EVENT_HOOK_URL", "https://api.example/hooks/socket?key=k"),
            ("EVENT_HOOK_SECRET", SECRET),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(hook.url.as_str(), "https://api.example/hooks/socket?key=k");
        assert_eq!(hook.secret, SECRET);
        assert_eq!(hook.timeout_ms, 5000);
        assert_eq!(hook.max_answer_bytes, 65536);
        let hook = load(&[
            ("EVENT_HOOK_URL", " http://127.0.0.1:9999/hook "),
            ("EVENT_HOOK_SECRET", SECRET),
            ("EVENT_HOOK_TIMEOUT_MS", "100"),
            ("EVENT_HOOK_MAX_BYTES", "1048576"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(hook.url.as_str(), "http://127.0.0.1:9999/hook");
        assert_eq!((hook.timeout_ms, hook.max_answer_bytes), (100, 1 << 20));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let url = ("EVENT_HOOK_URL", "https://api.example/hook");
        let secret = ("EVENT_HOOK_SECRET", SECRET);
        for bad in [
            "api.example/hook",
            "/hook",
            "ftp://api.example/hook",
            "https://",
            "mailto:a@b.example",
        ] {
            let err = problems(&[("EVENT_HOOK_URL", bad), secret]);
            assert!(err.contains("EVENT_HOOK_URL must be"), "{bad}: {err}");
        }
        let err = problems(&[("EVENT_HOOK_URL", "https://u:p@api.example/h"), secret]);
        assert!(err.contains("credentials"), "{err}");
        assert!(!err.contains("u:p"), "{err}");
        assert!(problems(&[url]).contains("needs EVENT_HOOK_SECRET"));
        let err = problems(&[
            url,
            ("EVENT_HOOK_SECRET", "0123456789abcdef0123456789abcde"),
        ]);
        assert!(
            err.contains("EVENT_HOOK_SECRET must be at least 32"),
            "{err}"
        );
        assert!(!err.contains("0123"), "{err}");
        for (name, bad) in [
            ("EVENT_HOOK_TIMEOUT_MS", "99"),
            ("EVENT_HOOK_TIMEOUT_MS", "30001"),
            ("EVENT_HOOK_TIMEOUT_MS", "soon"),
            ("EVENT_HOOK_MAX_BYTES", "255"),
            ("EVENT_HOOK_MAX_BYTES", "1048577"),
        ] {
            assert!(
                problems(&[url, secret, (name, bad)]).contains(name),
                "{name}={bad}"
            );
            // Checked without a URL too, so a mistake shows before the hook is switched on.
            assert!(problems(&[(name, bad)]).contains(name), "{name}={bad}");
        }
        let all = load(&[
            ("EVENT_HOOK_URL", "nope"),
            ("EVENT_HOOK_TIMEOUT_MS", "0"),
            ("EVENT_HOOK_MAX_BYTES", "0"),
        ])
        .err()
        .unwrap();
        assert_eq!(all.len(), 4, "{all:?}");
    }

    #[test]
    fn the_gateway_config_reports_hook_problems_with_the_others() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let err = crate::config::Config::from_lookup(lookup(&[
            ("EVENT_HOOK_URL", "https://api.example/hook"),
            ("RETENTION_DAYS", "-1"),
        ]))
        .err()
        .unwrap()
        .to_string();
        for name in ["EVENT_HOOK_SECRET", "RETENTION_DAYS", "JWT_SECRET"] {
            assert!(err.contains(name), "{name} in {err}");
        }
        let config = crate::config::Config::from_lookup(lookup(&[
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("EVENT_HOOK_URL", "https://api.example/hook"),
            ("EVENT_HOOK_SECRET", SECRET),
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            config.hook.map(|hook| hook.url.to_string()).as_deref(),
            Some("https://api.example/hook")
        );
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_the_query() {
        let hook = load(&[
            ("EVENT_HOOK_URL", "https://api.example/hook?key=hidden#frag"),
            ("EVENT_HOOK_SECRET", SECRET),
        ])
        .unwrap()
        .unwrap();
        let shown = format!("{hook:?}");
        assert!(shown.contains("https://api.example/hook"), "{shown}");
        assert!(
            !shown.contains("hidden") && !shown.contains(SECRET),
            "{shown}"
        );
    }

    #[test]
    fn the_request_body() {
        let args = [json!({"room":"r1","text":"hi"}), json!(2)];
        let call = HookCall::event("alice", "c-1", "/chat", "send-message", &args);
        let body: Value = serde_json::from_str(&request_body(&call, 1_700_000_000_123)).unwrap();
        assert_eq!(
            body,
            json!({
                "kind": "event",
                "user_id": "alice",
                "socket_id": "c-1",
                "conn_id": "c-1",
                "namespace": "/chat",
                "event": "send-message",
                "args": [{"room": "r1", "text": "hi"}, 2],
                "data": null,
                "sent_at": 1_700_000_000_123_i64,
            })
        );
        let none = HookCall { args: &[], ..call };
        let body: Value = serde_json::from_str(&request_body(&none, 0)).unwrap();
        assert_eq!(body["args"], json!([]));
    }

    #[test]
    fn each_argument_is_sent_once() {
        let large = [json!("x".repeat(40_000))];
        let call = HookCall::event("alice", "c-1", "/", "upload", &large);
        let bytes = request_body(&call, 0).len();
        assert!((40_000..40_200).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn the_signature_is_stripes_scheme() {
        // printf '%s' '1700000000.{"event":"send-message"}' \
        //   | openssl dgst -sha256 -hmac 'a-hook-secret-of-at-least-32-bytes'
        assert_eq!(
            sign(SECRET, 1_700_000_000, r#"{"event":"send-message"}"#),
            "t=1700000000,v1=eee726883dfd390fb10985cdd11529e765119cf963dcd70c152489310b0f4fd0"
        );
        // The timestamp is inside the MAC: the same body at another time signs differently.
        let v1 = |t| {
            sign(SECRET, t, "{}")
                .split_once(",v1=")
                .unwrap()
                .1
                .to_owned()
        };
        assert_ne!(v1(1), v1(2));
        assert_eq!(v1(1).len(), 64);
    }

    #[test]
    fn answers_become_acks() {
        assert_eq!(outcome(200, br#"{"ok":true}"#), Ok(json!({"ok": true})));
        assert_eq!(outcome(201, b"[1,2]"), Ok(json!([1, 2])));
        assert_eq!(outcome(200, b"\"text\""), Ok(json!("text")));
        assert_eq!(outcome(204, b""), Ok(Value::Null));
        assert_eq!(outcome(200, b" \n"), Ok(Value::Null));
        let failed = |status, answer: &[u8]| {
            let err = outcome(status, answer).unwrap_err();
            assert_eq!((err.code.as_ref(), err.status), (HookError::FAILED, 502));
            err.message
        };
        assert!(failed(200, b"<html>").contains("without JSON"));
        assert!(failed(302, b"").contains("302"));
        assert!(failed(500, br#"{"error":{"code":"boom","message":"x"}}"#).contains("500"));
        assert!(failed(404, b"Not Found").contains("404"));
        assert!(failed(400, br#"{"error":"plain"}"#).contains("400"));
    }

    #[test]
    fn refusals_carry_the_backends_code() {
        let err = outcome(
            403,
            br#"{"error":{"code":"not_in_room","message":"join first"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref(), err.message.as_str()),
            (403, "not_in_room", "join first")
        );
        assert_eq!(
            err.body(),
            json!({"error": {"code": "not_in_room", "message": "join first"}})
        );
        let long = "a".repeat(65);
        for bad in ["Bad-Code", "1st", "", "white space", long.as_str()] {
            let answer = json!({"error": {"code": bad, "message": "no"}}).to_string();
            let err = outcome(422, answer.as_bytes()).unwrap_err();
            assert_eq!(
                (err.code.as_ref(), err.status),
                (HookError::REFUSED, 422),
                "{bad}"
            );
        }
        let err = outcome(409, br#"{"error":{"code":"taken"}}"#).unwrap_err();
        assert_eq!(err.message, "the backend refused the event");
        assert!(is_snake_case(&"a".repeat(64)));
    }

    #[test]
    fn errors_become_api_errors() {
        let api = ApiError::from(HookError::timeout(5000));
        assert_eq!((api.status, api.code), (504, HookError::TIMEOUT));
        assert!(api.message.contains("5000 ms"));
        let api = ApiError::from(HookError::failed("x"));
        assert_eq!((api.status, api.code), (502, HookError::FAILED));
        let refused = |code: &str| HookError {
            status: 403,
            code: Cow::Owned(code.to_owned()),
            message: "no".into(),
        };
        let api = ApiError::from(refused("not_in_room"));
        assert_eq!(
            (api.status, api.code, api.message.as_str()),
            (403, "not_in_room", "no")
        );
        // The same code is interned once; past the bound, codes move into the message.
        let again = ApiError::from(refused("not_in_room"));
        assert!(std::ptr::eq(api.code, again.code));
        for n in 0..MAX_INTERNED_CODES {
            let _ = ApiError::from(refused(&format!("code_{n}")));
        }
        let api = ApiError::from(refused("one_too_many"));
        assert_eq!(api.code, HookError::REFUSED);
        assert_eq!(api.message, "one_too_many: no");
    }
}
