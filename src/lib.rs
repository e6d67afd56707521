//! Switchboard: a real-time messaging gateway for Cloudflare Workers.
//!
//! The Worker entry is deliberately thin: resolve the route, run its handler, and turn any
//! [`error::ApiError`] into the JSON error shape. Everything that refuses a client happens here,
//! before a Durable Object is addressed; the hubs (`hubs/`) own sockets and streams.
//! docs/ARCHITECTURE.md explains the pieces and why.

pub mod api;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod direct;
pub mod error;
pub mod hook;
pub mod http;
pub mod hubs;
pub mod ids;
pub mod message;
pub mod notify;
pub mod placement;
pub mod presence;
pub mod protocol;
pub mod quota;
pub mod ratelimit;
pub mod routes;
pub mod socketio;
pub mod store;
pub mod stream;
pub mod typing;
pub mod webpush;

use worker::{event, Context, Env, Request, Response};

use crate::auth::cors;
use crate::auth::origin::OriginPolicy;
use crate::error::ApiError;
use crate::routes::{resolve, Resolution, Route};

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
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
    let result = match resolve(req.method().as_ref(), &path) {
        Resolution::Found(route) => {
            // Upgrades are not CORS requests, and a hub's answer has immutable headers.
            if matches!(
                route,
                Route::Connect | Route::SocketIo | Route::RoomConnect { .. }
            ) {
                cors_headers.clear();
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
    let mut res = result.unwrap_or_else(|err| http::error_response(&err));
    for (name, value) in cors_headers {
        res.headers_mut().set(name, &value)?;
    }
    Ok(res)
}
