//! Placement: which object of a room holds a new socket.
//!
//! A room's own object holds its first `ROOM_SHARD_SOCKETS` sockets, so a small room is one
//! object with no extra hop. Past that, a new socket goes to shard 1, 2, … (the first with
//! room), each holding up to as many. A user's sockets stay together: a user who already has
//! sockets somewhere gets the new one there, whatever its load (at most `MAX_SOCKETS_PER_USER`
//! more), so that one object sees all of a user's sockets in the room.

/// Where a new socket goes: 0 is the room's own object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub shard: u32,
}

/// `here`: the sockets the room's object holds, and whether `user` has one of them;
/// `user_shard`: the shard holding the user's sockets, if one does; `load`: the sockets shard
/// `k` (1…) holds; `cap`: `ROOM_SHARD_SOCKETS`.
pub fn place(
    here: usize,
    user_here: bool,
    user_shard: Option<u32>,
    load: impl Fn(u32) -> i64,
    cap: usize,
) -> Placement {
    if user_here {
        return Placement { shard: 0 };
    }
    if let Some(shard) = user_shard {
        return Placement { shard };
    }
    if here < cap {
        return Placement { shard: 0 };
    }
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    let mut shard = 1;
    while load(shard) >= cap {
        shard += 1;
    }
    Placement { shard }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(of: &'static [(u32, i64)]) -> impl Fn(u32) -> i64 {
        move |shard| {
            of.iter()
                .filter(|(k, _)| *k == shard)
                .map(|(_, n)| *n)
                .sum()
        }
    }

    #[test]
    fn a_small_room_keeps_every_socket() {
        assert_eq!(place(0, false, None, loads(&[]), 3).shard, 0);
        assert_eq!(place(2, false, None, loads(&[]), 3).shard, 0);
    }

    #[test]
    fn a_full_room_fills_shards_in_order() {
        assert_eq!(place(3, false, None, loads(&[]), 3).shard, 1);
        assert_eq!(place(3, false, None, loads(&[(1, 2)]), 3).shard, 1);
        assert_eq!(place(3, false, None, loads(&[(1, 3)]), 3).shard, 2);
        assert_eq!(place(3, false, None, loads(&[(2, 3), (1, 3)]), 3).shard, 3);
        assert_eq!(place(3, false, None, loads(&[(1, 3), (2, 1)]), 3).shard, 2);
    }

    #[test]
    fn a_shard_emptied_is_filled_again() {
        assert_eq!(place(3, false, None, loads(&[(2, 3)]), 3).shard, 1);
    }

    #[test]
    fn a_users_sockets_stay_together() {
        assert_eq!(place(9, true, None, loads(&[]), 3).shard, 0);
        assert_eq!(
            place(3, false, Some(2), loads(&[(1, 0), (2, 9)]), 3).shard,
            2
        );
    }
}
