//! Allocator tuning for the stages that move the data through large buffers.
//!
//! The driver reads each reply (up to 48 MB) into a fresh buffer and frees it
//! after the batch. With glibc's defaults such buffers come from `mmap` (or the
//! heap's top, trimmed back to the system once free), so every batch faults its
//! pages in anew: about 100k page faults for a 300 MB dump, a fifth of the run
//! (docs/BENCHMARKS.md, 2026-11-25). Keeping those sizes in the heap and its
//! free top mapped lets the next batch reuse the same pages. Peak memory stays
//! bounded (only memory that was in use at once stays mapped); measured peak
//! RSS: 122-127 -> 118-133 MB for 300 MB, 154-164 -> 168-177 MB for 600 MB.

/// Largest allocation served from the heap rather than its own `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 64 << 20;
/// Free memory at the heap's top kept mapped for the next allocations.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Tunes glibc's allocator for large, short-lived buffers; call it first in
/// `main`, before any thread starts. Elsewhere (musl, other systems) it does nothing.
pub fn tune_for_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters; called before
    // any other thread exists. A refused setting (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
