//! The steps every Durable Object takes the same way: set up its logging as it is constructed,
//! read the configuration, answer a call it refused, hand a new socket back as a 101, and
//! answer a close the client started.

use std::rc::Rc;

use serde_json::json;
use worker::{Env, Request, Response, WebSocket};

use crate::config::Config;
use crate::error::ApiError;
use crate::protocol;

/// As an object is constructed: the log level and the metrics binding, once per isolate.
pub fn observe(env: &Env) {
    crate::log::init(env);
    crate::metrics::init(env);
}

/// The isolate's configuration ([`Config::shared`]); an object that cannot read it refuses.
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    Config::shared(env).map_err(|err| {
        crate::log::error("config.invalid", json!({"problems": err.0}));
        ApiError::internal("the gateway is misconfigured")
    })
}

/// An object's HTTP answer for an error, in the same JSON shape the Worker uses.
pub fn error_response(err: ApiError) -> worker::Result<Response> {
    Ok(crate::http::error_response(&err))
}

/// The 101 answer that hands the client end of a new socket back through the Worker.
pub fn upgrade_response(req: &Request, client: WebSocket) -> Result<Response, ApiError> {
    let headers = worker::Headers::new();
    if crate::hubs::stubs::offered_subprotocol(req) {
        headers.set("sec-websocket-protocol", crate::auth::token::SUBPROTOCOL)?;
    }
    Ok(worker::ResponseBuilder::new()
        .with_status(101)
        .with_headers(headers)
        .with_websocket(client)
        .empty())
}

/// Answers a close the client started, as the hibernation API requires (1005/1006 may not be
/// echoed and become 1000). Nothing is marked: the client can send nothing after its close, and
/// the close event that called this takes the socket out of the roster (`Sockets::gone`).
pub fn reciprocate_close(ws: &WebSocket, code: usize) {
    let code = u16::try_from(code).unwrap_or(protocol::close::NORMAL);
    let _ = ws.close(Some(protocol::echoable_close_code(code)), Some(""));
}
