//! The way into a user's UserHub (`hubs::user`): its calls, their requests and answers.
//!
//! A hub is addressed by the user's id (`idFromName`), but an object does not know the name it
//! was addressed by, so every call names its user in a header ([`user_of`]).

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Env, Headers, Request, Response, Stub};

use super::Done;
use crate::auth::jwt::Identity;
use crate::error::ApiError;
use crate::notify::{Level, NotifyRequest};
use crate::protocol::code;
use crate::socketio::handshake::Handshake;
use crate::store::notify_log::Subscription;
use crate::stream::Class;

calls! {
    /// What a UserHub is asked.
    UserCall {
        /// A device socket (the gateway's protocol or Socket.IO), for a verified identity.
        Connect = Get "/connect",
        /// An event appended to the user's stream and delivered.
        Push = Post "/push" => push(PushRequest) -> PushOutcome,
        /// A Web Push subscription stored.
        Subscribe = Post "/subscriptions" => subscribe(SubscribeRequest) -> Subscribed,
        /// The user's Web Push subscriptions.
        Subscriptions = Get "/subscriptions" => subscriptions() -> Vec<SubscriptionView>,
        /// A subscription forgotten ([`unsubscribe`]).
        Unsubscribe = Post "/unsubscribe",
        /// A room's notification level, read or set.
        RoomLevel = Post "/room-level" => room_level(RoomLevel) -> RoomLevel,
        /// Every socket closed, perhaps revoking.
        Disconnect = Post "/disconnect" => disconnect(DisconnectRequest) -> Disconnected,
        /// The user's open sockets and when they were last seen.
        Presence = Get "/presence" => presence() -> HubPresence,
        /// A room's `room.activity` note for a member who is not in it (`mentioned` is the
        /// hub's to read, not the devices').
        Activity = Post "/activity" => activity(Value) -> Done,
        /// A broadcast for the sockets open now.
        Broadcast = Post "/broadcast" => broadcast(Announcement) -> HubReach,
        /// A backend's operation on some of the user's Socket.IO sockets (`api::sockets`).
        Sockets = Post "/sockets" => sockets(SocketsRequest) -> SocketsOutcome,
        /// A direct message deleted for everyone ([`redact`]).
        Redact = Post "/redact",
        /// The alarm and its wakes (development).
        Alarm = Get "/alarm" => alarm() -> Value,
        /// An operator's report.
        Inspect = Get "/inspect" => inspect() -> Value,
    }
}

/// UserHubs a fan-out asks at once.
pub const PUSH_FAN_OUT: usize = 50;

/// The header that tells a hub whose it is.
const USER_HEADER: &str = "x-switchboard-user";

/// An event for the stream: a backend's, as the Worker forwards it after validation, or a chat
/// event the gateway makes.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushRequest {
    pub event: String,
    pub data: Value,
    pub idempotency_key: Option<String>,
    /// Whose budget the event counts against.
    pub class: Class,
    /// A backend's notification for users whose devices do not take the event in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyRequest>,
}

/// What a push did for this user.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushOutcome {
    pub seq: i64,
    pub devices: usize,
    pub duplicate: bool,
}

/// A direct message deleted for everyone.
#[derive(Debug, Serialize, Deserialize)]
pub struct RedactRequest {
    pub message_id: String,
}

/// The hub's view of presence; the Worker applies the grace rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct HubPresence {
    pub devices: usize,
    pub last_seen: Option<i64>,
}

/// Close every socket of this user; with `revoke_before`, also refuse tokens issued at or
/// before that second from now on.
#[derive(Debug, Serialize, Deserialize)]
pub struct DisconnectRequest {
    pub reason: String,
    pub revoke_before: Option<i64>,
    /// The account is deleted: the user's room levels go too.
    #[serde(default)]
    pub forget: bool,
}

/// How many sockets a disconnect closed (a room's too: `room::disconnect`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Disconnected {
    pub sockets: usize,
}

