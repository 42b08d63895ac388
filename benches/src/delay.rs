//! What the node adds to relayed media in time. Every marked G.711 packet
//! carries its send time (wall clock, µs) after the marker; the kernel
//! stamps each datagram as it arrives (`SO_TIMESTAMPNS`), so the load
//! generator's own scheduling does not count.
//!
//! - latency: arrival − send, per packet. It includes the loopback hops and
//!   the generator's batched send (packets later in one `sendmmsg` leave a
//!   little later), the same for every server measured.
//! - jitter: |latency − the previous packet's latency| on the same leg
//!   (RFC 3550's inter-arrival difference), per packet.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::rx::MARK_LEN;

/// Payload bytes the send time takes, after the marker.
const STAMP: std::ops::Range<usize> = MARK_LEN..MARK_LEN + 8;
/// Histogram resolution and range.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 20_000; // 200 ms

/// Wall-clock time in µs (the kernel's receive stamps are wall clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Writes the send time into a marked payload.
pub fn stamp(payload: &mut [u8], sent_us: u64) {
    if payload.len() >= STAMP.end {
        payload[STAMP].copy_from_slice(&sent_us.to_be_bytes());
    }
}

/// The send time a marked payload carries.
pub fn stamped(payload: &[u8]) -> Option<u64> {
    let b = payload.get(STAMP)?;
    let us = u64::from_be_bytes(b.try_into().ok()?);
    (us > 0).then_some(us)
}

/// Asks the kernel to stamp each datagram `fd` receives.
pub fn enable_rx_timestamps(fd: std::os::fd::RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt with a live int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The kernel's arrival time of a received message, in µs.
///
/// # Safety
/// `hdr` is a message `recvmsg`/`recvmmsg` just filled, its control buffer live.
pub unsafe fn arrival_us(hdr: &libc::msghdr) -> Option<u64> {
    let mut c = libc::CMSG_FIRSTHDR(hdr);
    while !c.is_null() {
        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
            let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
            return Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
        }
        c = libc::CMSG_NXTHDR(hdr, c);
    }
    None
}

/// Latency and jitter samples, in 10 µs buckets up to 200 ms.
#[derive(Debug, Clone, Default)]
pub struct Delays {
    latency: Vec<u64>,
    jitter: Vec<u64>,
}

fn put(h: &mut Vec<u64>, us: u64) {
    if h.is_empty() {
        h.resize(BUCKETS, 0);
    }
    h[((us / BUCKET_US) as usize).min(BUCKETS - 1)] += 1;
}

fn percentile(h: &[u64], p: f64) -> Option<f64> {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return None;
    }
    let want = ((total as f64) * p / 100.0).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= want {
            // The bucket's upper edge: "at most".
            return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1000.0);
        }
    }
    None
}

impl Delays {
    /// One packet: its latency, and the leg's previous one (for jitter).
    pub fn add(&mut self, latency_us: u64, previous_us: Option<u64>) {
        put(&mut self.latency, latency_us);
        if let Some(prev) = previous_us {
            put(&mut self.jitter, latency_us.abs_diff(prev));
        }
    }

    /// Latency percentile `p` in ms (NaN without samples).
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile(&self.latency, p).unwrap_or(f64::NAN)
    }

    /// Jitter percentile `p` in ms (NaN without samples).
    pub fn jitter_ms(&self, p: f64) -> f64 {
        percentile(&self.jitter, p).unwrap_or(f64::NAN)
    }

    pub fn samples(&self) -> u64 {
        self.latency.iter().sum()
    }

    /// `latency_ms_p50=… latency_ms_p99=… jitter_ms_p50=… jitter_ms_p99=…`
    /// ("na" without samples: Opus legs are not stamped).
    pub fn fields(&self) -> String {
        let f = |h: &[u64], p| percentile(h, p).map_or("na".into(), |v| format!("{v:.2}"));
        format!(
            "latency_ms_p50={} latency_ms_p99={} jitter_ms_p50={} jitter_ms_p99={}",
            f(&self.latency, 50.0),
            f(&self.latency, 99.0),
            f(&self.jitter, 50.0),
            f(&self.jitter, 99.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_and_percentiles_are_of_the_samples() {
        let mut p = [0u8; 160];
        crate::rx::mark(&mut p, 3);
        stamp(&mut p, 1_234_567);
        assert_eq!(stamped(&p), Some(1_234_567));
        assert_eq!(crate::rx::marker(&p), Some(3));
        let mut d = Delays::default();
        for i in 0..99 {
            d.add(100, if i == 0 { None } else { Some(100) });
        }
        d.add(12_000, Some(100));
        assert_eq!(d.samples(), 100);
        let fields = d.fields();
        assert!(fields.contains("latency_ms_p50=0.11"), "{fields}");
        assert!(fields.contains("latency_ms_p99=0.11"), "{fields}");
        assert!(fields.contains("jitter_ms_p50=0.01"), "{fields}");
        d.add(12_000, Some(100));
        assert!(
            d.fields().contains("latency_ms_p99=12.01"),
            "{}",
            d.fields()
        );
    }
}
