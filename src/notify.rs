//! Deliver or notify: the rules for telling a user whose devices did not take an event.
//!
//! Switchboard knows which devices received and acknowledged each event, so it can notify only
//! when nothing was delivered, instead of asking the application to guess who is offline. An
//! event that asks for it (a direct message, a backend push with `notify`, a room message the
//! member wants to hear about) becomes a *pending* notification in the user's hub, due
//! `NOTIFY_AFTER_SECONDS` later. When it falls due and no device has acknowledged its seq (a
//! room note: no device got it live and none connected since), the hub sends **one**
//! notification for everything pending — a count and the latest preview — to each of the user's
//! Web Push subscriptions and to the backend webhook, at most once per
//! `NOTIFY_MIN_INTERVAL_SECONDS`. Deliveries that fail with 429 or 5xx are retried with backoff.
//!
//! This file is the pure part: configuration, the payload and its preview, the decision at the due
//! time, and the retry schedule. The hub's side is `hubs::user::notifier`; the wire format of one
//! push is `webpush`; which endpoints may be called, and in which spelling, is `push_endpoint`.

use serde::{Deserialize, Serialize};
use worker::Url;

use crate::direct::DirectMessage;
use crate::push_endpoint::{is_local_http, shown, DEFAULT_PUSH_SERVICE_HOSTS};
use crate::vars::{number, MIN_SECRET_BYTES};
use crate::webpush::Vapid;

/// A preview's title and body are cut to these many characters: a notification shows a line
/// or two, and a whole long message must never ride in a push payload.
pub const TITLE_CHARS: usize = 100;
pub const BODY_CHARS: usize = 200;
pub const URL_CHARS: usize = 1024;
/// A push service keeps an undelivered notification this long (`TTL`).
pub const TTL_SECS: i64 = 24 * 60 * 60;
/// Web Push replaces an undelivered notification with the same `Topic`.
pub const TOPIC: &str = "switchboard";
/// Attempts per delivery (the first and its retries); the retries wait 1 s, 2 s, 4 s, 8 s, or
/// the longer `Retry-After`, never more than [`MAX_RETRY_WAIT_MS`].
pub const MAX_ATTEMPTS: i64 = 5;
pub const MAX_RETRY_WAIT_MS: i64 = 10 * 60 * 1000;
/// One outbound call (push service or webhook) is given this long.
pub const SEND_TIMEOUT_MS: u64 = 5_000;
/// Pending notifications kept per user; the oldest are dropped beyond it (they are collapsed
/// into one count anyway).
pub const MAX_PENDING: i64 = 100;

/// Web Push: the VAPID key pair and the contact push services see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPushConfig {
    pub vapid: Vapid,
    pub subject: String,
    /// Hosts subscription endpoints may name.
    pub hosts: Vec<String>,
}

/// The backend that hears about every notification.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: Url,
    pub secret: String,
}

/// Never prints the secret or the URL's query.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &shown(&self.url))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub web_push: Option<WebPushConfig>,
    pub webhook: Option<WebhookConfig>,
    pub after_ms: i64,
    pub min_interval_ms: i64,
    pub max_subscriptions: i64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            web_push: None,
            webhook: None,
            after_ms: 10_000,
            min_interval_ms: 30_000,
            max_subscriptions: 10,
        }
    }
}

impl NotifyConfig {
    /// Reads `VAPID_PUBLIC_KEY`, `VAPID_PRIVATE_KEY`, `VAPID_SUBJECT`, `PUSH_SERVICE_HOSTS`,
    /// `NOTIFY_WEBHOOK_URL`, `NOTIFY_WEBHOOK_SECRET`, `NOTIFY_AFTER_SECONDS`,
    /// `NOTIFY_MIN_INTERVAL_SECONDS` and `MAX_PUSH_SUBSCRIPTIONS`. Every problem names its
    /// variable, never a value.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        dev_mode: bool,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let defaults = Self::default();
        let mut seconds = |name: &str, default: i64, max: i64| {
            number(get, name, default / 1000, 0, max)
                .map_err(|problem| problems.push(problem))
                .map_or(default, |secs| secs * 1000)
        };
        let after_ms = seconds("NOTIFY_AFTER_SECONDS", defaults.after_ms, 3600);
        let min_interval_ms = seconds(
            "NOTIFY_MIN_INTERVAL_SECONDS",
            defaults.min_interval_ms,
            86_400,
        );
        let max_subscriptions = number(
            get,
            "MAX_PUSH_SUBSCRIPTIONS",
            defaults.max_subscriptions,
            1,
            100,
        )
        .map_err(|problem| problems.push(problem))
        .unwrap_or(defaults.max_subscriptions);
        let web_push = web_push(get)
            .map_err(|problem| problems.push(problem))
            .ok()
            .flatten();
        let webhook = webhook(get, dev_mode)
            .map_err(|problem| problems.push(problem))
            .ok()
            .flatten();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            web_push,
            webhook,
            after_ms,
            min_interval_ms,
            max_subscriptions,
        })
    }
}

