//! Client quota sensors: Kafka's sampled rate per (quota kind, user, client id), and
//! the throttle time a violation costs. Pure (time is passed in, in milliseconds).
//!
//! Which quota applies to a client, and the names of the sensor it is measured on,
//! come from `metadata::client_quotas::resolve`; this module only measures.
//!
//! Ownership: [`Sensors`] lives on one shard and is touched only by that shard's
//! thread. Each sensor has one home shard (`api::throttle` routes by a hash of its
//! key), so a client's connections on every shard share one measurement while nothing
//! is shared between threads.
//!
//! Invariant: a sensor idle for longer than its whole window (samples × span) is
//! dropped — it would measure zero anyway — so memory follows the clients active in
//! the last window, not every client id ever seen.

use std::collections::HashMap;

/// What a sensor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Produce request bytes per second.
    Produce,
    /// Fetch response bytes per second.
    Fetch,
    /// Request handling time, as a percentage of one second per second.
    Request,
}

/// A sensor's identity: its kind and the (user, client id) it is measured for ("" for
/// a part the quota is not split by).
pub type SensorKey = (Kind, String, String);

/// Samples of a rate, as Kafka's `SampledStat` + `Rate`: `samples` spans of
/// `span_ms` each; a span's sample is reused once the whole window has passed it.
#[derive(Debug)]
struct Rate {
    /// (start ms, total) per sample; `current` is the one being filled.
    samples: Vec<(u64, f64)>,
    current: usize,
}

impl Rate {
    fn new(now: u64) -> Rate {
        Rate {
            samples: vec![(now, 0.0)],
            current: 0,
        }
    }

    fn record(&mut self, w: Window, value: f64, now: u64) {
        let (start, _) = self.samples[self.current];
        if now.saturating_sub(start) >= w.span_ms {
            self.current = (self.current + 1) % w.samples;
            if self.current >= self.samples.len() {
                self.samples.push((now, 0.0));
            } else {
                self.samples[self.current] = (now, 0.0);
            }
        }
        self.samples[self.current].1 += value;
    }

    /// Forgets samples the window has moved past.
    fn purge(&mut self, w: Window, now: u64) {
        let whole = w.whole_ms();
        for s in &mut self.samples {
            if now.saturating_sub(s.0) >= whole {
                *s = (now, 0.0);
            }
        }
    }

    /// The time the rate is measured over: since the oldest sample, but at least
    /// all spans but one (so a new sensor's first burst is not a huge rate).
    fn window_ms(&mut self, w: Window, now: u64) -> u64 {
        self.purge(w, now);
        let oldest = self.samples.iter().map(|s| s.0).min().unwrap_or(now);
        let mut elapsed = now.saturating_sub(oldest);
        let full = elapsed / w.span_ms;
        let min_full = (w.samples as u64).saturating_sub(1);
        if full < min_full {
            elapsed += (min_full - full) * w.span_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second.
    fn measure(&mut self, w: Window, now: u64) -> f64 {
        let window = self.window_ms(w, now);
        let total: f64 = self.samples.iter().map(|s| s.1).sum();
        total / (window as f64 / 1000.0)
    }
}

/// The quota window: `quota.window.num` samples of `quota.window.size.seconds`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub samples: usize,
    pub span_ms: u64,
}

impl Window {
    pub fn new(samples: i64, span_seconds: i64) -> Window {
        Window {
            samples: samples.max(1) as usize,
            span_ms: (span_seconds.max(1) as u64).saturating_mul(1000),
        }
    }

    fn whole_ms(self) -> u64 {
        self.span_ms.saturating_mul(self.samples as u64)
    }

    /// The most a byte quota lets through in one window (Kafka caps a throttled
    /// consumer's fetch size by it): the quota over all spans but one.
    pub fn max_in_window(self, bound: f64) -> f64 {
        bound * ((self.samples.saturating_sub(1)) as f64) * (self.span_ms as f64 / 1000.0)
    }
}

/// How to record a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Record it, then check the quota (Produce, request time).
    Always,
    /// Record it; on a violation take it back (a throttled Fetch returns nothing, so
    /// nothing was consumed).
    UnlessThrottled,
}

