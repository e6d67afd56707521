//! The UserHub's notifier: deliver, or notify when nothing was delivered (`notify` has the
//! rules, `webpush` the wire format, `store::notify_log` the tables).
//!
//! | arrives                              | stored                                  | sent                                   |
//! |--------------------------------------|-----------------------------------------|----------------------------------------|
//! | a stream event asking for a notification, taken live by no Socket.IO connection | a pending notification due `NOTIFY_AFTER_SECONDS` later, if anyone would get it | — |
//! | `room.activity` that reached no device, for a room whose level notifies | a pending room note | — |
//! | a device connects                    | pending room notes forgotten            | — |
//! | alarm at `notify_at`                 | acknowledged events forgotten; the rest, once due, one notification queued per target | the Web Push and webhook POSTs due; 404/410 unsubscribes, 429/5xx retried |
//! | `POST` / `GET /subscriptions`, `POST /unsubscribe` | the user's subscriptions (oldest dropped beyond the cap) | — |
//! | `GET` / `PUT /room-level`            | the user's level for one room           | — |
//!
//! An event asks for a notification when it is a direct message from someone else or a
//! backend's push with `notify`. A user nobody could notify (no subscription, no webhook)
//! plans nothing, and no event wakes the hub by itself: one alarm at `notify_at`, the earliest
//! moment anything is due, planned with the hub's other work. When it fires, the pending
//! events a device has acknowledged since are forgotten, and the rest become one notification,
//! queued once per subscription and once for the webhook.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{Headers, Request, Response, Url};

use super::UserHub;
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::ApiError;
use crate::hubs::common::object;
use crate::hubs::stubs::user::{
    unsubscribed, RoomLevel, SubscribeRequest, Subscribed, SubscriptionView, Unsubscribe,
};
use crate::notify::{
    self, decide, next_look, retry_at, Answer, Kind, Level, Notification, Preview, WebPushConfig,
    WebhookConfig,
};
use crate::push_endpoint::check_endpoint;
use crate::store::notify_log::{Delivery, NotifyLog, Subscription, WEBHOOK};
use crate::webpush::{self, SubscriptionKeys};

/// Rooms a user may give a level other than the default.
pub const MAX_ROOM_LEVELS: i64 = 1000;

/// The preview of a `room.activity` note for a member whose level is `level`, if it notifies:
/// the note says whether the messages since the last one mentioned the member.
fn room_preview(note: &Value, level: Level) -> Option<Preview> {
    let mentioned = note.get("mentioned").and_then(Value::as_bool) == Some(true);
    if !level.notifies(mentioned) {
        return None;
    }
    let room_id = note.get("room_id")?.as_str()?.to_owned();
    let last = note.get("last_message")?;
    let text = |key: &str| last.get(key).and_then(Value::as_str).map(str::to_owned);
    let sender = text("sender_id");
    let body = text("preview").unwrap_or_default();
    Some(Preview {
        kind: Kind::Room,
        title: room_id.clone(),
        body: match &sender {
            Some(sender) => format!("{sender}: {body}"),
            None => body,
        },
        url: None,
        sender_id: sender,
        room_id: Some(room_id),
        message_id: text("id"),
        seq: None,
        urgent: mentioned,
    })
}