fn web_push(get: &impl Fn(&str) -> Option<String>) -> Result<Option<WebPushConfig>, String> {
    let (public, private) = match (get("VAPID_PUBLIC_KEY"), get("VAPID_PRIVATE_KEY")) {
        (None, None) => return Ok(None),
        (Some(public), Some(private)) => (public, private),
        _ => {
            return Err(
                "VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY go together: set both or neither"
                    .to_owned(),
            )
        }
    };
    let vapid = Vapid::parse(&public, &private)?;
    let subject = get("VAPID_SUBJECT")
        .map(|subject| subject.trim().to_owned())
        .filter(|subject| subject.starts_with("mailto:") || subject.starts_with("https://"))
        .ok_or("VAPID_SUBJECT must be a mailto: or https: contact for push services")?;
    let hosts = get("PUSH_SERVICE_HOSTS")
        .unwrap_or_else(|| DEFAULT_PUSH_SERVICE_HOSTS.to_owned())
        .split(',')
        .map(|host| host.trim().to_ascii_lowercase())
        .filter(|host| !host.is_empty())
        .collect::<Vec<_>>();
    if hosts.is_empty() {
        return Err("PUSH_SERVICE_HOSTS must name at least one host".to_owned());
    }
    Ok(Some(WebPushConfig {
        vapid,
        subject,
        hosts,
    }))
}

fn webhook(
    get: &impl Fn(&str) -> Option<String>,
    dev_mode: bool,
) -> Result<Option<WebhookConfig>, String> {
    let Some(raw) = get("NOTIFY_WEBHOOK_URL") else {
        return Ok(None);
    };
    let url = Url::parse(raw.trim())
        .ok()
        .filter(|url| url.username().is_empty() && url.password().is_none())
        .filter(|url| url.scheme() == "https" || (dev_mode && is_local_http(url)))
        .ok_or("NOTIFY_WEBHOOK_URL must be an https URL without credentials (http://127.0.0.1 or localhost only with DEV_MODE)")?;
    let secret = get("NOTIFY_WEBHOOK_SECRET")
        .filter(|secret| secret.len() >= MIN_SECRET_BYTES)
        .ok_or_else(|| format!("NOTIFY_WEBHOOK_URL needs NOTIFY_WEBHOOK_SECRET of at least {MIN_SECRET_BYTES} bytes"))?;
    Ok(Some(WebhookConfig { url, secret }))
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A direct message.
    Message,
    /// A backend's push with `notify`.
    Push,
    /// A room message.
    Room,
}

/// What a backend asks a push to show when it becomes a notification
/// (`POST /internal/v1/push` with `notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl NotifyRequest {
    /// A title of 1 to 1,000 characters, a body of at most 10,000 (both are cut for the
    /// preview), and a URL (absolute http(s), or a path) of at most 1,024.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.title.trim().is_empty() || self.title.chars().count() > 1000 {
            return Err("notify.title must be 1 to 1000 characters");
        }
        if self.body.chars().count() > 10_000 {
            return Err("notify.body must be at most 10000 characters");
        }
        if let Some(url) = &self.url {
            let absolute =
                Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if url.chars().count() > URL_CHARS || !(absolute || url.starts_with('/')) {
                return Err("notify.url must be an http(s) URL or a path, at most 1024 characters");
            }
        }
        Ok(())
    }
}

/// Which messages of one room a member is notified of (`PUT /v1/rooms/{id}/notifications`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every message while the member is away.
    All,
    /// Messages whose `data.mentions` lists the member (the default).
    #[default]
    Mentions,
    /// None: the room is muted.
    None,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Mentions => "mentions",
            Self::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "mentions" => Some(Self::Mentions),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Whether a room message that `mentioned` the member (or not) notifies them.
    pub fn notifies(self, mentioned: bool) -> bool {
        match self {
            Self::All => true,
            Self::Mentions => mentioned,
            Self::None => false,
        }
    }
}

