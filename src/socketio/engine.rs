//! Engine.IO v4 over WebSocket: the transport layer under Socket.IO.
//!
//! Over a WebSocket every text frame is one packet: a type digit and its payload. The server
//! opens with `0{"sid",...}`, pings with `2`, and the client answers `3`; `4<text>` carries a
//! Socket.IO packet; `1` closes. `5` (upgrade) and `6` (noop) belong to the move from HTTP
//! long-polling to a WebSocket ([`super::polling`]). Binary frames carry Socket.IO attachments,
//! which the gateway refuses.

use serde_json::json;

/// The server's heartbeat, sent every `pingInterval`.
pub const PING: &str = "2";
/// The client's answer to a ping.
pub const PONG: &str = "3";
/// The close packet.
pub const CLOSE: &str = "1";
/// The prefix of a message packet: a Socket.IO packet follows.
pub const MESSAGE: char = '4';
/// The client's last packet over polling before it moves to the WebSocket.
pub const UPGRADE: &str = "5";
/// Nothing: ends a held poll that has nothing to carry.
pub const NOOP: &str = "6";

/// One Engine.IO packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Reads a text frame as an Engine.IO packet; an unknown or missing type digit (and the open
/// packet, which only a server sends) is an error.
pub fn parse(text: &str) -> Result<Packet<'_>, String> {
    let mut chars = text.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    match kind {
        Some('1') => Ok(Packet::Close),
        Some('2') => Ok(Packet::Ping(rest)),
        Some('3') => Ok(Packet::Pong(rest)),
        Some('4') => Ok(Packet::Message(rest)),
        Some('5') => Ok(Packet::Upgrade),
        Some('6') => Ok(Packet::Noop),
        Some(other) => Err(format!(
            "'{}' is not an Engine.IO packet type a client sends",
            other.escape_default()
        )),
        None => Err("an empty frame is not an Engine.IO packet".into()),
    }
}

/// The transports a session may move to: none on a WebSocket, the WebSocket from polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrades {
    None,
    WebSocket,
}

/// The heartbeat's timing and the largest packet the server reads, as the open packet says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: usize,
}

/// The handshake: the session id, the upgrades offered, the heartbeat's timing and the largest
/// packet the server reads.
pub fn open(sid: &str, upgrades: Upgrades, timing: Timing) -> String {
    let upgrades: &[&str] = match upgrades {
        Upgrades::None => &[],
        Upgrades::WebSocket => &["websocket"],
    };
    let handshake = json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": timing.ping_interval_ms,
        "pingTimeout": timing.ping_timeout_ms,
        "maxPayload": timing.max_payload,
    });
    format!("0{handshake}")
}

/// The server's side of the heartbeat: a ping every `interval_ms`, and a client that has not
/// answered one for the interval plus `timeout_ms` is gone (socket.io's `pingInterval` and
/// `pingTimeout`; the client gives the server as long).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval_ms: u64,
    timeout_ms: u64,
    last_pong: i64,
}

impl Heartbeat {
    pub fn new(interval_ms: u64, timeout_ms: u64, now_ms: i64) -> Self {
        Self {
            interval_ms,
            timeout_ms,
            last_pong: now_ms,
        }
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.interval_ms)
    }

    /// The client answered.
    pub fn pong(&mut self, now_ms: i64) {
        self.last_pong = now_ms;
    }

    pub fn is_dead(&self, now_ms: i64) -> bool {
        let allowance =
            i64::try_from(self.interval_ms.saturating_add(self.timeout_ms)).unwrap_or(i64::MAX);
        now_ms.saturating_sub(self.last_pong) > allowance
    }
}

/// Wraps a Socket.IO packet in an Engine.IO message packet.
pub fn message(packet: &str) -> String {
    let mut text = String::with_capacity(packet.len() + 1);
    text.push(MESSAGE);
    text.push_str(packet);
    text
}

/// What a socket.io server answers to a request for a transport it does not serve: status 400
/// and this body.
pub const UNKNOWN_TRANSPORT: &str = r#"{"code":0,"message":"Transport unknown"}"#;

/// A request for a session (`sid`) the server does not hold, or that has ended.
pub const SESSION_UNKNOWN: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// A request that breaks the transport's rules (a second held poll, a malformed payload).
pub const BAD_REQUEST: &str = r#"{"code":3,"message":"Bad request"}"#;

/// A request the server's policy refuses (an Origin not in `ALLOWED_ORIGINS`).
pub const FORBIDDEN: &str = r#"{"code":4,"message":"Forbidden"}"#;

/// What a socket.io server answers when the `EIO` version is not 4.
pub const UNSUPPORTED_VERSION: &str = r#"{"code":5,"message":"Unsupported protocol version"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_packets() {
        assert_eq!(parse("3"), Ok(Packet::Pong("")));
        assert_eq!(parse("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(parse("40/chat,"), Ok(Packet::Message("0/chat,")));
        assert_eq!(parse("1"), Ok(Packet::Close));
        assert_eq!(parse("6"), Ok(Packet::Noop));
        for bad in ["", "0{}", "9", "x", "é"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_is_gone_when_it_missed_its_pongs_for_the_interval_and_the_timeout() {
        let mut heartbeat = Heartbeat::new(25_000, 20_000, 1_000);
        assert!(!heartbeat.is_dead(46_000));
        assert!(heartbeat.is_dead(46_001));
        heartbeat.pong(46_000);
        assert!(!heartbeat.is_dead(91_000));
        assert_eq!(heartbeat.interval(), std::time::Duration::from_secs(25));
    }

    #[test]
    fn handshake() {
        let timing = Timing {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 65_536,
        };
        let text = open("abc", Upgrades::None, timing);
        assert!(text.starts_with('0'));
        let value: serde_json::Value = serde_json::from_str(&text[1..]).unwrap();
        assert_eq!(value["sid"], "abc");
        assert_eq!(value["upgrades"], json!([]));
        assert_eq!(value["pingInterval"], 25_000);
        assert_eq!(value["pingTimeout"], 20_000);
        assert_eq!(value["maxPayload"], 65_536);
        assert_eq!(message("2[\"x\"]"), "42[\"x\"]");
        let polling = open("abc", Upgrades::WebSocket, timing);
        let value: serde_json::Value = serde_json::from_str(&polling[1..]).unwrap();
        assert_eq!(value["upgrades"], json!(["websocket"]));
    }
}
