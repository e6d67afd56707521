//! Page cursors for listings in a stable order: a timestamp and an id, so rows with the same
//! time still have one order and a page boundary never skips or repeats a row.
//!
//! On the wire a cursor is `<unix ms>.<id>`, opaque to clients: they pass back what a page gave.

use std::fmt::Display;
use std::str::FromStr;

/// Where a listing continues: strictly after this (time, id) in the listing's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub at: i64,
    pub id: String,
}

impl PageCursor {
    pub fn new(at: i64, id: impl Into<String>) -> Self {
        Self { at, id: id.into() }
    }

    pub fn encode(&self) -> String {
        encode_parts(self.at, &self.id)
    }

    /// Reads a cursor this API gave out; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let (at, id) = decode_parts(raw, crate::ids::validate_room_id, |at: &i64| *at >= 0)?;
        Some(Self { at, id })
    }

    /// The cursor of a page's last row when the page was full (more may follow).
    pub fn next<T>(page: &[T], limit: i64, key: impl Fn(&T) -> PageCursor) -> Option<String> {
        if page.len() as i64 == limit {
            page.last().map(|last| key(last).encode())
        } else {
            None
        }
    }
}

/// A cursor on the wire: `<number>.<id>`.
pub fn encode_parts(number: impl Display, id: &str) -> String {
    format!("{number}.{id}")
}

/// The number and id of `<number>.<id>`; `None` unless the id is `valid` and the number parses
/// and is one to `keep`.
pub fn decode_parts<N: FromStr>(
    raw: &str,
    valid: fn(&str) -> Result<(), String>,
    keep: impl Fn(&N) -> bool,
) -> Option<(N, String)> {
    let (number, id) = raw.split_once('.')?;
    valid(id).ok()?;
    Some((number.parse().ok().filter(keep)?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = PageCursor::new(1_790_000_000_123, "team.alpha");
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["x.y", "12", "12.a/b", "-1.a", ""] {
            assert_eq!(PageCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        let rows = [(1, "a"), (2, "b")];
        let key = |row: &(i64, &str)| PageCursor::new(row.0, row.1);
        assert_eq!(PageCursor::next(&rows, 2, key), Some("2.b".into()));
        assert_eq!(PageCursor::next(&rows, 3, key), None);
    }
}
