//! A Socket.IO client refused in its own terms, on a socket no Durable Object ever sees.
//!
//! An HTTP 401 on the upgrade reaches a socket.io client as a bare `websocket error`, without
//! status or body, and the client retries it forever. So the Worker completes the handshake
//! itself and answers each namespace's first CONNECT with CONNECT_ERROR (`connect_error` whose
//! message is the code, with `{code, message, status}` as its `data`), which stops the client's
//! retries, and closes the socket once the client lets go, or after [`REFUSAL_LINGER_MS`].
//!
//! Such a socket is bounded like any other ([`Screen`]): the frame rate and `MAX_FRAME_BYTES`
//! apply (4008 / 1009), it answers at most `SOCKETIO_MAX_NAMESPACES` namespaces once each and
//! nothing else, and it counts against its address's `MAX_PENDING_PER_ADDRESS` until the client
//! lets go of it ([`super::pending`]). A socket waiting in the lobby (`super::lobby`) keeps the
//! same screen, and goes on as a refused one when its CONNECT does not prove a user.

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{Delay, EventStream, WebSocket, WebsocketEvent};

use super::pending::Pending;
use crate::config::Limits;
use crate::error::ApiError;
use crate::protocol::close;
use crate::ratelimit::Bucket;
use crate::socketio::{engine, packet};

/// How long a refused client's socket is held for its CONNECT packets.
pub const REFUSAL_LINGER_MS: u64 = 10_000;

/// The limits on every socket the Worker holds for a client no hub has admitted: the frame
/// rate and the frame size, as a hub's gate applies them.
pub struct Screen {
    bucket: Bucket,
    limits: Limits,
}

