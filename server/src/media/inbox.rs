//! Reading a leg's socket: one `recvmmsg` takes every datagram waiting, up
//! to [`BATCH`]. A leg almost always has one packet waiting per wake-up or
//! tick, and reading until the socket would block with `recvfrom` costs a
//! second system call that finds it empty; `recvmmsg` with `MSG_DONTWAIT`
//! returns the one packet and tells that the socket is drained (fewer than
//! asked) in the same call. Hand-written on libc because std and socket2
//! have no batched receive.
//!
//! Measured and not taken (2026-12-03): reading many sockets in one
//! io_uring submission (one `RECVMSG` each with `MSG_DONTWAIT`). Alone it is
//! cheaper per socket (1.41–1.74 µs against 1.64–2.14 µs for `recvmmsg`,
//! twelve runs each over 2,000 loopback sockets with one datagram each, the
//! descriptor table shared as in the node; registered files were slower,
//! 1.74–1.83 µs), but it cannot tell that a socket is drained: the
//! completion's `SOCK_NONEMPTY` flag was not set for UDP sockets holding
//! more (kernel 6.18), and a second receive per socket to find it empty
//! brings it to 2.13–2.41 µs.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams taken per call. More than a leg receives between two reads
/// unless its peer sends faster than its packet time.
pub(super) const BATCH: usize = 4;
/// Room per datagram: larger than any RTP packet we accept (the rest is cut).
const BUF: usize = 2048;

pub(super) struct Inbox {
    bufs: Box<[[u8; BUF]; BATCH]>,
    addrs: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

impl Inbox {
    pub(super) fn new() -> Inbox {
        Inbox {
            bufs: Box::new([[0; BUF]; BATCH]),
            // SAFETY: these libc structs are plain data for which all-zero is valid.
            addrs: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
            msgs: unsafe { std::mem::zeroed() },
        }
    }

    /// Takes up to [`BATCH`] datagrams from `fd` without waiting; returns
    /// how many (fewer than `BATCH`: the socket is drained). `WouldBlock`
    /// when none was waiting.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for k in 0..BATCH {
            self.iov[k] = libc::iovec {
                iov_base: self.bufs[k].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut self.msgs[k].msg_hdr;
            h.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[k];
            h.msg_iovlen = 1;
        }
        // The system call itself, not glibc's `recvmmsg`: that one is a
        // thread-cancellation point, and its enable/disable-cancel wrappers
        // around every call were half a percent of the node's CPU under the
        // IVR load (perf), for cancellation the node never uses.
        // SAFETY: every header points at a buffer, iovec and address owned by
        // self, which outlives the call; the kernel writes at most their sizes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                fd as libc::c_long,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_long,
                libc::MSG_DONTWAIT as libc::c_long,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Datagram `k` of the last [`Inbox::recv`] and who sent it.
    pub(super) fn datagram(&self, k: usize) -> (&[u8], Option<SocketAddr>) {
        let len = (self.msgs[k].msg_len as usize).min(BUF);
        (&self.bufs[k][..len], socket_addr(&self.addrs[k]))
    }
}

fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn takes_what_waits_says_when_drained_and_names_the_sender() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut inbox = Inbox::new();
        let e = inbox.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        for n in 0..6u8 {
            tx.send_to(&[n; 3], rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(inbox.recv(rx.as_raw_fd()).unwrap(), BATCH);
        let (data, from) = inbox.datagram(0);
        assert_eq!(
            (data, from),
            (&[0u8; 3][..], Some(tx.local_addr().unwrap()))
        );
        assert_eq!(inbox.datagram(3).0, &[3u8; 3]);
        // Fewer than asked: drained.
        assert_eq!(inbox.recv(rx.as_raw_fd()).unwrap(), 2);
        assert_eq!(inbox.datagram(1).0, &[5u8; 3]);
        assert_eq!(
            inbox.recv(rx.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
