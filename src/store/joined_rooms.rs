//! The rooms each Socket.IO recovery id had joined, in the UserHub's own SQLite storage.
//!
//! A reconnecting socket.io client presents its `pid` and offset, and the offset names rooms
//! with their seqs. The offset is the client's to forge, so it may say where the client is in
//! a room, never which rooms to enter: a recovery rejoins only the rooms of the offset that this
//! `pid` had joined, as recorded here when it joined them. A room the client never joined (or a
//! `pid` of another user's, or one made up) rejoins nothing and costs no admission query; a room
//! whose rejoin was refused is forgotten, so it costs one at most once; a namespace the client
//! disconnected itself forgets its rooms, so connecting it again is a clean start.
//!
//! `joined_rooms (pid, room, joined_at)` is lazy ([`LazyTable`]): most users never join a room
//! over Socket.IO. It holds at most [`MAX_PIDS`] recovery ids, the newest.

use super::local::{lazy_table, LazyTable, Local};

/// Recovery ids kept per user; older ones (connections long gone) are dropped as new ones join.
pub const MAX_PIDS: i64 = 64;

const JOINED_ROOMS: LazyTable = lazy_table!(
    "joined_rooms",
    "CREATE TABLE IF NOT EXISTS joined_rooms (pid TEXT NOT NULL, room TEXT NOT NULL, joined_at INTEGER NOT NULL, PRIMARY KEY (pid, room)) WITHOUT ROWID"
);

pub struct JoinedRooms<'a> {
    local: &'a Local,
}

impl<'a> JoinedRooms<'a> {
    pub fn new(local: &'a Local) -> Self {
        Self { local }
    }

    /// Records that `pid` joined `room`; a new `pid` drops the oldest beyond [`MAX_PIDS`].
    pub fn add(&self, pid: &str, room: &str, now: i64) -> worker::Result<()> {
        self.local.create_table(&JOINED_ROOMS)?;
        let sql = self.local.sql();
        let known = !self.rooms(pid)?.is_empty();
        sql.exec(
            "INSERT INTO joined_rooms (pid, room, joined_at) VALUES (?, ?, ?) ON CONFLICT (pid, room) DO UPDATE SET joined_at = excluded.joined_at",
            vec![pid.into(), room.into(), (now as f64).into()],
        )?;
        if !known {
            sql.exec(
                "DELETE FROM joined_rooms WHERE pid NOT IN (SELECT pid FROM joined_rooms GROUP BY pid ORDER BY MAX(joined_at) DESC LIMIT ?)",
                vec![(MAX_PIDS as f64).into()],
            )?;
        }
        Ok(())
    }

    /// `pid` left `room` (or could not rejoin it).
    pub fn remove(&self, pid: &str, room: &str) -> worker::Result<()> {
        self.local.change(
            &JOINED_ROOMS,
            "DELETE FROM joined_rooms WHERE pid = ? AND room = ?",
            vec![pid.into(), room.into()],
        )
    }

    /// The client ended `pid`'s namespace itself: nothing of it is recovered.
    pub fn forget(&self, pid: &str) -> worker::Result<()> {
        self.local.change(
            &JOINED_ROOMS,
            "DELETE FROM joined_rooms WHERE pid = ?",
            vec![pid.into()],
        )
    }

    /// The rooms `pid` had joined.
    pub fn rooms(&self, pid: &str) -> worker::Result<Vec<String>> {
        self.local.column(
            &JOINED_ROOMS,
            "SELECT room FROM joined_rooms WHERE pid = ?",
            vec![pid.into()],
        )
    }
}
