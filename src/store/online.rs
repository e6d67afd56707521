//! One shard of the online directory in its Directory object's own SQLite storage.
//!
//! Tables: `members` (a user whose UserHub said it has open sockets: the user id, the stamp of
//! the registration that listed them, and how many broadcasts in a row failed to reach their
//! hub) and `broadcasts` (the idempotency keys of broadcasts this shard ran, with what each
//! reached). The stamps are the hub's (`hubs::directory::Listing`): every join and leave a hub
//! sends carries a stamp later than any it sent before, so a leave deletes a row only when the
//! row's stamp is not newer than the leave (a stale leave cannot remove a later join), a join
//! replaces a row only with a newer stamp, and a broadcast drops a hub only under the stamp it
//! read (a join that lands meanwhile keeps the user listed).
//!
//! Every function is synchronous: SQLite storage calls do not yield.

use serde::Deserialize;
use worker::SqlStorage;

use super::local::Local;

/// Broadcast idempotency keys are remembered at least this long.
pub const KEY_MS: i64 = 24 * 60 * 60 * 1000;

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, stamp INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS broadcasts (key TEXT PRIMARY KEY, hubs INTEGER NOT NULL, devices INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
";

/// A listed user, as a broadcast reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub user: String,
    pub stamp: i64,
    pub failures: i64,
}

/// What a keyed broadcast reached, as remembered.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Reached {
    pub hubs: i64,
    pub devices: i64,
}

pub struct OnlineLog<'a> {
    local: &'a Local,
    sql: &'a SqlStorage,
}

impl<'a> OnlineLog<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self {
            local,
            sql: local.sql(),
        }
    }

    pub fn migrate(&self) -> worker::Result<bool> {
        self.local.migrate(SCHEMA, SCHEMA_VERSION, &[], |_| {})
    }

    /// Lists `user` under `stamp`, unless a newer stamp listed them already.
    pub fn join(&self, user: &str, stamp: i64) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO members (user, stamp, failures) VALUES (?, ?, 0) \
             ON CONFLICT(user) DO UPDATE SET stamp = excluded.stamp, failures = 0 \
             WHERE excluded.stamp > members.stamp",
            vec![user.into(), stamp.into()],
        )?;
        Ok(())
    }

    /// Unlists `user` unless a join newer than `stamp` listed them.
    pub fn leave(&self, user: &str, stamp: i64) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM members WHERE user = ? AND stamp <= ?",
            vec![user.into(), stamp.into()],
        )?;
        Ok(())
    }

    /// Every listed user, in user order.
    pub fn members(&self) -> worker::Result<Vec<Member>> {
        self.sql
            .exec(
                "SELECT user, stamp, failures FROM members ORDER BY user",
                None,
            )?
            .to_array()
    }

    /// Unlists a member a broadcast found gone, unless a newer join listed them since.
    pub fn drop_member(&self, member: &Member) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM members WHERE user = ? AND stamp = ?",
            vec![member.user.as_str().into(), member.stamp.into()],
        )?;
        Ok(())
    }

    /// Counts a failed broadcast against a member; after `max` in a row it is unlisted.
    pub fn failed(&self, member: &Member, max: i64) -> worker::Result<()> {
        if member.failures + 1 >= max {
            return self.drop_member(member);
        }
        self.sql.exec(
            "UPDATE members SET failures = failures + 1 WHERE user = ? AND stamp = ?",
            vec![member.user.as_str().into(), member.stamp.into()],
        )?;
        Ok(())
    }

    /// A member's hub answered again: its failures are forgotten.
    pub fn reached(&self, member: &Member) -> worker::Result<()> {
        if member.failures > 0 {
            self.sql.exec(
                "UPDATE members SET failures = 0 WHERE user = ? AND stamp = ?",
                vec![member.user.as_str().into(), member.stamp.into()],
            )?;
        }
        Ok(())
    }

    /// How many users are listed.
    pub fn count(&self) -> worker::Result<i64> {
        Ok(self
            .local
            .int("SELECT COUNT(*) AS value FROM members", vec![])?
            .unwrap_or(0))
    }

    /// Up to `limit` listed users after `after`, in user order.
    pub fn page(&self, after: Option<&str>, limit: i64) -> worker::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Row {
            user: String,
        }
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT user FROM members WHERE user > ? ORDER BY user LIMIT ?",
                vec![after.unwrap_or("").into(), limit.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(|row| row.user).collect())
    }

    /// What the broadcast with `key` reached, if this shard ran it within [`KEY_MS`].
    pub fn remembered(&self, key: &str, now: i64) -> worker::Result<Option<Reached>> {
        let rows: Vec<Reached> = self
            .sql
            .exec(
                "SELECT hubs, devices FROM broadcasts WHERE key = ? AND created_at > ?",
                vec![key.into(), (now - KEY_MS).into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    /// Records a key before its broadcast runs (so a repeat arriving meanwhile sends nothing),
    /// and forgets keys older than [`KEY_MS`]: broadcasts are few, so the table stays small.
    pub fn claim(&self, key: &str, now: i64) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM broadcasts WHERE created_at <= ?",
            vec![(now - KEY_MS).into()],
        )?;
        self.sql.exec(
            "INSERT INTO broadcasts (key, hubs, devices, created_at) VALUES (?, 0, 0, ?) \
             ON CONFLICT(key) DO UPDATE SET hubs = 0, devices = 0, created_at = excluded.created_at",
            vec![key.into(), now.into()],
        )?;
        Ok(())
    }

    /// What a keyed broadcast reached, once it has run.
    pub fn record(&self, key: &str, reached: Reached) -> worker::Result<()> {
        self.sql.exec(
            "UPDATE broadcasts SET hubs = ?, devices = ? WHERE key = ?",
            vec![reached.hubs.into(), reached.devices.into(), key.into()],
        )?;
        Ok(())
    }
}
