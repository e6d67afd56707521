//! Per-socket rate limiting: a token bucket.
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
}
