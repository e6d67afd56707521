//! The room scenario: fan-out of one room's messages to `members` member sockets.
//!
//! Creates a room with `members` members through the internal API, opens one room socket per
//! member, then:
//! - latency: member 0 sends `messages` messages over its socket, one at a time; each is timed
//!   from the moment the frame is written to the moment the *last* member socket yields it
//!   (send → last recipient);
//! - throughput: `concurrency` backends publish system messages back to back for `seconds`
//!   (`POST /internal/v1/rooms/{id}/publish`; socket senders are rate-limited per socket); the run
//!   ends when every member has every message. Reports messages/s into the room and deliveries/s.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::{dev_token, http, recv, Options};

/// A message seen by a member socket: its seq and when.
type Seen = (u64, Instant);

pub async fn run(options: &Options) -> Result<(), String> {
    let prefix = format!("bench-{}-{}", std::process::id(), options.members);
    let members: Vec<String> = (0..options.members)
        .map(|i| format!("{prefix}-m{i}"))
        .collect();
    let room = format!("{prefix}-room");
    let body = json!({"id": room, "name": "bench", "owner": members[0], "members": members[1..]});
    let (status, answer) = http::post(
        &options.base,
        "/internal/v1/rooms",
        Some(&options.internal_token),
        &body.to_string(),
    )
    .await?;
    if status != 201 {
        return Err(format!("create room answered {status}: {answer}"));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let mut sender = None;
    for member in &members {
        let token = dev_token(options, member).await?;
        let write = connect_member(options, &room, &token, tx.clone()).await?;
        sender.get_or_insert(write);
    }
    let mut sender = sender.ok_or("no members")?;
    println!("{} member socket(s) in {room}", options.members);

    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    for n in 1..=options.messages as u64 {
        let frame = json!({"event": "send", "data": {"body": format!("m{n}")}}).to_string();
        let start = Instant::now();
        sender
            .send(Message::Text(frame))
            .await
            .map_err(|e| e.to_string())?;
        let mut last = start;
        for _ in 0..options.members {
            let (seq, at) = recv(&mut rx).await?;
            if seq != n {
                return Err(format!("message {n}: a member received seq {seq} instead"));
            }
            last = last.max(at);
        }
        histogram
            .record(last.duration_since(start).as_micros() as u64)
            .map_err(|e| e.to_string())?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "room latency members={} messages={} p50={:.2}ms p99={:.2}ms max={:.2}ms (send -> last recipient)",
        options.members,
        options.messages,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );

    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut publishers = Vec::new();
    for _ in 0..options.concurrency {
        let (base, token, room) = (
            options.base.clone(),
            options.internal_token.clone(),
            room.clone(),
        );
        publishers.push(tokio::spawn(async move {
            let path = format!("/internal/v1/rooms/{room}/publish");
            let mut published = 0u64;
            while Instant::now() < deadline {
                let (status, answer) =
                    http::post(&base, &path, Some(&token), r#"{"body":"tick"}"#).await?;
                if status != 201 {
                    return Err(format!("publish answered {status}: {answer}"));
                }
                published += 1;
            }
            Ok::<u64, String>(published)
        }));
    }
    let mut published = 0;
    for publisher in publishers {
        published += publisher.await.map_err(|e| e.to_string())??;
    }
    let expected = published * options.members as u64;
    for _ in 0..expected {
        recv(&mut rx).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "room throughput members={} messages={published} deliveries={expected} seconds={elapsed:.1} messages/s={:.0} deliveries/s={:.0}",
        options.members,
        published as f64 / elapsed,
        expected as f64 / elapsed
    );
    Ok(())
}

type Writer = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Connects one member and forwards the seq of every `message` it receives; returns the
/// socket's write half.
async fn connect_member(
    options: &Options,
    room: &str,
    token: &str,
    tx: mpsc::UnboundedSender<Seen>,
) -> Result<Writer, String> {
    let url = format!(
        "{}/v1/rooms/{room}/connect",
        options.base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| "bad token header".to_string())?;
    request.headers_mut().insert("authorization", auth);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (write, mut read) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(text))) = read.next().await {
            let at = Instant::now();
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame["event"] == "message" {
                if let Some(seq) = frame["seq"].as_u64() {
                    let _ = tx.send((seq, at));
                }
            }
        }
    });
    Ok(write)
}
