//! `POST /internal/v1/socketio/{emit,join,leave,disconnect,fetch,data}`: a backend drives
//! Socket.IO sockets the socket.io way (`io.to(room).emit`, `socketsJoin`, `socketsLeave`,
//! `disconnectSockets`, `fetchSockets`, and `socket.data`; `packages/emitter` speaks this).
//!
//! Every call names its sockets as socket.io does — `rooms` (room ids and socket ids, which
//! `~` tells apart: `ids::socket_owner`), `except`, the `namespace` — plus `users` (every
//! socket of a user); naming none means every socket of the namespace. The Worker finds the
//! hubs that hold them and asks each once:
//!
//! | names          | reached through                                                          |
//! |----------------|--------------------------------------------------------------------------|
//! | a socket id    | its user's hub (the id names its user)                                    |
//! | a user         | their hub                                                                 |
//! | a room         | `emit`: the room (its stream, then every socket in it, relayed or not); else the hubs of the users the room has sockets of |
//! | nothing        | `emit`: the directory's broadcast, to the namespace's Socket.IO sockets; else every online user's hub (the directory) |
//!
//! An emit to a room or a user is durable — in the room's or the user's stream, recovered on a
//! reconnect — unless `volatile`; to a socket id or a whole namespace it is live only. A join is
//! the backend's authority: D1 gets the room and the membership first (`room_members::admit`).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Env;

use super::call::{ok, validation, Answer, Call};
use crate::error::ApiError;
use crate::hubs::stubs::directory::{self, BroadcastRequest, SHARDS};
use crate::hubs::stubs::room::{self, EmitRequest};
use crate::hubs::stubs::user::{
    self, NamespaceEmit, PushRequest, RemoteSocket, SocketOp, SocketSelector, SocketsOutcome,
    SocketsRequest, PUSH_FAN_OUT,
};
use crate::ids::{socket_owner, validate_room_id, validate_user_id};
use crate::socketio::MAX_SOCKET_DATA_BYTES;
use crate::stream::Class;

/// Names one call's `rooms`, `except` and join/leave lists may hold, each.
pub const MAX_NAMES: usize = 100;
/// Users one call may name.
pub const MAX_USERS: usize = 1000;
/// Sockets `fetch` lists per page by default, and at most.
pub const DEFAULT_FETCH: usize = 100;
pub const MAX_FETCH: usize = 1000;
/// Users asked per directory page when a call names no one.
const ONLINE_PAGE: i64 = 1000;

/// The operations, as the route names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Emit,
    Join,
    Leave,
    Disconnect,
    Fetch,
    Data,
}

impl Op {
    pub fn of(name: &str) -> Option<Self> {
        Some(match name {
            "emit" => Op::Emit,
            "join" => Op::Join,
            "leave" => Op::Leave,
            "disconnect" => Op::Disconnect,
            "fetch" => Op::Fetch,
            "data" => Op::Data,
            _ => return None,
        })
    }
}

/// A call's body: the selector, and the fields of its operation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default = "main_namespace")]
    namespace: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    event: Option<String>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    volatile: bool,
    join: Option<Vec<String>>,
    leave: Option<Vec<String>>,
    #[serde(default)]
    close: bool,
    limit: Option<usize>,
    cursor: Option<String>,
    socket_id: Option<String>,
    data: Option<Value>,
}

fn main_namespace() -> String {
    "/".into()
}

/// The selector, checked and split: room ids and socket ids (by owner) apart.
struct Targets {
    namespace: String,
    rooms: Vec<String>,
    sockets: BTreeMap<String, Vec<String>>,
    users: Vec<String>,
    except: Vec<String>,
}

impl Targets {
    fn everyone(&self) -> bool {
        self.rooms.is_empty() && self.sockets.is_empty() && self.users.is_empty()
    }
}

