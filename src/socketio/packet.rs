//! Socket.IO v5 packets: what travels inside an Engine.IO message packet.
//!
//! A packet is a type digit, then for binary packets an attachment count and `-`, then a
//! namespace other than `/` followed by `,`, then an ack id in digits, then JSON:
//!
//! ```text
//! 0/chat,{"token":"…"}         CONNECT to /chat with auth data
//! 2["send-message",{…}]         EVENT on /
//! 2/chat,12["room.send",{…}]    EVENT on /chat asking for ack 12
//! 3/chat,12[{…}]                ACK 12 on /chat
//! 4/chat,{"message":"…"}        CONNECT_ERROR
//! 1/chat,                       DISCONNECT
//! ```
//!
//! Parsing is strict and never panics: the fuzz tests send it garbage. Binary packets (types 5
//! and 6) are recognised and refused, since their attachments arrive as binary frames the
//! gateway does not take.

use serde::Serialize;
use serde_json::{json, Value};

/// The largest ack id accepted: JavaScript numbers are exact up to 2^53.
pub const MAX_ACK_ID: u64 = (1 << 53) - 1;
/// The longest namespace name accepted.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// A packet's type digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
}

/// One packet from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: Kind,
    pub nsp: String,
    pub id: Option<u64>,
    pub data: Option<Value>,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Binary packets need attachments the gateway does not take.
    Binary,
    Malformed(String),
}

impl PacketError {
    pub fn message(&self) -> String {
        match self {
            Self::Binary => {
                "binary attachments are not supported; send JSON-serialisable data".into()
            }
            Self::Malformed(why) => why.clone(),
        }
    }
}

fn malformed(why: impl Into<String>) -> PacketError {
    PacketError::Malformed(why.into())
}

/// Parses a Socket.IO packet (the text after Engine.IO's `4`).
pub fn parse(text: &str) -> Result<Packet, PacketError> {
    let kind = match text.as_bytes().first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5' | b'6') => return Err(PacketError::Binary),
        _ => return Err(malformed("a packet starts with a type digit 0 to 6")),
    };
    let mut rest = &text[1..];
    let nsp = if rest.starts_with('/') {
        let (nsp, after) = match rest.find(',') {
            Some(comma) => (&rest[..comma], &rest[comma + 1..]),
            None => (rest, ""),
        };
        rest = after;
        validate_namespace(nsp)?;
        nsp.to_owned()
    } else {
        "/".to_owned()
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        let id = rest[..digits]
            .parse::<u64>()
            .ok()
            .filter(|id| *id <= MAX_ACK_ID)
            .ok_or_else(|| malformed(format!("an ack id is at most {MAX_ACK_ID}")))?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    let data = if rest.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str::<Value>(rest)
                .map_err(|err| malformed(format!("the payload is not valid JSON: {err}")))?,
        )
    };
    let packet = Packet {
        kind,
        nsp,
        id,
        data,
    };
    check_payload(&packet)?;
    Ok(packet)
}

fn validate_namespace(nsp: &str) -> Result<(), PacketError> {
    if nsp.len() > MAX_NAMESPACE_LEN {
        return Err(malformed(format!(
            "a namespace is at most {MAX_NAMESPACE_LEN} bytes"
        )));
    }
    if nsp.chars().any(char::is_control) {
        return Err(malformed("a namespace may not contain control characters"));
    }
    Ok(())
}

