//! What a worker's legs send, collected while they run and sent in one go.
//!
//! Legs do no socket I/O of their own: they append datagrams here (a copy of
//! the ~172-byte packet into one arena) and the worker flushes once per tick
//! and once per burst of relayed arrivals. With io_uring the flush is one
//! `io_uring_enter` for every datagram (each leg has its own socket, so
//! `sendmmsg`, which batches on one socket, cannot); without it, one
//! `sendto` each, as before. Hand-written rather than through an async
//! runtime because the worker is a plain thread on a 20 ms clock: nothing
//! here waits.

use std::os::fd::RawFd;

use socket2::SockAddr;

pub use crate::config::MediaIo;

/// Submission queue entries: a flush larger than this is submitted in parts.
const RING_ENTRIES: u32 = 4096;
/// Most datagrams queued before the outbox sends on its own. A peer flooding
/// a bridged leg keeps the worker draining its socket; what that relays must
/// not pile up in memory until the drain ends.
const MAX_QUEUED: usize = RING_ENTRIES as usize;

struct Datagram {
    fd: RawFd,
    /// None: the socket is connected to where this goes.
    to: Option<SockAddr>,
    start: usize,
    len: usize,
}

pub(super) struct Outbox {
    arena: Vec<u8>,
    queued: Vec<Datagram>,
    ring: Option<Ring>,
    /// Datagrams the kernel took since the worker last asked (`take_sent`).
    sent: u64,
}

/// io_uring and the per-message headers it reads while a flush runs.
struct Ring {
    uring: io_uring::IoUring,
    headers: Vec<libc::msghdr>,
    iovecs: Vec<libc::iovec>,
}

impl Outbox {
    pub(super) fn new(io: MediaIo) -> Outbox {
        let ring = match io {
            MediaIo::Plain => None,
            MediaIo::Auto => match io_uring::IoUring::new(RING_ENTRIES) {
                Ok(uring) => Some(Ring {
                    uring,
                    headers: Vec::new(),
                    iovecs: Vec::new(),
                }),
                Err(e) => {
                    tracing::info!("io_uring unavailable ({e}): media sent with sendto");
                    None
                }
            },
        };
        Outbox {
            arena: Vec::with_capacity(64 << 10),
            queued: Vec::with_capacity(256),
            ring,
            sent: 0,
        }
    }

    /// Whether flushes go through io_uring.
    pub(super) fn batched(&self) -> bool {
        self.ring.is_some()
    }

    /// Says how worker `worker` sends (made on the worker's own thread: an
    /// io_uring ring's teardown interrupts blocking calls of the thread that
    /// made it, so none is made elsewhere).
    pub(super) fn logged(self, worker: usize) -> Outbox {
        tracing::info!(
            "media-{worker}: sends {}",
            if self.batched() {
                "batched (one io_uring submission per tick)"
            } else {
                "one sendto per packet"
            }
        );
        self
    }

    /// Queues one datagram, given in pieces (header, payload), for `to`
    /// (`None`: where the socket is connected); past `MAX_QUEUED` waiting,
    /// what is queued is sent first.
    pub(super) fn push(&mut self, fd: RawFd, to: Option<std::net::SocketAddr>, parts: &[&[u8]]) {
        if self.queued.len() >= MAX_QUEUED {
            self.flush();
        }
        let start = self.arena.len();
        for p in parts {
            self.arena.extend_from_slice(p);
        }
        self.queued.push(Datagram {
            fd,
            to: to.map(SockAddr::from),
            start,
            len: self.arena.len() - start,
        });
    }

    /// Datagrams the kernel took since the last call.
    pub(super) fn take_sent(&mut self) -> u64 {
        std::mem::take(&mut self.sent)
    }

    /// Sends everything queued (counted in `take_sent`).
    pub(super) fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let sent = match self
            .ring
            .as_mut()
            .map(|r| r.send(&self.arena, &self.queued))
        {
            Some(Ok(sent)) => sent,
            Some(Err((sent, from))) => {
                // The ring is broken: this flush's rest and every later one go plain.
                self.ring = None;
                sent + send_plain(&self.arena, &self.queued[from..])
            }
            None => send_plain(&self.arena, &self.queued),
        };
        self.queued.clear();
        self.arena.clear();
        self.sent += sent;
    }
}

