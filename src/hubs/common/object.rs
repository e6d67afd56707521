//! The steps every Durable Object takes the same way: set up its logging, pings and storage as it
//! is constructed, read the configuration, answer a call it refused, hand a new socket back as a
//! 101, and handle a socket's events ([`socket_events!`]).

use std::rc::Rc;

use serde_json::json;
use worker::{Env, Request, Response, State, WebSocket, WebSocketRequestResponsePair};

use crate::config::Config;
use crate::error::ApiError;
use crate::protocol;
use crate::store::local::Local;

/// As an object is constructed: the log level and the metrics binding, once per isolate.
pub fn observe(env: &Env) {
    crate::log::init(env);
    crate::metrics::init(env);
}

/// As an object with storage is constructed: [`observe`], and its own SQLite storage.
pub fn open_storage(state: &State, env: &Env) -> Local {
    observe(env);
    Local::new(state.storage().sql())
}

/// As an object with sockets is constructed: the runtime answers a client's `ping` itself,
/// without waking the object.
pub fn answer_pings(state: &State) {
    if let Ok(pair) = WebSocketRequestResponsePair::new(protocol::PING, protocol::PONG) {
        state.set_websocket_auto_response(&pair);
    }
}

/// What an object's schema migration at construction returned; a failure is logged
/// (`hub.schema_failed`) and read as the default (for a `bool` "made just now": no).
pub fn migrated<T: Default>(object: &str, result: worker::Result<T>) -> T {
    result.unwrap_or_else(|err| {
        crate::log::error(
            "hub.schema_failed",
            json!({"object": object, "error": err.to_string()}),
        );
        T::default()
    })
}

/// The isolate's configuration ([`Config::shared`]); an object that cannot read it refuses.
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    Config::shared(env).map_err(|err| {
        crate::log::error("config.invalid", json!({"problems": err.0}));
        ApiError::internal("the gateway is misconfigured")
    })
}

/// An object's answer to a call: its response, or the error [`error_response`] turns into one.
pub type Answer = Result<Response, ApiError>;

/// An object's HTTP answer for an error, in the same JSON shape the Worker uses.
pub fn error_response(err: ApiError) -> worker::Result<Response> {
    Ok(crate::http::error_response(&err))
}

/// The 101 answer that hands the client end of a new socket back through the Worker.
pub fn upgrade_response(req: &Request, client: WebSocket) -> Answer {
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

/// The socket events of an object's `DurableObject` impl: a frame goes to the object's own
/// step for it; a closed or failed socket leaves the roster (its attachment read once:
/// `Sockets::gone`), a close is logged and answered ([`reciprocate_close`]), and the object's
/// own step for a socket gone gets what the socket was. `socket_events!(sockets, on_message,
/// on_socket_gone)` names the object's roster and those steps (paths from `self`).
macro_rules! socket_events {
    ($($sockets:ident).+, $($message:ident).+, $($gone:ident).+) => {
        async fn websocket_message(
            &self,
            ws: worker::WebSocket,
            frame: worker::WebSocketIncomingMessage,
        ) -> worker::Result<()> {
            self.$($message).+(&ws, frame).await
        }

        async fn websocket_close(
            &self,
            ws: worker::WebSocket,
            code: usize,
            reason: String,
            _was_clean: bool,
        ) -> worker::Result<()> {
            let gone = self.$($sockets).+.gone(&ws);
            self.$($sockets).+.log_closed(gone.as_ref(), code, &reason);
            $crate::hubs::common::object::reciprocate_close(&ws, code);
            self.$($gone).+(&ws, gone).await
        }

        async fn websocket_error(
            &self,
            ws: worker::WebSocket,
            _error: worker::Error,
        ) -> worker::Result<()> {
            let gone = self.$($sockets).+.gone(&ws);
            self.$($gone).+(&ws, gone).await
        }
    };
}

pub(crate) use socket_events;

/// Answers a close the client started, as the hibernation API requires (1005/1006 may not be
/// echoed and become 1000). Nothing is marked: the client can send nothing after its close, and
/// the close event that called this takes the socket out of the roster (`Sockets::gone`).
pub fn reciprocate_close(ws: &WebSocket, code: usize) {
    let code = u16::try_from(code).unwrap_or(protocol::close::NORMAL);
    let _ = ws.close(Some(protocol::echoable_close_code(code)), Some(""));
}