impl UserHub {
    pub(super) fn notify_log(&self) -> NotifyLog<'_> {
        NotifyLog::new(&self.local)
    }

    /// Whether anyone could be told about this user: a Web Push subscription (with VAPID
    /// configured) or the webhook.
    fn notifiable(&self, config: &Config) -> worker::Result<bool> {
        Ok(config.notify.webhook.is_some()
            || (config.notify.web_push.is_some() && self.notify_log().subscription_count()? > 0))
    }

    /// Remembers an event that may need a notification of `user`, due after the configured
    /// delay. The caller has delivered it; `taken_live` says a device took it in a way that
    /// needs no acknowledgement (a Socket.IO connection, a note delivered live).
    pub(super) async fn plan_notification(
        &self,
        user: &str,
        preview: Preview,
        taken_live: bool,
    ) -> Result<(), ApiError> {
        let config = object::config(&self.env)?;
        if taken_live || !self.notifiable(&config)? {
            return Ok(());
        }
        let due = now_ms() + config.notify.after_ms;
        self.notify_log()
            .add_pending(due, user, &preview.bounded())?;
        self.replan(&config)?;
        self.schedule_alarm().await?;
        Ok(())
    }

    /// A `room.activity` note delivered to `devices` of `user`: a pending room note when none
    /// got it and the user's level for the room asks for it.
    pub(super) async fn plan_room_note(
        &self,
        user: &str,
        note: &Value,
        devices: usize,
    ) -> Result<(), ApiError> {
        let Some(room_id) = note.get("room_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let level = self.notify_log().room_level(room_id)?;
        match room_preview(note, level) {
            Some(preview) => self.plan_notification(user, preview, devices > 0).await,
            None => Ok(()),
        }
    }

    /// A device acknowledged everything through `cursor`: pending events it covers are taken
    /// now rather than at their due time, and when nothing else waits the alarm is not woken
    /// for them. Reads nothing while nothing is pending (`notify_at` is in memory).
    pub(super) async fn on_acked(&self, cursor: i64) -> Result<(), ApiError> {
        let log = self.notify_log();
        if log.notify_at()?.is_none() {
            return Ok(());
        }
        let taken: Vec<i64> = log
            .pending()?
            .into_iter()
            .filter(|pending| pending.preview.seq.is_some_and(|seq| seq <= cursor))
            .map(|pending| pending.id)
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        log.forget_pending(&taken)?;
        self.replan(&*object::config(&self.env)?)?;
        self.schedule_alarm().await?;
        Ok(())
    }

    /// A device connected: it will see its rooms' unread counts, so room notes are moot (the
    /// accept plans the alarm afterwards, from what is left).
    pub(super) fn on_device_connected(&self) -> Result<(), ApiError> {
        let log = self.notify_log();
        if log.notify_at()?.is_none() {
            return Ok(());
        }
        log.forget_room_notes()?;
        self.replan(&*object::config(&self.env)?)?;
        Ok(())
    }

    /// Sets `notify_at` from what is stored now.
    fn replan(&self, config: &Config) -> worker::Result<()> {
        let log = self.notify_log();
        let earliest = log.pending()?.iter().map(|pending| pending.due_at).min();
        log.set_notify_at(next_look(
            earliest,
            log.last_sent()?,
            config.notify.min_interval_ms,
            log.next_delivery_at()?,
        ))
    }

    /// The alarm's part: decide on what is pending, then make the deliveries due. Runs only
    /// when `notify_at` has come.
    pub(super) async fn notify_round(&self, now: i64) -> worker::Result<()> {
        let log = self.notify_log();
        if log.notify_at()?.is_none_or(|at| at > now) {
            return Ok(());
        }
        let Ok(config) = object::config(&self.env) else {
            return log.set_notify_at(None);
        };
        let acked = self.log().max_cursor()?;
        let decision = decide(
            &log.pending()?,
            acked,
            now,
            log.last_sent()?,
            config.notify.min_interval_ms,
        );
        log.forget_pending(&decision.forget)?;
        if let Some(notification) = decision.send {
            self.queue(&config, &notification, now)?;
        }
        let due = log.due_deliveries(now)?;
        join_all(
            due.iter()
                .map(|delivery| self.deliver_one(&config, delivery)),
        )
        .await;
        self.replan(&config)
    }

    /// Queues one notification for each subscription and for the webhook.
    fn queue(&self, config: &Config, notification: &Notification, now: i64) -> worker::Result<()> {
        let log = self.notify_log();
        let mut targets: Vec<String> = Vec::new();
        if config.notify.web_push.is_some() {
            targets.extend(
                log.subscriptions()?
                    .into_iter()
                    .map(|subscription| subscription.id),
            );
        }
        if config.notify.webhook.is_some() {
            targets.push(WEBHOOK.to_owned());
        }
        let text = serde_json::to_string(notification)
            .map_err(|err| worker::Error::RustError(err.to_string()))?;
        let key = uuid::Uuid::new_v4().to_string();
        log.enqueue(&targets, &key, &text, now)?;
        let web_push = targets.iter().filter(|target| *target != WEBHOOK).count();
        for (label, count) in [
            ("web_push", web_push),
            ("webhook", targets.len() - web_push),
        ] {
            if count > 0 {
                crate::metrics::record(
                    crate::metrics::Point::new(crate::metrics::Kind::Notification, label)
                        .count(count as f64),
                );
            }
        }
        crate::log::info(
            "notify",
            json!({"notification": key, "user_id": notification.user_id, "kind": notification.kind, "events": notification.count, "web_push": web_push, "webhook": targets.len() > web_push}),
        );
        log.set_last_sent(now)
    }

    /// Makes one delivery attempt and records its outcome.
    async fn deliver_one(&self, config: &Config, delivery: &Delivery) {
        let answer = match (delivery.target.as_str(), &config.notify) {
            (
                WEBHOOK,
                notify::NotifyConfig {
                    webhook: Some(webhook),
                    ..
                },
            ) => self.call_webhook(webhook, delivery).await,
            (
                _,
                notify::NotifyConfig {
                    web_push: Some(web_push),
                    ..
                },
            ) => self.push_to(config, web_push, delivery).await,
            _ => Answer::Refused(0),
        };
        if let Err(err) = self.record_answer(delivery, answer) {
            crate::log::error(
                "notify.record_failed",
                json!({"delivery": delivery.id, "error": err.to_string()}),
            );
        }
    }

    fn record_answer(&self, delivery: &Delivery, answer: Answer) -> worker::Result<()> {
        let log = self.notify_log();
        let attempts = delivery.attempts + 1;
        match answer {
            Answer::Delivered => log.finish(delivery.id),
            Answer::Gone => {
                log.unsubscribe(&delivery.target)?;
                log.finish(delivery.id)
            }
            Answer::Retry { after_secs } => match retry_at(attempts, after_secs, now_ms()) {
                Some(at) => log.postpone(delivery.id, attempts, at),
                None => {
                    crate::log::warn(
                        "notify.gave_up",
                        json!({"notification": delivery.key, "target": delivery.target, "attempts": attempts}),
                    );
                    log.finish(delivery.id)
                }
            },
            Answer::Refused(status) => {
                crate::log::warn(
                    "notify.refused",
                    json!({"notification": delivery.key, "target": delivery.target, "status": status}),
                );
                log.finish(delivery.id)
            }
        }
    }

    /// One Web Push: the notification encrypted for the subscription, with VAPID.
    async fn push_to(
        &self,
        config: &Config,
        web_push: &WebPushConfig,
        delivery: &Delivery,
    ) -> Answer {
        let Some(subscription) = self
            .notify_log()
            .subscriptions()
            .ok()
            .and_then(|all| all.into_iter().find(|found| found.id == delivery.target))
        else {
            return Answer::Refused(0);
        };
        // Called only as stored, and only when stored in its canonical spelling: a row stored
        // before endpoints were made canonical may be a second name for another row's endpoint.
        let endpoint =
            match check_endpoint(&subscription.endpoint, &web_push.hosts, config.dev_mode) {
                Ok(endpoint) if endpoint.as_str() == subscription.endpoint => endpoint,
                _ => return Answer::Gone,
            };
        let url = endpoint.url();
        let Ok(keys) = SubscriptionKeys::parse(&subscription.p256dh, &subscription.auth) else {
            return Answer::Gone;
        };
        let Some(body) = webpush::seal(delivery.notification.as_bytes(), &keys) else {
            return Answer::Refused(413);
        };
        let urgent = serde_json::from_str::<Notification>(&delivery.notification)
            .is_ok_and(|notification| notification.urgent);
        let audience = url.origin().ascii_serialization();
        let authorization =
            web_push
                .vapid
                .authorization(&audience, &web_push.subject, now_ms() / 1000);
        let headers = [
            ("ttl", notify::TTL_SECS.to_string()),
            ("urgency", if urgent { "high" } else { "normal" }.to_owned()),
            ("topic", notify::TOPIC.to_owned()),
            ("content-encoding", "aes128gcm".to_owned()),
            ("content-type", "application/octet-stream".to_owned()),
            ("authorization", authorization),
        ];
        let body = worker::js_sys::Uint8Array::from(body.as_slice());
        post(url, &headers, body.into(), true).await
    }

    /// One webhook call: the notification with its id, the user and how many subscriptions
    /// they have, signed like the event hook.
    async fn call_webhook(&self, webhook: &WebhookConfig, delivery: &Delivery) -> Answer {
        let mut body: Value = serde_json::from_str(&delivery.notification).unwrap_or(json!({}));
        body["id"] = json!(delivery.key);
        body["subscriptions"] = json!(self.notify_log().subscription_count().unwrap_or(0));
        let body = body.to_string();
        let signature = crate::hook::sign(&webhook.secret, now_ms() / 1000, &body);
        let headers = [
            ("content-type", "application/json".to_owned()),
            (crate::hook::SIGNATURE_HEADER, signature),
        ];
        post(&webhook.url, &headers, body.into(), false).await
    }

    /// `POST /subscriptions`: stores a subscription the Worker checked.
    pub(super) async fn subscribe_call(&self, mut req: Request) -> object::Answer {
        let request: SubscribeRequest = crate::http::read_hub_json(&mut req).await?;
        Ok(crate::http::json(200, &self.subscribe(request)?)?)
    }

    /// `GET /subscriptions`.
    pub(super) fn subscriptions_call(&self) -> object::Answer {
        Ok(crate::http::json(200, &self.subscriptions()?)?)
    }

    /// `POST /unsubscribe {id}`: answers whether there was such a subscription.
    pub(super) async fn unsubscribe_call(&self, mut req: Request) -> object::Answer {
        let request: Unsubscribe = crate::http::read_hub_json(&mut req).await?;
        let found = self.notify_log().unsubscribe(&request.id)?;
        Ok(crate::http::json(200, &unsubscribed(found))?)
    }

    /// `POST /room-level {room_id, level?}`: sets the level when given; answers the level.
    pub(super) async fn room_level_call(&self, mut req: Request) -> object::Answer {
        let request: RoomLevel = crate::http::read_hub_json(&mut req).await?;
        Ok(crate::http::json(200, &self.room_level(request)?)?)
    }

    fn subscribe(&self, request: SubscribeRequest) -> Result<Subscribed, ApiError> {
        let config = object::config(&self.env)?;
        let subscription = Subscription {
            id: request.id,
            endpoint: request.endpoint,
            p256dh: request.p256dh,
            auth: request.auth,
            device: request.device,
            created_at: now_ms(),
        };
        let (created, dropped) = self
            .notify_log()
            .subscribe(&subscription, config.notify.max_subscriptions)?;
        let stored = self
            .notify_log()
            .subscriptions()?
            .into_iter()
            .find(|found| found.id == subscription.id)
            .unwrap_or(subscription);
        Ok(Subscribed {
            subscription: stored.into(),
            created,
            dropped,
        })
    }

    fn subscriptions(&self) -> Result<Vec<SubscriptionView>, ApiError> {
        Ok(self
            .notify_log()
            .subscriptions()?
            .into_iter()
            .map(SubscriptionView::from)
            .collect())
    }

    fn room_level(&self, request: RoomLevel) -> Result<RoomLevel, ApiError> {
        let log = self.notify_log();
        if let Some(level) = request.level {
            if !log.set_room_level(&request.room_id, level, MAX_ROOM_LEVELS)? {
                return Err(ApiError::new(
                    409,
                    "too_many_room_levels",
                    format!("at most {MAX_ROOM_LEVELS} rooms may have a level of their own"),
                ));
            }
        }
        let level = log.room_level(&request.room_id)?;
        Ok(RoomLevel {
            room_id: request.room_id,
            level: Some(level),
        })
    }
}

