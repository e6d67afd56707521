//! Where a large room's remote sockets are: per user, the shard that holds their sockets in
//! this room and how many (`hubs::room::shard`). A room that never grew past its own object
//! never writes it: the table is lazy, and reading it then costs no query.
//!
//! Every socket of one user in one room is on one shard (the room places a user's first
//! socket and sends the others after it), so the user's socket cap, the socket the cap closes
//! and a removal's closes are the shard's own business, and presence needs one row per user.
//! A row is written when the room places a socket (before the shard has answered, so two
//! connects of one user racing each other land together) and when the shard reports a socket
//! closed or gone; the rows of a shard whose link closes are dropped with it.
//!
//! `sockets` counts the user's open sockets there (presence, a shard's load). The row itself
//! stays as long as the shard holds any socket of the user, closing ones too: sockets the gateway
//! closed and the client never lets go count toward the user's socket cap where they are held,
//! so the user's next connect must go there, not to whichever shard has room then.

use serde::Deserialize;
use worker::SqlStorage;

use super::local::{lazy_table, LazyTable, Local};

const PLACED: LazyTable = lazy_table!(
    "placed",
    "CREATE TABLE IF NOT EXISTS placed (user_id TEXT PRIMARY KEY, shard INTEGER NOT NULL, sockets INTEGER NOT NULL) WITHOUT ROWID"
);

/// One shard's load as the room counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ShardLoad {
    pub shard: u32,
    pub sockets: i64,
    pub users: i64,
}

#[derive(Deserialize)]
struct UserRow {
    user_id: String,
    sockets: i64,
}

#[derive(Deserialize)]
struct PlacedRow {
    shard: u32,
    sockets: i64,
}

/// The `meta` key counting users with sockets on shards, and the prefix of each shard's socket
/// count: read on every connect of a large room, they are kept with the rows (in the `meta`
/// table, which `Local` holds in memory) instead of counted over the table each time.
const USERS_KEY: &str = "placed_users";
const LOAD_PREFIX: &str = "placed_load:";

pub struct RoomShards<'a> {
    local: &'a Local,
    sql: &'a SqlStorage,
}