/// What a notification shows of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub sender_id: Option<String>,
    pub room_id: Option<String>,
    pub message_id: Option<String>,
    /// The event's seq in the user's stream (room notes are not in it).
    pub seq: Option<i64>,
    /// `Urgency: high` (a direct message, a mention) rather than `normal`.
    pub urgent: bool,
}

impl Preview {
    /// The preview with title, body and URL cut to their bounds.
    pub fn bounded(mut self) -> Self {
        self.title = cut(&self.title, TITLE_CHARS);
        self.body = cut(&self.body, BODY_CHARS);
        self.url = self.url.filter(|url| url.chars().count() <= URL_CHARS);
        self
    }
}

/// `text` cut to at most `max` characters, ending with `…` when it was cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

/// One notification: the latest preview and how many events it stands for. This JSON is the
/// decrypted Web Push payload; the webhook's body adds `id`, `user_id` and `subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub user_id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub count: usize,
    pub kind: Kind,
    pub sender_id: Option<String>,
    pub room_id: Option<String>,
    pub message_id: Option<String>,
    pub seq: Option<i64>,
    pub urgent: bool,
    pub at: i64,
}

impl Notification {
    pub fn new(user_id: String, latest: Preview, count: usize, at: i64) -> Self {
        Self {
            user_id,
            title: latest.title,
            body: latest.body,
            url: latest.url,
            count,
            kind: latest.kind,
            sender_id: latest.sender_id,
            room_id: latest.room_id,
            message_id: latest.message_id,
            seq: latest.seq,
            urgent: latest.urgent,
            at,
        }
    }
}

/// A pending notification as the hub stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: i64,
    pub due_at: i64,
    /// Whose notification it is (the hub's user).
    pub user_id: String,
    pub preview: Preview,
}

/// What the hub does with its pending notifications at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Pending ids to forget: taken by a device, or sent now.
    pub forget: Vec<i64>,
    /// The notification to send now, if one is due.
    pub send: Option<Notification>,
    /// When to look again, if anything stays pending.
    pub next_at: Option<i64>,
}

/// Decides at `now`: events whose seq a device acknowledged (`acked`, the highest cursor) are
/// taken; if the earliest untaken one is due and the last notification went out at least
/// `min_interval_ms` ago, every untaken one goes into one notification (count, latest preview).
pub fn decide(
    pending: &[Pending],
    acked: i64,
    now: i64,
    last_sent: Option<i64>,
    min_interval_ms: i64,
) -> Decision {
    let (taken, untaken): (Vec<&Pending>, Vec<&Pending>) = pending
        .iter()
        .partition(|pending| pending.preview.seq.is_some_and(|seq| seq <= acked));
    let mut forget: Vec<i64> = taken.iter().map(|pending| pending.id).collect();
    let earliest = untaken.iter().map(|pending| pending.due_at).min();
    let latest = untaken.iter().max_by_key(|pending| pending.id);
    let (Some(earliest), Some(latest)) = (earliest, latest) else {
        return Decision {
            forget,
            send: None,
            next_at: None,
        };
    };
    let allowed_at = last_sent.map_or(i64::MIN, |sent| sent + min_interval_ms);
    let ready_at = earliest.max(allowed_at);
    if ready_at > now {
        return Decision {
            forget,
            send: None,
            next_at: Some(ready_at),
        };
    }
    let urgent = untaken.iter().any(|pending| pending.preview.urgent);
    forget.extend(untaken.iter().map(|pending| pending.id));
    Decision {
        forget,
        send: Some(Notification::new(
            latest.user_id.clone(),
            Preview {
                urgent,
                ..latest.preview.clone()
            },
            untaken.len(),
            now,
        )),
        next_at: None,
    }
}

/// When the hub must next look: at the earliest pending due time (not before the minimum
/// interval allows another notification), or at the next delivery, whichever is first.
pub fn next_look(
    earliest_due: Option<i64>,
    last_sent: Option<i64>,
    min_interval_ms: i64,
    next_delivery: Option<i64>,
) -> Option<i64> {
    let allowed_at = last_sent.map_or(i64::MIN, |sent| sent + min_interval_ms);
    let pending = earliest_due.map(|due| due.max(allowed_at));
    [pending, next_delivery].into_iter().flatten().min()
}

/// How a push service or the webhook answered one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Delivered,
    /// 404 or 410 from a push service: the subscription is gone for good.
    Gone,
    /// 429, 5xx, a timeout or no connection: try again later (`Retry-After` seconds, if said).
    Retry { after_secs: Option<i64> },
    /// Any other status: the request itself is wrong; retrying would not help.
    Refused(u16),
}

