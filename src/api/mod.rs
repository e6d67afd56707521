//! The Worker's HTTP handlers, one file per area. Each takes a [`Call`] (the request with the
//! Worker's `env` and the loaded configuration; `call.rs` holds the steps handlers start with)
//! and what the route carries (its path ids), and returns an [`Answer`]: its response, or an
//! `ApiError` the entry turns into JSON.

pub mod broadcast;
pub mod call;
pub mod connect;
pub mod dev;
pub mod inspect;
pub mod lobby;
pub mod me;
pub mod messages;
pub mod metrics;
pub mod pending;
pub mod polling;
pub mod push;
pub mod push_subscriptions;
pub mod refusal;
pub mod room_members;
pub mod room_messages;
pub mod rooms;
pub mod socketio;
pub mod sockets;
pub mod users;

use std::rc::Rc;

use serde_json::json;
use worker::{Env, Request, Response};

use self::call::{ok, respond, Answer, Call};
use crate::config::Config;
use crate::error::ApiError;
use crate::routes::Route;
use crate::store::direct::Party;

/// The OpenAPI document, served as is and checked against the route table.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub async fn handle(route: Route, req: Request, env: &Env) -> Answer {
    match route {
        Route::Health => health(env),
        Route::OpenApi => {
            let mut res = Response::ok(OPENAPI)?;
            res.headers_mut().set("content-type", "application/json")?;
            Ok(res)
        }
        route => {
            let config = configuration(env)?;
            let call = Call {
                req,
                env,
                config: &config,
            };
            handle_configured(route, call).await
        }
    }
}

fn configuration(env: &Env) -> Result<Rc<Config>, ApiError> {
    Config::shared(env).map_err(|err| {
        crate::log::error("config.invalid", json!({"problems": err.0}));
        ApiError::internal("the gateway is misconfigured; see the logs")
    })
}

/// `GET /health`: 200 when the gateway can serve, 503 with every configuration problem when it
/// cannot (it then admits nothing, so naming the problems gives nobody a way in, and a deploy's
/// health check fails at once instead of every client getting 500s).
fn health(env: &Env) -> Answer {
    let version = env!("CARGO_PKG_VERSION");
    match Config::from_env(env) {
        Ok(_) => ok(&json!({"status": "ok", "name": "switchboard", "version": version})),
        Err(problems) => respond(
            503,
            &json!({"status": "misconfigured", "name": "switchboard", "version": version, "problems": problems.0}),
        ),
    }
}

async fn handle_configured(route: Route, call: Call<'_>) -> Answer {
    match route {
        Route::DevToken => dev::token(call).await,
        Route::DevPush => dev::push(call).await,
        Route::DevAsset { path } => dev::asset(call, &path).await,
        Route::DevUserAlarm { user_id } => dev::user_alarm(call, &user_id).await,
        Route::DevRoomAlarm { room_id } => dev::room_alarm(call, &room_id).await,
        Route::Connect => connect::user(call).await,
        Route::SocketIo => socketio::connect(call).await,
        Route::Presence => users::presence(call).await,
        Route::Me => me::me(call).await,
        Route::InternalPush => push::push(call).await,
        Route::InternalBroadcast => broadcast::broadcast(call).await,
        Route::InternalOnline => broadcast::online(call).await,
        Route::InternalSockets { op } => match sockets::Op::of(&op) {
            Some(op) => sockets::handle(call, op).await,
            None => Err(ApiError::not_found(format!("no socket operation '{op}'"))),
        },
        Route::InternalMetrics => metrics::metrics(call).await,
        Route::InternalDisconnect { user_id } => users::disconnect(call, &user_id).await,
        Route::InternalDeleteUser { user_id } => users::delete(call, &user_id).await,
        Route::InternalInspectUser { user_id } => inspect::user(call, &user_id).await,
        Route::InternalRoomStats { room_id } => inspect::room(call, &room_id).await,
        Route::PushPublicKey => push_subscriptions::public_key(call),
        Route::Subscribe => push_subscriptions::subscribe(call).await,
        Route::Subscriptions => push_subscriptions::list(call).await,
        Route::Unsubscribe { id } => push_subscriptions::unsubscribe(call, &id).await,
        Route::RoomNotifications { room_id } => rooms::notifications(call, &room_id).await,
        Route::CreateRoom => rooms::create(call).await,
        Route::ListRooms => rooms::list(call).await,
        Route::GetRoom { room_id } => rooms::get(call, &room_id).await,
        Route::RenameRoom { room_id } => rooms::rename(call, &room_id).await,
        Route::DeleteRoom { room_id } => rooms::delete(call, &room_id).await,
        Route::AddMembers { room_id } => room_members::add(call, &room_id).await,
        Route::RemoveMember { room_id, user_id } => {
            room_members::remove(call, &room_id, &user_id).await
        }
        Route::ListMembers { room_id } => room_members::list(call, &room_id).await,
        Route::RoomMessages { room_id } => room_messages::history(call, &room_id).await,
        Route::SendRoomMessage { room_id } => room_messages::send(call, &room_id).await,
        Route::ReadRoom { room_id } => room_messages::read(call, &room_id).await,
        Route::EditRoomMessage {
            room_id,
            message_id,
        } => room_messages::edit(call, &room_id, &message_id).await,
        Route::DeleteRoomMessage {
            room_id,
            message_id,
        } => room_messages::delete(call, &room_id, &message_id).await,
        Route::Unread => rooms::unread(call).await,
        Route::InternalDeleteRoom { room_id } => rooms::internal_delete(call, &room_id).await,
        Route::RoomConnect { room_id } => rooms::connect(call, &room_id).await,
        Route::InternalCreateRoom => rooms::internal_create(call).await,
        Route::InternalAddMembers { room_id } => room_members::internal_add(call, &room_id).await,
        Route::InternalRemoveMember { room_id, user_id } => {
            room_members::internal_remove(call, &room_id, &user_id).await
        }
        Route::InternalPublish { room_id } => room_messages::internal_publish(call, &room_id).await,
        Route::InternalRoomShards { room_id } => rooms::internal_shards(call, &room_id).await,
        Route::SendMessage => messages::send(call).await,
        Route::SentMessages => messages::sent(call).await,
        Route::DeleteSent { id } if call.query("everyone").as_deref() == Some("true") => {
            messages::recall(call, &id).await
        }
        Route::DeleteSent { id } => messages::delete_one(call, Party::Sender, &id).await,
        Route::DeleteSentMany => messages::delete_many(call, Party::Sender).await,
        Route::ReceivedMessages => messages::received(call).await,
        Route::ReadMessage { id } => messages::read_one(call, &id).await,
        Route::ReadMany => messages::read_many(call).await,
        Route::DeleteReceived { id } => messages::delete_one(call, Party::Receiver, &id).await,
        Route::DeleteReceivedMany => messages::delete_many(call, Party::Receiver).await,
        Route::UnreadCount => messages::unread_count(call).await,
        Route::AdminMessages => messages::admin_list(call).await,
        Route::AdminDelete { id } => messages::admin_delete(call, &id).await,
        Route::Health | Route::OpenApi => Err(ApiError::not_found("no such route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;
    use std::collections::BTreeSet;

    #[test]
    fn openapi_documents_exactly_the_routes_the_router_knows() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path, _)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }
}
