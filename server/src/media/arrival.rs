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
/// Set in the token of a leg's RTCP socket (leg ids stay far below it).
pub(super) const RTCP: u64 = 1 << 62;

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

    /// Watches `leg`'s RTCP socket (a separate one: not rtcp-mux) for the
    /// leg's life. Polling it on the tick cost a system call per leg every
    /// 100 ms for a report that comes every few seconds.
    pub(super) fn watch_rtcp(&self, leg: &mut Leg) {
        let Some(sock) = &leg.setup.rtcp else {
            return;
        };
        let fd = sock.as_raw_fd();
        let token = Token((leg.setup.id | RTCP) as usize);
        match self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
        {
            Ok(()) => leg.rtcp_watched = true,
            // Not watched: the tick polls it.
            Err(e) => tracing::debug!(leg = leg.setup.id, "epoll (rtcp): {e}"),
        }
    }

    /// Stops watching `leg`'s RTCP socket (the leg is going).
    pub(super) fn unwatch_rtcp(&self, leg: &mut Leg) {
        if let (true, Some(sock)) = (leg.rtcp_watched, &leg.setup.rtcp) {
            let fd = sock.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            leg.rtcp_watched = false;
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

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    use crate::codec::Format;
    use crate::media::worker::{LegSetup, MediaEngine, MediaEvent, PortPool};

    /// A report on the separate RTCP port is read when it comes (the socket
    /// is watched, not polled), and the leg's record counts it.
    #[test]
    fn a_report_on_the_rtcp_port_is_read_as_it_arrives() {
        let engine = MediaEngine::start(1);
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31600, 31700);
        let (socket, port) = pool.bind().unwrap();
        let rtcp = pool.bind_rtcp(port).expect("port + 1 free");
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        engine.add_leg(LegSetup {
            id: 1,
            socket,
            remote: peer.local_addr().unwrap(),
            codec: Format::PCMU,
            dtmf_pt: Some(101),
            inband_dtmf: false,
            rtp_timeout: None,
            latch: false,
            rtcp: Some(rtcp),
            events: Box::new(move |e| {
                let _ = tx.send(e);
            }),
        });
        std::thread::sleep(Duration::from_millis(50));
        // An empty receiver report (RFC 3550 6.4.2): header and SSRC.
        let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        for _ in 0..2 {
            peer.send_to(&rr, ("127.0.0.1", port + 1)).unwrap();
        }
        // Read on arrival, well before the leg goes. Polled every 100 ms
        // instead, a report so close to the end was often never read.
        std::thread::sleep(Duration::from_millis(10));
        engine.remove_leg(1);
        let deadline = Instant::now() + Duration::from_secs(2);
        let stats = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(MediaEvent::Final(s)) => break s,
                Ok(_) => continue,
                Err(e) => panic!("no final stats: {e}"),
            }
        };
        assert_eq!(stats.rtcp_reports, 2);
    }
}
