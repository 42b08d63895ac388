//! A node's memory split by what holds it, from `/proc/PID/smaps` (PSS):
//! - `plugin`: wasmtime's pools — plugin instances' linear memories (with
//!   the copy-on-write memory images mapped over them), tables and fiber
//!   stacks. The pools are reserved at start as anonymous mappings of a
//!   gigabyte or more; what later lies inside them is theirs. The stack
//!   pool is already split at start, by the guard page below each stack,
//!   into a run of guard + stack mapping pairs: it is found by that shape.
//! - `heap`: every other anonymous mapping (glibc's malloc arenas and
//!   `[heap]`): call and SIP state, media legs, listeners, wasmtime's
//!   per-instance host state.
//! - `other`: files (the binary, speech models), io_uring rings, stacks.
//!   A file's pages are counted as resident in the node (RSS), not by PSS:
//!   the page cache is shared, so PSS would halve the binary's 30 MiB while
//!   any other process maps the same file (a node still exiting, a second
//!   run) and move the per-call figure by several KiB when that process
//!   comes or goes between the two snapshots.
//!
//! The heap is one pool for all subsystems; which of them holds what inside
//! it takes a heap profiler (heaptrack: see issue 17's notes).

use std::ops::Range;

/// PSS in KiB per part.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemParts {
    pub plugin: f64,
    pub heap: f64,
    pub other: f64,
}

impl MemParts {
    /// `mem_kib_per_call=… plugin=… heap=… other=…` for the growth from
    /// `idle` to `self` over `n` calls.
    pub fn per_call_fields(&self, idle: &MemParts, n: usize) -> String {
        let each = |a: f64, b: f64| (a - b).max(0.0) / n.max(1) as f64;
        let (p, h, o) = (
            each(self.plugin, idle.plugin),
            each(self.heap, idle.heap),
            each(self.other, idle.other),
        );
        format!(
            "mem_kib_per_call={:.1} plugin={p:.1} heap={h:.1} other={o:.1}",
            p + h + o
        )
    }
}

struct Vma {
    range: Range<u64>,
    perms: String,
    name: String,
    pss_kib: f64,
    rss_kib: f64,
}

impl Vma {
    /// What this mapping holds for the node: its RSS for a file (see the
    /// module's notes), its PSS for the rest.
    fn kib(&self) -> f64 {
        let file = self.name.starts_with('/') && !self.name.starts_with("/memfd:");
        if file {
            self.rss_kib
        } else {
            self.pss_kib
        }
    }
}

/// The KiB of a `Field:   123 kB` line.
fn kib_of(field: &str) -> f64 {
    field
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0.0)
}

fn vmas(pid: u32) -> Vec<Vma> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        if let Some(kb) = line.strip_prefix("Pss:") {
            if let Some(v) = out.last_mut() {
                v.pss_kib = kib_of(kb);
            }
            continue;
        }
        if let Some(kb) = line.strip_prefix("Rss:") {
            if let Some(v) = out.last_mut() {
                v.rss_kib = kib_of(kb);
            }
            continue;
        }
        // A mapping's first line: `start-end perms offset dev inode  [name]`.
        let mut f = line.split_whitespace();
        let Some((a, b)) = f.next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue; // a field line such as `Rss:`
        };
        let perms = f.next().unwrap_or("").to_string();
        let name = f.nth(3).unwrap_or("").to_string();
        out.push(Vma {
            range: a..b,
            perms,
            name,
            pss_kib: 0.0,
            rss_kib: 0.0,
        });
    }
    out
}

/// The address ranges of wasmtime's pools: anonymous mappings of 1 GiB or
/// more in a settled node (nothing else reserves that much).
pub fn pools(pid: u32) -> Vec<Range<u64>> {
    let all = vmas(pid);
    let mut pools: Vec<Range<u64>> = all
        .iter()
        .filter(|v| v.name.is_empty() && v.range.end - v.range.start >= 1 << 30)
        .map(|v| v.range.clone())
        .collect();
    pools.extend(stack_pools(&all));
    pools
}

