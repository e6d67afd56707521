//! The backend's `connection` and `disconnect` calls for a user's Socket.IO sockets: socket.io's
//! `handleConnection` / `handleDisconnect` (and `io.use` middleware) as hook calls (`hook`),
//! when `EVENT_HOOK_URL` is set and `EVENT_HOOK_CONNECTIONS` is `true`.
//!
//! | when                                   | call                                          | its answer |
//! |----------------------------------------|-----------------------------------------------|------------|
//! | a CONNECT the hub accepts (each namespace), before it is answered | `connection` with the handshake and the CONNECT's `auth`, `recovered` | 2xx: connected, and `{"data": …}` sets `socket.data`; 4xx `{error}`: CONNECT_ERROR with the backend's code (the client stops, as after middleware's `next(err)`); no answer (5xx, timeout, unreachable): connected, and the call is queued |
//! | a namespace ends: the client's DISCONNECT or close, `disconnectSockets`, the connection lost or closed by the gateway | `disconnect` with socket.io's reason | — |
//!
//! A `connection` call is made at once (the CONNECT waits for it, as for socket.io's
//! middleware); every `disconnect` call, and a `connection` call that got no answer, go
//! through the hub's queue in order, so a socket's `disconnect` never reaches the backend
//! before its `connection`. A call without an answer is tried again with backoff,
//! [`MAX_ATTEMPTS`] in all, before the ones behind it; a late `connection` answer changes
//! nothing (the socket is connected by then). The queue lives
//! in the hub's memory: a hub that is evicted meanwhile drops what it still held (logged).
//! Nothing a socket sends waits for the queue.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use worker::{Delay, Env};

use super::UserHub;
use crate::error::ApiError;
use crate::hook::{HookCall, HookError, HookKind};
use crate::hubs::common::attachment::SocketInfo;
use crate::socketio::MAX_SOCKET_DATA_BYTES;

/// Tries per call, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the second try; each later one waits twice as long.
const FIRST_BACKOFF_MS: u64 = 1000;

/// A call waiting in the queue, owning what it sends.
struct Queued {
    kind: HookKind,
    user_id: String,
    conn_id: String,
    namespace: String,
    data: Option<Value>,
    handshake: Option<Value>,
    reason: Option<String>,
    attempts: u32,
}

impl Queued {
    fn call(&self) -> HookCall<'_> {
        HookCall {
            kind: self.kind,
            user_id: &self.user_id,
            conn_id: &self.conn_id,
            namespace: &self.namespace,
            event: self.kind.as_str(),
            args: &[],
            data: self.data.as_ref(),
            handshake: self.handshake.as_ref(),
            reason: self.reason.as_deref(),
        }
    }
}

/// The hub's queue of lifecycle calls.
#[derive(Default)]
pub struct Lifecycle {
    queue: Rc<RefCell<VecDeque<Queued>>>,
    running: Rc<Cell<bool>>,
}

impl Lifecycle {
    fn push(&self, env: &Env, queued: Queued) {
        self.queue.borrow_mut().push_back(queued);
        if self.running.replace(true) {
            return;
        }
        let (env, queue, running) = (env.clone(), self.queue.clone(), self.running.clone());
        worker::wasm_bindgen_futures::spawn_local(async move {
            drain(&env, &queue).await;
            running.set(false);
        });
    }
}

/// Sends the queue's calls in order, each until it is answered or out of attempts.
async fn drain(env: &Env, queue: &RefCell<VecDeque<Queued>>) {
    let Ok(config) = crate::hubs::common::object::config(env) else {
        queue.borrow_mut().clear();
        return;
    };
    let Some(hook) = config.hook.as_ref().filter(|hook| hook.connections) else {
        queue.borrow_mut().clear();
        return;
    };
    loop {
        let Some(mut queued) = queue.borrow_mut().pop_front() else {
            return;
        };
        loop {
            queued.attempts += 1;
            match crate::hook::call(hook, &queued.call()).await {
                Err(err) if unanswered(&err) && queued.attempts < MAX_ATTEMPTS => {
                    let backoff = FIRST_BACKOFF_MS << (queued.attempts - 1);
                    Delay::from(Duration::from_millis(backoff)).await;
                }
                Err(err) if unanswered(&err) => {
                    gave_up(&queued, &err);
                    break;
                }
                _ => break,
            }
        }
    }
}

