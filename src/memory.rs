//! Giving memory back to the system once a big table or a big answer is gone.
//!
//! glibc's malloc keeps what is freed in its arenas (one per thread that allocated, up to 8 per
//! CPU) for reuse, and only gives back what lies at the very top of the main heap. Two things
//! therefore stayed resident: the many small allocations of a big table (its node strings, and
//! the parse tree and file text it was built from) after it was replaced by a small one, and big
//! answer buffers, because glibc raises its mmap threshold to the size of every big block it
//! frees (up to 32 MiB), after which such blocks come from the arenas and stay there.
//!
//! - [`configure`] pins the mmap threshold at glibc's initial 128 KiB, so every block at least
//!   that big (a `GET /table` body, the answer to a lookup of many nodes, a table's node array)
//!   is its own mapping, returned to the system by `free`. An ordinary lookup allocates far
//!   less, so the lookup path is unchanged; a batch body that large pays one `mmap`.
//! - [`release`] runs `malloc_trim(0)`, which returns the free pages of every arena. It is
//!   called after a services file was loaded (kept or not) and when a table is dropped: rare
//!   events, once per reload. A replaced table is dropped by whoever lets go of it last: the
//!   reload, usually, but if a request still holds it, that request's worker drops it (and trims)
//!   once the request is done with it; no other lookup pays for it.
//!
//! An allocator that returns memory by itself (mimalloc, jemalloc) was the alternative; this
//! needs no new dependency and no C build (benches/wrk/README.md has the measurements).
//!
//! - [`spawn_periodic_trim`] also runs it every few seconds, for memory freed by connections
//!   (a burst of 1 MB bodies) rather than by a table.
//!
//! Elsewhere than Linux with glibc all three are no-ops.

use std::time::Duration;

/// Sets the allocator up to return big blocks on free. Call once, early in `main`.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's default initial threshold (`DEFAULT_MMAP_THRESHOLD_MIN`); setting it
        /// explicitly is what turns off the dynamic raise.
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Returns the allocator's free memory to the system, from every thread's arena.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages the allocator holds free; safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Calls [`release`] when dropped: put one at the top of a scope that frees a lot, and every
/// way out of it trims after everything else in it is dropped.
#[derive(Debug)]
#[must_use = "it trims when dropped"]
pub struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        release();
    }
}

/// How often freed memory is handed back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Hands freed memory back every [`TRIM_EVERY`], from the actix runtime this is called in.
///
/// glibc's allocator keeps memory freed by other threads in its arenas: after a burst of
/// connections with large bodies in flight left, much of its peak stayed resident (figures in
/// benches/wrk/README.md). `malloc_trim` hands it back; every few seconds it costs nothing
/// measurable and bounds how long a burst of connections (or a reload of a large table) keeps
/// its memory.
pub fn spawn_periodic_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    actix_rt::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only releases free memory; it is thread-safe.
            unsafe { libc::malloc_trim(0) };
        }
    });
}
