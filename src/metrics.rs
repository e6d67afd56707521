//! Metrics: data points on the platform's engine, and counters of this isolate.
//!
//! Each meaningful event is one data point in Workers Analytics Engine when the `METRICS`
//! binding exists (without it nothing is written and nothing fails): `blob1` the kind (the
//! [`Kind`] names below), `blob2` a low-cardinality label (a close or refusal code, a limit, an
//! event class), `blob3` the subject (a room id for room messages, else empty), `double1` a
//! count, `double2` a value (milliseconds, bytes or seqs — each kind says which), `index1` the
//! kind. docs/OPERATIONS.md has the SQL that answers "messages per minute by room", "refusals by
//! code" and "p95 delivery per hour" from these columns.
//!
//! The same events are counted in memory per isolate (kind and label, never the subject, so the
//! map stays small), and `GET /internal/v1/metrics` shows the counters of the isolate that
//! answers it in Prometheus text: exact for that isolate since it started, and no more — other
//! isolates, and the Durable Objects, count their own (Analytics Engine has them all).

use std::cell::RefCell;
use std::collections::BTreeMap;

use worker::{AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset, Env};

/// What a data point is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A socket admitted (label: user, room, socketio; value: ms to answer the upgrade).
    Connect,
    /// A connect or request refused (label: the error code; value: the HTTP status).
    Refusal,
    /// A message stored (label: room or direct; subject: the room; value: body bytes).
    Message,
    /// A backend push (label: the event class; value: ms until every hub answered).
    Push,
    /// Devices an event reached live (label: user or room; count: devices; value: ms from the
    /// request to the fan-out).
    Delivery,
    /// A room's D1 copy batch (label: ok or failed; count: messages; value: seqs behind after).
    D1Copy,
    /// A Durable Object's alarm (label: user, room, shard).
    Alarm,
    /// A limit hit (label: which).
    Limit,
    /// A notification decided (label: web_push or webhook; count: deliveries).
    Notification,
    /// A socket closed (label: the close code; value: seconds it was open).
    Close,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Refusal => "refusal",
            Self::Message => "message",
            Self::Push => "push",
            Self::Delivery => "delivery",
            Self::D1Copy => "d1_copy",
            Self::Alarm => "alarm",
            Self::Limit => "limit",
            Self::Notification => "notification",
            Self::Close => "close",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    pub kind: Kind,
    pub label: &'a str,
    pub subject: &'a str,
    pub count: f64,
    pub value: f64,
}

impl<'a> Point<'a> {
    pub fn new(kind: Kind, label: &'a str) -> Self {
        Self {
            kind,
            label,
            subject: "",
            count: 1.0,
            value: 0.0,
        }
    }

    pub fn subject(self, subject: &'a str) -> Self {
        Self { subject, ..self }
    }

    pub fn count(self, count: f64) -> Self {
        Self { count, ..self }
    }

    pub fn value(self, value: f64) -> Self {
        Self { value, ..self }
    }
}

/// Labels counted per kind in memory; beyond it a label is counted as `other` (a label is a
/// code or a class, so this only guards against a bug making it unbounded).
const MAX_LABELS: usize = 64;

/// Per isolate: (kind, label) → (events, sum of counts, sum of values).
type Counters = BTreeMap<(Kind, String), Totals>;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub events: u64,
    pub count: f64,
    pub value: f64,
}

thread_local! {
    static COUNTERS: RefCell<Counters> = const { RefCell::new(BTreeMap::new()) };
    /// The `METRICS` dataset, looked up once per isolate by [`init`]; `None` without the binding.
    static DATASET: RefCell<Option<Option<AnalyticsEngineDataset>>> = const { RefCell::new(None) };
}

/// Looks the `METRICS` binding up once per isolate (the Worker entry and each Durable Object
/// call this as they start; every object of an isolate has the same bindings).
pub fn init(env: &Env) {
    DATASET.with(|dataset| {
        let mut dataset = dataset.borrow_mut();
        if dataset.is_none() {
            *dataset = Some(env.analytics_engine("METRICS").ok());
        }
    });
}

/// Counts the point in this isolate and writes it to Analytics Engine if `METRICS` is bound.
pub fn record(point: Point<'_>) {
    count(&point);
    let written = DATASET.with(|dataset| match dataset.borrow().as_ref() {
        Some(Some(dataset)) => AnalyticsEngineDataPointBuilder::new()
            .indexes([point.kind.as_str()])
            .blobs([point.kind.as_str(), point.label, point.subject])
            .doubles([point.count, point.value])
            .write_to(dataset),
        _ => Ok(()),
    });
    if let Err(err) = written {
        crate::log::warn(
            "metrics.write_failed",
            serde_json::json!({"kind": point.kind.as_str(), "error": err.to_string()}),
        );
    }
}

