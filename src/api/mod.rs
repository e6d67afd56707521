//! The Worker's HTTP handlers, one file per area. Each takes the request and the loaded
//! configuration and returns `Result<Response, ApiError>`; the entry turns errors into JSON.

pub mod broadcast;
pub mod connect;
pub mod dev;
pub mod inspect;
pub mod me;
pub mod messages;
pub mod metrics;
pub mod pending;
pub mod push;
pub mod push_subscriptions;
pub mod rooms;
pub mod socketio;
pub mod users;

use std::rc::Rc;

use worker::{Env, Request, Response};

use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::cursor::PageCursor;
use crate::error::ApiError;
use crate::routes::Route;
use crate::store::direct::Party;

/// The OpenAPI document, served as is and checked against the route table.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub async fn handle(route: Route, req: Request, env: &Env) -> Result<Response, ApiError> {
    match route {
        Route::Health => health(env),
        Route::OpenApi => {
            let mut res = Response::ok(OPENAPI)?;
            res.headers_mut().set("content-type", "application/json")?;
            Ok(res)
        }
        route => {
            let config = configuration(env)?;
            handle_configured(route, req, env, &config).await
        }
    }
}

fn configuration(env: &Env) -> Result<Rc<Config>, ApiError> {
    Config::shared(env).map_err(|err| {
        crate::log::error("config.invalid", serde_json::json!({"problems": err.0}));
        ApiError::internal("the gateway is misconfigured; see the logs")
    })
}

/// `GET /health`: 200 when the gateway can serve, 503 with every configuration problem when it
/// cannot (it then admits nothing, so naming the problems gives nobody a way in, and a deploy's
/// health check fails at once instead of every client getting 500s).
fn health(env: &Env) -> Result<Response, ApiError> {
    let version = env!("CARGO_PKG_VERSION");
    Ok(match Config::from_env(env) {
        Ok(_) => crate::http::json(
            200,
            &serde_json::json!({"status": "ok", "name": "switchboard", "version": version}),
        )?,
        Err(problems) => crate::http::json(
            503,
            &serde_json::json!({"status": "misconfigured", "name": "switchboard", "version": version, "problems": problems.0}),
        )?,
    })
}

async fn handle_configured(
    route: Route,
    req: Request,
    env: &Env,
    config: &Config,
) -> Result<Response, ApiError> {
    match route {
        Route::DevToken => dev::token(req, config).await,
        Route::DevPush => dev::push(req, env, config).await,
        Route::DevAsset { path } => dev::asset(env, config, &path).await,
        Route::DevUserAlarm { user_id } => dev::user_alarm(env, config, &user_id).await,
        Route::DevRoomAlarm { room_id } => dev::room_alarm(env, config, &room_id).await,
        Route::Connect => connect::user(req, env, config).await,
        Route::SocketIo => socketio::connect(req, env, config).await,
        Route::Presence => users::presence(req, env, config).await,
        Route::Me => me::me(req, env, config).await,
        Route::InternalPush => push::push(req, env, config).await,
        Route::InternalBroadcast => broadcast::broadcast(req, env, config).await,
        Route::InternalOnline => broadcast::online(req, env, config).await,
        Route::InternalMetrics => metrics::metrics(req, env, config).await,
        Route::InternalDisconnect { user_id } => {
            users::disconnect(req, env, config, &user_id).await
        }
        Route::InternalDeleteUser { user_id } => users::delete(req, env, config, &user_id).await,
        Route::InternalInspectUser { user_id } => inspect::user(req, env, config, &user_id).await,
        Route::InternalRoomStats { room_id } => inspect::room(req, env, config, &room_id).await,
        Route::PushPublicKey => push_subscriptions::public_key(config),
        Route::Subscribe => push_subscriptions::subscribe(req, env, config).await,
        Route::Subscriptions => push_subscriptions::list(req, env, config).await,
        Route::Unsubscribe { id } => push_subscriptions::unsubscribe(req, env, config, &id).await,
        Route::RoomNotifications { room_id } => {
            rooms::notifications(req, env, config, &room_id).await
        }
        Route::CreateRoom => rooms::create(req, env, config).await,
        Route::ListRooms => rooms::list(req, env, config).await,
        Route::GetRoom { room_id } => rooms::get(req, env, config, &room_id).await,
        Route::RenameRoom { room_id } => rooms::rename(req, env, config, &room_id).await,
        Route::DeleteRoom { room_id } => rooms::delete(req, env, config, &room_id).await,
        Route::AddMembers { room_id } => rooms::add_members(req, env, config, &room_id).await,
        Route::RemoveMember { room_id, user_id } => {
            rooms::remove_member(req, env, config, &room_id, &user_id).await
        }
        Route::ListMembers { room_id } => rooms::members(req, env, config, &room_id).await,
        Route::RoomMessages { room_id } => rooms::messages(req, env, config, &room_id).await,
        Route::SendRoomMessage { room_id } => rooms::send(req, env, config, &room_id).await,
        Route::ReadRoom { room_id } => rooms::read(req, env, config, &room_id).await,
        Route::EditRoomMessage {
            room_id,
            message_id,
        } => rooms::edit_message(req, env, config, &room_id, &message_id).await,
        Route::DeleteRoomMessage {
            room_id,
            message_id,
        } => rooms::delete_message(req, env, config, &room_id, &message_id).await,
        Route::Unread => rooms::unread(req, env, config).await,
        Route::InternalDeleteRoom { room_id } => {
            rooms::internal_delete(req, env, config, &room_id).await
        }
        Route::RoomConnect { room_id } => rooms::connect(req, env, config, &room_id).await,
        Route::InternalCreateRoom => rooms::internal_create(req, env, config).await,
        Route::InternalAddMembers { room_id } => {
            rooms::internal_add_members(req, env, config, &room_id).await
        }
        Route::InternalRemoveMember { room_id, user_id } => {
            rooms::internal_remove_member(req, env, config, &room_id, &user_id).await
        }
        Route::InternalPublish { room_id } => {
            rooms::internal_publish(req, env, config, &room_id).await
        }
        Route::InternalRoomShards { room_id } => {
            rooms::internal_shards(req, env, config, &room_id).await
        }
        Route::SendMessage => messages::send(req, env, config).await,
        Route::SentMessages => messages::sent(req, env, config).await,
        Route::DeleteSent { id }
            if crate::http::query_param(&req, "everyone").as_deref() == Some("true") =>
        {
            messages::recall(req, env, config, &id).await
        }
        Route::DeleteSent { id } => {
            messages::delete_one(req, env, config, Party::Sender, &id).await
        }
        Route::DeleteSentMany => messages::delete_many(req, env, config, Party::Sender).await,
        Route::ReceivedMessages => messages::received(req, env, config).await,
        Route::ReadMessage { id } => messages::read_one(req, env, config, &id).await,
        Route::ReadMany => messages::read_many(req, env, config).await,
        Route::DeleteReceived { id } => {
            messages::delete_one(req, env, config, Party::Receiver, &id).await
        }
        Route::DeleteReceivedMany => messages::delete_many(req, env, config, Party::Receiver).await,
        Route::UnreadCount => messages::unread_count(req, env, config).await,
        Route::AdminMessages => messages::admin_list(req, env, config).await,
        Route::AdminDelete { id } => messages::admin_delete(req, env, config, &id).await,
        Route::Health | Route::OpenApi => Err(ApiError::not_found("no such route")),
    }
}

