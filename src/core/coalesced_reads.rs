//! Reads by key that share queries while the database is busy.
//!
//! At most `max_in_flight` reads run at once. A key asked for while they all run waits, with the
//! others asked for meanwhile, and the first read to finish hands its slot to the oldest waiter,
//! which reads up to `max_batch` waiting keys in one query. So a lone call reads at once, as it
//! would without this, and under load many calls share each query (its round trip, its hand-off
//! to the connection's thread, its statement) instead of queueing for a connection one by one.
//! A waiting key is read by a query that starts after it was asked for, never by one already
//! running, so a caller sees every change made before it asked, as with a read of its own (the
//! validation cache's generation check relies on this).
//!
//! Written here rather than taken from a data-loader crate: those gather a batch by delaying each
//! read (a timer or a number of yields), which every call would pay, busy or not.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Coalesces reads of `V`s by key `K`; see the module's documentation.
pub struct CoalescedReads<K, V> {
    max_in_flight: usize,
    max_batch: usize,
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    in_flight: usize,
    waiting: VecDeque<Waiter<K, V>>,
}

struct Waiter<K, V> {
    key: K,
    reply: oneshot::Sender<Reply<K, V>>,
}

enum Reply<K, V> {
    /// The read this waiter was part of finished: its value, if its key was found.
    Read(Option<V>),
    /// The read this waiter was part of failed: it reads its key alone, to get its own error.
    Failed,
    /// A slot came free: the waiter reads its key together with these.
    Lead(Vec<Waiter<K, V>>),
}