pub async fn handle(mut call: Call<'_>, op: Op) -> Answer {
    call.internal()?;
    let body: Body = call.body().await?;
    let targets = targets(&body)?;
    match op {
        Op::Emit => emit(&call, &body, &targets).await,
        Op::Join => {
            let rooms = room_list("join", body.join.as_deref())?;
            let users = users_of(call.env, &targets).await?;
            for room_id in &rooms {
                let members: Vec<String> = users.keys().cloned().collect();
                super::room_members::admit(&call, room_id, &members).await?;
            }
            act(call.env, users, &SocketOp::Join { rooms }).await
        }
        Op::Leave => {
            let rooms = room_list("leave", body.leave.as_deref())?;
            let users = users_of(call.env, &targets).await?;
            act(call.env, users, &SocketOp::Leave { rooms }).await
        }
        Op::Disconnect => {
            let users = users_of(call.env, &targets).await?;
            let close = body.close;
            act(call.env, users, &SocketOp::Disconnect { close }).await
        }
        Op::Fetch => fetch(call.env, &body, &targets).await,
        Op::Data => set_data(call.env, body).await,
    }
}

/// Checks the selector: a namespace, room and socket ids, users, `except`.
fn targets(body: &Body) -> Result<Targets, ApiError> {
    let namespace = &body.namespace;
    if !namespace.starts_with('/') || namespace.len() > 128 || namespace.contains(',') {
        return Err(validation(
            "namespace must start with '/', have no ',' and at most 128 characters",
        ));
    }
    if body.rooms.len() > MAX_NAMES || body.except.len() > MAX_NAMES {
        return Err(validation(format!(
            "rooms and except name at most {MAX_NAMES} each"
        )));
    }
    if body.users.len() > MAX_USERS {
        return Err(ApiError::new(
            413,
            "batch_too_large",
            format!("users names at most {MAX_USERS}"),
        ));
    }
    let mut targets = Targets {
        namespace: namespace.clone(),
        rooms: Vec::new(),
        sockets: BTreeMap::new(),
        users: Vec::new(),
        except: Vec::new(),
    };
    for name in &body.rooms {
        match socket_owner(name) {
            Some(owner) => targets
                .sockets
                .entry(owner.to_owned())
                .or_default()
                .push(name.clone()),
            None => {
                validate_room_id(name).map_err(|why| validation(format!("rooms: {why}")))?;
                targets.rooms.push(name.clone());
            }
        }
    }
    for name in &body.except {
        if socket_owner(name).is_none() {
            validate_room_id(name).map_err(|why| validation(format!("except: {why}")))?;
        }
        targets.except.push(name.clone());
    }
    for user in &body.users {
        validate_user_id(user).map_err(|why| validation(format!("users: {why}")))?;
    }
    targets.users = dedup(&body.users);
    targets.rooms = dedup(&targets.rooms);
    Ok(targets)
}

