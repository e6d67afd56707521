//! The way into a polling session (`api::polling`): one object per Engine.IO session, named by
//! its `sid`, which the client sends on every request — so each request reaches the one object
//! that holds its session, with no affinity asked of anything in front of the gateway.

use serde::{Deserialize, Serialize};
use worker::{Env, Headers, Response, Stub};

use crate::auth::token::Extracted;
use crate::error::ApiError;

calls! {
    /// What a polling session is asked.
    PollingCall {
        /// The handshake ([`Opening`]): the answer is the open packet.
        Open = Post "/open",
        /// A held GET: the answer is the packets for the client, or a noop at the deadline.
        Poll = Get "/poll",
        /// A POST of the client's packets (the body as it came).
        Send = Post "/send",
        /// The client's WebSocket, to move the session onto.
        Upgrade = Get "/upgrade",
        /// A POST the Worker refused for its declared length (over `MAX_FRAME_BYTES`): the
        /// session ends, as socket.io ends one over its `maxHttpBufferSize`.
        TooLarge = Post "/too-large",
    }
}

/// A new session: its `sid`, where its user's socket goes once admitted (the hub's `query`,
/// `room_id`), a token the handshake carried, and the client's origin and address.
#[derive(Debug, Serialize, Deserialize)]
pub struct Opening {
    pub sid: String,
    pub query: String,
    pub room_id: Option<String>,
    pub token: Option<Extracted>,
    pub origin: Option<String>,
    pub address: String,
    pub handshake: Option<crate::socketio::handshake::Handshake>,
}

fn stub(env: &Env, sid: &str) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("POLLING")?
        .id_from_name(sid)?
        .get_stub()?)
}

/// Opens session `opening.sid`; the object's answer as it came.
pub async fn open(env: &Env, opening: &Opening) -> Result<Response, ApiError> {
    let body = serde_json::to_string(opening).map_err(|e| ApiError::internal(e.to_string()))?;
    let call = PollingCall::Open;
    let req = crate::http::hub_request(call.method(), call.path(), Headers::new(), Some(body))?;
    crate::http::call_hub(&stub(env, &opening.sid)?, req).await
}

/// Asks session `sid` `call` (`body` a POST's); the object's answer as it came. A held poll is
/// answered within the ping interval, so no deadline is added here.
pub async fn forward(
    env: &Env,
    sid: &str,
    call: PollingCall,
    body: Option<String>,
) -> Result<Response, ApiError> {
    let headers = Headers::new();
    if call == PollingCall::Upgrade {
        headers.set("upgrade", "websocket")?;
    }
    let req = crate::http::hub_request(call.method(), call.path(), headers, body)?;
    Ok(stub(env, sid)?.fetch_with_request(req).await?)
}
