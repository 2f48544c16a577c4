//! Admission control for password hashing: at most `concurrency` hashes run at once, at most
//! `queue` more wait for a hashing thread, and a call beyond that is refused at once with
//! [`HashingError::Overloaded`] rather than left waiting without bound.
//!
//! The waiting calls' jobs queue at the hashing threads themselves, so a thread that finishes a
//! hash starts the next one at once: no hand-back to the async runtime between two hashes, which
//! on a busy machine left the threads idle for a wake-up or two per hash.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::hashing_workers::{HashingPriority, HashingWorkers};
use super::password_hasher::HashingError;
use crate::telemetry::metrics;

/// The hashing threads, and the permits that bound how much hashing runs and waits.
pub struct HashingAdmission {
    /// `concurrency` threads: that many jobs run at once, the rest wait in the threads' queue.
    threads: HashingWorkers,
    /// One permit per job running or waiting; none left means the queue is full. A job holds its
    /// permit until it has run or a thread has dropped it (its caller gone), so the threads' queue
    /// never holds more than this many jobs.
    admitted: Arc<Semaphore>,
}

impl HashingAdmission {
    /// Starts `concurrency` hashing threads at `priority` (see [`HashingWorkers::start`]) that admit
    /// `queue` waiting calls beyond those running.
    pub fn start(concurrency: usize, queue: usize, priority: HashingPriority) -> std::io::Result<Self> {
        let concurrency = concurrency.max(1);
        Ok(Self {
            threads: HashingWorkers::start(concurrency, priority)?,
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
        })
    }

    /// Runs `work` on a hashing thread once one is free, or refuses at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            metrics::hashing_rejected();
            HashingError::Overloaded
        })?;
        let counted = Counted::new(metrics::hashing_admitted);
        // Counted out when a thread takes the job, or when the job is dropped untaken.
        let queued = Counted::new(metrics::hashing_queued);
        self.threads
            .run(move || {
                drop(queued);
                let _held = (admitted, counted);
                work()
            })
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
    use super::*;

    /// Waits until every admission permit is held: the spawned calls have all been admitted.
    /// Each of them needs only to be polled once, so a bounded number of yields is plenty; a
    /// permit still free after that means admission let one go early.
    async fn queue_filled(admission: &HashingAdmission) {
        for _ in 0..10_000 {
            if admission.admitted.available_permits() == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the calls were admitted, yet a permit is free");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        // One thread and a queue of one. The first call's work waits until the test lets it go,
        // so the calls it starts cannot finish before then: no timing is involved.
        let admission = Arc::new(HashingAdmission::start(1, 1, HashingPriority::Nice(0)).unwrap());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let waiting: Vec<_> = [Some(released), None]
            .into_iter()
            .enumerate()
            .map(|(n, gate)| {
                let admission = admission.clone();
                tokio::spawn(async move {
                    admission
                        .run(move || {
                            if let Some(gate) = gate {
                                gate.recv().ok();
                            }
                            Ok(n)
                        })
                        .await
                })
            })
            .collect();
        // Both are admitted (one running, one queued) once no admission permit is left.
        queue_filled(&admission).await;
        let refused = admission.run(|| Ok(9)).await;
        assert!(matches!(refused, Err(HashingError::Overloaded)), "{refused:?}");
        release.send(()).unwrap();
        for (n, call) in waiting.into_iter().enumerate() {
            assert_eq!(
                call.await.unwrap().unwrap(),
                n,
                "admitted calls finish once the thread is free"
            );
        }
        assert_eq!(
            admission.run(|| Ok(7)).await.unwrap(),
            7,
            "and new calls are admitted again"
        );
    }

    #[tokio::test]
    async fn a_call_that_stops_waiting_is_not_hashed() {
        let admission = Arc::new(HashingAdmission::start(1, 1, HashingPriority::Nice(0)).unwrap());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let admission = admission.clone();
            async move {
                admission
                    .run(move || {
                        released.recv().ok();
                        Ok(())
                    })
                    .await
            }
        });
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = tokio::spawn({
            let (admission, ran) = (admission.clone(), ran.clone());
            async move {
                admission
                    .run(move || {
                        ran.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }
        });
        queue_filled(&admission).await;
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        assert_eq!(
            admission.admitted.available_permits(),
            0,
            "the abandoned job keeps its place in the queue until a thread drops it"
        );
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        // The thread has taken the abandoned job off its queue by the time it runs this one.
        admission.run(|| Ok(())).await.unwrap();
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "the abandoned call's work was skipped"
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
