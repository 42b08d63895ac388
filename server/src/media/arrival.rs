//! Relay on arrival: the sockets of bridged legs are in an epoll set the
//! worker waits on between ticks, so a relayed packet leaves as soon as it
//! arrives instead of on the next 20 ms tick (which added up to a tick of
//! jitter). Only bridged legs are watched: everything else — prompts,
//! transcoding play-out, mixing, listening — stays on the tick, where one
//! pass over the legs costs less than a wake-up per packet.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::leg::Leg;

/// Readiness events taken per wait.
const EVENTS: usize = 1024;

pub(super) struct Arrivals {
    poll: Poll,
    events: Events,
}

impl Arrivals {
    /// `None` when epoll is unavailable: bridged media then goes on the tick.
    pub(super) fn new() -> Option<Arrivals> {
        match Poll::new() {
            Ok(poll) => Some(Arrivals {
                poll,
                events: Events::with_capacity(EVENTS),
            }),
            Err(e) => {
                tracing::warn!("epoll unavailable ({e}): bridged media is relayed on the tick");
                None
            }
        }
    }

    /// Starts or stops watching `leg`'s socket (it is bridged, or no longer).
    pub(super) fn watch(&self, leg: &mut Leg, on: bool) {
        if leg.watched == on {
            return;
        }
        let fd = leg.setup.socket.as_raw_fd();
        let registry = self.poll.registry();
        let done = if on {
            registry.register(
                &mut SourceFd(&fd),
                Token(leg.setup.id as usize),
                Interest::READABLE,
            )
        } else {
            registry.deregister(&mut SourceFd(&fd))
        };
        match done {
            Ok(()) => leg.watched = on,
            // Not watched: the tick still reads it.
            Err(e) => tracing::debug!(leg = leg.setup.id, "epoll: {e}"),
        }
    }

    /// Waits for watched sockets to become readable, at most until
    /// `until`; false once `until` has come (then `ready` is empty).
    pub(super) fn wait(&mut self, until: Instant) -> bool {
        loop {
            let now = Instant::now();
            if now >= until {
                self.events.clear();
                return false;
            }
            // epoll's timeout is in milliseconds, rounded up: the tick is
            // never early.
            let left = (until - now).max(Duration::from_micros(1));
            match self.poll.poll(&mut self.events, Some(left)) {
                Ok(()) if self.events.is_empty() => continue,
                Ok(()) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    self.events.clear();
                    return false;
                }
            }
        }
    }

    /// The legs whose sockets the last `wait` found readable (edge-triggered:
    /// each must be read until it would block).
    pub(super) fn ready(&self) -> impl Iterator<Item = u64> + '_ {
        self.events.iter().map(|ev| ev.token().0 as u64)
    }
}
