//! A user's notification state in the UserHub's own SQLite storage, beside their stream.
//!
//! Tables, each made by its first write (a user who never subscribes or is never notified has
//! none of them): `push_subscriptions` (id, endpoint, the browser's keys, device), `notify_pending`
//! (events that may need a notification: due time and preview), `notify_outbox` (notifications
//! decided, one row per subscription and one for the webhook, with their attempts and next
//! try), `room_levels` (the user's level per room, when not the default). `meta` keeps when the
//! last notification went out (`notify_last_sent`) and when the hub must next look
//! (`notify_at`), so planning the alarm reads no table.
//!
//! Every function is synchronous: SQLite storage calls do not yield.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use super::local::{lazy_table, LazyTable, Local};
use crate::notify::{Level, Pending, Preview, MAX_PENDING};

const SUBSCRIPTIONS: LazyTable = lazy_table!(
    "push_subscriptions",
    "CREATE TABLE IF NOT EXISTS push_subscriptions (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, p256dh TEXT NOT NULL, auth TEXT NOT NULL, device TEXT, created_at INTEGER NOT NULL) WITHOUT ROWID"
);
const PENDING: LazyTable = lazy_table!(
    "notify_pending",
    "CREATE TABLE IF NOT EXISTS notify_pending (id INTEGER PRIMARY KEY, due_at INTEGER NOT NULL, user_id TEXT NOT NULL, preview TEXT NOT NULL)"
);
const OUTBOX: LazyTable = lazy_table!(
    "notify_outbox",
    "CREATE TABLE IF NOT EXISTS notify_outbox (id INTEGER PRIMARY KEY, target TEXT NOT NULL, key TEXT NOT NULL, notification TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL)"
);
const LEVELS: LazyTable = lazy_table!(
    "room_levels",
    "CREATE TABLE IF NOT EXISTS room_levels (room_id TEXT PRIMARY KEY, level TEXT NOT NULL) WITHOUT ROWID"
);

/// The outbox target of the webhook; any other target is a subscription id.
pub const WEBHOOK: &str = "webhook";

/// One stored push subscription.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub device: Option<String>,
    pub created_at: i64,
}

/// One delivery to make: a notification to one subscription or to the webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub target: String,
    /// The notification's id, the same for every target and every retry.
    pub key: String,
    /// The notification's JSON.
    pub notification: String,
    /// Attempts made so far.
    pub attempts: i64,
}

pub struct NotifyLog<'a> {
    local: &'a Local,
    sql: &'a SqlStorage,
}

