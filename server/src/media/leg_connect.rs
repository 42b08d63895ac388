//! A leg's socket `connect`ed to its peer while the peer is heard from
//! where the leg sends.
//!
//! When media comes from the address the leg sends to (the SDP address, or
//! where symmetric RTP latched), the leg's socket is connected to it. Two
//! things follow, both wanted:
//! - the kernel sends without a route lookup and without copying an address
//!   in for every packet (the bulk of a relaying node's CPU is the kernel's
//!   UDP send);
//! - the kernel drops datagrams from anyone else, so a stranger spraying the
//!   port range cannot inject audio into an established call (what
//!   Asterisk's `strictrtp` does in userspace).
//!
//! Once the peer has been silent for a second the socket is disconnected
//! again, so media from elsewhere is heard as before: a NAT rebinding can move
//! a latch, and a peer whose media moved without telling is not cut off. A
//! peer that sends from another address than it receives on (asymmetric RTP)
//! is never connected.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use super::{Leg, RELATCH_TICKS};

impl Leg {
    /// Notes a datagram from `from` and connects the socket if that is where
    /// the leg sends (a comparison when nothing changes: it runs per packet).
    pub(in crate::media) fn heard_from(&mut self, from: SocketAddr, tick: u64) {
        if from == self.remote {
            self.remote_heard = Some(tick);
        }
        self.sync_connection(tick);
    }

    /// Points the leg at a new address (a re-INVITE, a hold): not heard from
    /// there yet, so the socket is disconnected until it is.
    pub(in crate::media) fn move_remote(&mut self, remote: SocketAddr, tick: u64) {
        if remote != self.remote {
            self.remote = remote;
            self.remote_heard = None;
        }
        self.sync_connection(tick);
    }

    /// Connects or disconnects the leg's socket to match what was heard:
    /// called per datagram, on every tick and when the address changes.
    pub(in crate::media) fn sync_connection(&mut self, tick: u64) {
        let want = match self.remote_heard {
            Some(t) if tick - t < RELATCH_TICKS => Some(self.remote),
            _ => None,
        };
        if want == self.connected {
            return;
        }
        self.connected = match want {
            Some(to) => match self.setup.socket.connect(to) {
                Ok(()) => Some(to),
                Err(e) => {
                    // Sends carry the address as before; nothing is filtered.
                    tracing::debug!("connecting a media socket to {to}: {e}");
                    None
                }
            },
            None => {
                if let Err(e) = disconnect(self.setup.socket.as_raw_fd()) {
                    tracing::warn!("disconnecting a media socket: {e}");
                }
                None
            }
        };
    }

    /// Where this leg's next packet is addressed: `None` when its socket is
    /// connected there (the kernel already knows).
    pub(in crate::media) fn destination(&self) -> Option<SocketAddr> {
        match self.connected {
            Some(c) if c == self.remote => None,
            _ => Some(self.remote),
        }
    }
}

/// Connecting to `AF_UNSPEC` dissolves a UDP socket's association (connect(2)).
fn disconnect(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr; only its family is read.
    let mut any: libc::sockaddr = unsafe { std::mem::zeroed() };
    any.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: as above; fd is the leg's open socket.
    let r = unsafe {
        libc::connect(
            fd,
            &any,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::codec::Format;
    use crate::media::worker::{LegSetup, MediaEngine, PortPool};
    use crate::rtp::packet::{self, RtpPacket};

    /// Sends one PCMU packet whose payload is all `fill`.
    fn talk(from: &UdpSocket, port: u16, seq: u16, fill: u8) {
        let mut pkt = [fill; 172];
        packet::write_header(&mut pkt, false, 0, seq, seq as u32 * 160, 9);
        from.send_to(&pkt, ("127.0.0.1", port)).unwrap();
    }

    /// The payload bytes `to` received within `wait`, one per packet.
    fn heard(to: &UdpSocket, wait: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if let Ok(n) = to.recv(&mut buf) {
                if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                    got.push(p.payload[0]);
                }
            }
        }
        got
    }

    /// A bridged call: the caller behind a NAT (latched), the callee where
    /// its SDP said. A stranger spraying both legs' ports is heard by
    /// neither side, and when the caller's source moves (a NAT rebinding:
    /// silent for over a second, then from a new port) its leg follows it
    /// in both directions.
    #[test]
    fn a_legs_peer_alone_is_heard_and_a_rebinding_is_still_followed() {
        let engine = MediaEngine::start(1);
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31600, 31700);
        let (sock_a, port_a) = pool.bind().unwrap();
        let (sock_b, port_b) = pool.bind().unwrap();
        let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
        let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&caller, &callee] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let a = engine.new_leg_id(None);
        let b = engine.new_leg_id(Some(a));
        for (id, socket, remote, latch) in [
            // The caller's SDP names a port it does not send from.
            (a, sock_a, "127.0.0.1:9".parse().unwrap(), true),
            (b, sock_b, callee.local_addr().unwrap(), false),
        ] {
            engine.add_leg(LegSetup {
                id,
                socket,
                remote,
                codec: Format::PCMU,
                dtmf_pt: None,
                inband_dtmf: false,
                rtp_timeout: None,
                latch,
                rtcp: None,
                events: Box::new(|_| {}),
            });
        }
        engine.bridge(a, b);
        thread::sleep(Duration::from_millis(60));
        // The caller talks (0xAA); a stranger sprays the same port (0x55).
        for seq in 0..20u16 {
            talk(&caller, port_a, seq, 0xAA);
            talk(&stranger, port_a, 1000 + seq, 0x55);
            thread::sleep(Duration::from_millis(5));
        }
        let at_callee = heard(&callee, Duration::from_millis(200));
        let from_caller = at_callee.iter().filter(|x| **x == 0xAA).count();
        let injected = at_callee.iter().filter(|x| **x == 0x55).count();
        assert!(
            from_caller >= 18,
            "the caller was heard {from_caller} times"
        );
        assert_eq!(injected, 0, "the stranger was heard");
        // The callee answers (0xBB) while the stranger sprays its port too.
        for seq in 0..20u16 {
            talk(&callee, port_b, seq, 0xBB);
            talk(&stranger, port_b, 1000 + seq, 0x66);
            thread::sleep(Duration::from_millis(5));
        }
        let at_caller = heard(&caller, Duration::from_millis(200));
        assert!(
            at_caller.iter().filter(|x| **x == 0xBB).count() >= 18,
            "the caller heard {at_caller:?}"
        );
        assert!(!at_caller.contains(&0x66), "the stranger was heard");

        // The caller's NAT rebinds: silence, then the same phone from a new port.
        thread::sleep(Duration::from_millis(1300));
        let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
        moved
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        for seq in 20..30u16 {
            talk(&moved, port_a, seq, 0xCC);
            thread::sleep(Duration::from_millis(5));
        }
        let at_callee = heard(&callee, Duration::from_millis(200));
        assert!(
            at_callee.iter().filter(|x| **x == 0xCC).count() >= 9,
            "after the rebinding the callee heard {at_callee:?}"
        );
        talk(&callee, port_b, 40, 0xDD);
        assert!(
            heard(&moved, Duration::from_millis(200)).contains(&0xDD),
            "the caller's new address did not get the callee's media"
        );
        engine.remove_leg(a);
        engine.remove_leg(b);
    }
}