impl Answer {
    pub fn of(status: u16, retry_after: Option<&str>, push_service: bool) -> Self {
        match status {
            200..=299 => Self::Delivered,
            404 | 410 if push_service => Self::Gone,
            429 | 500..=599 => Self::Retry {
                after_secs: retry_after.and_then(|value| value.trim().parse().ok()),
            },
            other => Self::Refused(other),
        }
    }
}

/// When attempt `attempts + 1` may run after a retryable failure at `now`: 1 s doubled per
/// attempt so far, or the longer `Retry-After`, capped; `None` once [`MAX_ATTEMPTS`] are spent.
pub fn retry_at(attempts: i64, after_secs: Option<i64>, now: i64) -> Option<i64> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let backoff = 1000i64 << (attempts - 1).clamp(0, 20);
    let asked = after_secs.unwrap_or(0).clamp(0, MAX_RETRY_WAIT_MS / 1000) * 1000;
    Some(now + backoff.max(asked).min(MAX_RETRY_WAIT_MS))
}

/// The preview of a stream event, if it asks to notify `user`: a direct message someone else
/// sent, or a backend push with `notify`. Its seq is set once appended.
pub fn preview_of(
    user: &str,
    event: &str,
    data: &serde_json::Value,
    asked: Option<&NotifyRequest>,
) -> Option<Preview> {
    if let Some(asked) = asked {
        return Some(Preview {
            kind: Kind::Push,
            title: asked.title.clone(),
            body: asked.body.clone(),
            url: asked.url.clone(),
            sender_id: None,
            room_id: None,
            message_id: None,
            seq: None,
            urgent: false,
        });
    }
    if event != "message" {
        return None;
    }
    let message: DirectMessage = serde_json::from_value(data.clone()).ok()?;
    if message.sender_id == user {
        return None;
    }
    let content = message.content;
    let body = if content.body.is_empty() {
        format!("[{}]", content.kind)
    } else {
        content.body
    };
    Some(Preview {
        kind: Kind::Message,
        title: content.title.unwrap_or_else(|| message.sender_id.clone()),
        body,
        url: None,
        sender_id: Some(message.sender_id),
        room_id: None,
        message_id: Some(message.id),
        seq: None,
        urgent: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(seq: Option<i64>, title: &str) -> Preview {
        Preview {
            kind: Kind::Message,
            title: title.into(),
            body: "hi".into(),
            url: None,
            sender_id: Some("alice".into()),
            room_id: None,
            message_id: None,
            seq,
            urgent: false,
        }
    }

    fn pending(id: i64, seq: Option<i64>, due_at: i64) -> Pending {
        Pending {
            id,
            due_at,
            user_id: "bob".into(),
            preview: preview(seq, &format!("t{id}")),
        }
    }

    #[test]
    fn an_acknowledged_event_is_never_notified() {
        let decision = decide(&[pending(1, Some(5), 100)], 5, 200, None, 30_000);
        assert_eq!(decision.forget, vec![1]);
        assert_eq!(decision.send, None);
        assert_eq!(decision.next_at, None);
    }

    #[test]
    fn nothing_goes_out_before_the_earliest_is_due() {
        let decision = decide(&[pending(1, Some(5), 300)], 4, 200, None, 30_000);
        assert_eq!(decision.send, None);
        assert_eq!(decision.next_at, Some(300));
        assert!(decision.forget.is_empty());
    }

    #[test]
    fn everything_untaken_collapses_into_one_with_the_latest_preview() {
        let all: Vec<Pending> = (1..=10).map(|i| pending(i, Some(i), 100 + i)).collect();
        let decision = decide(&all, 0, 101, None, 30_000);
        let sent = decision.send.unwrap();
        assert_eq!(sent.count, 10);
        assert_eq!(sent.title, "t10");
        assert_eq!(decision.forget.len(), 10);
    }

    #[test]
    fn the_minimum_interval_holds_a_due_notification_back() {
        let decision = decide(&[pending(1, Some(5), 100)], 0, 200, Some(150), 1_000);
        assert_eq!(decision.send, None);
        assert_eq!(decision.next_at, Some(1_150));
    }

    #[test]
    fn room_notes_have_no_seq_and_are_never_taken_by_a_cursor() {
        let decision = decide(&[pending(1, None, 100)], i64::MAX, 100, None, 0);
        assert_eq!(decision.send.unwrap().count, 1);
    }

    #[test]
    fn urgency_of_any_event_makes_the_collapsed_one_urgent() {
        let mut urgent = pending(1, Some(1), 100);
        urgent.preview.urgent = true;
        let decision = decide(&[urgent, pending(2, Some(2), 100)], 0, 100, None, 0);
        assert!(decision.send.unwrap().urgent);
    }

    #[test]
    fn the_next_look_waits_for_the_interval_but_not_for_deliveries() {
        assert_eq!(next_look(None, None, 1_000, None), None);
        assert_eq!(next_look(Some(100), Some(50), 1_000, None), Some(1_050));
        assert_eq!(next_look(Some(100), Some(50), 1_000, Some(700)), Some(700));
        assert_eq!(next_look(Some(100), None, 1_000, Some(700)), Some(100));
    }

    #[test]
    fn answers() {
        assert_eq!(Answer::of(201, None, true), Answer::Delivered);
        assert_eq!(Answer::of(410, None, true), Answer::Gone);
        assert_eq!(Answer::of(404, None, false), Answer::Refused(404));
        assert_eq!(
            Answer::of(429, Some("7"), true),
            Answer::Retry {
                after_secs: Some(7)
            }
        );
        assert_eq!(
            Answer::of(503, None, false),
            Answer::Retry { after_secs: None }
        );
        assert_eq!(Answer::of(400, None, true), Answer::Refused(400));
    }

    #[test]
    fn retries_back_off_and_honour_retry_after() {
        assert_eq!(retry_at(1, None, 0), Some(1_000));
        assert_eq!(retry_at(2, None, 0), Some(2_000));
        assert_eq!(retry_at(1, Some(30), 0), Some(30_000));
        assert_eq!(retry_at(1, Some(999_999), 0), Some(MAX_RETRY_WAIT_MS));
        assert_eq!(retry_at(MAX_ATTEMPTS, None, 0), None);
    }

    #[test]
    fn previews_are_cut() {
        let long = Preview {
            body: "x".repeat(5000),
            title: "y".repeat(500),
            ..preview(None, "")
        }
        .bounded();
        assert_eq!(long.body.chars().count(), BODY_CHARS);
        assert!(long.body.ends_with('…'));
        assert_eq!(long.title.chars().count(), TITLE_CHARS);
    }

    /// The configuration the variables `pairs` make.
    fn configure(pairs: &[(&str, &str)], dev_mode: bool) -> Result<NotifyConfig, Vec<String>> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        NotifyConfig::from_lookup(&get, dev_mode)
    }

    /// The configuration the VAPID key pair and the variables `more` make, outside dev mode.
    fn with_keys(more: &[(&str, &str)]) -> Result<NotifyConfig, Vec<String>> {
        let keys = [("VAPID_PUBLIC_KEY", PUBLIC), ("VAPID_PRIVATE_KEY", PRIVATE)];
        configure(&[&keys, more].concat(), false)
    }

    const PUBLIC: &str =
        "BPZ1yN18SsyBT5Pb42sUKBoM-XVY4y61S4CUJLsdu6iEu8rwH2YylGoE15W2S-Ma9EdA4R1KQ9muhry2HnlTIb4";
    const PRIVATE: &str = "0femahwMjy6y9NIT7X5mLWe7vXVsX6GxAfL7Ax5Crh4";

    #[test]
    fn configuration_fails_safe() {
        let off = configure(&[], false).unwrap();
        assert!(off.web_push.is_none() && off.webhook.is_none());
        assert_eq!(off.after_ms, 10_000);

        let on = with_keys(&[
            ("VAPID_SUBJECT", "mailto:ops@example.com"),
            ("NOTIFY_AFTER_SECONDS", "2"),
        ])
        .unwrap();
        assert_eq!(on.web_push.unwrap().vapid.public_key(), PUBLIC);
        assert_eq!(on.after_ms, 2_000);

        let problems = with_keys(&[
            ("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("NOTIFY_AFTER_SECONDS", "-1"),
        ])
        .unwrap_err()
        .join("; ");
        assert!(problems.contains("VAPID_SUBJECT"), "{problems}");
        assert!(
            problems.contains("NOTIFY_WEBHOOK_URL must be an https URL"),
            "{problems}"
        );
        assert!(problems.contains("NOTIFY_AFTER_SECONDS"), "{problems}");
        assert!(!problems.contains(PRIVATE));

        let half = configure(&[("VAPID_PUBLIC_KEY", PUBLIC)], true);
        assert!(half.unwrap_err()[0].contains("go together"));

        let no_secret = configure(&[("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook")], true);
        assert!(no_secret.unwrap_err()[0].contains("NOTIFY_WEBHOOK_SECRET"));
    }
}