/// POSTs once, within [`notify::SEND_TIMEOUT_MS`], not following redirects (a push service or
/// webhook that redirects is refused: the body was meant for the URL configured).
async fn post(
    url: &Url,
    headers: &[(&str, String)],
    body: worker::wasm_bindgen::JsValue,
    push_service: bool,
) -> Answer {
    let shown = crate::push_endpoint::shown(url);
    let map = Headers::new();
    for (name, value) in headers {
        if map.set(name, value).is_err() {
            return Answer::Refused(0);
        }
    }
    let deadline = Duration::from_millis(notify::SEND_TIMEOUT_MS);
    let read = |answer: worker::Result<Response>| async {
        match answer {
            Ok(response) => answer_of(&response, push_service),
            Err(err) => {
                crate::log::warn(
                    "notify.unreachable",
                    json!({"host": shown, "error": err.to_string()}),
                );
                Answer::Retry { after_secs: None }
            }
        }
    };
    match crate::http::post_within(url.as_str(), &map, body, deadline, read).await {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            crate::log::warn(
                "notify.timeout",
                json!({"host": shown, "ms": notify::SEND_TIMEOUT_MS}),
            );
            Answer::Retry { after_secs: None }
        }
        Err(_) => Answer::Refused(0),
    }
}

fn answer_of(response: &Response, push_service: bool) -> Answer {
    let retry_after = response.headers().get("retry-after").ok().flatten();
    Answer::of(response.status_code(), retry_after.as_deref(), push_service)
}