/// Fewest guard + stack pairs in a row taken for a stack pool.
const MIN_STACKS: usize = 64;

/// Runs of adjacent anonymous mappings shaped like wasmtime's stack pool:
/// a one-page `---p` guard, then an `rw-p` stack, repeated, every stack
/// the same size.
fn stack_pools(all: &[Vma]) -> Vec<Range<u64>> {
    let len = |v: &Vma| v.range.end - v.range.start;
    let pair_at = |i: usize| -> Option<u64> {
        let (g, s) = (all.get(i)?, all.get(i + 1)?);
        let shaped = g.name.is_empty()
            && s.name.is_empty()
            && g.perms == "---p"
            && len(g) == 4096
            && s.perms == "rw-p"
            && g.range.end == s.range.start;
        shaped.then(|| len(s))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let Some(size) = pair_at(i) else {
            i += 1;
            continue;
        };
        let mut n = 1;
        while pair_at(i + 2 * n) == Some(size)
            && all[i + 2 * n - 1].range.end == all[i + 2 * n].range.start
        {
            n += 1;
        }
        if n >= MIN_STACKS {
            out.push(all[i].range.start..all[i + 2 * n - 1].range.end);
        }
        i += 2 * n;
    }
    out
}

/// The node's memory now, split by `pools` (taken from the settled node).
pub fn parts(pid: u32, pools: &[Range<u64>]) -> MemParts {
    let mut m = MemParts::default();
    for v in vmas(pid) {
        let in_pool = pools
            .iter()
            .any(|p| p.start <= v.range.start && v.range.end <= p.end);
        if in_pool || v.name.contains("wasm-memory-image") {
            m.plugin += v.kib();
        } else if v.name.is_empty() || v.name == "[heap]" {
            m.heap += v.kib();
        } else {
            m.other += v.kib();
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests measure their own process: one at a time.
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A gigabyte reserved like wasmtime's pools, 1 MiB of it touched: the
    /// touched pages are counted as plugin memory, and a heap allocation as
    /// heap.
    #[test]
    fn a_reserved_pool_and_the_heap_are_told_apart() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        const GIB: usize = 1 << 30;
        // SAFETY: a fresh private anonymous mapping, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GIB,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let pools = pools(pid);
        let start = base as u64;
        assert!(
            pools.iter().any(|p| p.start <= start && start < p.end),
            "{pools:x?}"
        );
        let before = parts(pid, &pools);
        // SAFETY: inside the mapping made above.
        unsafe { std::ptr::write_bytes(base.cast::<u8>(), 1, 1 << 20) };
        let heap: Vec<u8> = vec![1; 8 << 20];
        let after = parts(pid, &pools);
        assert!(
            (after.plugin - before.plugin - 1024.0).abs() < 64.0,
            "{before:?} {after:?}"
        );
        assert!(
            after.heap - before.heap >= 7.0 * 1024.0,
            "{before:?} {after:?}"
        );
        drop(heap);
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(base, GIB) };
    }

    /// A run of guard page + stack pairs, as wasmtime's stack pool lays its
    /// fiber stacks out: found as a pool, and the stack pages touched in it
    /// counted as plugin memory.
    #[test]
    fn a_stack_pool_split_by_guard_pages_is_a_pool() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        const STACKS: usize = 100;
        const STACK: usize = 64 << 10;
        const SLOT: usize = 4096 + STACK;
        // A page on each side keeps the kernel from merging the first guard
        // or the last stack with a neighbouring mapping of the same kind
        // (which made the run one pair short on some machines).
        const MAPPED: usize = STACKS * SLOT + 2 * 4096;
        // SAFETY: a fresh private anonymous mapping, unmapped below.
        let outer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAPPED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(outer, libc::MAP_FAILED);
        // SAFETY: one page in, inside the mapping.
        let base: *mut libc::c_void = unsafe { outer.cast::<u8>().add(4096) }.cast();
        // SAFETY: the last page, inside the mapping: a trailing guard.
        let tail = unsafe { base.cast::<u8>().add(STACKS * SLOT) };
        assert_eq!(
            unsafe { libc::mprotect(tail.cast(), 4096, libc::PROT_NONE) },
            0
        );
        for i in 0..STACKS {
            // SAFETY: the guard page of slot `i`, inside the mapping above.
            let guard = unsafe { base.cast::<u8>().add(i * SLOT) };
            assert_eq!(
                unsafe { libc::mprotect(guard.cast(), 4096, libc::PROT_NONE) },
                0
            );
        }
        let pools = pools(pid);
        let start = base as u64;
        assert!(
            pools
                .iter()
                .any(|p| p.start == start && p.end == start + (STACKS * SLOT) as u64),
            "{pools:x?}"
        );
        let before = parts(pid, &pools);
        for i in 0..STACKS {
            // SAFETY: the last page of stack `i`, inside the mapping above.
            unsafe { *base.cast::<u8>().add((i + 1) * SLOT - 1) = 1 };
        }
        let after = parts(pid, &pools);
        let touched = (STACKS * 4) as f64;
        assert!(
            (after.plugin - before.plugin - touched).abs() < 16.0,
            "{before:?} {after:?}"
        );
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(outer, MAPPED) };
    }

    /// A file the node maps counts the same whether or not another process
    /// maps it too (by PSS it would halve while a second process held it).
    #[test]
    fn a_file_shared_with_another_process_counts_in_full() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        const LEN: usize = 4 << 20;
        let path = std::env::temp_dir().join(format!("mem_parts_shared_{pid}"));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&vec![7u8; LEN]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let pools = pools(pid);
        let other_before = parts(pid, &pools).other;
        // SAFETY: a fresh read-only shared mapping of the file, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let touch = |base: *mut libc::c_void| {
            let mut sum = 0u64;
            for page in (0..LEN).step_by(4096) {
                // SAFETY: inside the mapping made above.
                sum += unsafe { std::ptr::read_volatile(base.cast::<u8>().add(page)) } as u64;
            }
            sum
        };
        assert_eq!(touch(base), 7 * (LEN / 4096) as u64);
        // The mapping's own figure: the process's total moves with whatever
        // else runs in it meanwhile (other tests fault in code pages of the
        // test binary, counted as `other` too), which made a total flaky.
        let counted = || {
            vmas(pid)
                .into_iter()
                .find(|v| v.range.start == base as u64)
                .map(|v| v.kib())
        };
        let alone = counted();
        // Counted as `other` (the rest of the process moves by a few hundred
        // KiB at most meanwhile: far less than the file).
        let grew = parts(pid, &pools).other - other_before;
        assert!(grew > 0.9 * (LEN >> 10) as f64, "a file is other: {grew}");
        // A second process maps the same pages: the child of a fork, which
        // touches them, says so and waits (only reads, `read`, `write` and
        // `_exit` after the fork).
        let (mut ready, mut release) = ([0i32; 2], [0i32; 2]);
        // SAFETY: two fresh pipes.
        unsafe {
            assert_eq!(libc::pipe(ready.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(release.as_mut_ptr()), 0);
        }
        // SAFETY: the child only reads memory and calls async-signal-safe functions.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let sum = touch(base);
            let mut b = [(sum & 0xff) as u8];
            // SAFETY: the pipes made above; the child ends here.
            unsafe {
                libc::write(ready[1], b.as_ptr().cast(), 1);
                libc::read(release[0], b.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        let mut b = [0u8];
        // SAFETY: the pipes made above.
        assert_eq!(unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), 1) }, 1);
        let shared = counted();
        // SAFETY: the pipe made above, and the child forked above.
        unsafe {
            libc::write(release[1], b.as_ptr().cast(), 1);
            libc::waitpid(child, std::ptr::null_mut(), 0);
            libc::munmap(base, LEN);
            for fd in ready.into_iter().chain(release) {
                libc::close(fd);
            }
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(alone, Some((LEN >> 10) as f64));
        assert_eq!(shared, alone, "counted in full while shared");
    }
}
