//! A connection's handshake as socket.io shows it to handlers (`socket.handshake`): the
//! headers, query, address, time and URL of the client's first request, and its first
//! CONNECT's `auth`. The Worker takes it from the request (`api::socketio`), the hub keeps it with
//! the socket (`Session::handshake`), and the backend reads it in the `connection` call and in
//! `fetchSockets` (`hook`, `api::sockets`).
//!
//! It rides in the socket's attachment, so it is bounded: [`MAX_HANDSHAKE_BYTES`] of headers
//! and query together, taken in order until the next would pass it; the `cookie` header (the
//! gateway reads none, and a browser's can be kilobytes) is left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Header and query bytes a handshake keeps, together.
pub const MAX_HANDSHAKE_BYTES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// The client's address, as the edge saw it (`cf-connecting-ip`).
    pub address: String,
    /// Unix ms of the first request (socket.io's `issued`).
    pub issued: i64,
    /// The first request's path and query.
    pub url: String,
    /// Whether the page was on another origin (an `Origin` header other than the gateway's).
    pub xdomain: bool,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The first CONNECT's `auth` (`socket.handshake.auth`), when it was at most
    /// [`MAX_AUTH_BYTES`] serialised.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub auth: Value,
}

/// The largest `auth` a handshake keeps, serialised (a token and a few fields).
pub const MAX_AUTH_BYTES: usize = 4096;

/// What a request shows of itself, for [`Handshake::of`].
pub struct Request<'a> {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub url: &'a str,
    pub address: String,
    pub own_origin: &'a str,
    pub secure: bool,
    pub issued: i64,
}

impl Handshake {
    pub fn of(req: Request<'_>) -> Self {
        let xdomain = req
            .headers
            .iter()
            .any(|(name, value)| name == "origin" && value != req.own_origin);
        let mut budget = MAX_HANDSHAKE_BYTES;
        let mut keep = |pairs: Vec<(String, String)>| -> BTreeMap<String, String> {
            let mut kept = BTreeMap::new();
            for (name, value) in pairs {
                let size = name.len() + value.len();
                if name == "cookie" || size > budget {
                    continue;
                }
                budget -= size;
                kept.insert(name, value);
            }
            kept
        };
        let headers = keep(req.headers);
        let query = keep(req.query);
        Self {
            headers,
            query,
            address: req.address,
            issued: req.issued,
            url: req.url.chars().take(1024).collect(),
            xdomain,
            secure: req.secure,
            auth: Value::Null,
        }
    }

    /// Keeps the first CONNECT's `auth`, unless one is kept already or it is over
    /// [`MAX_AUTH_BYTES`].
    pub fn keep_auth(&mut self, auth: Option<&Value>) {
        let Some(auth) = auth.filter(|_| self.auth.is_null()) else {
            return;
        };
        if auth.to_string().len() <= MAX_AUTH_BYTES {
            self.auth = auth.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<'static> {
        Request {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            query: vec![("EIO".into(), "4".into())],
            url: "/socket.io/?EIO=4",
            address: "203.0.113.9".into(),
            own_origin: "https://gw.example",
            secure: true,
            issued: 1,
        }
    }

    #[test]
    fn keeps_what_a_handler_reads_and_leaves_cookies() {
        let handshake = Handshake::of(request(&[
            ("user-agent", "node"),
            ("cookie", "session=secret"),
            ("origin", "https://app.example"),
        ]));
        assert_eq!(handshake.headers.get("user-agent").unwrap(), "node");
        assert!(!handshake.headers.contains_key("cookie"));
        assert!(handshake.xdomain);
        assert_eq!(handshake.query.get("EIO").unwrap(), "4");
        let same = Handshake::of(request(&[("origin", "https://gw.example")]));
        assert!(!same.xdomain);
    }

    #[test]
    fn keeps_the_first_auth_within_its_bound() {
        let mut handshake = Handshake::of(request(&[]));
        handshake.keep_auth(Some(&serde_json::json!({"token": "t1"})));
        handshake.keep_auth(Some(&serde_json::json!({"token": "t2"})));
        assert_eq!(handshake.auth, serde_json::json!({"token": "t1"}));
        let mut big = Handshake::of(request(&[]));
        big.keep_auth(Some(
            &serde_json::json!({"token": "x".repeat(MAX_AUTH_BYTES)}),
        ));
        assert!(big.auth.is_null());
    }

    #[test]
    fn stays_within_its_bound() {
        let big = "x".repeat(MAX_HANDSHAKE_BYTES);
        let handshake = Handshake::of(request(&[("a", "1"), ("x-big", &big), ("z", "2")]));
        assert!(handshake.headers.contains_key("a") && handshake.headers.contains_key("z"));
        assert!(!handshake.headers.contains_key("x-big"));
    }
}
