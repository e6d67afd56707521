//! Rate limiting in hub memory: a token bucket per socket for frames, and budgets for replays
//! (bytes per user, `sync` answers per socket).
//!
//! Each socket may send `burst` frames at once and `per_second` frames a second after that; a
//! socket over its allowance is closed with 4008. Heartbeats answered by the runtime's
//! auto-response never reach the hub and cost nothing.
//!
//! Buckets live in hub memory, not storage. A hub only hibernates after ~10 s idle, by which time
//! any bucket with `per_second * 10 >= burst` has refilled anyway, so starting a woken hub's
//! sockets with full buckets changes nothing (the defaults, 100 and 20/s, satisfy that).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

impl Bucket {
    pub fn full(burst: u32, now_ms: i64) -> Self {
        Self {
            tokens: f64::from(burst),
            updated_ms: now_ms,
        }
    }

    /// Refills for the time since the last call, then takes one token if there is one.
    pub fn take(&mut self, now_ms: i64, per_second: u32, burst: u32) -> bool {
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        self.updated_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A budget that refills at `per_second` up to `capacity` and may go into debt: a spender books
/// what it needs at once (into debt if need be) and is served once the balance covers it, so
/// whoever books next waits behind it. Over any stretch of time, at most `capacity + per_second
/// * seconds` is served. Replays keep one of bytes per user and one of `sync` answers per socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    balance: f64,
    updated_ms: i64,
}

impl Budget {
    pub fn full(capacity: usize, now_ms: i64) -> Self {
        Self {
            balance: capacity as f64,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64, per_second: usize, capacity: usize) {
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.balance = (self.balance + elapsed * per_second as f64).min(capacity as f64);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// What may be spent now: 0 while in debt.
    pub fn available(&mut self, now_ms: i64, per_second: usize, capacity: usize) -> usize {
        self.refill(now_ms, per_second, capacity);
        self.balance.max(0.0) as usize
    }

    /// Whether it is full: then it says nothing a new one would not.
    pub fn is_full(&mut self, now_ms: i64, per_second: usize, capacity: usize) -> bool {
        self.available(now_ms, per_second, capacity) >= capacity
    }

    /// What a booking made now is covered for within `within_ms`: the balance and what refills
    /// meanwhile (0 or less when the debt alone takes longer).
    pub fn reach(
        &mut self,
        now_ms: i64,
        per_second: usize,
        capacity: usize,
        within_ms: i64,
    ) -> i64 {
        self.refill(now_ms, per_second, capacity);
        (self.balance + per_second as f64 * within_ms as f64 / 1000.0).floor() as i64
    }

    /// Books `amount`: the milliseconds until the balance covers it (0: now).
    pub fn book(&mut self, now_ms: i64, per_second: usize, capacity: usize, amount: usize) -> i64 {
        self.refill(now_ms, per_second, capacity);
        self.balance -= amount as f64;
        (-self.balance * 1000.0 / per_second.max(1) as f64)
            .ceil()
            .max(0.0) as i64
    }

    /// Settles a booking: what was booked and not spent comes back, what was spent beyond it is
    /// taken.
    pub fn settle(&mut self, booked: usize, spent: usize) {
        self.balance += booked as f64 - spent as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses() {
        let mut bucket = Bucket::full(3, 0);
        assert!((0..3).all(|_| bucket.take(0, 1, 3)));
        assert!(!bucket.take(0, 1, 3));
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let mut bucket = Bucket::full(2, 0);
        assert!(bucket.take(0, 10, 2) && bucket.take(0, 10, 2));
        assert!(!bucket.take(50, 10, 2), "half a token after 50 ms");
        assert!(bucket.take(100, 10, 2), "one token after 100 ms");
        assert!(bucket.take(60_000, 10, 2) && bucket.take(60_000, 10, 2));
        assert!(!bucket.take(60_000, 10, 2), "never more than the burst");
    }

    #[test]
    fn a_clock_going_back_does_not_mint_tokens() {
        let mut bucket = Bucket::full(1, 1_000);
        assert!(bucket.take(1_000, 10, 1));
        assert!(!bucket.take(500, 10, 1));
    }

    #[test]
    fn a_booking_is_covered_after_the_debt_it_makes_is_repaid() {
        let (rate, cap) = (1000, 2000);
        let mut budget = Budget::full(cap, 0);
        assert_eq!(budget.book(0, rate, cap, 1500), 0, "covered at once");
        assert_eq!(budget.available(0, rate, cap), 500);
        assert_eq!(
            budget.book(0, rate, cap, 1000),
            500,
            "500 short: half a second"
        );
        assert_eq!(budget.available(0, rate, cap), 0, "nothing while in debt");
        assert_eq!(
            budget.book(100, rate, cap, 1000),
            1400,
            "behind the first booking"
        );
        assert_eq!(budget.available(1500, rate, cap), 0);
        assert_eq!(
            budget.available(60_000, rate, cap),
            cap,
            "never more than the capacity"
        );
    }

    #[test]
    fn reach_is_what_a_booking_now_gets_within_the_wait() {
        let (rate, cap) = (1000, 2000);
        let mut budget = Budget::full(cap, 0);
        assert_eq!(budget.reach(0, rate, cap, 10_000), 12_000);
        let wait = budget.book(0, rate, cap, 12_000);
        assert_eq!(
            wait, 10_000,
            "a booking of the whole reach waits exactly that long"
        );
        assert_eq!(budget.reach(0, rate, cap, 10_000), 0, "then nothing more");
        assert_eq!(
            budget.reach(-5, rate, cap, 10_000),
            0,
            "a clock going back mints nothing"
        );
        assert_eq!(budget.reach(500, rate, cap, 10_000), 500);
    }

    #[test]
    fn settling_gives_back_what_was_not_spent_and_takes_what_was() {
        let (rate, cap) = (1000, 2000);
        let mut budget = Budget::full(cap, 0);
        budget.book(0, rate, cap, 1500);
        budget.settle(1500, 1000);
        assert_eq!(budget.available(0, rate, cap), 1000);
        budget.settle(0, 1200);
        assert_eq!(
            budget.book(0, rate, cap, 0),
            200,
            "an overdraft is repaid first"
        );
    }

    #[test]
    fn full_is_full_again_once_refilled() {
        let (rate, cap) = (10, 100);
        let mut budget = Budget::full(cap, 0);
        assert!(budget.is_full(0, rate, cap));
        budget.book(0, rate, cap, 2);
        assert!(!budget.is_full(100, rate, cap));
        assert!(budget.is_full(200, rate, cap));
    }

    #[test]
    fn what_is_served_is_bounded_by_capacity_plus_rate() {
        let (rate, cap) = (1000, 2000);
        let mut budget = Budget::full(cap, 0);
        let mut served = 0;
        let mut busy_until = 0;
        for now in (0..10_000).step_by(10) {
            if now >= busy_until {
                busy_until = now + budget.book(now, rate, cap, 700);
                if busy_until <= 10_000 {
                    served += 700;
                }
            }
        }
        assert!(served <= cap + rate * 10, "{served}");
        assert!(served >= rate * 10, "and the rate is served: {served}");
    }
}