fn dedup(names: &[String]) -> Vec<String> {
    names
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A join's or a leave's rooms: 1 to [`MAX_NAMES`] room ids.
fn room_list(field: &str, rooms: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let rooms = rooms.unwrap_or_default();
    if rooms.is_empty() || rooms.len() > MAX_NAMES {
        return Err(validation(format!(
            "{field} must name 1 to {MAX_NAMES} rooms"
        )));
    }
    for room_id in rooms {
        validate_room_id(room_id).map_err(|why| validation(format!("{field}: {why}")))?;
    }
    Ok(dedup(rooms))
}

/// `emit`: to each room (its stream), each socket id and each user (their stream), or to
/// everyone (a broadcast).
async fn emit(call: &Call<'_>, body: &Body, targets: &Targets) -> Answer {
    let event = body
        .event
        .as_deref()
        .ok_or_else(|| validation("emit needs an event"))?;
    crate::protocol::validate_emit_name(event)
        .map_err(|why| validation(format!("event: {why}")))?;
    let max_bytes = call.config.limits.max_frame_bytes - 512;
    if Value::from(body.args.clone()).to_string().len() > max_bytes {
        return Err(ApiError::too_large(format!(
            "args are larger than {max_bytes} bytes"
        )));
    }
    if targets.everyone() {
        return emit_to_everyone(call.env, event, body, targets).await;
    }
    let mut rooms = serde_json::Map::new();
    for room_id in &targets.rooms {
        let request = EmitRequest {
            event: event.to_owned(),
            args: body.args.clone(),
            except: targets.except.clone(),
            volatile: body.volatile,
        };
        let outcome = room::emit(call.env, room_id, &request).await?;
        rooms.insert(room_id.clone(), json!(outcome.seq));
    }
    let live = SocketOp::Emit {
        event: event.to_owned(),
        args: body.args.clone(),
    };
    let mut sockets = 0;
    let mut reach: BTreeMap<String, SocketSelector> = BTreeMap::new();
    for (owner, ids) in &targets.sockets {
        selector_for(&mut reach, owner, targets).ids = ids.clone();
    }
    if body.volatile {
        for user in &targets.users {
            selector_for(&mut reach, user, targets).all = true;
        }
    } else {
        sockets += push_to_users(call.env, event, body, targets).await?;
    }
    sockets += ask_all(call.env, reach, &live)
        .await?
        .iter()
        .map(|outcome| outcome.sockets)
        .sum::<usize>();
    ok(&json!({"rooms": rooms, "sockets": sockets}))
}

/// An emit that names no one: to every Socket.IO socket of the namespace open now, through
/// the directory's broadcast (not stored).
async fn emit_to_everyone(env: &Env, event: &str, body: &Body, targets: &Targets) -> Answer {
    let request = BroadcastRequest {
        event: event.to_owned(),
        data: Value::Null,
        idempotency_key: None,
        emitted: Some(NamespaceEmit {
            namespace: targets.namespace.clone(),
            args: body.args.clone(),
            except: targets.except.clone(),
        }),
    };
    let outcomes = directory::broadcast(env, &request).await;
    if let Some(Err(err)) = outcomes.iter().find(|outcome| outcome.is_err()) {
        return Err(err.clone());
    }
    let sockets: i64 = outcomes.iter().flatten().map(|reach| reach.devices).sum();
    ok(&json!({"rooms": {}, "sockets": sockets}))
}

/// A durable emit to users: the event in each user's stream (pushed as a backend's event),
/// delivered to every device. Returns how many got it live.
async fn push_to_users(
    env: &Env,
    event: &str,
    body: &Body,
    targets: &Targets,
) -> Result<usize, ApiError> {
    if targets.users.is_empty() {
        return Ok(0);
    }
    if !targets.except.is_empty() {
        return Err(validation(
            "except does not apply to a user's stream: emit to users with volatile, or to their socket ids",
        ));
    }
    let request = PushRequest {
        event: event.to_owned(),
        data: single_argument(&body.args)?,
        idempotency_key: None,
        class: Class::Backend,
        notify: None,
    };
    let mut devices = 0;
    for outcome in user::push_all(env, &targets.users, &request).await {
        devices += outcome?.devices;
    }
    Ok(devices)
}

/// What a user's stream carries: one argument (or none). Several travel to rooms, sockets and
/// namespaces, or volatile.
fn single_argument(args: &[Value]) -> Result<Value, ApiError> {
    match args {
        [] => Ok(Value::Null),
        [one] => Ok(one.clone()),
        _ => Err(validation(
            "an emit to users carries at most one argument (volatile: any)",
        )),
    }
}

/// The selector for `user`'s hub in `reach`, made with the call's namespace and `except`.
fn selector_for<'a>(
    reach: &'a mut BTreeMap<String, SocketSelector>,
    user: &str,
    targets: &Targets,
) -> &'a mut SocketSelector {
    reach
        .entry(user.to_owned())
        .or_insert_with(|| SocketSelector {
            namespace: targets.namespace.clone(),
            except: targets.except.clone(),
            ..SocketSelector::default()
        })
}

/// The hubs to ask, and what each chooses: socket ids by owner, users whole, the users a
/// room has sockets of (choosing their sockets in it), or every online user.
async fn users_of(
    env: &Env,
    targets: &Targets,
) -> Result<BTreeMap<String, SocketSelector>, ApiError> {
    let mut reach = BTreeMap::new();
    if targets.everyone() {
        for user in online_users(env).await? {
            selector_for(&mut reach, &user, targets).all = true;
        }
        return Ok(reach);
    }
    for (owner, ids) in &targets.sockets {
        selector_for(&mut reach, owner, targets).ids = ids.clone();
    }
    for user in &targets.users {
        selector_for(&mut reach, user, targets).all = true;
    }
    for room_id in &targets.rooms {
        let present = room::presence(env, room_id).await?;
        for user in present.users.keys() {
            selector_for(&mut reach, user, targets)
                .rooms
                .push(room_id.clone());
        }
    }
    Ok(reach)
}