/// A subscription as the Worker checked it, for the hub to store.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub device: Option<String>,
}

/// A subscription as the user sees it (the keys stay in the hub).
#[derive(Debug, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub id: String,
    pub endpoint: String,
    pub device: Option<String>,
    pub created_at: i64,
}

impl From<Subscription> for SubscriptionView {
    fn from(subscription: Subscription) -> Self {
        Self {
            id: subscription.id,
            endpoint: subscription.endpoint,
            device: subscription.device,
            created_at: subscription.created_at,
        }
    }
}

/// What storing a subscription did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Subscribed {
    pub subscription: SubscriptionView,
    pub created: bool,
    /// Ids dropped for the cap.
    pub dropped: Vec<String>,
}

/// `POST /unsubscribe {id}` and whether there was such a subscription.
#[derive(Debug, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Unsubscribed {
    pub found: bool,
}

/// A room's level, read (`level: None`) or set.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomLevel {
    pub room_id: String,
    pub level: Option<Level>,
}

/// What a broadcast sends a UserHub: the event, for the sockets open there now.
#[derive(Debug, Serialize, Deserialize)]
pub struct Announcement {
    pub event: String,
    pub data: Value,
    /// Set for a backend's emit to a whole namespace ([`NamespaceEmit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emitted: Option<NamespaceEmit>,
}

/// A backend's emit to every socket of a namespace (`api::sockets`, socket.io's
/// `io.of(nsp).emit`): only the Socket.IO sockets connected to `namespace` get it, with every
/// argument, but those `except` names (socket ids, or rooms they joined).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceEmit {
    pub namespace: String,
    pub args: Vec<Value>,
    #[serde(default)]
    pub except: Vec<String>,
}

/// What one UserHub's sockets got, and how many it has open (a hub with none is unlisted).
#[derive(Debug, Serialize, Deserialize)]
pub struct HubReach {
    pub devices: usize,
    pub open: usize,
}

/// Which of a user's Socket.IO sockets a backend's operation is for: those connected to
/// `namespace` that are every one of the user's (`all`), named in `ids`, or in one of `rooms`;
/// never one named in `except` or in a room named there (socket.io's `to`, `in`, `except`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SocketSelector {
    pub namespace: String,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Socket ids and room ids, mixed as socket.io mixes them.
    #[serde(default)]
    pub except: Vec<String>,
}

impl SocketSelector {
    /// Whether the socket `id`, in `rooms`, is chosen.
    pub fn matches(&self, id: &str, rooms: &[String]) -> bool {
        let chosen = self.all
            || self.ids.iter().any(|wanted| wanted == id)
            || rooms.iter().any(|room| self.rooms.contains(room));
        let skipped = self
            .except
            .iter()
            .any(|skip| skip == id || rooms.contains(skip));
        chosen && !skipped
    }
}

/// What a backend does to the chosen sockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SocketOp {
    /// An EVENT with these arguments, now (not stored: a socket's own events are not in a
    /// stream).
    Emit {
        event: String,
        args: Vec<Value>,
    },
    /// Each socket's namespace joins these rooms (relayed as a `room.join` is).
    Join {
        rooms: Vec<String>,
    },
    Leave {
        rooms: Vec<String>,
    },
    /// `close`: the whole connection ends; else only the namespace (DISCONNECT).
    Disconnect {
        close: bool,
    },
    /// The sockets, described ([`RemoteSocket`]).
    Fetch,
    /// `socket.data` replaced (the Worker checked its size).
    Data {
        data: Value,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SocketsRequest {
    pub select: SocketSelector,
    #[serde(flatten)]
    pub op: SocketOp,
}

/// How many sockets an operation reached, and for `Fetch` what they are.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SocketsOutcome {
    pub sockets: usize,
    #[serde(default)]
    pub found: Vec<RemoteSocket>,
}

