//! CPU time and resident memory of a process, from /proc.

/// Clock ticks per second for /proc/<pid>/stat times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Numeric fields of a `stat` file (`/proc/<pid>/stat`,
/// `/proc/thread-self/stat`) after the command name, which may contain
/// spaces: index 0 is the 3rd field (state, 0 as a number); 0 where unreadable.
fn stat_fields(path: &str) -> Vec<f64> {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect()
}

/// User + system CPU seconds the process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(&format!("/proc/{pid}/stat"));
    // utime and stime: the 14th and 15th fields.
    let field = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (field(11) + field(12)) / ticks_per_sec()
}

/// Minor page faults so far of the process or thread whose `stat` file is
/// `stat` (`/proc/<pid>/stat`, `/proc/thread-self/stat`).
pub fn minor_faults(stat: &str) -> u64 {
    // minflt: the 10th field.
    stat_fields(stat).get(7).copied().unwrap_or(0.0) as u64
}

/// Resident set size in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:") / 1024.0
}

/// Proportional set size in MiB (`smaps_rollup`): a page mapped N times
/// counts 1/N at each mapping. The node maps a plugin's memory image
/// copy-on-write into every instance, and RSS counts those shared pages once
/// per instance; PSS counts them once, as the machine's memory does.
pub fn pss_mib(pid: u32) -> f64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:") / 1024.0
}

/// The `key: N kB` line of a /proc file, in KiB (0 when absent).
fn kib_field(path: &str, key: &str) -> f64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Busy and total jiffies of the whole machine (the `cpu` line of /proc/stat).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // idle + iowait are not busy.
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Waits (at most `max`) until the machine is below 10 % busy for 0.5 s, and
/// says how long that took. A node just built still loads a recognizer and
/// starts its Piper worker in the background; an in-process microbenchmark
/// timed over that work measures the start-up, not what it names (it read
/// 77 µs per instantiation instead of 33).
pub fn wait_until_machine_idle(max: std::time::Duration) -> std::time::Duration {
    let start = std::time::Instant::now();
    let mut last = machine_jiffies();
    while start.elapsed() < max {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = machine_jiffies();
        let (busy, total) = (now.0 - last.0, now.1 - last.1);
        last = now;
        if total > 0 && (busy as f64) < 0.10 * total as f64 {
            break;
        }
    }
    let took = start.elapsed();
    // Taken once per bench run (300 sleeps), at the first settle.
    HOST_WAKE.get_or_init(wake_overshoot_us);
    took
}

/// The idle machine's timer wake-up overshoot (p50, p99 in µs), taken when
/// it settled. A virtual machine whose vCPUs the host preempts wakes a 1 ms
/// sleep milliseconds late (p99 3.3 ms measured on a VM where the same
/// bridged bench lost 0-30 % of relayed packets from run to run): figures
/// taken there say more about the host than about the node.
static HOST_WAKE: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();

fn wake_overshoot_us() -> (f64, f64) {
    let mut late: Vec<f64> = (0..300)
        .map(|_| {
            let t = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(1));
            (t.elapsed().as_secs_f64() - 0.001) * 1e6
        })
        .collect();
    late.sort_by(f64::total_cmp);
    (late[150], late[297])
}

/// `host_wake_p50_us=… host_wake_p99_us=…` for a summary line ("na" when
/// the bench did not wait for the machine to settle).
pub fn host_fields() -> String {
    match HOST_WAKE.get() {
        Some((p50, p99)) => format!("host_wake_p50_us={p50:.0} host_wake_p99_us={p99:.0}"),
        None => "host_wake_p50_us=na host_wake_p99_us=na".into(),
    }
}

#[cfg(test)]
mod stat_tests {
    use super::*;

    /// The fields are read at the right places: faults grow when fresh
    /// pages are touched, CPU time when the thread spins.
    #[test]
    fn faults_and_cpu_time_are_read_from_their_fields() {
        let before = minor_faults("/proc/thread-self/stat");
        let pages = vec![1u8; 64 * 4096];
        assert_eq!(
            std::hint::black_box(&pages).iter().step_by(4096).count(),
            64
        );
        assert!(minor_faults("/proc/thread-self/stat") >= before + 32);
        let pid = std::process::id();
        let cpu0 = cpu_seconds(pid);
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box(start.elapsed());
        }
        assert!(cpu_seconds(pid) - cpu0 >= 0.1, "{cpu0}");
    }
}
