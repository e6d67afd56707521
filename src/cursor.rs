//! Page cursors for listings in a stable order: a timestamp and an id, so rows with the same
//! time still have one order and a page boundary never skips or repeats a row.
//!
//! On the wire a cursor is `<unix ms>.<id>`, opaque to clients: they pass back what a page gave.

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
        format!("{}.{}", self.at, self.id)
    }

    /// Reads a cursor this API gave out; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let (at, id) = raw.split_once('.')?;
        crate::ids::validate_room_id(id).ok()?;
        Some(Self {
            at: at.parse().ok().filter(|at: &i64| *at >= 0)?,
            id: id.to_owned(),
        })
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