impl<'a> RoomShards<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self {
            local,
            sql: local.sql(),
        }
    }

    /// The shard holding `user`'s sockets and how many, if any does.
    pub fn of(&self, user: &str) -> worker::Result<Option<(u32, i64)>> {
        let rows: Vec<PlacedRow> = self.local.rows(
            &PLACED,
            "SELECT shard, sockets FROM placed WHERE user_id = ?",
            vec![user.into()],
        )?;
        Ok(rows.into_iter().next().map(|row| (row.shard, row.sockets)))
    }

    /// One more socket of `user` on `shard` (placed there; the shard has not answered yet).
    pub fn add(&self, user: &str, shard: u32) -> worker::Result<()> {
        self.local.create_table(&PLACED)?;
        let before = self.of(user)?.map_or(0, |(_, n)| n);
        self.count(shard, before, before + 1)?;
        self.sql.exec(
            "INSERT INTO placed (user_id, shard, sockets) VALUES (?, ?, 1)
             ON CONFLICT(user_id) DO UPDATE SET sockets = sockets + 1",
            vec![user.into(), i64::from(shard).into()],
        )?;
        Ok(())
    }

    /// Takes back a placement the shard refused: one socket fewer of `user` on `shard`. The row
    /// goes only if this placement `made` it: one that was there before may stand for sockets
    /// the shard closed and still holds (a refusal for too many of them is one), which go on
    /// counting there.
    pub fn unplace(&self, user: &str, shard: u32, made: bool) -> worker::Result<()> {
        let Some((placed, before)) = self.of(user)? else {
            return Ok(());
        };
        if placed != shard {
            return Ok(());
        }
        let after = (before - 1).max(0);
        self.count(shard, before, after)?;
        if made && after == 0 {
            self.sql
                .exec("DELETE FROM placed WHERE user_id = ?", vec![user.into()])?;
        } else {
            self.sql.exec(
                "UPDATE placed SET sockets = ? WHERE user_id = ?",
                vec![after.into(), user.into()],
            )?;
        }
        Ok(())
    }

    /// `user` has `sockets` open on `shard` now and `held` in all (closing ones too), as the
    /// shard reports; true when that took the user's last open socket in the room. The row goes
    /// once the shard holds none.
    pub fn set(&self, user: &str, shard: u32, sockets: i64, held: i64) -> worker::Result<bool> {
        let Some((placed, before)) = self.of(user)? else {
            return Ok(false);
        };
        if placed != shard {
            return Ok(false);
        }
        let after = sockets.max(0);
        self.count(shard, before, after)?;
        if held <= 0 {
            self.sql
                .exec("DELETE FROM placed WHERE user_id = ?", vec![user.into()])?;
        } else if after != before {
            self.sql.exec(
                "UPDATE placed SET sockets = ? WHERE user_id = ?",
                vec![after.into(), user.into()],
            )?;
        }
        Ok(before > 0 && after == 0)
    }

    /// `user`'s sockets are being closed (a removal, a revocation): none of them is open now.
    /// The row stays until the shard says it holds none; where it was and how many were open.
    pub fn close(&self, user: &str) -> worker::Result<Option<(u32, i64)>> {
        let placed = self.of(user)?;
        if let Some((shard, before)) = placed {
            self.count(shard, before, 0)?;
            self.sql.exec(
                "UPDATE placed SET sockets = 0 WHERE user_id = ?",
                vec![user.into()],
            )?;
        }
        Ok(placed)
    }

    /// Drops every row of `shard` (its link closed, so it holds no socket); the users who had
    /// an open socket there.
    pub fn drop_shard(&self, shard: u32) -> worker::Result<Vec<String>> {
        let rows: Vec<UserRow> = self.local.rows(
            &PLACED,
            "DELETE FROM placed WHERE shard = ? RETURNING user_id, sockets",
            vec![i64::from(shard).into()],
        )?;
        let present: Vec<String> = rows
            .into_iter()
            .filter(|row| row.sockets > 0)
            .map(|row| row.user_id)
            .collect();
        let users = self.local.meta(USERS_KEY)?.unwrap_or(0);
        self.local
            .set_meta(USERS_KEY, (users - present.len() as i64).max(0))?;
        self.local.clear_meta(&load_key(shard))?;
        Ok(present)
    }

    /// Drops every row (the room was deleted).
    pub fn clear(&self) -> worker::Result<()> {
        if self.local.has_table(&PLACED)? {
            for load in self.loads()? {
                self.local.clear_meta(&load_key(load.shard))?;
            }
            self.local.clear_meta(USERS_KEY)?;
            self.sql.exec("DELETE FROM placed", None)?;
        }
        Ok(())
    }

    /// Sockets on `shard`, as counted with the rows.
    pub fn load(&self, shard: u32) -> worker::Result<i64> {
        Ok(self.local.meta(&load_key(shard))?.unwrap_or(0))
    }

    /// Keeps the counters in step with a user's row going from `before` to `after` sockets.
    fn count(&self, shard: u32, before: i64, after: i64) -> worker::Result<()> {
        if before == after {
            return Ok(());
        }
        let key = load_key(shard);
        let load = self.local.meta(&key)?.unwrap_or(0) + after - before;
        self.local.set_meta(&key, load.max(0))?;
        let joined = i64::from(before == 0 && after > 0) - i64::from(before > 0 && after == 0);
        if joined != 0 {
            let users = self.local.meta(USERS_KEY)?.unwrap_or(0) + joined;
            self.local.set_meta(USERS_KEY, users.max(0))?;
        }
        Ok(())
    }

    /// Every shard's load (users: those with an open socket there), in shard order.
    pub fn loads(&self) -> worker::Result<Vec<ShardLoad>> {
        self.local.rows(
            &PLACED,
            "SELECT shard, SUM(sockets) AS sockets, SUM(sockets > 0) AS users FROM placed GROUP BY shard ORDER BY shard",
            vec![],
        )
    }

    /// Users with open sockets on shards, and how many each.
    pub fn users(&self) -> worker::Result<Vec<(String, i64)>> {
        let rows: Vec<UserRow> = self.local.rows(
            &PLACED,
            "SELECT user_id, sockets FROM placed WHERE sockets > 0",
            vec![],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| (row.user_id, row.sockets))
            .collect())
    }

    /// How many users have sockets on shards.
    pub fn user_count(&self) -> worker::Result<i64> {
        Ok(self.local.meta(USERS_KEY)?.unwrap_or(0))
    }
}

fn load_key(shard: u32) -> String {
    format!("{LOAD_PREFIX}{shard}")
}