impl<'a> NotifyLog<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self {
            local,
            sql: local.sql(),
        }
    }

    /// How many subscriptions the user has (no read when they never subscribed).
    pub fn subscription_count(&self) -> worker::Result<i64> {
        self.count(&SUBSCRIPTIONS)
    }

    pub fn subscriptions(&self) -> worker::Result<Vec<Subscription>> {
        self.local.rows(
            &SUBSCRIPTIONS,
            "SELECT id, endpoint, p256dh, auth, device, created_at FROM push_subscriptions ORDER BY created_at, id",
            vec![],
        )
    }

    /// Stores a subscription (replacing one with the same id: the browser registered again,
    /// perhaps with new keys); beyond `max` the oldest go. True when it is new; with the ids
    /// dropped for the cap.
    pub fn subscribe(
        &self,
        subscription: &Subscription,
        max: i64,
    ) -> worker::Result<(bool, Vec<String>)> {
        self.local.create_table(&SUBSCRIPTIONS)?;
        let existed = self
            .local
            .int(
                "SELECT COUNT(*) AS value FROM push_subscriptions WHERE id = ?",
                vec![subscription.id.as_str().into()],
            )?
            .unwrap_or(0)
            > 0;
        self.sql.exec(
            "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, device, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth, device = excluded.device",
            vec![
                subscription.id.as_str().into(),
                subscription.endpoint.as_str().into(),
                subscription.p256dh.as_str().into(),
                subscription.auth.as_str().into(),
                subscription
                    .device
                    .as_deref()
                    .map_or(SqlStorageValue::Null, Into::into),
                subscription.created_at.into(),
            ],
        )?;
        let all = self.subscriptions()?;
        let excess = (all.len() as i64 - max).max(0) as usize;
        let dropped: Vec<String> = all
            .into_iter()
            .filter(|old| old.id != subscription.id)
            .take(excess)
            .map(|old| old.id)
            .collect();
        for id in &dropped {
            self.unsubscribe(id)?;
        }
        Ok((!existed, dropped))
    }

    /// Deletes a subscription and the deliveries waiting for it; true when there was one.
    pub fn unsubscribe(&self, id: &str) -> worker::Result<bool> {
        if !self.local.has_table(&SUBSCRIPTIONS)? {
            return Ok(false);
        }
        let found = self
            .local
            .int(
                "SELECT COUNT(*) AS value FROM push_subscriptions WHERE id = ?",
                vec![id.into()],
            )?
            .unwrap_or(0)
            > 0;
        self.sql.exec(
            "DELETE FROM push_subscriptions WHERE id = ?",
            vec![id.into()],
        )?;
        self.local.change(
            &OUTBOX,
            "DELETE FROM notify_outbox WHERE target = ?",
            vec![id.into()],
        )?;
        Ok(found)
    }

    /// Forgets every subscription, pending notification and delivery (revocation, account
    /// deletion); returns the subscription ids that were stored.
    pub fn forget_all(&self) -> worker::Result<Vec<String>> {
        let ids = self
            .subscriptions()?
            .into_iter()
            .map(|subscription| subscription.id)
            .collect();
        for table in [&SUBSCRIPTIONS, &PENDING, &OUTBOX] {
            self.local
                .change(table, &format!("DELETE FROM {}", table.name), vec![])?;
        }
        self.local.clear_meta("notify_at")?;
        Ok(ids)
    }

    /// Forgets the user's room levels (account deletion).
    pub fn forget_levels(&self) -> worker::Result<()> {
        self.local
            .change(&LEVELS, "DELETE FROM room_levels", vec![])
    }

    /// Adds a pending notification due at `due_at`; beyond [`MAX_PENDING`] the oldest go.
    pub fn add_pending(&self, due_at: i64, user_id: &str, preview: &Preview) -> worker::Result<()> {
        self.local.create_table(&PENDING)?;
        let text = serde_json::to_string(preview)
            .map_err(|err| worker::Error::RustError(err.to_string()))?;
        self.sql.exec(
            "INSERT INTO notify_pending (due_at, user_id, preview) VALUES (?, ?, ?)",
            vec![due_at.into(), user_id.into(), text.into()],
        )?;
        self.sql.exec(
            "DELETE FROM notify_pending WHERE id <= (SELECT MAX(id) FROM notify_pending) - ?",
            vec![MAX_PENDING.into()],
        )?;
        Ok(())
    }

    pub fn pending(&self) -> worker::Result<Vec<Pending>> {
        #[derive(Deserialize)]
        struct Row {
            id: i64,
            due_at: i64,
            user_id: String,
            preview: String,
        }
        let rows: Vec<Row> = self.local.rows(
            &PENDING,
            "SELECT id, due_at, user_id, preview FROM notify_pending ORDER BY id",
            vec![],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let preview = serde_json::from_str(&row.preview).ok()?;
                Some(Pending {
                    id: row.id,
                    due_at: row.due_at,
                    user_id: row.user_id,
                    preview,
                })
            })
            .collect())
    }

    /// How many notifications are pending (no read when none ever was).
    pub fn pending_count(&self) -> worker::Result<i64> {
        self.count(&PENDING)
    }

    /// How many deliveries are queued (no read when none ever was).
    pub fn queued_count(&self) -> worker::Result<i64> {
        self.count(&OUTBOX)
    }

    fn count(&self, table: &LazyTable) -> worker::Result<i64> {
        Ok(self
            .local
            .int_in(
                table,
                &format!("SELECT COUNT(*) AS value FROM {}", table.name),
                vec![],
            )?
            .unwrap_or(0))
    }

    pub fn forget_pending(&self, ids: &[i64]) -> worker::Result<()> {
        for id in ids {
            self.sql.exec(
                "DELETE FROM notify_pending WHERE id = ?",
                vec![(*id).into()],
            )?;
        }
        Ok(())
    }

    /// Forgets pending room notes (a device connected: it will see the rooms' unread counts).
    pub fn forget_room_notes(&self) -> worker::Result<()> {
        self.local.change(
            &PENDING,
            "DELETE FROM notify_pending WHERE json_extract(preview, '$.seq') IS NULL",
            vec![],
        )
    }

    /// Queues one notification for each target.
    pub fn enqueue(
        &self,
        targets: &[String],
        key: &str,
        notification: &str,
        now: i64,
    ) -> worker::Result<()> {
        self.local.create_table(&OUTBOX)?;
        for target in targets {
            self.sql.exec(
                "INSERT INTO notify_outbox (target, key, notification, attempts, next_at) VALUES (?, ?, ?, 0, ?)",
                vec![target.as_str().into(), key.into(), notification.into(), now.into()],
            )?;
        }
        Ok(())
    }

    /// Deliveries due at `now`.
    pub fn due_deliveries(&self, now: i64) -> worker::Result<Vec<Delivery>> {
        self.local.rows(
            &OUTBOX,
            "SELECT id, target, key, notification, attempts FROM notify_outbox WHERE next_at <= ? ORDER BY id",
            vec![now.into()],
        )
    }

    /// The next delivery's time, if any waits.
    pub fn next_delivery_at(&self) -> worker::Result<Option<i64>> {
        self.local.int_in(
            &OUTBOX,
            "SELECT MIN(next_at) AS value FROM notify_outbox",
            vec![],
        )
    }

    /// A delivery is finished (delivered, refused, or out of attempts).
    pub fn finish(&self, id: i64) -> worker::Result<()> {
        self.sql
            .exec("DELETE FROM notify_outbox WHERE id = ?", vec![id.into()])?;
        Ok(())
    }

    /// A delivery failed and is tried again at `next_at`.
    pub fn postpone(&self, id: i64, attempts: i64, next_at: i64) -> worker::Result<()> {
        self.sql.exec(
            "UPDATE notify_outbox SET attempts = ?, next_at = ? WHERE id = ?",
            vec![attempts.into(), next_at.into(), id.into()],
        )?;
        Ok(())
    }

    pub fn room_level(&self, room_id: &str) -> worker::Result<Level> {
        let levels: Vec<String> = self.local.column(
            &LEVELS,
            "SELECT level FROM room_levels WHERE room_id = ?",
            vec![room_id.into()],
        )?;
        Ok(levels
            .first()
            .and_then(|level| Level::parse(level))
            .unwrap_or_default())
    }

    /// Sets a room's level; the default is stored as no row. False when the user already has
    /// `max` rooms with a level of their own and this is another.
    pub fn set_room_level(&self, room_id: &str, level: Level, max: i64) -> worker::Result<bool> {
        if level == Level::default() {
            self.local.change(
                &LEVELS,
                "DELETE FROM room_levels WHERE room_id = ?",
                vec![room_id.into()],
            )?;
            return Ok(true);
        }
        self.local.create_table(&LEVELS)?;
        let count = self
            .local
            .int(
                "SELECT COUNT(*) AS value FROM room_levels WHERE room_id != ?",
                vec![room_id.into()],
            )?
            .unwrap_or(0);
        if count >= max {
            return Ok(false);
        }
        self.sql.exec(
            "INSERT INTO room_levels (room_id, level) VALUES (?, ?) ON CONFLICT(room_id) DO UPDATE SET level = excluded.level",
            vec![room_id.into(), level.as_str().into()],
        )?;
        Ok(true)
    }

    pub fn last_sent(&self) -> worker::Result<Option<i64>> {
        self.local.meta("notify_last_sent")
    }

    pub fn set_last_sent(&self, at: i64) -> worker::Result<()> {
        self.local.set_meta("notify_last_sent", at)
    }

    /// When the hub must next look at its pending notifications or deliveries.
    pub fn notify_at(&self) -> worker::Result<Option<i64>> {
        self.local.meta("notify_at")
    }

    pub fn set_notify_at(&self, at: Option<i64>) -> worker::Result<()> {
        match at {
            Some(at) => self.local.set_meta("notify_at", at),
            None => self.local.clear_meta("notify_at"),
        }
    }
}
