//! What a worker does between two ticks: waits in epoll (`arrival`) for
//! its bridged legs' packets and RTCP reports until the next tick and
//! relays each burst as it comes; without epoll it sleeps (bridged media
//! then goes on the tick).
//!
//! Tried and measured (2026-12-03): io_uring multishot `recvmsg` with a
//! provided-buffer pool in place of `epoll_wait` + one `recvmmsg` per ready
//! socket. It removed those system calls, but the kernel's poll-driven
//! receive work and a file reference per send took their place: the same
//! CPU at 250 relayed calls in three alternating A/B runs (13.2–15.3 % vs
//! 13.5–14.8 %), for 1–2 KiB more per call. Not kept.
//!
//! Also tried (same day): waking at most once per 500 µs while packets keep
//! coming (a sleep before the next wait when the last one returned sooner),
//! to relay several arrivals per wake-up. With legs sending 200 µs apart
//! (`bridge_load --phases 100`: about 5,300 wake-ups a second otherwise) it
//! cost the same CPU (18.4 and 21.8 % of a core against 18.1 and 19.3 %
//! relaying each at once, runs alternating) and added 0.3 ms to every
//! packet's latency (p50 0.35–0.38 ms against 0.06–0.07): the timer's
//! wake-up costs what epoll's did. Not kept.

use std::thread;
use std::time::Instant;

use super::arrival::{Arrivals, RTCP};
use super::inbox::Inbox;
use super::worker::Worker;

/// Sockets read between two flushes of the relays within one wake-up.
/// Measured with every leg sending in the same instant (`bridge_load
/// --phases 1`, 500 calls, 2026-12-04, runs alternating): relayed latency
/// p50 1.67-1.83 ms flushing every 16 against 1.98-2.24 flushing once per
/// wake-up, p99 and CPU within the runs' spread (2.16-2.55 against
/// 2.32-2.60 ms; 9.9-10.5 % against 6.3-11.1 %). Every 4 and every 64 were
/// no better than 16.
const RELAY_BATCH: usize = 16;

impl Worker {
    /// From the end of a tick's work (`now`) until the next tick is due.
    pub(super) fn between_ticks(
        &mut self,
        now: Instant,
        next: Instant,
        buf: &mut [u8],
        inbox: &mut Inbox,
    ) {
        if let Some(mut arrivals) = self.arrivals.take() {
            self.wait_epoll(&mut arrivals, now, next, buf, inbox);
            self.arrivals = Some(arrivals);
        } else {
            thread::sleep(next - now);
            self.meter.waited(next - now);
        }
    }

    fn wait_epoll(
        &mut self,
        arrivals: &mut Arrivals,
        now: Instant,
        next: Instant,
        buf: &mut [u8],
        inbox: &mut Inbox,
    ) {
        let mut from = now;
        loop {
            let more = arrivals.wait(next);
            self.meter.waited(Instant::now() - from);
            if !more {
                return;
            }
            self.ready(arrivals, buf, inbox);
            self.flush();
            from = Instant::now();
        }
    }

    /// Reads what epoll found readable: bridged legs' and RTCP sockets.
    /// Relays go out every `RELAY_BATCH` sockets read, not at the end of
    /// the wake-up, so the first packets of a large burst do not wait for
    /// the whole burst to be read. Only the sends: the counts reach the
    /// engine-wide atomics once, at the wake-up's `flush`.
    fn ready(&mut self, arrivals: &Arrivals, buf: &mut [u8], inbox: &mut Inbox) {
        for (n, id) in arrivals.ready().enumerate() {
            if n > 0 && n % RELAY_BATCH == 0 {
                self.outbox.flush();
            }
            let rtcp = id & RTCP != 0;
            if let Some(&i) = self.index.get(&(id & !RTCP)) {
                if rtcp {
                    self.receive_rtcp(i, buf);
                } else {
                    self.receive(i, inbox);
                }
            }
        }
    }
}