/// One shard's sensors.
#[derive(Debug)]
pub struct Sensors {
    window: Window,
    rates: HashMap<SensorKey, (Rate, u64)>,
    last_sweep: u64,
}

impl Sensors {
    pub fn new(window: Window) -> Sensors {
        Sensors {
            window,
            rates: HashMap::new(),
            last_sweep: 0,
        }
    }

    /// Records `value` on sensor `key` at `now` and returns the throttle time in ms:
    /// 0 within quota `bound`; over it, the time at which the rate would fall back to
    /// the bound, `(rate - bound) / bound × window`, capped at `cap_ms`.
    pub fn record(
        &mut self,
        key: SensorKey,
        bound: f64,
        value: f64,
        how: Record,
        cap_ms: Option<u64>,
        now: u64,
    ) -> u64 {
        self.sweep(now);
        let w = self.window;
        let (rate, used) = self
            .rates
            .entry(key)
            .or_insert_with(|| (Rate::new(now), now));
        *used = now;
        rate.record(w, value, now);
        let measured = rate.measure(w, now);
        if measured <= bound || bound <= 0.0 {
            return 0;
        }
        let window = rate.window_ms(w, now) as f64;
        let ms = ((measured - bound) / bound * window) as u64;
        if how == Record::UnlessThrottled {
            rate.record(w, -value, now);
        }
        cap_ms.map_or(ms, |cap| ms.min(cap)).max(1)
    }

    /// Drops sensors idle for a whole window, at most once a window.
    fn sweep(&mut self, now: u64) {
        let whole = self.window.whole_ms();
        if now.saturating_sub(self.last_sweep) < whole {
            return;
        }
        self.last_sweep = now;
        self.rates
            .retain(|_, (_, used)| now.saturating_sub(*used) < whole);
    }

    /// Sensors kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SensorKey {
        (Kind::Produce, "ANONYMOUS".into(), "app".into())
    }

    #[test]
    fn a_first_burst_is_spread_over_all_spans_but_one() {
        let w = Window::new(11, 1);
        let mut s = Sensors::new(w);
        // 10 KB at once against 1 KB/s: measured over 10 s, that is 1 KB/s: within.
        assert_eq!(
            s.record(key(), 1024.0, 10_240.0, Record::Always, None, 1_000),
            0
        );
        // Another 10 KB: 2 KB/s, one second over per second of window: 10 s.
        let ms = s.record(key(), 1024.0, 10_240.0, Record::Always, None, 1_000);
        assert_eq!(ms, 10_000);
        // A cap bounds it (request quotas are capped at one span).
        let capped = s.record(key(), 1024.0, 1.0, Record::Always, Some(1_000), 1_000);
        assert_eq!(capped, 1_000);
    }

    #[test]
    fn a_throttled_fetch_is_taken_back_and_the_rate_decays() {
        let w = Window::new(11, 1);
        let mut s = Sensors::new(w);
        let k = (Kind::Fetch, String::new(), "c".to_string());
        assert_eq!(
            s.record(k.clone(), 100.0, 1_000.0, Record::UnlessThrottled, None, 0),
            0
        );
        let throttled = s.record(k.clone(), 100.0, 5_000.0, Record::UnlessThrottled, None, 0);
        assert!(throttled > 0);
        // Taken back: the same small fetch is still within quota.
        assert_eq!(
            s.record(k.clone(), 100.0, 0.0, Record::UnlessThrottled, None, 0),
            0
        );
        // Once the whole window has passed, the sensor measures nothing.
        assert_eq!(s.record(k, 100.0, 1_000.0, Record::Always, None, 20_000), 0);
    }

    #[test]
    fn sensors_idle_for_a_window_are_dropped() {
        let mut s = Sensors::new(Window::new(2, 1));
        for i in 0..100 {
            let k = (Kind::Request, String::new(), format!("c{i}"));
            s.record(k, 1.0, 0.1, Record::Always, None, 5_000);
        }
        assert_eq!(s.len(), 100);
        s.record(key(), 1.0, 0.1, Record::Always, None, 7_000);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_window_caps_a_fetch() {
        assert_eq!(Window::new(11, 1).max_in_window(100.0), 1_000.0);
        assert_eq!(Window::new(1, 1).max_in_window(100.0), 0.0);
    }
}
