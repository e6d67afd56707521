//! Engine.IO v4 over HTTP long-polling: the payload format.
//!
//! A polling client (socket.io-client's default first transport, and its only one behind a
//! network that blocks WebSockets) opens with `GET ?EIO=4&transport=polling`, whose body is
//! the open packet, then sends packets in `POST ?sid=` bodies and receives them from held
//! `GET ?sid=` requests. A body carries one or more packets in their WebSocket text form,
//! joined by the record separator `\x1e`. Binary packets (`b<base64>`) are Socket.IO
//! attachments, refused like binary frames. `api::polling` serves the transport; this module
//! only reads and writes bodies.

use std::collections::VecDeque;

use super::engine;

/// Joins packets in a polling body.
pub const SEPARATOR: char = '\u{1e}';

/// The packets waiting for a client's next poll.
#[derive(Debug, Default)]
pub struct Outbox {
    packets: VecDeque<String>,
}

impl Outbox {
    pub fn push(&mut self, packet: String) {
        self.packets.push_back(packet);
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Everything waiting, in order (for the WebSocket the session moved to).
    pub fn take_all(&mut self) -> Vec<String> {
        self.packets.drain(..).collect()
    }

    /// The next poll's body: what waits, or `None` when nothing does. The close packet travels
    /// alone, after what came before it: socket.io-client hands packets to its sockets a tick
    /// after it reads them, so a DISCONNECT read beside the close would reach a socket the close
    /// already ended (socket.io's server, too, closes a polling transport once it drained).
    pub fn next_body(&mut self) -> Option<String> {
        let take = match self.packets.iter().position(|p| p == engine::CLOSE) {
            _ if self.packets.is_empty() => return None,
            Some(0) => 1,
            Some(before) => before,
            None => self.packets.len(),
        };
        Some(encode(self.packets.drain(..take)))
    }
}

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
    fn a_poll_takes_what_waits_and_the_close_alone_after_it() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.next_body(), None);
        for packet in ["41", "41/chat,", "1"] {
            outbox.push(packet.to_owned());
        }
        assert_eq!(outbox.next_body().as_deref(), Some("41\u{1e}41/chat,"));
        assert_eq!(outbox.next_body().as_deref(), Some("1"));
        assert!(outbox.is_empty());
        outbox.push("2".to_owned());
        outbox.push("42[\"a\"]".to_owned());
        assert_eq!(outbox.take_all(), vec!["2", "42[\"a\"]"]);
    }

    #[test]
    fn empty_packets_and_oversized_bodies_are_refused() {
        assert_eq!(decode("", 10), Err(PayloadError::Empty));
        assert_eq!(decode("3\u{1e}", 10), Err(PayloadError::Empty));
        assert_eq!(decode("3\u{1e}\u{1e}3", 10), Err(PayloadError::Empty));
        assert_eq!(decode("42[\"x\"]", 3), Err(PayloadError::TooLarge));
    }
}