fn send_plain(arena: &[u8], queued: &[Datagram]) -> u64 {
    let mut sent = 0;
    for d in queued {
        let data = &arena[d.start..d.start + d.len];
        let (to, to_len) = match &d.to {
            Some(a) => (a.as_ptr() as *const libc::sockaddr, a.len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `data` and `to` are live for the call (a null address
        // sends to the connected peer); fd is a leg's open socket.
        let r = unsafe {
            libc::sendto(
                d.fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                libc::MSG_DONTWAIT,
                to,
                to_len,
            )
        };
        // A full buffer or an ICMP error from an earlier send: that packet
        // is lost, the call goes on.
        if r >= 0 {
            sent += 1;
        }
    }
    sent
}

impl Ring {
    /// Sends `queued`; on a ring failure, `Err((sent, index))`: what went,
    /// and the first datagram not known to have been submitted.
    fn send(&mut self, arena: &[u8], queued: &[Datagram]) -> Result<u64, (u64, usize)> {
        // Every header and iovec is written before the first submission and
        // not touched until the last completion: the kernel reads them.
        self.iovecs.clear();
        self.headers.clear();
        for d in queued {
            self.iovecs.push(libc::iovec {
                iov_base: arena[d.start..].as_ptr() as *mut libc::c_void,
                iov_len: d.len,
            });
        }
        for (d, iov) in queued.iter().zip(self.iovecs.iter_mut()) {
            // SAFETY: all-zero is a valid msghdr.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            if let Some(to) = &d.to {
                h.msg_name = to.as_ptr() as *mut libc::c_void;
                h.msg_namelen = to.len();
            }
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            self.headers.push(h);
        }
        let mut sent = 0;
        let mut base = 0;
        for (chunk, headers) in queued
            .chunks(RING_ENTRIES as usize)
            .zip(self.headers.chunks(RING_ENTRIES as usize))
        {
            let mut want = 0;
            {
                let mut sq = self.uring.submission();
                for (d, h) in chunk.iter().zip(headers) {
                    // To a connected socket a plain send: no header or
                    // address for the kernel to copy in.
                    let op = match d.to {
                        Some(_) => io_uring::opcode::SendMsg::new(io_uring::types::Fd(d.fd), h)
                            .flags(libc::MSG_DONTWAIT as u32)
                            .build(),
                        None => {
                            let data = &arena[d.start..d.start + d.len];
                            io_uring::opcode::Send::new(
                                io_uring::types::Fd(d.fd),
                                data.as_ptr(),
                                d.len as u32,
                            )
                            .flags(libc::MSG_DONTWAIT)
                            .build()
                        }
                    };
                    // SAFETY: the header, its iovec, address and data stay
                    // alive and unchanged until the completions below.
                    if unsafe { sq.push(&op) }.is_err() {
                        break; // a chunk is the ring's size: not expected
                    }
                    want += 1;
                }
            }
            let mut done = 0;
            while done < want {
                match self.uring.submit_and_wait(want - done) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!("io_uring submit: {e}; media sent with sendto from now on");
                        return Err((sent, base + done));
                    }
                }
                for cqe in self.uring.completion() {
                    done += 1;
                    if cqe.result() >= 0 {
                        sent += 1;
                    }
                }
            }
            if want < chunk.len() {
                // What the ring did not take goes plain, in order.
                return Err((sent, base + want));
            }
            base += want;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn round_trip(io: MediaIo) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Outbox::new(io);
        let to = rx.local_addr().unwrap();
        for i in 0..100u8 {
            let fd = if i % 2 == 0 {
                a.as_raw_fd()
            } else {
                b.as_raw_fd()
            };
            out.push(fd, Some(to), &[&[i; 12], &[i; 160]]);
        }
        out.flush();
        assert_eq!(out.take_sent(), 100);
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        for _ in 0..100 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(n, 172);
            assert!(buf[..n].iter().all(|x| *x == buf[0]));
            let sock = if buf[0] % 2 == 0 { &a } else { &b };
            assert_eq!(
                from,
                sock.local_addr().unwrap(),
                "sent from its leg's socket"
            );
            seen.push(buf[0]);
        }
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<u8>>());
        out.flush();
        assert_eq!(out.take_sent(), 0, "nothing left queued");
    }

    #[test]
    fn every_datagram_leaves_from_its_legs_socket_through_io_uring() {
        // Auto uses a ring whenever this kernel grants one (a silent fall
        // back to sendto fails here); where it refuses, the fallback runs.
        let kernel_allows = io_uring::IoUring::new(8).is_ok();
        assert_eq!(Outbox::new(MediaIo::Auto).batched(), kernel_allows);
        round_trip(MediaIo::Auto);
    }

    #[test]
    fn a_flood_is_sent_as_it_queues_not_kept() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Outbox::new(MediaIo::Plain);
        let to = rx.local_addr().unwrap();
        for _ in 0..3 * MAX_QUEUED {
            out.push(tx.as_raw_fd(), Some(to), &[&[0u8; 172]]);
            assert!(out.queued.len() <= MAX_QUEUED);
        }
        assert!(out.arena.len() <= MAX_QUEUED * 172);
    }

    #[test]
    fn every_datagram_leaves_from_its_legs_socket_with_sendto() {
        round_trip(MediaIo::Plain);
    }
}
