//! Switchboard: a real-time messaging gateway for Cloudflare Workers.
//!
//! The Worker entry is deliberately thin: resolve the route, run its handler, and turn any
//! [`error::ApiError`] into the JSON error shape. Everything that refuses a client happens here,
//! before a Durable Object is addressed; the hubs (`hubs/`) own sockets and streams.
//! docs/ARCHITECTURE.md explains the pieces and why.

pub mod api;
pub mod auth;
pub mod clock;
pub mod command;
pub mod config;
pub mod cursor;
pub mod direct;
pub mod error;
pub mod hook;
pub mod http;
pub mod hubs;
pub mod ids;
pub mod log;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod placement;
pub mod presence;
pub mod protocol;
pub mod push_endpoint;
pub mod quota;
pub mod ratelimit;
pub mod routes;
pub mod socketio;
pub mod store;
pub mod stream;
pub mod typing;
pub mod vars;
pub mod webpush;

use worker::{event, Context, Env, Request, Response};

use crate::auth::cors;
use crate::auth::origin::OriginPolicy;
use crate::error::ApiError;
use crate::routes::{resolve, Resolution};

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    log::init(&env);
    metrics::init(&env);
    let started = crate::clock::now_ms();
    let request_id = request_id(&req);
    let path = req.path();
    let origin = http::header(&req, "origin");
    let policy = OriginPolicy::parse(
        &env.var("ALLOWED_ORIGINS")
            .map(|v| v.to_string())
            .unwrap_or_default(),
    );
    if req.method() == worker::Method::Options && cors::applies_to(&path) {
        let mut res = Response::empty()?.with_status(204);
        for (name, value) in cors::preflight_headers(&policy, &path, origin.as_deref()) {
            res.headers_mut().set(name, &value)?;
        }
        return Ok(res);
    }
    let mut cors_headers = cors::response_headers(&policy, &path, origin.as_deref());
    let mut connect = None;
    let result = match resolve(req.method().as_ref(), &path) {
        Resolution::Found(route) => {
            // Upgrades are not CORS requests, and a hub's answer has immutable headers.
            if api::connect::is_upgrade(&req) {
                cors_headers.clear();
            }
            if let Some(kind) = api::connect::kind_of(&route, &req) {
                connect = Some((kind, api::connect::carrier_hint(&req)));
            }
            api::handle(route, req, &env).await
        }
        Resolution::MethodNotAllowed => Err(ApiError::new(
            405,
            "method_not_allowed",
            "this route does not take that method",
        )),
        Resolution::NotFound => Err(ApiError::not_found("no such route")),
    };
    let elapsed = crate::clock::now_ms() - started;
    if let Some((kind, carrier)) = connect {
        api::connect::log_outcome(kind, carrier, origin.as_deref(), &result, elapsed);
    }
    let mut res = match result {
        Ok(res) => res,
        Err(err) => {
            log_error(&err, &request_id, &path, connect.is_some());
            http::error_response_with_id(&err, &request_id)
        }
    };
    if connect.is_none() {
        // An answer passed through from a binding (a static asset) has immutable headers: it
        // goes without the id rather than failing.
        let _ = res.headers_mut().set("x-request-id", &request_id);
    }
    for (name, value) in cors_headers {
        res.headers_mut().set(name, &value)?;
    }
    Ok(res)
}

/// The request's id: Cloudflare's `cf-ray` when present (it also names the request in
/// Cloudflare's own logs), else a fresh one. It is in every error body (`request_id`), in the
/// `x-request-id` header of every answer that is not an upgrade, and in the error's log line.
fn request_id(req: &Request) -> String {
    http::header(req, "cf-ray")
        .filter(|ray| {
            ray.len() <= 64 && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// A failed request: 5xx as `request.failed` (error), a limit as `limit.hit` (warn), other
/// refusals as `request.refused` (debug: a client's mistake is not the operator's). Connect
/// refusals are logged by [`api::connect::log_outcome`].
fn log_error(err: &ApiError, request_id: &str, path: &str, is_connect: bool) {
    let fields = serde_json::json!({
        "request_id": request_id,
        "status": err.status,
        "code": err.code,
        "route": routes::pattern_of(path),
    });
    if err.status >= 500 {
        log::error("request.failed", fields);
    } else if err.status == 429 {
        metrics::record(metrics::Point::new(metrics::Kind::Limit, err.code));
        log::warn("limit.hit", fields);
    } else if !is_connect {
        metrics::record(
            metrics::Point::new(metrics::Kind::Refusal, err.code).value(f64::from(err.status)),
        );
        log::debug("request.refused", fields);
    }
}