/// Every user with a socket open, from every directory shard.
async fn online_users(env: &Env) -> Result<Vec<String>, ApiError> {
    let mut users = Vec::new();
    for k in 0..SHARDS {
        let mut after: Option<String> = None;
        loop {
            let page = directory::page(env, k, after.as_deref(), ONLINE_PAGE).await?;
            let full = page.users.len() as i64 == ONLINE_PAGE;
            after = page.users.last().cloned();
            users.extend(page.users);
            if !full {
                break;
            }
        }
    }
    Ok(users)
}

/// Asks each hub in `reach` for `op`, [`PUSH_FAN_OUT`] at a time.
async fn ask_all(
    env: &Env,
    reach: BTreeMap<String, SocketSelector>,
    op: &SocketOp,
) -> Result<Vec<SocketsOutcome>, ApiError> {
    stream::iter(reach)
        .map(|(user, select)| async move {
            let request = SocketsRequest {
                select,
                op: op.clone(),
            };
            user::sockets(env, &user, &request).await
        })
        .buffered(PUSH_FAN_OUT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// `join`, `leave`, `disconnect`: how many sockets it reached.
async fn act(env: &Env, reach: BTreeMap<String, SocketSelector>, op: &SocketOp) -> Answer {
    let outcomes = ask_all(env, reach, op).await?;
    let sockets: usize = outcomes.iter().map(|outcome| outcome.sockets).sum();
    ok(&json!({ "sockets": sockets }))
}

/// `fetch`: a page of the chosen sockets, whole users at a time: it ends with the user whose
/// sockets reach `limit`, and `next_cursor` (that user) continues after them.
async fn fetch(env: &Env, body: &Body, targets: &Targets) -> Answer {
    let limit = body.limit.unwrap_or(DEFAULT_FETCH);
    if limit == 0 || limit > MAX_FETCH {
        return Err(validation(format!("limit must be 1 to {MAX_FETCH}")));
    }
    let mut reach = users_of(env, targets).await?;
    if let Some(after) = &body.cursor {
        reach = reach.split_off(&format!("{after}\0"));
    }
    let users: Vec<(String, SocketSelector)> = reach.into_iter().collect();
    let mut found: Vec<RemoteSocket> = Vec::new();
    for chunk in users.chunks(PUSH_FAN_OUT) {
        let outcomes = ask_all(env, chunk.iter().cloned().collect(), &SocketOp::Fetch).await?;
        for ((user, _), outcome) in chunk.iter().zip(outcomes) {
            found.extend(outcome.found);
            if found.len() >= limit {
                let last = users.last().map(|(last, _)| last);
                let next_cursor = (last != Some(user)).then(|| user.clone());
                return ok(&json!({"sockets": found, "next_cursor": next_cursor}));
            }
        }
    }
    ok(&json!({"sockets": found, "next_cursor": null}))
}

/// `data`: replaces one socket's `socket.data` (at most [`MAX_SOCKET_DATA_BYTES`] serialised).
async fn set_data(env: &Env, body: Body) -> Answer {
    let socket_id = body
        .socket_id
        .ok_or_else(|| validation("data needs socket_id"))?;
    let owner = socket_owner(&socket_id)
        .ok_or_else(|| validation("socket_id is not a socket id"))?
        .to_owned();
    let data = body.data.unwrap_or(Value::Null);
    let bytes = data.to_string().len();
    if bytes > MAX_SOCKET_DATA_BYTES {
        return Err(ApiError::too_large(format!(
            "data is {bytes} bytes serialised, over {MAX_SOCKET_DATA_BYTES}"
        )));
    }
    let request = SocketsRequest {
        select: SocketSelector {
            namespace: body.namespace,
            ids: vec![socket_id],
            ..SocketSelector::default()
        },
        op: SocketOp::Data { data },
    };
    let outcome = user::sockets(env, &owner, &request).await?;
    ok(&json!({ "sockets": outcome.sockets }))
}
