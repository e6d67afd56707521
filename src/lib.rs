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
pub mod http;
pub mod hubs;
pub mod ids;
pub mod message;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod routes;
pub mod store;
pub mod stream;

use worker::{event, Context, Env, Request, Response};

use crate::error::ApiError;
use crate::routes::{resolve, Resolution};

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let result = match resolve(req.method().as_ref(), &req.path()) {
        Resolution::Found(route) => api::handle(route, req, &env).await,
        Resolution::MethodNotAllowed => Err(ApiError::new(
            405,
            "method_not_allowed",
            "this route does not take that method",
        )),
        Resolution::NotFound => Err(ApiError::not_found("no such route")),
    };
    Ok(result.unwrap_or_else(|err| http::error_response(&err)))
}
