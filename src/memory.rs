//! The process's own memory, as the operating system sees it.

/// Gives the memory the allocator holds free back to the operating system. glibc's malloc keeps
/// freed memory in its heaps for reuse and returns it only from a heap's top, so after a burst
/// (argon2's 19 MiB buffers, start-up work) an idle server would go on holding pages it no longer
/// uses. Elsewhere this does nothing.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// The process's anonymous resident memory, in KiB.
    fn resident_anonymous_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn freed_heap_memory_goes_back_to_the_system() {
        // 64 MiB in chunks small enough to come from a heap, each written so that it is resident,
        // then freed with one chunk allocated after them still live: malloc by itself gives back
        // only the free memory at a heap's top, so most of it would usually stay with the process.
        let chunks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 64 * 1024]).collect();
        let pinned = vec![1u8; 1024];
        let held = resident_anonymous_kib();
        drop(chunks);
        return_free_memory();
        let after = resident_anonymous_kib();
        drop(pinned);
        assert!(held > 60 * 1024, "the chunks were resident: {held} KiB");
        // Other tests run beside this one and allocate too: ask for half the chunks' memory.
        assert!(
            held.saturating_sub(after) > 32 * 1024,
            "{held} KiB resident with the chunks, {after} KiB after freeing them and trimming"
        );
    }
}
