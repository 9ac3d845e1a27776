//! How the engine asks the system for memory: large arrays read at random
//! backed by huge pages, cache lines requested ahead of a loop that would
//! otherwise wait on each in turn, and freed memory handed back.
//!
//! A table read at random that spans thousands of 4 KiB pages (the
//! supporters' set, the id map, a grouping's offsets, an accumulator over
//! a million products) costs each read a miss in the processor's cache of
//! page translations as well as in the data caches. Linux backs memory
//! with 2 MiB pages where a program asks for them (`madvise`, under the
//! kernel's default policy for transparent huge pages), which makes those
//! translation misses rare; the request must come before the memory is
//! first written, so such arrays are made here, empty or filled.

use rayon::prelude::*;

/// Arrays smaller than this are left to the usual pages.
const HUGE_FROM: usize = 4 << 20;

/// An empty vector with room for `capacity` items, its memory asked to be
/// backed by huge pages. Room is taken for at least 4 MiB, so that a
/// vector that grows from here (its memory moved, on Linux, with the
/// advice) keeps it; room never written costs no memory.
pub fn huge_vec<T>(capacity: usize) -> Vec<T> {
    let size = size_of::<T>().max(1);
    let vec: Vec<T> = Vec::with_capacity(capacity.max(HUGE_FROM / size));
    advise_huge(vec.as_ptr().cast(), vec.capacity() * size_of::<T>());
    vec
}

/// Arrays at least this large are filled on every thread of the pool.
const FILLED_IN_PARALLEL_FROM: usize = 4 << 20;

/// `len` copies of `value`, in memory asked to be backed by huge pages.
/// A large array is filled on every thread: its pages are first written
/// as it is filled, and the kernel clears each page on that first write,
/// at a cost that can match the filling's own (on a virtual machine, whose
/// host may first have to back the page), so one thread alone would leave
/// the others idle.
pub fn huge_filled<T: Clone + Send + Sync>(len: usize, value: T) -> Vec<T> {
    let mut vec = huge_vec(len);
    if len.saturating_mul(size_of::<T>()) >= FILLED_IN_PARALLEL_FROM {
        vec.par_extend(rayon::iter::repeat_n(value, len));
    } else {
        vec.resize(len, value);
    }
    vec
}

/// Asks the kernel to back the whole pages of `bytes` from `start` with
/// huge pages (a hint: ignored where it cannot be followed).
fn advise_huge(start: *const u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let from = (start as usize).next_multiple_of(PAGE);
        let to = (start as usize).saturating_add(bytes) / PAGE * PAGE;
        if bytes >= HUGE_FROM && to > from {
            // SAFETY: the range is whole pages inside an allocation this
            // process owns (rounded inward); MADV_HUGEPAGE changes only
            // which pages the kernel backs it with, never its contents or
            // whether it may be read and written. A refusal is harmless.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes);
}

/// Asks the processor to bring `item`'s cache line in, without waiting for
/// it: a hint for loops whose loads would otherwise miss the cache one
/// after another (on other architectures than x86_64, where no hint is
/// stable in Rust, it does nothing).
#[inline(always)]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults,
    // whatever the address (here a live reference's), and SSE, which the
    // instruction needs, is part of every x86_64 target.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(item).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// Allocations of at least this size get mappings of their own.
const OWN_MAPPING_FROM: usize = 32 << 20;
/// Free memory at the top of a heap that glibc keeps instead of trimming.
const TRIMMED_FROM: usize = 256 << 20;

/// Sets how glibc's allocator reuses freed memory: each of the two
/// thresholds below, unless the environment sets it (`GLIBC_TUNABLES`,
/// whose other settings, such as `glibc.malloc.hugetlb`, stay as they are).
/// By default glibc gives allocations of 128 KiB and more mappings of their
/// own (raising that bound, up to 32 MiB, as such blocks are freed) and
/// trims a heap's free top beyond twice the bound. The follows stream
/// allocates and frees blocks of several MiB slice after slice, so each
/// new block's pages were faulted in and cleared again: page faults were
/// about a tenth of a medium run's CPU on a virtual machine. With blocks
/// under 32 MiB kept in the heaps, and their tops trimmed only beyond 256
/// MiB, freed blocks are reused (medium: page faults 166k -> 143k, CPU
/// -0.08 s in five of six paired runs, about 80 MB more memory at the
/// peak); [`return_freed`] still hands large freed stretches back.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        for (name, parameter, value) in [
            ("mmap_threshold", libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM),
            ("trim_threshold", libc::M_TRIM_THRESHOLD, TRIMMED_FROM),
        ] {
            if !tuned.contains(name) {
                // SAFETY: mallopt only sets one of glibc's allocator
                // parameters; it is called before any thread of ours
                // allocates, and a refusal (a zero return) leaves the
                // default.
                unsafe {
                    libc::mallopt(parameter, value as libc::c_int);
                }
            }
        }
    }
}

/// Freed memory glibc may keep for reuse before [`return_freed`] hands it
/// back: below this, handing it back costs more (a system call per free
/// stretch, and the other threads' translations flushed) than the memory
/// is worth, and the next allocations would only fault it in again.
const KEPT_FREE_AT_MOST: usize = 512 << 20;

/// Hands the memory freed so far back to the system, once glibc holds more
/// than [`KEPT_FREE_AT_MOST`] of it free. glibc keeps what its per-thread
/// arenas free (the stream's chunks and follow-back lists, gigabytes at
/// twitter2010's size) for reuse and trims only the top of each heap, so
/// the next large allocations would otherwise come on top of it; elsewhere
/// this does nothing.
pub fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads glibc's own counters, and malloc_trim
    // only releases free pages of glibc's own heaps; neither reads or
    // writes memory of ours.
    unsafe {
        let free = libc::mallinfo2().fordblks;
        tracing::debug!(free_bytes = free, "memory held free");
        if free > KEPT_FREE_AT_MOST {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_arrays_hold_what_they_were_given() {
        let filled = huge_filled(3_000_000, 7u32);
        assert_eq!(filled.len(), 3_000_000);
        assert!(filled.iter().all(|&x| x == 7));
        let mut grown: Vec<(i64, u8)> = huge_vec(2);
        assert!(grown.is_empty());
        grown.extend((0..1_000_000).map(|i| (i, (i % 7) as u8)));
        assert_eq!(grown[999_999], (999_999, 0));
        assert_eq!(grown[12], (12, 5));
        let small = huge_filled(3, 'x');
        assert_eq!(small, vec!['x'; 3]);
    }
}
