//! Argon2's working memory, kept between hashes.
//!
//! Every hash works through `memory_kib` of blocks (19 MiB at OWASP's parameters). Allocating and
//! faulting that in for every hash costs about a quarter of the hashing rate, so a finished hash
//! gives its buffer back here and the next hash takes it. An idle server should hold no such
//! buffers, so the pool can be emptied once hashing has been idle for a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Block;

/// A pool of argon2 block buffers of one size.
pub struct Argon2Memory {
    /// Blocks per buffer: what the argon2 parameters need.
    block_count: usize,
    /// Buffers no hash is using; a hash in progress holds its own.
    idle: Mutex<Vec<Vec<Block>>>,
    /// When a hash last took a buffer.
    last_taken: Mutex<Instant>,
}

impl Argon2Memory {
    /// An empty pool of buffers of `block_count` blocks.
    pub fn new(block_count: usize) -> Self {
        Self {
            block_count,
            idle: Mutex::new(Vec::new()),
            last_taken: Mutex::new(Instant::now()),
        }
    }

    /// Runs `work` over a buffer from the pool (or a new one when all are in use), and gives the
    /// buffer back after.
    pub fn with_blocks<T>(&self, work: impl FnOnce(&mut [Block]) -> T) -> T {
        *self.last_taken.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut blocks = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![Block::default(); self.block_count]);
        let result = work(&mut blocks);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(blocks);
        result
    }

    /// Frees the pooled buffers if no hash has taken one for `idle`; returns whether it freed any.
    /// Buffers in use at that moment come back to the pool when their hash ends.
    pub fn release_if_idle(&self, idle: Duration) -> bool {
        let last = *self.last_taken.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < idle {
            return false;
        }
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let freed = !pool.is_empty();
        pool.clear();
        pool.shrink_to_fit();
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_released_when_idle() {
        let memory = Argon2Memory::new(8);
        let first = memory.with_blocks(|blocks| blocks.as_ptr());
        let second = memory.with_blocks(|blocks| blocks.as_ptr());
        assert_eq!(first, second, "the second hash reuses the first one's buffer");
        assert!(
            !memory.release_if_idle(Duration::from_secs(3600)),
            "not idle long enough"
        );
        assert!(memory.release_if_idle(Duration::ZERO), "the idle buffer is freed");
        assert!(!memory.release_if_idle(Duration::ZERO), "nothing left to free");
        assert_eq!(memory.with_blocks(|blocks| blocks.len()), 8, "a new buffer is made");
    }

    #[test]
    fn concurrent_hashes_each_get_their_own_buffer() {
        let memory = Argon2Memory::new(8);
        let (outer, inner) = memory.with_blocks(|outer| (outer.as_ptr(), memory.with_blocks(|inner| inner.as_ptr())));
        assert_ne!(outer, inner);
    }
}
