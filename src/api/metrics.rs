//! `GET /internal/v1/metrics`: what the gateway can know exactly without a scan, in Prometheus
//! text format (`metrics::exposition`).
//!
//! Users online come from the online directory (its 16 shards each count their listing: 16
//! subrequests, no UserHub woken); the counters are the answering isolate's own
//! (`metrics::snapshot`), each documented with that scope. Devices online are not exported:
//! the directory lists users, and counting devices would mean asking every online user's hub.

use futures_util::future::join_all;
use worker::Response;

use super::call::{Answer, Call};
use crate::hubs::stubs::directory::{self, SHARDS};
use crate::metrics::{self, Online};

pub async fn metrics(call: Call<'_>) -> Answer {
    call.internal()?;
    let counts = join_all((0..SHARDS).map(|k| directory::page(call.env, k, None, 0))).await;
    let users = counts
        .into_iter()
        .map(|page| page.ok().map(|page| page.count.max(0) as u64))
        .sum::<Option<u64>>();
    let text = metrics::exposition(Online { users }, &metrics::snapshot());
    let mut res = Response::ok(text)?;
    res.headers_mut()
        .set("content-type", "text/plain; version=0.0.4; charset=utf-8")?;
    Ok(res)
}
