//! What an operator sees of a UserHub: its report (`GET /inspect`, the Worker's
//! `GET /internal/v1/users/{id}`; a Room's numbers are `room::inspect`). docs/PROTOCOL.md
//! ("Internal API") says what each field means.
//!
//! | arrives                              | stored                                   | sent                                          |
//! |--------------------------------------|------------------------------------------|-----------------------------------------------|
//! | `GET /inspect` (UserHub)             | — (reads only)                           | sockets (closing too), the stream's counters, cursors, revocation, `last_seen`, push state, the alarm and why |
//!
//! It only reads, and lazily: a table made by its first write (cursors, subscriptions, pending
//! notifications, deliveries) is read only when `meta` — already in memory — says it exists, so a
//! user who has nothing costs no query and gets a valid empty report; nothing here creates a
//! table or writes a value. (Addressing a hub at all runs its constructor, which gives a new
//! object its schema, as any request does — `GET /presence` too; this adds nothing to that.)
//!
//! Nothing secret leaves: a hub keeps no token, and a push subscription is shown by its
//! endpoint's host alone — the endpoint's path is the capability that addresses the browser,
//! and its keys stay in the hub. The alarm's reasons are worked out now from what is stored,
//! with the plan `schedule_alarm` sets (without recording anything), beside the time set.

use serde_json::{json, Value};
use worker::Request;

use super::UserHub;
use crate::hubs::common::alarm::alarm_view;
use crate::hubs::common::attachment::SocketInfo;
use crate::hubs::common::object::Answer;
use crate::store::notify_log::Subscription;
use crate::stream::Class;

/// Device cursors a report lists at most (the most recently moved): a device id a client does
/// not choose is new on every connect, so a user may have many.
pub const MAX_REPORTED_CURSORS: i64 = 100;

impl UserHub {
    /// `GET /inspect`: the user's report; `devices` is every socket the hub holds, oldest first,
    /// closing ones too (marked), and `open_devices` counts the others.
    pub(super) async fn inspect(&self, req: &Request) -> Answer {
        let user = crate::hubs::stubs::user::user_of(req)?;
        let log = self.log();
        let (cursors, cursor_count) = log.cursors(MAX_REPORTED_CURSORS)?;
        let mut sockets = self.sockets.all();
        sockets.sort_by_key(|info| info.opened_at);
        let plan = self.alarm_plan()?;
        let report = json!({
            "user_id": user,
            "open_devices": sockets.iter().filter(|info| !info.closing).count(),
            "devices": sockets.iter().map(device_view).collect::<Vec<_>>(),
            "stream": self.stream_view()?,
            "cursors": cursors,
            "cursor_count": cursor_count,
            "revoked_before": log.revoked_before()?,
            "last_seen": log.last_seen()?,
            "push": self.push_view()?,
            "alarm": alarm_view(&self.local, &self.sockets, &plan).await?,
        });
        Ok(crate::http::json(200, &report)?)
    }

    /// The stream's position and each class's counters (all in `meta`).
    fn stream_view(&self) -> worker::Result<Value> {
        let log = self.log();
        Ok(json!({
            "head_seq": log.last_seq()?,
            "pruned_through": log.pruned_through()?,
            "classes": {
                "backend": log.class_stats(Class::Backend)?,
                "chat": log.class_stats(Class::Chat)?,
            },
            "prune_at": log.prune_at()?,
        }))
    }

    /// Subscriptions (without their endpoints and keys) and the notifications in flight.
    fn push_view(&self) -> worker::Result<Value> {
        let notify = self.notify_log();
        let subscriptions: Vec<Value> = notify
            .subscriptions()?
            .iter()
            .map(subscription_view)
            .collect();
        Ok(json!({
            "subscriptions": subscriptions,
            "pending": notify.pending_count()?,
            "queued": notify.queued_count()?,
            "notify_at": notify.notify_at()?,
            "last_sent": notify.last_sent()?,
        }))
    }
}

/// One socket as a report shows it.
fn device_view(info: &SocketInfo) -> Value {
    json!({
        "conn_id": info.conn_id,
        "device": info.device,
        "kind": if info.sio.is_some() { "socketio" } else { "websocket" },
        "carrier": info.carrier,
        "connected_at": info.opened_at,
        "expires_at": info.expires_at,
        "closing": info.closing,
        "syncing": info.syncing,
    })
}

/// A subscription as a report shows it: which push service, never the endpoint or keys.
fn subscription_view(subscription: &Subscription) -> Value {
    json!({
        "id": subscription.id,
        "host": endpoint_host(&subscription.endpoint),
        "device": subscription.device,
        "created_at": subscription.created_at,
    })
}

/// The host of a push endpoint (its path is a capability, and stays in the hub).
fn endpoint_host(endpoint: &str) -> Option<String> {
    worker::Url::parse(endpoint)
        .ok()?
        .host_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_shows_only_its_host() {
        assert_eq!(
            endpoint_host("https://fcm.googleapis.com/fcm/send/secret-capability?x=1").as_deref(),
            Some("fcm.googleapis.com")
        );
        assert_eq!(
            endpoint_host("http://127.0.0.1:9/push/abc").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(endpoint_host("not a url"), None);
    }
}