/// A call the backend did not answer (its refusals are answers).
fn unanswered(err: &HookError) -> bool {
    err.status >= 500
}

fn gave_up(queued: &Queued, err: &HookError) {
    crate::log::warn(
        "hook.lifecycle_dropped",
        json!({"kind": queued.kind.as_str(), "user_id": queued.user_id, "socket_id": queued.conn_id,
               "attempts": queued.attempts, "error": err.to_string()}),
    );
}

impl UserHub {
    /// The `connection` call for a CONNECT the hub accepts, made at once: the `socket.data` its
    /// answer sets; the backend's refusal is the CONNECT's (`Err`, its code and message); no
    /// answer connects, and the call is queued.
    pub(super) async fn connection_call(
        &self,
        info: &SocketInfo,
        nsp: &str,
        auth: Option<&Value>,
        recovered: bool,
    ) -> Result<Option<Value>, ApiError> {
        let config = crate::hubs::common::object::config(&self.env)?;
        let Some(hook) = config.hook.as_ref().filter(|hook| hook.connections) else {
            return Ok(None);
        };
        let session = info.sio.as_ref();
        let mut handshake = session
            .and_then(|session| session.handshake.as_ref())
            .map(|handshake| json!(handshake))
            .unwrap_or_else(|| json!({}));
        handshake["auth"] = auth.cloned().unwrap_or_else(|| json!({}));
        handshake["recovered"] = json!(recovered);
        let mut queued = Queued {
            kind: HookKind::Connection,
            user_id: info.user_id.clone(),
            conn_id: info.conn_id.clone(),
            namespace: nsp.to_owned(),
            data: session.and_then(|session| session.data.clone()),
            handshake: Some(handshake),
            reason: None,
            attempts: 0,
        };
        queued.attempts = 1;
        match crate::hook::call(hook, &queued.call()).await {
            Ok(answer) => Ok(data_of(&info.conn_id, answer)),
            Err(err) if unanswered(&err) => {
                self.lifecycle.push(&self.env, queued);
                Ok(None)
            }
            Err(refused) => Err(refused.into()),
        }
    }

    /// The `disconnect` call for a namespace that ended, behind every call before it.
    pub(super) fn disconnect_call(&self, info: &SocketInfo, nsp: &str, reason: &str) {
        let hooked = crate::hubs::common::object::config(&self.env)
            .is_ok_and(|config| config.hook.as_ref().is_some_and(|hook| hook.connections));
        if !hooked {
            return;
        }
        let queued = Queued {
            kind: HookKind::Disconnect,
            user_id: info.user_id.clone(),
            conn_id: info.conn_id.clone(),
            namespace: nsp.to_owned(),
            data: info.sio.as_ref().and_then(|session| session.data.clone()),
            handshake: None,
            reason: Some(reason.to_owned()),
            attempts: 0,
        };
        self.lifecycle.push(&self.env, queued);
    }
}

/// `socket.data` from a `connection` answer (`{"data": …}`), within [`MAX_SOCKET_DATA_BYTES`];
/// a larger one is dropped and logged (the connection goes on without it).
fn data_of(conn_id: &str, answer: Value) -> Option<Value> {
    let data = match answer {
        Value::Object(mut fields) => fields.remove("data")?,
        _ => return None,
    };
    let bytes = data.to_string().len();
    if bytes > MAX_SOCKET_DATA_BYTES {
        crate::log::error(
            "hook.data_too_large",
            json!({"socket_id": conn_id, "bytes": bytes, "max": MAX_SOCKET_DATA_BYTES}),
        );
        return None;
    }
    Some(data).filter(|data| !data.is_null())
}
