//! Rate limiting in hub memory: a token bucket per socket for frames, and a byte budget per
//! user for replays.
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

/// A byte budget that refills at `per_second` up to `capacity` and may go into debt: a spender
/// takes what it needs (one replay batch always goes whole), and the next one waits until the
/// debt is repaid. Over any stretch of time, at most `capacity + per_second * seconds` is spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteBudget {
    balance: f64,
    updated_ms: i64,
}

impl ByteBudget {
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

    /// Milliseconds until something may be spent again (0: now).
    pub fn wait_ms(&mut self, now_ms: i64, per_second: usize, capacity: usize) -> i64 {
        self.refill(now_ms, per_second, capacity);
        if self.balance > 0.0 {
            return 0;
        }
        ((-self.balance + 1.0) * 1000.0 / per_second.max(1) as f64).ceil() as i64
    }

    pub fn spend(&mut self, bytes: usize) {
        self.balance -= bytes as f64;
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
    fn a_budget_spends_into_debt_and_waits_it_out() {
        let (rate, cap) = (1000, 2000);
        let mut budget = ByteBudget::full(cap, 0);
        assert_eq!(budget.available(0, rate, cap), 2000);
        budget.spend(2500);
        assert_eq!(budget.available(0, rate, cap), 0);
        assert_eq!(budget.wait_ms(0, rate, cap), 501);
        assert_eq!(budget.wait_ms(400, rate, cap), 101);
        assert_eq!(budget.wait_ms(501, rate, cap), 0);
        assert_eq!(
            budget.available(10_000, rate, cap),
            cap,
            "never more than the capacity"
        );
    }

    #[test]
    fn spending_is_bounded_by_capacity_plus_rate() {
        let (rate, cap) = (1000, 2000);
        let mut budget = ByteBudget::full(cap, 0);
        let mut spent = 0;
        for now in (0..10_000).step_by(10) {
            if budget.wait_ms(now, rate, cap) == 0 {
                budget.spend(700);
                spent += 700;
            }
        }
        assert!(spent <= cap + rate * 10 + 700, "{spent}");
    }
}