impl<K: Eq + Hash + Clone, V: Clone> CoalescedReads<K, V> {
    /// At most `max_in_flight` reads at once (at least 1), each of at most `max_batch` keys.
    pub fn new(max_in_flight: usize, max_batch: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            max_batch: max_batch.max(1),
            state: Mutex::new(State {
                in_flight: 0,
                waiting: VecDeque::new(),
            }),
        }
    }

    /// The value of `key`, read by `read` (which returns the found keys with their values, in any
    /// order) alone or with other keys.
    pub async fn get<E, F, Fut>(&self, key: K, read: F) -> Result<Option<V>, E>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let others = loop {
            let answer = {
                let mut state = self.lock();
                if state.in_flight < self.max_in_flight {
                    state.in_flight += 1;
                    break Vec::new();
                }
                let (reply, answer) = oneshot::channel();
                state.waiting.push_back(Waiter {
                    key: key.clone(),
                    reply,
                });
                answer
            };
            match answer.await {
                Ok(Reply::Read(value)) => return Ok(value),
                Ok(Reply::Failed) => {
                    return Ok(read(vec![key.clone()])
                        .await?
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v));
                }
                Ok(Reply::Lead(others)) => break others,
                // The call reading this key was cancelled before it answered: wait again.
                Err(_) => continue,
            }
        };
        let slot = Slot { reads: self };
        let keys = std::iter::once(key.clone())
            .chain(others.iter().map(|w| w.key.clone()))
            .collect();
        let result = read(keys).await;
        // The next waiters' read starts before this one's answers go out.
        drop(slot);
        match result {
            Ok(found) => {
                let mut found: HashMap<K, V> = found.into_iter().collect();
                for waiter in others {
                    let _ = waiter.reply.send(Reply::Read(found.get(&waiter.key).cloned()));
                }
                Ok(found.remove(&key))
            }
            Err(e) => {
                for waiter in others {
                    let _ = waiter.reply.send(Reply::Failed);
                }
                Err(e)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A read's place among the `max_in_flight`; when dropped (the read finished, or its call was
/// cancelled), it goes to the oldest waiter still there, with the waiters behind it, or is freed.
struct Slot<'a, K, V> {
    reads: &'a CoalescedReads<K, V>,
}

impl<K, V> Drop for Slot<'_, K, V> {
    fn drop(&mut self) {
        let mut state = self.reads.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(leader) = state.waiting.pop_front() {
            let count = state.waiting.len().min(self.reads.max_batch - 1);
            let batch: Vec<_> = state.waiting.drain(..count).collect();
            match leader.reply.send(Reply::Lead(batch)) {
                Ok(()) => return,
                // That waiter's call was cancelled: the next one leads the same keys.
                Err(Reply::Lead(batch)) => {
                    for waiter in batch.into_iter().rev() {
                        state.waiting.push_front(waiter);
                    }
                }
                Err(_) => {}
            }
        }
        state.in_flight -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::{Notify, Semaphore};
    use tokio::task::JoinHandle;

    use super::*;

    type Reads = Arc<CoalescedReads<u32, u32>>;

    /// A read that records the batches it was given and waits for `gate` before answering
    /// every key `k` with `k * 10`, except keys over 100, which are not found, and failing any
    /// batch that holds 0.
    #[derive(Clone)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<Semaphore>,
        started: Arc<Notify>,
    }

    impl Default for Recorder {
        fn default() -> Self {
            Self {
                batches: Arc::default(),
                gate: Arc::new(Semaphore::new(0)),
                started: Arc::default(),
            }
        }
    }

    impl Recorder {
        async fn read(&self, keys: Vec<u32>) -> Result<Vec<(u32, u32)>, String> {
            self.batches.lock().unwrap().push(keys.clone());
            self.started.notify_one();
            self.gate.acquire().await.unwrap().forget();
            if keys.contains(&0) {
                return Err("zero".into());
            }
            Ok(keys.into_iter().filter(|k| *k <= 100).map(|k| (k, k * 10)).collect())
        }

        fn batches(&self) -> Vec<Vec<u32>> {
            self.batches.lock().unwrap().clone()
        }

        /// `key` asked for on a task of its own.
        fn spawn_get(&self, reads: &Reads, key: u32) -> JoinHandle<Result<Option<u32>, String>> {
            let (reads, recorder) = (reads.clone(), self.clone());
            tokio::spawn(async move { reads.get(key, |k| recorder.read(k)).await })
        }

        /// `key` asked for while nothing runs: it takes a slot and its read starts.
        async fn spawn_first(&self, reads: &Reads, key: u32) -> JoinHandle<Result<Option<u32>, String>> {
            let task = self.spawn_get(reads, key);
            self.started.notified().await;
            task
        }
    }

    /// Returns once `count` calls wait for a slot.
    async fn until_waiting(reads: &Reads, count: usize) {
        while reads.lock().waiting.len() < count {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_lone_read_runs_at_once_and_alone() {
        let reads = CoalescedReads::new(1, 8);
        let recorder = Recorder::default();
        recorder.gate.add_permits(2);
        assert_eq!(reads.get(7, |k| recorder.read(k)).await, Ok(Some(70)));
        assert_eq!(reads.get(101, |k| recorder.read(k)).await, Ok(None));
        assert_eq!(recorder.batches(), vec![vec![7], vec![101]]);
    }

    #[tokio::test]
    async fn keys_asked_for_while_the_slot_is_busy_share_the_next_read() {
        let reads = Arc::new(CoalescedReads::new(1, 8));
        let recorder = Recorder::default();
        let first = recorder.spawn_first(&reads, 1).await;
        // The first read holds the only slot: these three wait for it.
        let waiting: Vec<_> = [2, 3, 101].map(|key| recorder.spawn_get(&reads, key)).into();
        until_waiting(&reads, 3).await;
        recorder.gate.add_permits(2);
        assert_eq!(first.await.unwrap(), Ok(Some(10)));
        let mut answers = Vec::new();
        for task in waiting {
            answers.push(task.await.unwrap());
        }
        assert_eq!(answers, vec![Ok(Some(20)), Ok(Some(30)), Ok(None)]);
        assert_eq!(recorder.batches(), vec![vec![1], vec![2, 3, 101]]);
        assert_eq!(reads.lock().in_flight, 0);
    }

    #[tokio::test]
    async fn a_batch_is_at_most_max_batch_keys() {
        let reads = Arc::new(CoalescedReads::new(1, 2));
        let recorder = Recorder::default();
        let first = recorder.spawn_first(&reads, 1).await;
        let waiting: Vec<_> = [2, 3, 4].map(|key| recorder.spawn_get(&reads, key)).into();
        until_waiting(&reads, 3).await;
        recorder.gate.add_permits(3);
        first.await.unwrap().unwrap();
        for task in waiting {
            task.await.unwrap().unwrap();
        }
        assert_eq!(recorder.batches(), vec![vec![1], vec![2, 3], vec![4]]);
    }

    #[tokio::test]
    async fn a_failed_shared_read_is_retried_alone_by_each_waiter() {
        let reads = Arc::new(CoalescedReads::new(1, 8));
        let recorder = Recorder::default();
        let first = recorder.spawn_first(&reads, 5).await;
        let zero = recorder.spawn_get(&reads, 0);
        until_waiting(&reads, 1).await;
        let six = recorder.spawn_get(&reads, 6);
        until_waiting(&reads, 2).await;
        recorder.gate.add_permits(3);
        assert_eq!(first.await.unwrap(), Ok(Some(50)));
        // 0 fails the read it shares with 6; 6 then reads alone and is found.
        assert_eq!(zero.await.unwrap(), Err("zero".to_string()));
        assert_eq!(six.await.unwrap(), Ok(Some(60)));
        assert_eq!(recorder.batches(), vec![vec![5], vec![0, 6], vec![6]]);
    }

    #[tokio::test]
    async fn a_cancelled_read_passes_its_slot_and_its_waiters_still_get_answers() {
        let reads = Arc::new(CoalescedReads::new(1, 8));
        let recorder = Recorder::default();
        let first = recorder.spawn_first(&reads, 1).await;
        let second = recorder.spawn_get(&reads, 2);
        until_waiting(&reads, 1).await;
        // The call holding the slot goes away mid-read (a client that hung up).
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        recorder.gate.add_permits(1);
        assert_eq!(second.await.unwrap(), Ok(Some(20)));
        assert_eq!(recorder.batches(), vec![vec![1], vec![2]]);
        assert_eq!(reads.lock().in_flight, 0);
    }

    #[tokio::test]
    async fn many_concurrent_calls_all_get_their_own_values() {
        let reads: Reads = Arc::new(CoalescedReads::new(2, 16));
        let tasks: Vec<_> = (1..=500u32)
            .map(|key| {
                let reads = reads.clone();
                tokio::spawn(async move {
                    let read = |keys: Vec<u32>| async move {
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(keys.into_iter().filter(|k| *k <= 100).map(|k| (k, k + 1)).collect())
                    };
                    (key, reads.get(key % 120, read).await)
                })
            })
            .collect();
        for task in tasks {
            let (key, value) = task.await.unwrap();
            let key = key % 120;
            assert_eq!(value, Ok((key <= 100).then_some(key + 1)), "key {key}");
        }
        assert_eq!(reads.lock().in_flight, 0);
        assert!(reads.lock().waiting.is_empty());
    }
}
