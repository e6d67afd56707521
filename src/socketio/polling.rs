//! Engine.IO v4 over HTTP long-polling: the payload format.
//!
//! A polling client (socket.io-client's default first transport, and its only one behind a
//! network that blocks WebSockets) opens with `GET ?EIO=4&transport=polling`, whose body is
//! the open packet, then sends packets in `POST ?sid=` bodies and receives them from held
//! `GET ?sid=` requests. A body carries one or more packets in their WebSocket text form,
//! joined by the record separator `\x1e`. Binary packets (`b<base64>`) are Socket.IO
//! attachments, refused like binary frames. `api::polling` serves the transport; this module
//! only reads and writes bodies.

/// Joins packets in a polling body.
pub const SEPARATOR: char = '\u{1e}';

/// Why a POST body is not a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Larger than the server reads (`maxPayload`, the gateway's `MAX_FRAME_BYTES`).
    TooLarge,
    /// Empty, or with an empty packet.
    Empty,
}

/// The packets of a POST body of at most `max_bytes`, in order.
pub fn decode(body: &str, max_bytes: usize) -> Result<Vec<&str>, PayloadError> {
    if body.len() > max_bytes {
        return Err(PayloadError::TooLarge);
    }
    let packets: Vec<&str> = body.split(SEPARATOR).collect();
    if packets.iter().any(|packet| packet.is_empty()) {
        return Err(PayloadError::Empty);
    }
    Ok(packets)
}

/// One body of the packets given, in order.
pub fn encode<S: AsRef<str>>(packets: impl IntoIterator<Item = S>) -> String {
    let mut body = String::new();
    for packet in packets {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        body.push_str(packet.as_ref());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_its_packets_joined_by_the_record_separator() {
        let body = encode(["2", "42[\"a\",1]", "40"]);
        assert_eq!(body, "2\u{1e}42[\"a\",1]\u{1e}40");
        assert_eq!(decode(&body, 100).unwrap(), vec!["2", "42[\"a\",1]", "40"]);
        assert_eq!(decode("3", 1).unwrap(), vec!["3"]);
        assert_eq!(encode(Vec::<String>::new()), "");
    }

    #[test]
    fn empty_packets_and_oversized_bodies_are_refused() {
        assert_eq!(decode("", 10), Err(PayloadError::Empty));
        assert_eq!(decode("3\u{1e}", 10), Err(PayloadError::Empty));
        assert_eq!(decode("3\u{1e}\u{1e}3", 10), Err(PayloadError::Empty));
        assert_eq!(decode("42[\"x\"]", 3), Err(PayloadError::TooLarge));
    }
}