/// A socket as `fetchSockets` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteSocket {
    pub id: String,
    pub user_id: String,
    pub namespace: String,
    pub rooms: Vec<String>,
    pub data: Option<Value>,
    pub handshake: Option<Handshake>,
}

fn stub(env: &Env, user: &str) -> Result<Stub, ApiError> {
    Ok(env
        .durable_object("USER_HUB")?
        .id_from_name(user)?
        .get_stub()?)
}

/// Asks `user`'s hub `call` with `body`, and reads its JSON answer.
async fn ask<T: serde::de::DeserializeOwned>(
    env: &Env,
    user: &str,
    call: UserCall,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let headers = Headers::new();
    headers.set(USER_HEADER, user)?;
    crate::http::call_hub_json_with(&stub(env, user)?, call.method(), call.path(), headers, body)
        .await
}

/// The user a call is for, as [`ask`] names it.
pub fn user_of(req: &Request) -> Result<String, ApiError> {
    crate::http::header(req, USER_HEADER)
        .ok_or_else(|| ApiError::bad_request(code::VALIDATION, "a hub call must name its user"))
}

/// Opens a device socket in the user's hub: `query` is the connect's (`since`, `device`,
/// `dialect`), `headers` any the hub is told besides the identity (how the token came).
pub async fn connect(
    env: &Env,
    identity: &Identity,
    query: &str,
    subprotocol: bool,
    headers: Headers,
) -> Result<Response, ApiError> {
    let path = format!("{}?{query}", UserCall::Connect.path());
    let upgrade = super::upgrade(&path, identity, subprotocol, headers)?;
    crate::http::call_hub(&stub(env, &identity.user_id)?, upgrade).await
}

/// Pushes one event to each of `users` (their hubs asked [`PUSH_FAN_OUT`] at a time); the
/// outcomes in the order given.
pub async fn push_all(
    env: &Env,
    users: &[String],
    request: &PushRequest,
) -> Vec<Result<PushOutcome, ApiError>> {
    stream::iter(users)
        .map(|user| push(env, user, request))
        .buffered(PUSH_FAN_OUT)
        .collect()
        .await
}

/// Forgets subscription `id`; whether the user had it.
pub async fn unsubscribe(env: &Env, user: &str, id: &str) -> Result<bool, ApiError> {
    let request = Unsubscribe { id: id.to_owned() };
    let answer: Unsubscribed = ask(env, user, UserCall::Unsubscribe, Some(&request)).await?;
    Ok(answer.found)
}

/// Replaces a deleted direct message's content in the user's stream.
pub async fn redact(env: &Env, user: &str, message_id: &str) -> Result<PushOutcome, ApiError> {
    let request = RedactRequest {
        message_id: message_id.to_owned(),
    };
    ask(env, user, UserCall::Redact, Some(&request)).await
}

/// The answer a hub gives an `Unsubscribe` (kept beside the call so both sides agree).
pub fn unsubscribed(found: bool) -> Value {
    json!(Unsubscribed { found })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_chooses_by_id_user_or_room_and_skips_what_except_names() {
        let rooms = vec!["r1".to_owned(), "r2".to_owned()];
        let by_room = SocketSelector {
            rooms: vec!["r2".into()],
            ..SocketSelector::default()
        };
        assert!(by_room.matches("a~1", &rooms));
        assert!(!by_room.matches("a~1", &[]));
        let by_id = SocketSelector {
            ids: vec!["a~1".into()],
            ..SocketSelector::default()
        };
        assert!(by_id.matches("a~1", &[]) && !by_id.matches("a~2", &[]));
        let all_but = SocketSelector {
            all: true,
            except: vec!["a~2".into(), "r1".into()],
            ..SocketSelector::default()
        };
        assert!(all_but.matches("a~1", &[]));
        assert!(!all_but.matches("a~2", &[]));
        assert!(!all_but.matches("a~1", &rooms));
    }
}
