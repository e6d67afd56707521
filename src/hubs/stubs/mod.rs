//! The ways in: one typed function per call into a Durable Object, with its request and answer
//! types — [`user`] (a UserHub), [`room`] (a Room), [`shard`] (a RoomShard) and [`directory`]
//! (a shard of who is online).
//!
//! Each object's calls are declared once ([`calls!`]): a name, a method and a path. The caller
//! asks through a function of this layer; the object reads the same name back from the request
//! (`UserCall::of`) and dispatches on it exhaustively, so a call renamed or added on one side
//! is a compile error on the other, and a reader follows a call from its caller to its handler
//! by one name. A verified identity crosses into an object in one header ([`upgrade`],
//! [`identity_of`]): objects are not reachable from outside, so they trust it.
//!
//! This layer imports no object: objects call each other through it.

/// Declares the calls an object takes, each once: its name, method and path, and for a plain
/// call (`=> name(Request) -> Answer`) its typed function. Makes the enum, its `method` and
/// `path`, `of`, which tells the object which call a request is, and each typed function,
/// which asks the object named by `key` through the module's `ask`.
macro_rules! calls {
    (@body [$request:ident] $req:ty) => {
        Some($request)
    };
    (@body [$request:ident]) => {
        None::<&()>
    };
    ($(#[$doc:meta])* $calls:ident {
        $($(#[$call_doc:meta])* $call:ident = $method:ident $path:literal
            $(=> $fn:ident($($req:ty)?) -> $answer:ty)?,)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $calls {
            $($(#[$call_doc])* $call,)*
        }

        impl $calls {
            pub fn method(self) -> worker::Method {
                match self {
                    $(Self::$call => worker::Method::$method,)*
                }
            }

            pub fn path(self) -> &'static str {
                match self {
                    $(Self::$call => $path,)*
                }
            }

            /// The call a request to the object is, if any.
            pub fn of(req: &worker::Request) -> Option<Self> {
                let (method, path) = (req.method(), req.path());
                [$(Self::$call,)*]
                    .into_iter()
                    .find(|call| call.method() == method && call.path() == path)
            }
        }

        $($(
            #[doc = concat!("Asks [`", stringify!($calls), "::", stringify!($call), "`].")]
            pub async fn $fn(
                env: &worker::Env,
                key: &str,
                $(request: &$req,)?
            ) -> Result<$answer, $crate::error::ApiError> {
                ask(env, key, $calls::$call, calls!(@body [request] $($req)?)).await
            }
        )?)*
    };
}

/// The answer of a call whose caller reads nothing from it.
pub type Done = serde::de::IgnoredAny;

pub mod directory;
pub mod polling;
pub mod room;
pub mod shard;
pub mod user;

use worker::{Headers, Request, Response, WebSocket};

use crate::auth::jwt::Identity;
use crate::auth::token::Carrier;
use crate::error::ApiError;
use crate::socketio::handshake::Handshake;

/// The request header that hands a verified identity to an object.
const IDENTITY_HEADER: &str = "x-switchboard-identity";
/// Set when the client offered the `bearer` subprotocol, which the 101 must then select.
const SUBPROTOCOL_HEADER: &str = "x-switchboard-subprotocol";
/// On a user connect: how the token came (`header`, `subprotocol`, `query`).
pub const CARRIER_HEADER: &str = "x-switchboard-carrier";
/// On a Socket.IO user connect: the client's first request (`socketio::handshake`), as JSON.
const HANDSHAKE_HEADER: &str = "x-switchboard-handshake";

/// The upgrade an object receives to open a socket: `path` (with its query), the verified
/// identity, whether the client offered the `bearer` subprotocol, and any `headers` of the call.
pub fn upgrade(
    path: &str,
    identity: &Identity,
    subprotocol: bool,
    headers: Headers,
) -> Result<Request, ApiError> {
    headers.set("upgrade", "websocket")?;
    let identity =
        serde_json::to_string(identity).map_err(|e| ApiError::internal(e.to_string()))?;
    headers.set(IDENTITY_HEADER, &identity)?;
    if subprotocol {
        headers.set(SUBPROTOCOL_HEADER, crate::auth::token::SUBPROTOCOL)?;
    }
    Ok(crate::http::hub_request(
        worker::Method::Get,
        path,
        headers,
        None,
    )?)
}

/// The verified identity on an upgrade [`upgrade`] made.
pub fn identity_of(req: &Request) -> Result<Identity, ApiError> {
    crate::http::header(req, IDENTITY_HEADER)
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .ok_or_else(|| ApiError::unauthorized("token_missing", "no verified identity"))
}

/// Whether the client offered the `bearer` subprotocol (the 101 must select it).
pub fn offered_subprotocol(req: &Request) -> bool {
    crate::http::header(req, SUBPROTOCOL_HEADER).is_some()
}

/// How a connect's token came, as the Worker said ([`CARRIER_HEADER`]); `None` when it did not.
pub fn carrier_of(req: &Request) -> Option<Carrier> {
    crate::http::header(req, CARRIER_HEADER).and_then(|name| Carrier::parse(&name))
}

/// Tells the hub a Socket.IO connection's handshake ([`handshake_of`]).
pub fn set_handshake(headers: &Headers, handshake: &Handshake) -> Result<(), ApiError> {
    let json = serde_json::to_string(handshake).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(headers.set(HANDSHAKE_HEADER, &json)?)
}

/// The handshake the Worker sent ([`set_handshake`]), if any.
pub fn handshake_of(req: &Request) -> Option<Handshake> {
    crate::http::header(req, HANDSHAKE_HEADER).and_then(|raw| serde_json::from_str(&raw).ok())
}

/// The socket an object handed back (a relay's, a shard's link), accepted; a refusal is the
/// object's error.
pub async fn accepted_socket(res: Response) -> Result<WebSocket, ApiError> {
    if res.status_code() != 101 {
        return Err(crate::http::error_of(res).await);
    }
    let ws = res
        .websocket()
        .ok_or_else(|| ApiError::internal("the object answered without a socket"))?;
    ws.accept()?;
    Ok(ws)
}
