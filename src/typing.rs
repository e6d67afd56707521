//! The typing throttle: how often one member's `typing` reaches the others.
//!
//! Typing indicators are hints, never stored, and every one forwarded costs a frame to every
//! socket in the room, so a member's stream of them is bounded. A start (`active: true`) goes
//! through when it changes the state the others see, or repeats it after an interval — and at
//! most [`STARTS_PER_INTERVAL`] starts go through per interval; a stop goes through only when it
//! ends a start that went through. A message the member sends starts the count afresh (it ends
//! the typing it announced), so someone who types, sends and types again is always shown; a
//! client that flips on and off as fast as it may send reaches the room at most
//! `2 × STARTS_PER_INTERVAL` times per interval, plus two per message it sends (and messages
//! have their own rate).

/// Starts forwarded per member per interval at most (each may be followed by its stop).
pub const STARTS_PER_INTERVAL: u32 = 3;

/// What was last forwarded for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    /// The state last forwarded.
    active: bool,
    /// When the last start was forwarded (unix ms).
    started_at: i64,
    /// When the current interval began (unix ms), and the starts forwarded in it.
    window_at: i64,
    starts: u32,
}

impl Typing {
    /// Whether a member's `typing {active}` at `now` goes through, given what was last
    /// forwarded (`None`: nothing yet); the new record when it does.
    pub fn forward(
        last: Option<Typing>,
        active: bool,
        now: i64,
        interval_ms: i64,
    ) -> Option<Typing> {
        let Some(last) = last else {
            return active.then_some(Typing {
                active: true,
                started_at: now,
                window_at: now,
                starts: 1,
            });
        };
        if !active {
            return last.active.then_some(Typing {
                active: false,
                ..last
            });
        }
        let (window_at, starts) = if now.saturating_sub(last.window_at) >= interval_ms {
            (now, 0)
        } else {
            (last.window_at, last.starts)
        };
        let news = !last.active || now.saturating_sub(last.started_at) >= interval_ms;
        (news && starts < STARTS_PER_INTERVAL).then_some(Typing {
            active: true,
            started_at: now,
            window_at,
            starts: starts + 1,
        })
    }

    /// The member sent a message: the starts of this interval are forgotten.
    pub fn after_message(self) -> Typing {
        Typing { starts: 0, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: i64 = 3000;

    /// Runs `frames` (time, active) through the throttle; which went through.
    fn run(frames: &[(i64, bool)]) -> Vec<bool> {
        let mut last = None;
        frames
            .iter()
            .map(
                |&(at, active)| match Typing::forward(last, active, at, INTERVAL) {
                    Some(next) => {
                        last = Some(next);
                        true
                    }
                    None => false,
                },
            )
            .collect()
    }

    /// Frames (time, active) and which of them go through.
    #[test]
    fn frames_go_through_as_the_throttle_allows() {
        for (frames, through, case) in [
            (
                vec![(0, true), (100, false)],
                vec![true, true],
                "a start and its stop",
            ),
            (
                vec![(0, false), (10, false)],
                vec![false, false],
                "a stop without a start",
            ),
            (
                vec![(0, true), (1000, true), (2999, true), (3000, true)],
                vec![true, false, false, true],
                "starts repeat at most once per interval",
            ),
            (
                vec![(0, true), (500, false), (900, true), (1500, false)],
                vec![true, true, true, true],
                "typing again right after a stop is shown",
            ),
        ] {
            assert_eq!(run(&frames), through, "{case}");
        }
    }

    #[test]
    fn a_message_starts_the_count_afresh() {
        let mut last = None;
        for at in [0, 100, 200] {
            last = Typing::forward(last, true, at, INTERVAL).or(last);
            last = Typing::forward(last, false, at + 50, INTERVAL).or(last);
        }
        assert_eq!(
            Typing::forward(last, true, 300, INTERVAL),
            None,
            "the fourth start"
        );
        let sent = last.map(Typing::after_message);
        assert!(Typing::forward(sent, true, 300, INTERVAL).is_some());
    }

    #[test]
    fn flipping_is_bounded_per_interval() {
        let frames: Vec<(i64, bool)> = (0..40).map(|i| (i * 50, i % 2 == 0)).collect();
        let forwarded = run(&frames).into_iter().filter(|f| *f).count();
        // 40 frames over 2 s, within one interval: three starts and their stops.
        assert_eq!(forwarded, 2 * STARTS_PER_INTERVAL as usize);
        let frames: Vec<(i64, bool)> = (0..240).map(|i| (i * 50, i % 2 == 0)).collect();
        let forwarded = run(&frames).into_iter().filter(|f| *f).count();
        // 12 s: four intervals.
        assert_eq!(forwarded, 4 * 2 * STARTS_PER_INTERVAL as usize);
    }
}