/// What a held socket's frame calls for.
#[derive(Debug, PartialEq)]
pub enum Screened {
    /// A CONNECT packet (the frame's text as it came, and the packet).
    Connect(String, packet::Packet),
    /// Anything else: not answered.
    Other,
    /// Close with this code and reason: over the frame rate or size.
    Close(u16, &'static str),
}

impl Screen {
    pub fn new(limits: Limits, now: i64) -> Self {
        let bucket = Bucket::full(limits.rate_limit_burst, now);
        Self { bucket, limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One frame: counted against the frame rate and size, and read when it is a CONNECT.
    pub fn frame(&mut self, text: Option<String>, now: i64) -> Screened {
        let limits = &self.limits;
        if !self
            .bucket
            .take(now, limits.rate_limit_per_second, limits.rate_limit_burst)
        {
            return Screened::Close(close::RATE_LIMITED, "rate limited");
        }
        let Some(text) = text else {
            return Screened::Other;
        };
        if text.len() > limits.max_frame_bytes {
            return Screened::Close(close::TOO_BIG, "frame too big");
        }
        match connect_packet(&text) {
            Some(packet) => Screened::Connect(text, packet),
            None => Screened::Other,
        }
    }
}

/// A client's CONNECT; nothing for any other packet.
fn connect_packet(text: &str) -> Option<packet::Packet> {
    let engine::Packet::Message(inner) = engine::parse(text).ok()? else {
        return None;
    };
    let packet = packet::parse(inner).ok()?;
    (packet.kind == packet::Kind::Connect).then_some(packet)
}

/// A refused client's socket: what it was refused with, and what it has been answered.
pub struct Refusal {
    code: &'static str,
    data: Value,
    screen: Screen,
    /// The namespaces answered (each once).
    answered: Vec<String>,
}

/// What a refused client's frame calls for.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send this CONNECT_ERROR.
    Answer(String),
    /// Nothing to say (not a CONNECT, or a namespace answered already).
    Ignore,
    /// Close with this code and reason: over the frame rate or size, or past the namespaces.
    Close(u16, &'static str),
}

impl Refusal {
    /// Refuses with `err`, keeping the socket's `screen` (its frame allowance so far).
    pub fn new(err: ApiError, screen: Screen) -> Self {
        let data = json!({"code": err.code, "message": err.message, "status": err.status});
        Self {
            code: err.code,
            data,
            screen,
            answered: Vec::new(),
        }
    }

    /// The code the client is refused with.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Answers `nsp`'s CONNECT at once (the lobby's CONNECT that failed to prove a user).
    pub fn answer(&mut self, server: &WebSocket, nsp: &str) {
        let _ = server.send_with_str(self.connect_error(nsp));
    }

    /// Answers CONNECTs until the client closes, breaks a limit or the linger ends; then closes
    /// and waits for the client to let go, holding its address's count until it does.
    pub async fn run(mut self, server: &WebSocket, events: &mut EventStream<'_>, pending: Pending) {
        let mut deadline = Box::pin(Delay::from(std::time::Duration::from_millis(
            REFUSAL_LINGER_MS,
        )));
        let (code, reason) = loop {
            match select(events.next(), deadline).await {
                Either::Left((Some(Ok(WebsocketEvent::Message(message))), rest)) => {
                    deadline = rest;
                    match self.step(message.text(), crate::clock::now_ms()) {
                        Step::Answer(reply) => {
                            let _ = server.send_with_str(reply);
                        }
                        Step::Ignore => {}
                        Step::Close(code, reason) => break (code, reason),
                    }
                }
                Either::Left(_) => return,
                Either::Right(_) => break (close::FORBIDDEN, self.code),
            }
        };
        close_and_let_go(server, events, code, reason, pending).await;
    }

    /// One frame: counted against the frame rate and size like any socket's, and answered when
    /// it is the first CONNECT of its namespace.
    fn step(&mut self, text: Option<String>, now: i64) -> Step {
        let nsp = match self.screen.frame(text, now) {
            Screened::Connect(_, packet) => packet.nsp,
            Screened::Other => return Step::Ignore,
            Screened::Close(code, reason) => return Step::Close(code, reason),
        };
        if self.answered.contains(&nsp) {
            return Step::Ignore;
        }
        if self.answered.len() >= self.screen.limits().socketio_max_namespaces {
            return Step::Close(close::FORBIDDEN, self.code);
        }
        Step::Answer(self.connect_error(&nsp))
    }

    fn connect_error(&mut self, nsp: &str) -> String {
        self.answered.push(nsp.to_owned());
        engine::message(&packet::connect_error(nsp, self.code, &self.data))
    }
}

/// Closes a held socket and waits for the client to let go of it (a client that ignores the
/// close keeps its address's count until the runtime drops the connection).
pub async fn close_and_let_go(
    server: &WebSocket,
    events: &mut EventStream<'_>,
    code: u16,
    reason: &str,
    pending: Pending,
) {
    let _ = server.close(Some(code), Some(reason));
    while let Some(Ok(event)) = events.next().await {
        if matches!(event, WebsocketEvent::Close(_)) {
            break;
        }
    }
    drop(pending);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(limits: Limits) -> Refusal {
        let err = ApiError::unauthorized("token_expired", "expired");
        Refusal::new(err, Screen::new(limits, 0))
    }

    fn text(frame: &str) -> Option<String> {
        Some(frame.to_owned())
    }

    #[test]
    fn each_namespace_is_refused_once_in_its_own_terms() {
        let mut refusal = refusal(Limits::default());
        let Step::Answer(reply) = refusal.step(text("40/chat,{\"token\":\"x\"}"), 0) else {
            panic!("no answer");
        };
        assert_eq!(
            reply,
            r#"44/chat,{"data":{"code":"token_expired","message":"expired","status":401},"message":"token_expired"}"#
        );
        assert_eq!(refusal.step(text("40/chat,"), 0), Step::Ignore);
        assert_eq!(refusal.step(text("3"), 0), Step::Ignore);
        assert_eq!(refusal.step(text("42[\"x\"]"), 0), Step::Ignore);
        assert_eq!(refusal.step(None, 0), Step::Ignore);
        assert!(matches!(refusal.step(text("40"), 0), Step::Answer(_)));
    }

    #[test]
    fn a_refused_socket_keeps_the_frame_rate_the_size_and_the_namespace_cap() {
        let limits = Limits {
            rate_limit_burst: 3,
            rate_limit_per_second: 1,
            socketio_max_namespaces: 2,
            max_frame_bytes: 1024,
            ..Limits::default()
        };
        let mut flood = refusal(limits.clone());
        for _ in 0..3 {
            assert_eq!(flood.step(text("3"), 0), Step::Ignore);
        }
        assert_eq!(
            flood.step(text("3"), 0),
            Step::Close(close::RATE_LIMITED, "rate limited")
        );

        let mut big = refusal(limits.clone());
        let huge = format!("40/a,{{\"x\":\"{}\"}}", "y".repeat(2000));
        assert_eq!(
            big.step(Some(huge), 0),
            Step::Close(close::TOO_BIG, "frame too big")
        );

        let mut many = refusal(limits);
        assert!(matches!(many.step(text("40/a,"), 0), Step::Answer(_)));
        assert!(matches!(many.step(text("40/b,"), 0), Step::Answer(_)));
        assert_eq!(
            many.step(text("40/c,"), 0),
            Step::Close(close::FORBIDDEN, "token_expired")
        );
    }

    #[test]
    fn the_screen_reads_a_connect_and_its_auth() {
        let mut screen = Screen::new(Limits::default(), 0);
        let Screened::Connect(raw, packet) = screen.frame(text(r#"40/chat,{"token":"t"}"#), 0)
        else {
            panic!("not a connect");
        };
        assert_eq!(raw, r#"40/chat,{"token":"t"}"#);
        assert_eq!(packet.nsp, "/chat");
        assert_eq!(packet.data, Some(json!({"token": "t"})));
        assert_eq!(screen.frame(text("2"), 0), Screened::Other);
        assert_eq!(screen.frame(text("42[\"a\"]"), 0), Screened::Other);
    }
}
