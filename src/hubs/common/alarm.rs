//! A hub's alarm: set to exactly the time of the next piece of work, or deleted when there is
//! none, so a hub never wakes for a reason that went away. Each object names its reasons
//! ([`AlarmPlan`]); an operator's report lists them, and a development route counts the wakes.

use std::cell::Cell;

use serde_json::{json, Value};
use worker::Storage;

use super::object::Answer;
use super::sockets::Sockets;
use crate::store::local::Local;

/// The alarm as last set. The last value set is remembered so that an unchanged plan costs no
/// storage call.
pub struct Alarm {
    /// `Some(x)`: the alarm is known to be `x` (unix ms, or none). `None`: unknown.
    known: Cell<Option<Option<i64>>>,
}

impl Alarm {
    /// Storage just created has no alarm, so its first plan need not ask (a first connect's
    /// storage read); otherwise the first plan reads what is set.
    pub fn new(new_storage: bool) -> Self {
        Self {
            known: Cell::new(new_storage.then_some(None)),
        }
    }

    /// The alarm fired: it is no longer set. The wake is counted (in `local`, for objects that
    /// keep storage) and logged with the reasons of `plan` due now.
    pub fn fired(
        &self,
        object: &'static str,
        local: Option<&Local>,
        plan: &AlarmPlan,
        now: i64,
    ) -> worker::Result<()> {
        self.known.set(Some(None));
        if let Some(local) = local {
            count(local, WAKES_KEY)?;
        }
        crate::metrics::record(crate::metrics::Point::new(
            crate::metrics::Kind::Alarm,
            object,
        ));
        if crate::log::enabled(crate::log::Level::Debug) {
            crate::log::debug("alarm", json!({"object": object, "reasons": plan.due(now)}));
        }
        Ok(())
    }

    /// Sets the alarm to `wanted` (unix ms), or deletes it (`None`), unless it is so already.
    pub async fn plan(&self, storage: &Storage, wanted: Option<i64>) -> worker::Result<()> {
        let current = match self.known.get() {
            Some(current) => current,
            None => storage.get_alarm().await?,
        };
        if current != wanted {
            match wanted {
                // An i64 would be read as an offset from now; the alarm is an absolute time.
                Some(at) => match chrono::DateTime::from_timestamp_millis(at) {
                    Some(at) => storage.set_alarm(at).await?,
                    None => return Ok(()),
                },
                None => storage.delete_alarm().await?,
            }
        }
        self.known.set(Some(wanted));
        Ok(())
    }
}

/// The pieces of work a hub's alarm waits for, each named, with its time: the alarm is set to
/// the earliest, and an operator's report lists them all (why the alarm is set).
pub struct AlarmPlan(Vec<(&'static str, i64)>);

impl AlarmPlan {
    /// The reasons that exist now (`None`: no such work).
    pub fn of(reasons: &[(&'static str, Option<i64>)]) -> Self {
        Self(
            reasons
                .iter()
                .filter_map(|(reason, at)| at.map(|at| (*reason, at)))
                .collect(),
        )
    }

    /// The reasons due at `now`.
    pub fn due(&self, now: i64) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(reason, _)| *reason)
            .collect()
    }

    /// When the alarm must fire: the earliest reason's time, or never.
    pub fn earliest(&self) -> Option<i64> {
        self.0.iter().map(|(_, at)| *at).min()
    }

    /// `[{"reason","at"}]`, soonest first.
    pub fn reasons(&self) -> Value {
        let mut reasons = self.0.clone();
        reasons.sort_by_key(|(_, at)| *at);
        reasons
            .into_iter()
            .map(|(reason, at)| json!({"reason": reason, "at": at}))
            .collect()
    }
}

/// A hub's alarm as an operator sees it: when it is set to fire, how often it has, and why it is
/// set (`plan`, worked out now from what is stored).
pub async fn alarm_view(
    local: &Local,
    sockets: &Sockets,
    plan: &AlarmPlan,
) -> worker::Result<Value> {
    Ok(json!({
        "at": sockets.storage().get_alarm().await?,
        "wakes": local.meta(WAKES_KEY)?.unwrap_or(0),
        "reasons": plan.reasons(),
    }))
}

/// Counts one D1 copy batch, for the development report (a room copies to D1; a UserHub never
/// does).
pub fn count_d1_batch(local: &Local) -> worker::Result<()> {
    count(local, D1_BATCHES_KEY)
}

/// D1 copy batches a room has made ([`count_d1_batch`]).
pub fn d1_batches(local: &Local) -> worker::Result<i64> {
    Ok(local.meta(D1_BATCHES_KEY)?.unwrap_or(0))
}

fn count(local: &Local, key: &str) -> worker::Result<()> {
    let n = local.meta(key)?.unwrap_or(0);
    local.set_meta(key, n + 1)
}

const WAKES_KEY: &str = "alarm_wakes";
const D1_BATCHES_KEY: &str = "d1_batches";

/// What the development route reports about a hub's alarm (`GET /dev/{users,rooms}/{id}/alarm`,
/// so tests can prove that a hub does not wake for nothing).
pub async fn alarm_report(local: &Local, sockets: &Sockets) -> Answer {
    let report = json!({
        "alarm_at": sockets.storage().get_alarm().await?,
        "alarm_wakes": local.meta(WAKES_KEY)?.unwrap_or(0),
        "d1_batches": local.meta(D1_BATCHES_KEY)?.unwrap_or(0),
        "open_sockets": sockets.count(),
    });
    Ok(crate::http::json(200, &report)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_plan_names_each_reason_soonest_first() {
        let plan = AlarmPlan::of(&[
            ("d1_copy", Some(30)),
            ("activity_notes", None),
            ("token_expiry", Some(10)),
        ]);
        assert_eq!(plan.earliest(), Some(10));
        assert_eq!(
            plan.reasons(),
            json!([{"reason": "token_expiry", "at": 10}, {"reason": "d1_copy", "at": 30}])
        );
        assert_eq!(AlarmPlan::of(&[("d1_copy", None)]).earliest(), None);
    }
}
