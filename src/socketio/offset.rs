//! Recovery offsets: where a Socket.IO connection is in every stream it follows.
//!
//! socket.io 4.6+ recovers a connection by the last offset the client saw: every event carries
//! one as its last argument, the client keeps the newest, and sends it back with its `pid` on
//! reconnect. A connection here follows the user's stream and every room it joined, each with
//! its own seq, so the offset is the whole position: the user stream's seq, then each joined
//! room's, in the order joined:
//!
//! ```text
//! 42                      seq 42 of the user's stream, no room
//! 42,general=17,ops=3     and room `general` through seq 17, room `ops` through 3
//! ```
//!
//! The client's offset is the only record of what it has: the server keeps none, so a resumed
//! connection replays exactly what came after it, whatever the server forgot meanwhile. An
//! offset is the client's to forge, and forging one only replays the user's own streams, within
//! the replay budget.

/// The most rooms one connection may follow.
pub const MAX_ROOMS: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The user stream's seq.
    pub user: i64,
    /// Each joined room and its seq, in join order.
    pub rooms: Vec<(String, i64)>,
}

impl Position {
    pub fn new(user: i64) -> Self {
        Self {
            user,
            rooms: Vec::new(),
        }
    }

    pub fn encode(&self) -> String {
        let mut text = self.user.to_string();
        for (room, seq) in &self.rooms {
            text.push(',');
            text.push_str(room);
            text.push('=');
            text.push_str(&seq.to_string());
        }
        text
    }

    /// Reads an offset a client sent back; room ids are checked like any other.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let user = parts
            .next()
            .and_then(|user| user.parse::<i64>().ok())
            .filter(|user| *user >= 0)
            .ok_or("an offset starts with the user stream's seq")?;
        let mut position = Self::new(user);
        for part in parts {
            let (room, seq) = part
                .split_once('=')
                .ok_or("each room in an offset is <room_id>=<seq>")?;
            crate::ids::validate_room_id(room)?;
            let seq = seq
                .parse::<i64>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or("a room's seq in an offset is a whole number >= 0")?;
            if position.room(room).is_some() {
                return Err(format!("room {room} appears twice in the offset"));
            }
            position.rooms.push((room.to_owned(), seq));
        }
        if position.rooms.len() > MAX_ROOMS {
            return Err(format!("an offset names at most {MAX_ROOMS} rooms"));
        }
        Ok(position)
    }

    pub fn room(&self, room: &str) -> Option<i64> {
        self.rooms
            .iter()
            .find(|(id, _)| id == room)
            .map(|(_, seq)| *seq)
    }

    /// Records a room's seq, adding the room at the end if it is new.
    pub fn set_room(&mut self, room: &str, seq: i64) {
        match self.rooms.iter_mut().find(|(id, _)| id == room) {
            Some((_, known)) => *known = seq,
            None => self.rooms.push((room.to_owned(), seq)),
        }
    }

    pub fn remove_room(&mut self, room: &str) {
        self.rooms.retain(|(id, _)| id != room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut p = Position::new(42);
        assert_eq!(p.encode(), "42");
        p.set_room("general", 17);
        p.set_room("ops:1@x", 3);
        p.set_room("general", 18);
        assert_eq!(p.encode(), "42,general=18,ops:1@x=3");
        assert_eq!(Position::parse(&p.encode()).unwrap(), p);
        p.remove_room("general");
        assert_eq!(p.encode(), "42,ops:1@x=3");
    }

    #[test]
    fn refuses_bad_offsets() {
        for bad in [
            "",
            "-1",
            "x",
            "1,",
            "1,a",
            "1,a=-2",
            "1,a=1,a=2",
            "1,a b=1",
            "1,..=1",
        ] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
        let many: String = (0..=MAX_ROOMS).map(|i| format!(",r{i}=1")).collect();
        assert!(Position::parse(&format!("1{many}")).is_err());
    }
}
