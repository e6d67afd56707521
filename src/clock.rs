//! The gateway's clock: unix milliseconds, as every stored time and deadline is counted.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