/// The payload each type may carry, as socket.io's own decoder requires, plus what only a
/// server sends.
fn check_payload(packet: &Packet) -> Result<(), PacketError> {
    let ok = match (packet.kind, &packet.data) {
        (Kind::Connect, None | Some(Value::Object(_))) => packet.id.is_none(),
        (Kind::Disconnect, None) => packet.id.is_none(),
        (Kind::Event, Some(Value::Array(args))) => {
            matches!(args.first(), Some(Value::String(_)))
        }
        (Kind::Ack, Some(Value::Array(_))) => packet.id.is_some(),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(malformed(match packet.kind {
        Kind::Connect => "CONNECT carries an optional JSON object and no ack id",
        Kind::Disconnect => "DISCONNECT carries nothing",
        Kind::Event => "EVENT carries a JSON array starting with the event name",
        Kind::Ack => "ACK carries an ack id and a JSON array",
        Kind::ConnectError => "CONNECT_ERROR is only sent by a server",
    }))
}

impl Packet {
    /// An EVENT's name and arguments.
    pub fn event(&self) -> Option<(&str, &[Value])> {
        match (&self.kind, &self.data) {
            (Kind::Event, Some(Value::Array(args))) => {
                let (name, rest) = args.split_first()?;
                Some((name.as_str()?, rest))
            }
            _ => None,
        }
    }
}

/// The namespace prefix of a packet the server writes: nothing for `/`.
fn prefix(kind: char, nsp: &str) -> String {
    let mut text = String::with_capacity(nsp.len() + 2);
    text.push(kind);
    if nsp != "/" {
        text.push_str(nsp);
        text.push(',');
    }
    text
}

/// CONNECT accepted: the session id, and `pid` for connection state recovery.
pub fn connect(nsp: &str, sid: &str, pid: &str) -> String {
    format!("{}{}", prefix('0', nsp), json!({"sid": sid, "pid": pid}))
}

/// CONNECT refused: `message` becomes the client's `connect_error` Error's message, `data`
/// its `data`.
pub fn connect_error(nsp: &str, message: &str, data: &Value) -> String {
    format!(
        "{}{}",
        prefix('4', nsp),
        json!({"message": message, "data": data})
    )
}

/// The server ends a namespace: the client sees `disconnect` with `io server disconnect` and
/// does not reconnect.
pub fn disconnect(nsp: &str) -> String {
    prefix('1', nsp)
}

/// An EVENT; `offset`, when given, is appended as the last argument (connection state
/// recovery: the client keeps the last one and sends it back on reconnect).
pub fn event(nsp: &str, name: &str, data: &impl Serialize, offset: Option<&str>) -> String {
    let mut text = prefix('2', nsp);
    let args = match offset {
        Some(offset) => json!([name, data, offset]),
        None => json!([name, data]),
    };
    text.push_str(&args.to_string());
    text
}

/// An EVENT with every argument a backend emitted (`api::sockets`), and the offset last when
/// it is a stream entry.
pub fn event_args(nsp: &str, name: &str, args: &[Value], offset: Option<&str>) -> String {
    let mut text = prefix('2', nsp);
    let mut all = Vec::with_capacity(args.len() + 2);
    all.push(json!(name));
    all.extend(args.iter().cloned());
    if let Some(offset) = offset {
        all.push(json!(offset));
    }
    text.push_str(&Value::Array(all).to_string());
    text
}

/// An ACK with one argument.
pub fn ack(nsp: &str, id: u64, data: &Value) -> String {
    let mut text = prefix('3', nsp);
    text.push_str(&id.to_string());
    text.push_str(&json!([data]).to_string());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_socket_io_client_writes() {
        let p = parse(r#"0/chat,{"token":"t"}"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id),
            (Kind::Connect, "/chat", None)
        );
        assert_eq!(p.data, Some(json!({"token": "t"})));
        let p = parse("0").unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.data), (Kind::Connect, "/", None));
        let p = parse(r#"2/chat,12["room.send",{"body":"hi"}]"#).unwrap();
        assert_eq!(p.id, Some(12));
        assert_eq!(p.event().unwrap().0, "room.send");
        assert_eq!(p.event().unwrap().1, &[json!({"body": "hi"})]);
        let p = parse(r#"2["x"]"#).unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/", None));
        assert_eq!(parse("1/chat,").unwrap().kind, Kind::Disconnect);
        assert_eq!(parse("1").unwrap().kind, Kind::Disconnect);
        assert_eq!(parse("3/chat,4[1,2]").unwrap().id, Some(4));
    }

    #[test]
    fn an_emitted_event_carries_every_argument_then_its_offset() {
        let args = [json!({"a": 1}), json!(2)];
        assert_eq!(
            event_args("/chat", "new-message", &args, Some("7")),
            r#"2/chat,["new-message",{"a":1},2,"7"]"#
        );
        assert_eq!(event_args("/", "ping-all", &[], None), r#"2["ping-all"]"#);
    }

    #[test]
    fn refuses_what_it_cannot_take() {
        assert_eq!(
            parse(r#"51-["x",{"_placeholder":true,"num":0}]"#),
            Err(PacketError::Binary)
        );
        assert_eq!(parse("6"), Err(PacketError::Binary));
        for bad in [
            "",
            "7",
            "x",
            "2",
            "2{}",
            "2[]",
            "2[1]",
            "2[\"x\"",
            "299999999999999999999[\"x\"]",
            "1{}",
            "4{\"message\":\"m\"}",
            "3[]",
            "05{}",
            "0[]",
            "2/a\u{0}b,[\"x\"]",
        ] {
            assert!(
                matches!(parse(bad), Err(PacketError::Malformed(_))),
                "{bad:?}"
            );
        }
        let long = format!("0/{}", "a".repeat(MAX_NAMESPACE_LEN));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn writes_what_socket_io_client_reads() {
        assert_eq!(connect("/", "s", "p"), r#"0{"pid":"p","sid":"s"}"#);
        assert_eq!(
            connect("/chat", "s", "p"),
            r#"0/chat,{"pid":"p","sid":"s"}"#
        );
        assert_eq!(
            connect_error("/chat", "token_expired", &json!({"code": "token_expired"})),
            r#"4/chat,{"data":{"code":"token_expired"},"message":"token_expired"}"#
        );
        assert_eq!(disconnect("/"), "1");
        assert_eq!(disconnect("/chat"), "1/chat,");
        assert_eq!(
            event("/", "message", &json!({"a": 1}), Some("7")),
            r#"2["message",{"a":1},"7"]"#
        );
        assert_eq!(
            event("/c", "typing", &json!({}), None),
            r#"2/c,["typing",{}]"#
        );
        assert_eq!(ack("/c", 9, &json!({"ok": true})), r#"3/c,9[{"ok":true}]"#);
    }
}
