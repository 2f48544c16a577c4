//! Latency samples and the report a load run prints.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Latencies of one run, in microseconds, kept whole so percentiles are exact.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.micros.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The nearest-rank percentile (`p` in 0..=100): the smallest sample with at least `p` percent
    /// of the samples at or below it. 0 when there are no samples.
    pub fn percentile(&mut self, p: f64) -> u64 {
        if self.micros.is_empty() {
            return 0;
        }
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
        let n = self.micros.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.micros[rank.clamp(1, n) - 1]
    }

    pub fn max(&self) -> u64 {
        self.micros.iter().copied().max().unwrap_or(0)
    }
}

/// What a scenario measured: throughput, latency percentiles in milliseconds, errors by gRPC code.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn new(
        scenario: &str,
        concurrency: usize,
        elapsed: Duration,
        mut ok: Latencies,
        errors: BTreeMap<String, u64>,
    ) -> Self {
        let requests = ok.len() as u64 + errors.values().sum::<u64>();
        let seconds = elapsed.as_secs_f64();
        let ms = |micros: u64| micros as f64 / 1000.0;
        Report {
            scenario: scenario.to_owned(),
            concurrency,
            seconds,
            requests,
            requests_per_second: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
            p50_ms: ms(ok.percentile(50.0)),
            p90_ms: ms(ok.percentile(90.0)),
            p99_ms: ms(ok.percentile(99.0)),
            p99_9_ms: ms(ok.percentile(99.9)),
            max_ms: ms(ok.max()),
            errors,
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        let errors = if self.errors.is_empty() {
            "no errors".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{:<15} c={:<4} {:>9.1} req/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} requests, {errors})",
            self.scenario,
            self.concurrency,
            self.requests_per_second,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p99_9_ms,
            self.max_ms,
            self.requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies(values: impl IntoIterator<Item = u64>) -> Latencies {
        let mut l = Latencies::default();
        for v in values {
            l.record(Duration::from_micros(v));
        }
        l
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = latencies((1..=100).rev());
        assert_eq!(l.percentile(50.0), 50);
        assert_eq!(l.percentile(90.0), 90);
        assert_eq!(l.percentile(99.0), 99);
        assert_eq!(l.percentile(99.9), 100);
        assert_eq!(l.percentile(100.0), 100);
        assert_eq!(l.percentile(0.0), 1);
        assert_eq!(l.max(), 100);
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(Latencies::default().percentile(99.0), 0);
        let mut one = latencies([7]);
        assert_eq!((one.percentile(50.0), one.percentile(99.9)), (7, 7));
        let mut two = latencies([10, 20]);
        assert_eq!((two.percentile(50.0), two.percentile(51.0)), (10, 20));
    }

    #[test]
    fn reports_count_errors_as_requests() {
        let ok = latencies([1000, 2000, 3000]);
        let errors = BTreeMap::from([("Unavailable".to_owned(), 1)]);
        let report = Report::new("validate", 4, Duration::from_secs(2), ok, errors);
        assert_eq!(report.requests, 4);
        assert_eq!(report.requests_per_second, 2.0);
        assert_eq!(report.p50_ms, 2.0);
        assert_eq!(report.max_ms, 3.0);
        assert!(report.line().contains("Unavailable: 1"));
    }
}
