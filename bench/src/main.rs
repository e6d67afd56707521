//! Switchboard load generator.
//!
//! Two scenarios against a running gateway (`make dev`): `push` (below) and `room` (see
//! `room.rs`: one room's fan-out to its member sockets).
//!
//! `push` opens `devices` WebSocket connections for one user,
//! then pushes events through `POST /internal/v1/push` and times each delivery from the moment
//! the HTTP request is sent to the moment a device receives the frame (one process, one clock).
//!
//! Two phases per run:
//! - latency: one push at a time, waiting until every device has it; reports p50/p99/max of the
//!   per-delivery latency;
//! - throughput: `concurrency` pushers back to back for `seconds`; reports deliveries per second.
//!
//! Usage: `switchboard-bench [--scenario push|room] [--base URL] [--devices N] [--pushes N]
//! [--members N] [--messages N] [--concurrency N] [--seconds N]`.
//! `SB_INTERNAL_TOKEN` overrides the development internal token.

mod http;
mod room;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub struct Options {
    scenario: String,
    base: String,
    devices: usize,
    pushes: usize,
    concurrency: usize,
    seconds: u64,
    members: usize,
    messages: usize,
    internal_token: String,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            scenario: "push".into(),
            members: 10,
            messages: 100,
            base: "http://127.0.0.1:8787".into(),
            devices: 1,
            pushes: 200,
            concurrency: 8,
            seconds: 10,
            internal_token: std::env::var("SB_INTERNAL_TOKEN")
                .unwrap_or_else(|_| "switchboard-development-internal-token".into()),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number"))
            };
            match flag.as_str() {
                "--scenario" => options.scenario = value.clone(),
                "--members" => options.members = number()?,
                "--messages" => options.messages = number()?,
                "--base" => options.base = value.trim_end_matches('/').to_owned(),
                "--devices" => options.devices = number()?,
                "--pushes" => options.pushes = number()?,
                "--concurrency" => options.concurrency = number()?,
                "--seconds" => options.seconds = number()? as u64,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(options)
    }
}

/// A delivery seen by a device: which push (by its `n`) and when.
type Delivery = (u64, Instant);

#[tokio::main]
async fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(2);
        }
    };
    let result = match options.scenario.as_str() {
        "push" => run(&options).await,
        "room" => room::run(&options).await,
        other => Err(format!("unknown scenario {other}; push or room")),
    };
    if let Err(err) = result {
        eprintln!("bench failed: {err}");
        std::process::exit(1);
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let user = format!("bench-{}", std::process::id());
    let token = dev_token(options, &user).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    for _ in 0..options.devices {
        connect_device(options, &token, tx.clone()).await?;
    }
    println!("{} device(s) of {user} connected", options.devices);

    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    for n in 0..options.pushes as u64 {
        let start = Instant::now();
        push(options, &user, n).await?;
        for _ in 0..options.devices {
            let (seen, at) = recv(&mut rx).await?;
            if seen != n {
                return Err(format!("push {n}: a device received push {seen} instead"));
            }
            histogram
                .record(at.duration_since(start).as_micros() as u64)
                .map_err(|e| e.to_string())?;
        }
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency  pushes={} devices={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        options.pushes,
        options.devices,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );

    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut pushers = Vec::new();
    for worker in 0..options.concurrency as u64 {
        let options = Options {
            scenario: options.scenario.clone(),
            base: options.base.clone(),
            internal_token: options.internal_token.clone(),
            ..*options
        };
        let user = user.clone();
        pushers.push(tokio::spawn(async move {
            let mut pushed = 0u64;
            while Instant::now() < deadline {
                push(&options, &user, 1_000_000 + worker * 1_000_000 + pushed).await?;
                pushed += 1;
            }
            Ok::<u64, String>(pushed)
        }));
    }
    let mut pushed = 0;
    for pusher in pushers {
        pushed += pusher.await.map_err(|e| e.to_string())??;
    }
    let expected = pushed * options.devices as u64;
    for _ in 0..expected {
        recv(&mut rx).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "throughput pushes={pushed} deliveries={expected} seconds={elapsed:.1} pushes/s={:.0} deliveries/s={:.0}",
        pushed as f64 / elapsed,
        expected as f64 / elapsed
    );
    Ok(())
}

pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| "a delivery did not arrive within 30 s".to_string())?
        .ok_or_else(|| "every device socket closed".to_string())
}

pub async fn dev_token(options: &Options, user: &str) -> Result<String, String> {
    let body = json!({"sub": user, "ttl": 3600}).to_string();
    let (status, answer) = http::post(&options.base, "/dev/token", None, &body).await?;
    if status != 200 {
        return Err(format!(
            "/dev/token answered {status}: {answer} (is DEV_MODE=true?)"
        ));
    }
    let value: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    value["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no token in the answer".into())
}

async fn push(options: &Options, user: &str, n: u64) -> Result<(), String> {
    let body = json!({"users": [user], "event": "bench.tick", "data": {"n": n}}).to_string();
    let (status, answer) = http::post(
        &options.base,
        "/internal/v1/push",
        Some(&options.internal_token),
        &body,
    )
    .await?;
    if status != 200 {
        return Err(format!("push answered {status}: {answer}"));
    }
    Ok(())
}

/// Connects one device and forwards every `bench.tick` it receives.
async fn connect_device(
    options: &Options,
    token: &str,
    tx: mpsc::UnboundedSender<Delivery>,
) -> Result<(), String> {
    let url = format!("{}/v1/connect", options.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| "bad token header".to_string())?;
    request.headers_mut().insert("authorization", auth);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (_write, mut read) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(text))) = read.next().await {
            let at = Instant::now();
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame["event"] == "bench.tick" {
                if let Some(n) = frame["data"]["n"].as_u64() {
                    let _ = tx.send((n, at));
                }
            }
        }
    });
    Ok(())
}