fn count(point: &Point<'_>) {
    COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        let found = counters
            .iter_mut()
            .find(|((kind, label), _)| *kind == point.kind && label == point.label)
            .map(|(_, totals)| totals);
        let totals = match found {
            Some(totals) => totals,
            None => {
                let labels = counters
                    .keys()
                    .filter(|(kind, _)| *kind == point.kind)
                    .count();
                let label = if labels < MAX_LABELS {
                    point.label
                } else {
                    "other"
                };
                counters.entry((point.kind, label.to_owned())).or_default()
            }
        };
        totals.events += 1;
        totals.count += point.count;
        totals.value += point.value;
    });
}

/// This isolate's counters.
pub fn snapshot() -> Vec<(Kind, String, Totals)> {
    COUNTERS.with(|counters| {
        counters
            .borrow()
            .iter()
            .map(|((kind, label), totals)| (*kind, label.clone(), *totals))
            .collect()
    })
}

/// What the exposition shows about users online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Online {
    /// Users listed in the online directory, or `None` when a shard did not answer.
    pub users: Option<u64>,
}

/// The Prometheus text exposition (version 0.0.4) of `online` and `counters`.
pub fn exposition(online: Online, counters: &[(Kind, String, Totals)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP switchboard_online_users Users with at least one open socket, as the online directory lists them (all 16 shards; may overcount users whose sockets vanished since the last broadcast).\n");
    out.push_str("# TYPE switchboard_online_users gauge\n");
    match online.users {
        Some(users) => out.push_str(&format!("switchboard_online_users {users}\n")),
        None => out
            .push_str("# switchboard_online_users is missing: a directory shard did not answer\n"),
    }
    out.push_str("# switchboard_online_devices is not exported: the directory lists users, and counting devices would wake every online user's hub.\n");
    family(
        &mut out,
        "switchboard_isolate_events_total",
        "Events this isolate recorded since it started, by kind and label (scope: the isolate that answered this request; other isolates and the Durable Objects count their own, and Analytics Engine has them all).",
        counters,
        |totals| totals.events as f64,
    );
    family(
        &mut out,
        "switchboard_isolate_count_total",
        "The sum of each event's count (devices reached, messages copied, deliveries queued), by kind and label, in this isolate.",
        counters,
        |totals| totals.count,
    );
    family(
        &mut out,
        "switchboard_isolate_value_total",
        "The sum of each event's value, by kind and label, in this isolate; the unit is the kind's (connect, push, delivery: milliseconds; message: body bytes; close: seconds open; refusal: status; d1_copy: seqs behind).",
        counters,
        |totals| totals.value,
    );
    out
}

/// One counter family: its help, its type, and a sample per kind and label.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    counters: &[(Kind, String, Totals)],
    value: impl Fn(&Totals) -> f64,
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
    for (kind, label, totals) in counters {
        out.push_str(&format!(
            "{name}{{kind=\"{}\",label=\"{}\"}} {}\n",
            kind.as_str(),
            escape(label),
            value(totals)
        ));
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_counted_by_kind_and_label() {
        count(&Point::new(Kind::Refusal, "token_expired").value(401.0));
        count(&Point::new(Kind::Refusal, "token_expired").value(401.0));
        count(&Point::new(Kind::Delivery, "user").count(3.0).value(12.0));
        let snapshot = snapshot();
        let refusals = snapshot
            .iter()
            .find(|(kind, label, _)| *kind == Kind::Refusal && label == "token_expired")
            .unwrap();
        assert_eq!(refusals.2.events, 2);
        assert_eq!(refusals.2.value, 802.0);
        let delivery = snapshot
            .iter()
            .find(|(kind, _, _)| *kind == Kind::Delivery)
            .unwrap();
        assert_eq!(delivery.2.count, 3.0);
    }

    #[test]
    fn labels_are_bounded_per_kind() {
        for i in 0..(MAX_LABELS + 10) {
            count(&Point::new(Kind::Limit, &format!("l{i}")));
        }
        let limits: Vec<_> = snapshot()
            .into_iter()
            .filter(|(kind, _, _)| *kind == Kind::Limit)
            .collect();
        assert_eq!(limits.len(), MAX_LABELS + 1);
        assert_eq!(
            limits
                .iter()
                .find(|(_, label, _)| label == "other")
                .unwrap()
                .2
                .events,
            10
        );
    }

    #[test]
    fn the_exposition_is_prometheus_text() {
        let counters = vec![(
            Kind::Refusal,
            "bad\"code".to_owned(),
            Totals {
                events: 2,
                count: 2.0,
                value: 802.0,
            },
        )];
        let text = exposition(Online { users: Some(7) }, &counters);
        assert!(text.contains("switchboard_online_users 7\n"));
        assert!(text.contains(
            "switchboard_isolate_events_total{kind=\"refusal\",label=\"bad\\\"code\"} 2\n"
        ));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        let missing = exposition(Online { users: None }, &[]);
        assert!(missing.contains("switchboard_online_users is missing"));
    }
}
