//! The threads password hashes run on.
//!
//! Hashing is long, CPU-bound work (tens of milliseconds per hash) and session validation is short
//! work that other services wait on. On tokio's shared blocking pool, hashes compete with
//! validations for the cores as equals, so a login storm makes every validation wait its turn
//! behind argon2. Here hashes run on their own threads at a lower scheduling priority: they still
//! take every core nothing else wants, but a validation that becomes runnable gets a core at once.
//!
//! By default that priority is Linux's `SCHED_IDLE` policy. A thread that is merely niced is
//! still allowed to keep its core for a while when another thread wakes (the scheduler protects
//! the slice it was given), so a validation that wakes behind a hash can wait for it; a
//! `SCHED_IDLE` thread is preempted as soon as any other thread becomes runnable on its core.
//! (Measured in BENCHMARKS.md, row 3.)

use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// How the hashing threads are scheduled beside the rest of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingPriority {
    /// Linux's `SCHED_IDLE`: the threads run only on cores no other thread wants, and give a core
    /// up the moment another thread becomes runnable on it.
    Idle,
    /// A nice increment over the service's own priority (0 for the same, up to 19).
    Nice(i32),
}

impl FromStr for HashingPriority {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("idle") {
            return Ok(Self::Idle);
        }
        match value.parse::<i32>() {
            Ok(nice @ 0..=19) => Ok(Self::Nice(nice)),
            _ => Err(format!(
                "expected `idle` or a nice increment from 0 to 19, not `{value}`"
            )),
        }
    }
}

impl std::fmt::Display for HashingPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle => f.write_str("idle"),
            Self::Nice(nice) => write!(f, "{nice}"),
        }
    }
}

/// A fixed set of threads that run jobs in the order they are sent.
pub struct HashingWorkers {
    jobs: mpsc::Sender<Job>,
}

impl HashingWorkers {
    /// Starts `count` threads at `priority`. The threads end when the last handle to the workers
    /// is dropped.
    pub fn start(count: usize, priority: HashingPriority) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("identityd-hash-{n}"))
                .spawn(move || {
                    lower_priority(priority);
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

/// Lowers the calling thread's priority (Linux schedules threads individually, and a new thread
/// starts with its creator's policy and nice value). Lowering it needs no privilege; failure only
/// means hashing keeps the normal priority, so it is logged and ignored.
#[cfg(target_os = "linux")]
fn lower_priority(priority: HashingPriority) {
    let result = match priority {
        HashingPriority::Nice(by) if by <= 0 => return,
        HashingPriority::Nice(by) => {
            let nice = (thread_nice() + by).min(19);
            // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t, nice) }
        }
        HashingPriority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call, which only reads it.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
        }
    };
    if result != 0 {
        tracing::warn!(%priority, error = %std::io::Error::last_os_error(), "cannot lower the hashing threads' priority");
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn thread_nice() -> i32 {
    // SAFETY: as above; getpriority only reads its arguments.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_: HashingPriority) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_workers_and_answer() {
        let workers = HashingWorkers::start(2, HashingPriority::Nice(10)).unwrap();
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
        let workers = HashingWorkers::start(1, HashingPriority::Nice(7)).unwrap();
        let nice = workers.run(thread_nice).await.unwrap();
        assert_eq!(nice, (thread_nice() + 7).min(19));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn idle_workers_run_under_sched_idle_and_leave_their_creator_alone() {
        // SAFETY: pid 0 is the calling thread; sched_getscheduler only reads it.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let workers = HashingWorkers::start(1, HashingPriority::Idle).unwrap();
        assert_eq!(workers.run(policy).await, Some(libc::SCHED_IDLE));
        assert_eq!(policy(), libc::SCHED_OTHER);
    }

    #[test]
    fn a_priority_is_idle_or_a_nice_increment() {
        assert_eq!("idle".parse(), Ok(HashingPriority::Idle));
        assert_eq!("IDLE".parse(), Ok(HashingPriority::Idle));
        assert_eq!("0".parse(), Ok(HashingPriority::Nice(0)));
        assert_eq!("19".parse(), Ok(HashingPriority::Nice(19)));
        for bad in ["20", "-1", "", "low"] {
            assert!(bad.parse::<HashingPriority>().is_err(), "{bad}");
        }
        for priority in [HashingPriority::Idle, HashingPriority::Nice(15)] {
            assert_eq!(priority.to_string().parse(), Ok(priority));
        }
    }
}
