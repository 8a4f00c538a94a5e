//! The replication throttle (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`): a byte budget that refills at the rate and
//! may be overdrawn by one fetch. Pure; one per shard and side, on the shard's thread.
//!
//! Invariant: while the balance is below zero nothing throttled is sent (leader) or
//! fetched (follower); a fetch's bytes are charged after it, so one fetch of at most
//! `replica.fetch.max.bytes` per partition always goes through once the balance is
//! back at zero, and over time the throttled bytes stay within the rate.

use std::time::Instant;

#[derive(Debug)]
pub struct Throttle {
    /// Bytes that may still go now; negative after an overdraft.
    balance: f64,
    last: Instant,
}

impl Throttle {
    pub fn new(now: Instant) -> Throttle {
        Throttle {
            balance: 0.0,
            last: now,
        }
    }

    /// Refills at `rate` bytes per second (at most one second's worth banked), then
    /// says whether throttled bytes may go.
    pub fn allows(&mut self, rate: i64, now: Instant) -> bool {
        let rate = rate.max(0) as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.balance = (self.balance + elapsed * rate).min(rate);
        self.balance >= 0.0
    }

    /// Charges `bytes` that went.
    pub fn charge(&mut self, bytes: usize) {
        self.balance -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_overdraft_waits_until_the_rate_has_paid_it_back() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        assert!(t.allows(1000, t0));
        t.charge(3000);
        assert!(!t.allows(1000, t0 + Duration::from_secs(1)));
        assert!(!t.allows(1000, t0 + Duration::from_millis(2900)));
        assert!(t.allows(1000, t0 + Duration::from_secs(3)));
        // At most one second is banked: a long pause does not allow a burst.
        assert!(t.allows(1000, t0 + Duration::from_secs(100)));
        t.charge(2500);
        assert!(!t.allows(1000, t0 + Duration::from_secs(100)));
    }

    #[test]
    fn a_zero_rate_allows_nothing_after_the_first_charge() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        assert!(t.allows(0, t0));
        t.charge(1);
        assert!(!t.allows(0, t0 + Duration::from_secs(3600)));
    }
}
