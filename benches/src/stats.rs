//! Counters, latency percentiles and the printed summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;

/// Kafka error codes seen in responses, with how often each was seen.
#[derive(Debug, Default, Clone)]
pub struct ErrorTally(BTreeMap<i16, u64>);

impl ErrorTally {
    /// Counts one occurrence of `code` (0 is not an error and is ignored).
    pub fn add(&mut self, code: i16) {
        if code != 0 {
            *self.0.entry(code).or_default() += 1;
        }
    }

    /// Merges another tally into this one.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (code, n) in &other.0 {
            *self.0.entry(*code).or_default() += n;
        }
    }

    /// Total number of errors.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `NAME(code) xN, ...`, or `none`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        let mut out = String::new();
        for (code, n) in &self.0 {
            let name = code.err().map(|e| format!("{e:?}")).unwrap_or_default();
            let sep = if out.is_empty() { "" } else { ", " };
            let _ = write!(out, "{sep}{name}({code}) x{n}");
        }
        out
    }
}

/// Latency samples in microseconds; exact percentiles by sorting at the end.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    /// Merges another set of samples.
    pub fn merge(&mut self, other: &Latencies) {
        self.0.extend_from_slice(&other.0);
    }

    /// Sorts the samples and returns (p50, p99, p99.9) in microseconds.
    pub fn percentiles_us(&mut self) -> (u32, u32, u32) {
        self.0.sort_unstable();
        (self.at(0.50), self.at(0.99), self.at(0.999))
    }

    /// Nearest-rank percentile of sorted samples; 0 when there are none.
    fn at(&self, q: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

/// Result of one produce run.
#[derive(Debug, Clone)]
pub struct ProduceReport {
    pub elapsed: Duration,
    /// Records acknowledged without error.
    pub records: u64,
    /// Record value bytes acknowledged without error.
    pub value_bytes: u64,
    /// Produce requests answered.
    pub requests: u64,
    pub errors: ErrorTally,
    pub p50_us: u32,
    pub p99_us: u32,
    pub p999_us: u32,
}

/// Result of one fetch run.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub elapsed: Duration,
    /// Records in the complete batches received.
    pub records: u64,
    /// Bytes of complete record batches received.
    pub batch_bytes: u64,
    pub requests: u64,
    pub errors: ErrorTally,
}

/// MiB per second.
pub fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// Count per second.
pub fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

impl ProduceReport {
    /// Human-readable lines, then one `RESULT produce k=v ...` line for scripts.
    pub fn print(&self) {
        println!(
            "produce: {:.0} records/s, {:.1} MiB/s (record values), {} requests in {:.2} s",
            per_sec(self.records, self.elapsed),
            mib_per_sec(self.value_bytes, self.elapsed),
            self.requests,
            self.elapsed.as_secs_f64()
        );
        println!(
            "produce latency: p50 {} us, p99 {} us, p99.9 {} us",
            self.p50_us, self.p99_us, self.p999_us
        );
        println!("produce errors: {}", self.errors.describe());
        println!(
            "RESULT produce records_per_sec={:.0} mib_per_sec={:.1} p50_us={} p99_us={} p999_us={} errors={} bytes={} secs={:.3}",
            per_sec(self.records, self.elapsed),
            mib_per_sec(self.value_bytes, self.elapsed),
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.errors.total(),
            self.value_bytes,
            self.elapsed.as_secs_f64()
        );
    }
}

impl FetchReport {
    /// Human-readable lines, then one `RESULT fetch k=v ...` line for scripts.
    pub fn print(&self) {
        println!(
            "fetch: {:.0} records/s, {:.1} MiB/s (record batches), {} requests in {:.2} s",
            per_sec(self.records, self.elapsed),
            mib_per_sec(self.batch_bytes, self.elapsed),
            self.requests,
            self.elapsed.as_secs_f64()
        );
        println!("fetch errors: {}", self.errors.describe());
        println!(
            "RESULT fetch records_per_sec={:.0} mib_per_sec={:.1} errors={} bytes={} secs={:.3}",
            per_sec(self.records, self.elapsed),
            mib_per_sec(self.batch_bytes, self.elapsed),
            self.errors.total(),
            self.batch_bytes,
            self.elapsed.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies::default();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.percentiles_us(), (500, 990, 999));
        assert_eq!(Latencies::default().percentiles_us(), (0, 0, 0));
    }

    #[test]
    fn tally_ignores_success_and_names_errors() {
        let mut t = ErrorTally::default();
        t.add(0);
        t.add(3);
        t.add(3);
        assert_eq!(t.total(), 2);
        assert!(
            t.describe().contains("UnknownTopicOrPartition(3) x2"),
            "{}",
            t.describe()
        );
    }
}
