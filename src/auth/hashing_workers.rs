//! The threads password hashes run on.
//!
//! Hashing is long, CPU-bound work (tens of milliseconds per hash) and session validation is short
//! work that other services wait on. On tokio's shared blocking pool, hashes compete with
//! validations for the cores as equals, so a login storm makes every validation wait its turn
//! behind argon2. Here hashes run on their own threads at a lower scheduling priority (a positive
//! nice value): they still take every core nothing else wants, but a validation that becomes
//! runnable gets a core at once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run jobs in the order they are sent.
pub struct HashingWorkers {
    jobs: mpsc::Sender<Job>,
}

impl HashingWorkers {
    /// Starts `count` threads at `nice` (0 keeps the process's priority). The threads end when the
    /// last handle to the workers is dropped.
    pub fn start(count: usize, nice: i32) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("identityd-hash-{n}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a worker thread inside the caller's tracing span and returns its result.
    /// If the caller stops waiting before a worker takes the job, the work is skipped.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            if !reply.is_closed() {
                let _ = reply.send(span.in_scope(work));
            }
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }
}

/// Raises the calling thread's nice value by `by` (Linux schedules threads individually, and a new
/// thread starts at its creator's value). Raising it needs no privilege; failure only means hashing
/// keeps the normal priority, so it is logged and ignored.
#[cfg(target_os = "linux")]
fn lower_priority(by: i32) {
    if by <= 0 {
        return;
    }
    let nice = (thread_nice() + by).min(19);
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t, nice) };
    if result != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the hashing threads' priority");
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn thread_nice() -> i32 {
    // SAFETY: as above; getpriority only reads its arguments.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_workers_and_answer() {
        let workers = HashingWorkers::start(2, 10).unwrap();
        let name = workers
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("identityd-hash-"));
        assert_eq!(workers.run(|| 6 * 7).await, Some(42));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn workers_run_at_a_lower_priority_than_their_creator() {
        let workers = HashingWorkers::start(1, 7).unwrap();
        let nice = workers.run(thread_nice).await.unwrap();
        assert_eq!(nice, (thread_nice() + 7).min(19));
    }
}
