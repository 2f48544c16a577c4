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

/// How the calls were sent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// Each caller sends its next call when the last one is answered: a slow answer also delays
    /// the calls behind it, so the latencies miss the wait those calls would have had.
    Closed,
    /// Calls are due at a fixed rate whatever the answers; a call's latency is counted from when it
    /// was due, so waiting for a free caller counts.
    Open { calls_per_second: f64 },
}

/// What a scenario measured: throughput of successful calls, errors as their own rate, latency
/// percentiles (in milliseconds) over every call measured, errors by gRPC code.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub load: Load,
    /// Callers, which is also the most calls in flight at once.
    pub concurrency: usize,
    pub seconds: f64,
    /// Calls measured, successful or not.
    pub requests: u64,
    /// Of those, the ones that failed.
    pub failed: u64,
    /// Successful calls per second: a failed call is never throughput.
    pub succeeded_per_second: f64,
    /// Failed calls per second.
    pub errors_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    /// `latencies` holds every measured call, failures included; `errors` counts the failures.
    pub fn new(
        scenario: &str,
        load: Load,
        concurrency: usize,
        elapsed: Duration,
        mut latencies: Latencies,
        errors: BTreeMap<String, u64>,
    ) -> Self {
        let requests = latencies.len() as u64;
        let failed = errors.values().sum::<u64>().min(requests);
        let seconds = elapsed.as_secs_f64();
        let per_second = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        let ms = |micros: u64| micros as f64 / 1000.0;
        Report {
            scenario: scenario.to_owned(),
            load,
            concurrency,
            seconds,
            requests,
            failed,
            succeeded_per_second: per_second(requests - failed),
            errors_per_second: per_second(failed),
            p50_ms: ms(latencies.percentile(50.0)),
            p90_ms: ms(latencies.percentile(90.0)),
            p99_ms: ms(latencies.percentile(99.0)),
            p99_9_ms: ms(latencies.percentile(99.9)),
            max_ms: ms(latencies.max()),
            errors,
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        let errors = if self.errors.is_empty() {
            "no errors".to_owned()
        } else {
            let codes = self
                .errors
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{:.1} errors/s: {codes}", self.errors_per_second)
        };
        let load = match self.load {
            Load::Closed => format!("c={:<4}", self.concurrency),
            Load::Open { calls_per_second } => format!("open {calls_per_second:.0}/s c={}", self.concurrency),
        };
        format!(
            "{:<15} {load} {:>9.1} ok/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} requests, {errors})",
            self.scenario,
            self.succeeded_per_second,
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
    fn errors_are_a_rate_of_their_own_and_never_throughput() {
        // Four calls in two seconds, one of which failed.
        let all = latencies([1000, 2000, 3000, 4000]);
        let errors = BTreeMap::from([("Unavailable".to_owned(), 1)]);
        let report = Report::new("validate", Load::Closed, 4, Duration::from_secs(2), all, errors);
        assert_eq!((report.requests, report.failed), (4, 1));
        assert_eq!(report.succeeded_per_second, 1.5);
        assert_eq!(report.errors_per_second, 0.5);
        assert!(
            report.line().contains("0.5 errors/s: Unavailable: 1"),
            "{}",
            report.line()
        );
    }

    #[test]
    fn percentiles_take_in_the_failed_calls() {
        // A slow failure (a timeout, say) is the worst latency a caller saw, and it shows.
        let all = latencies([1000, 1000, 1000, 9000]);
        let errors = BTreeMap::from([("DeadlineExceeded".to_owned(), 1)]);
        let report = Report::new("validate", Load::Closed, 4, Duration::from_secs(1), all, errors);
        assert_eq!((report.p50_ms, report.p99_ms, report.max_ms), (1.0, 9.0, 9.0));
    }

    #[test]
    fn an_open_load_says_its_rate() {
        let load = Load::Open {
            calls_per_second: 500.0,
        };
        let report = Report::new(
            "validate",
            load,
            16,
            Duration::from_secs(1),
            latencies([100]),
            BTreeMap::new(),
        );
        assert!(report.line().contains("open 500/s c=16"), "{}", report.line());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["load"],
            serde_json::json!({"kind": "open", "calls_per_second": 500.0})
        );
        assert_eq!(json["succeeded_per_second"], 1.0);
    }
}
