//! Direct messages over HTTP: sending (`POST /v1/messages`; the operation itself, shared with the
//! user socket's `message.send`, is `hubs::user::direct`), the sender's and receiver's management
//! routes, and the admin routes.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use worker::Env;

use super::call::{ok, respond, validation, Answer, Call};
use crate::auth::jwt::Identity;
use crate::cursor::PageCursor;
use crate::direct::{DirectMessage, IdsBody};
use crate::error::ApiError;
use crate::hubs::stubs::user::{self, PushRequest};
use crate::hubs::user::direct::{self, FAN_OUT};
use crate::store::d1;
use crate::store::direct::{self as store, AdminFilter, Party};
use crate::stream::Class;

pub async fn send(mut call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let body: Value = call.body().await?;
    let outcome = direct::send(call.env, &me.user_id, body, None).await?;
    let status = if outcome.duplicate { 200 } else { 201 };
    respond(
        status,
        &json!({"message": outcome.message, "duplicate": outcome.duplicate}),
    )
}

fn message_id(raw: &str) -> Result<&str, ApiError> {
    crate::direct::validate_message_id(raw).map_err(validation)?;
    Ok(raw)
}

/// The ids a bulk call names (`{"ids": [...]}`): valid, deduplicated, 1 to `MAX_IDS` of them.
async fn ids(call: &mut Call<'_>) -> Result<Vec<String>, ApiError> {
    let body: IdsBody = call.body().await?;
    body.validate().map_err(|err| validation(err.to_string()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no message '{id}' for you"))
}

/// A page of messages, newest first, with the cursor of the next page when it was full.
fn messages<T: Serialize>(
    list: &[T],
    limit: i64,
    message: impl Fn(&T) -> &DirectMessage,
) -> Answer {
    super::call::listing("messages", list, limit, |row| {
        let m = message(row);
        PageCursor::new(m.created_at, m.id.clone())
    })
}

/// Deletes one message for the caller as `party`; 404 when it is not theirs (or already gone).
pub async fn delete_one(call: Call<'_>, party: Party, id: &str) -> Answer {
    let me = call.user().await?;
    let id = message_id(id)?;
    let deleted = delete(call.env, party, &me, &[id.to_owned()]).await?;
    if deleted.is_empty() {
        return Err(not_found(id));
    }
    ok(&json!({"deleted": deleted}))
}

/// Deletes up to 100 messages for the caller as `party`.
pub async fn delete_many(mut call: Call<'_>, party: Party) -> Answer {
    let me = call.user().await?;
    let ids = ids(&mut call).await?;
    let deleted = delete(call.env, party, &me, &ids).await?;
    ok(&bulk_answer("deleted", &ids, deleted))
}

/// Deletes `ids` for `me` as `party`; the ids that were theirs and are now gone.
async fn delete(
    env: &Env,
    party: Party,
    me: &Identity,
    ids: &[String],
) -> Result<Vec<String>, ApiError> {
    let db = d1::db(env)?;
    Ok(store::delete(&db, party, &me.user_id, ids, crate::clock::now_ms()).await?)
}

// ----- the sender -----

pub async fn sent(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let page = call.page()?;
    let db = d1::db(call.env)?;
    let list = store::sent(&db, &me.user_id, page.cursor.as_ref(), page.limit).await?;
    messages(&list, page.limit, |m| &m.message)
}

/// `{"<verb>": [...], "not_found": [...]}`: which ids changed and which were not the caller's
/// (or did not exist, or had already changed).
fn bulk_answer(verb: &str, asked: &[String], changed: Vec<String>) -> Value {
    let not_found: Vec<&String> = asked.iter().filter(|id| !changed.contains(id)).collect();
    json!({verb: changed, "not_found": not_found})
}

// ----- the receiver -----

pub async fn received(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let page = call.page()?;
    let unread_only = match call.query("unread").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(validation("unread must be true or false")),
    };
    let list = store::received(
        &d1::db(call.env)?,
        &me.user_id,
        unread_only,
        page.cursor.as_ref(),
        page.limit,
    )
    .await?;
    messages(&list, page.limit, |m| &m.message)
}

/// Reads one received message, marking it read (and telling its sender) the first time.
pub async fn read_one(call: Call<'_>, id: &str) -> Answer {
    let me = call.user().await?;
    let id = message_id(id)?;
    let env = call.env;
    let db = d1::db(env)?;
    let mut found = store::received_one(&db, &me.user_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if found.read_at.is_none() {
        let now = crate::clock::now_ms();
        let newly = store::mark_read(&db, &me.user_id, &[id.to_owned()], now).await?;
        tell_senders(env, &me, &newly, now).await;
        found.read_at = Some(now);
    }
    ok(&found)
}

pub async fn read_many(mut call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let ids = ids(&mut call).await?;
    let now = crate::clock::now_ms();
    let newly = store::mark_read(&d1::db(call.env)?, &me.user_id, &ids, now).await?;
    tell_senders(call.env, &me, &newly, now).await;
    let changed = newly.iter().map(|n| n.message_id.clone()).collect();
    ok(&bulk_answer("read", &ids, changed))
}

/// Pushes `message.read` to each sender whose messages were newly read, one event per sender.
/// Read state is already in D1; a sender that cannot be reached sees it in its sent list.
async fn tell_senders(env: &Env, reader: &Identity, newly: &[store::NewlyRead], now: i64) {
    let mut by_sender: Vec<(String, Vec<String>)> = Vec::new();
    for read in newly {
        match by_sender
            .iter_mut()
            .find(|(sender, _)| *sender == read.sender_id)
        {
            Some((_, ids)) => ids.push(read.message_id.clone()),
            None => by_sender.push((read.sender_id.clone(), vec![read.message_id.clone()])),
        }
    }
    stream::iter(by_sender)
        .for_each_concurrent(FAN_OUT, |(sender, ids)| async move {
            let request = PushRequest {
                event: "message.read".into(),
                data: json!({"reader_id": reader.user_id, "message_ids": ids, "read_at": now}),
                idempotency_key: None,
                class: Class::Chat,
                notify: None,
            };
            if let Err(err) = user::push(env, &sender, &request).await {
                crate::log::warn(
                    "read_receipt.failed",
                    serde_json::json!({"user_id": sender, "error": err.to_string()}),
                );
            }
        })
        .await;
}

pub async fn unread_count(call: Call<'_>) -> Answer {
    let me = call.user().await?;
    let unread = store::unread_count(&d1::db(call.env)?, &me.user_id).await?;
    ok(&json!({"unread": unread}))
}

// ----- admins (`roles` contains `admin`) -----

async fn admin(call: &Call<'_>) -> Result<Identity, ApiError> {
    let me = call.user().await?;
    if !me.is_admin() {
        return Err(ApiError::forbidden(
            "forbidden",
            "this route needs the admin role",
        ));
    }
    Ok(me)
}

fn time_param(call: &Call<'_>, name: &str) -> Result<Option<i64>, ApiError> {
    call.query(name)
        .map(|raw| {
            raw.parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| validation(format!("{name} must be unix milliseconds")))
        })
        .transpose()
}

fn user_param(call: &Call<'_>, name: &str) -> Result<Option<String>, ApiError> {
    let value = call.query(name);
    if let Some(user) = &value {
        crate::ids::validate_user_id(user).map_err(|why| validation(format!("{name}: {why}")))?;
    }
    Ok(value)
}

pub async fn admin_list(call: Call<'_>) -> Answer {
    admin(&call).await?;
    let page = call.page()?;
    let filter = AdminFilter {
        sender: user_param(&call, "sender")?,
        receiver: user_param(&call, "receiver")?,
        from: time_param(&call, "from")?,
        until: time_param(&call, "until")?,
    };
    let db = d1::db(call.env)?;
    let list = store::admin_list(&db, &filter, page.cursor.as_ref(), page.limit).await?;
    messages(&list, page.limit, |m| &m.message)
}

pub async fn admin_delete(call: Call<'_>, id: &str) -> Answer {
    admin(&call).await?;
    let id = message_id(id)?;
    delete_for_everyone(call.env, id).await
}

/// `DELETE /v1/messages/sent/{id}?everyone=true`: the sender recalls a message within
/// `RECALL_WINDOW_SECONDS`, exactly as an admin deletes one.
pub async fn recall(call: Call<'_>, id: &str) -> Answer {
    let me = call.user().await?;
    let id = message_id(id)?;
    let sent_at = store::sent_at(&d1::db(call.env)?, &me.user_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    crate::message::within_recall_window(
        sent_at,
        crate::clock::now_ms(),
        call.config.limits.recall_window_secs,
    )?;
    delete_for_everyone(call.env, id).await
}

/// Deletes a direct message for everyone: D1 first (REST forgets it; its row stays as a
/// tombstone for a retry of its `client_id`), then every party's stream (tombstones,
/// `message.deleted`).
async fn delete_for_everyone(env: &Env, id: &str) -> Answer {
    let parties = store::admin_delete(&d1::db(env)?, id, crate::clock::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no message '{id}'")))?;
    let unreached = direct::recall(env, id, parties).await;
    if !unreached.is_empty() {
        return Err(ApiError::new(
            502,
            "delivery_incomplete",
            format!(
                "message {id} is deleted but the streams of {} still hold it; repeat the call",
                unreached.join(", ")
            ),
        ));
    }
    ok(&json!({"deleted": [id]}))
}