/// Default and largest page size of every listing.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// Where a listing continues and how much of it to return: `?cursor=&limit=`.
pub struct Page {
    pub cursor: Option<PageCursor>,
    pub limit: i64,
}

pub fn page(req: &Request) -> Result<Page, ApiError> {
    let cursor = crate::http::query_param(req, "cursor")
        .map(|raw| {
            PageCursor::decode(&raw).ok_or_else(|| {
                ApiError::bad_request("validation", "cursor: not a cursor this API gave out")
            })
        })
        .transpose()?;
    Ok(Page {
        cursor,
        limit: limit(req)?,
    })
}

/// `?limit=`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub fn limit(req: &Request) -> Result<i64, ApiError> {
    crate::http::page_limit(
        crate::http::query_param(req, "limit").as_deref(),
        DEFAULT_PAGE,
        MAX_PAGE,
    )
}

/// Authenticates a REST call with the bearer JWT, counts it against the user's REST rate, and
/// refuses a revoked token (one D1 read by primary key; no Durable Object is asked).
pub async fn authenticate(req: &Request, env: &Env, config: &Config) -> Result<Identity, ApiError> {
    let header = crate::http::header(req, "authorization").ok_or_else(|| {
        ApiError::unauthorized("token_missing", "send Authorization: Bearer <jwt>")
    })?;
    let token = crate::auth::token::bearer_from_header(&header).map_err(|_| {
        ApiError::unauthorized("token_malformed", "Authorization must be 'Bearer <jwt>'")
    })?;
    let identity = config
        .verifier
        .verify(&token, chrono::Utc::now())
        .map_err(|err| ApiError::unauthorized(err.code(), err.message()))?;
    crate::quota::check(env, crate::quota::Rate::Rest, &identity.user_id).await?;
    not_revoked(env, &identity).await?;
    Ok(identity)
}

/// 401 `token_revoked` when the user's D1 cut-off refuses this identity's token.
async fn not_revoked(env: &Env, identity: &Identity) -> Result<(), ApiError> {
    let cutoff =
        crate::store::revocations::cutoff(&crate::store::d1::db(env)?, &identity.user_id).await?;
    crate::auth::revocation::check(identity, cutoff)
}

/// Authenticates an internal call with `INTERNAL_API_TOKEN`.
pub fn authenticate_internal(req: &Request, config: &Config) -> Result<(), ApiError> {
    let header = crate::http::header(req, "authorization");
    if crate::auth::internal::is_authorized(header.as_deref(), config.internal_token.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "unauthorized",
            "send Authorization: Bearer <INTERNAL_API_TOKEN>",
        ))
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
