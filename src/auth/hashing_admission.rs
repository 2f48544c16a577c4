//! Admission control for password hashing: at most `concurrency` hashes run at once, at most
//! `queue` more wait for a hashing thread, and a call beyond that is refused at once with
//! [`HashingError::Overloaded`] rather than left waiting without bound.

use tokio::sync::Semaphore;

use super::hashing_workers::{HashingPriority, HashingWorkers};
use super::password_hasher::HashingError;
use crate::telemetry::metrics;

/// The hashing threads, and the permits that bound how much hashing runs and waits.
pub struct HashingAdmission {
    threads: HashingWorkers,
    /// One permit per hashing thread: a call holds one while its work runs.
    workers: Semaphore,
    /// One permit per call running or waiting; none left means the queue is full.
    admitted: Semaphore,
}

impl HashingAdmission {
    /// Starts `concurrency` hashing threads at `priority` (see [`HashingWorkers::start`]) that admit
    /// `queue` waiting calls beyond those running.
    pub fn start(concurrency: usize, queue: usize, priority: HashingPriority) -> std::io::Result<Self> {
        let concurrency = concurrency.max(1);
        Ok(Self {
            threads: HashingWorkers::start(concurrency, priority)?,
            workers: Semaphore::new(concurrency),
            admitted: Semaphore::new(concurrency + queue),
        })
    }

    /// Runs `work` on a hashing thread once one is free, or refuses at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let _admitted = self.admitted.try_acquire().map_err(|_| {
            metrics::hashing_rejected();
            HashingError::Overloaded
        })?;
        let _counted = Counted::new(metrics::hashing_admitted);
        let queued = Counted::new(metrics::hashing_queued);
        let _worker = self
            .workers
            .acquire()
            .await
            .map_err(|e| HashingError::Failed(anyhow::anyhow!("hashing pool closed: {e}")))?;
        drop(queued);
        self.threads
            .run(work)
            .await
            .ok_or_else(|| HashingError::Failed(anyhow::anyhow!("hashing thread ended")))?
    }
}

/// One in a gauge for as long as it lives: counted out however the call ends, cancelled included.
struct Counted(fn(f64));

impl Counted {
    fn new(gauge: fn(f64)) -> Self {
        gauge(1.0);
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.0)(-1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        // One worker and a queue of one. The test holds the worker itself, so the calls it starts
        // cannot finish until it lets go: no timing is involved.
        let admission = Arc::new(HashingAdmission::start(1, 1, HashingPriority::Nice(0)).unwrap());
        let worker = admission.workers.try_acquire().unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|n| {
                let admission = admission.clone();
                tokio::spawn(async move { admission.run(move || Ok(n)).await })
            })
            .collect();
        // Both are admitted (one for the worker, one queued) once no admission permit is left.
        while admission.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = admission.run(|| Ok(9)).await;
        assert!(matches!(refused, Err(HashingError::Overloaded)), "{refused:?}");
        drop(worker);
        for (n, call) in waiting.into_iter().enumerate() {
            assert_eq!(
                call.await.unwrap().unwrap(),
                n,
                "admitted calls finish once the worker is free"
            );
        }
        assert_eq!(
            admission.run(|| Ok(7)).await.unwrap(),
            7,
            "and new calls are admitted again"
        );
    }

    #[tokio::test]
    async fn a_failing_job_reports_its_error() {
        let admission = HashingAdmission::start(1, 0, HashingPriority::Nice(0)).unwrap();
        let failed = admission
            .run(|| Err::<(), _>(HashingError::Failed(anyhow::anyhow!("boom"))))
            .await;
        assert!(matches!(failed, Err(HashingError::Failed(_))), "{failed:?}");
        assert!(admission.run(|| Ok(())).await.is_ok(), "the permits were given back");
    }
}
