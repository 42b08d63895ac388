//! The reference for the IVR benchmark: a media server that does only the
//! unavoidable work of an IVR call, on the node's 20 ms tick, so the node's
//! CPU per call can be stated as a ratio to it in the same run.
//!
//! Per call per tick it drains the call's socket (one `recvmmsg` of up to 4
//! datagrams with `MSG_DONTWAIT`: fewer than 4 means drained, as the node
//! reads) and sends one 20 ms A-law packet; a worker's
//! sends of one tick go in one io_uring submission. Each call's socket is
//! connected to the caller (as the node connects a leg once it hears its
//! peer), so a send carries no address. It answers INVITE and
//! BYE with 200 OK and nothing else: no plugin, no prompt catalogue, no
//! jitter buffer, no DTMF, no records. One worker thread per core, as the
//! node runs by default.
//!
//! `reference_ivr [--sip 127.0.0.1:0]` prints `sip=PORT` once it listens.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use hookline_benches::wire::{header, ok_response, sdp_addr};

const TICK: Duration = Duration::from_millis(20);
const PKT: usize = 12 + 160;

enum Cmd {
    Add {
        call_id: String,
        socket: UdpSocket,
        remote: SocketAddrV4,
    },
    Remove(String),
}

struct Call {
    call_id: String,
    /// Connected to the caller.
    socket: UdpSocket,
    seq: u16,
    ts: u32,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut sip_addr = "127.0.0.1:0".to_string();
    while let Some(a) = args.next() {
        if a == "--sip" {
            sip_addr = args.next().unwrap_or(sip_addr);
        }
    }
    let sip = UdpSocket::bind(&sip_addr)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (tx, rx) = channel();
            std::thread::spawn(move || worker(rx));
            tx
        })
        .collect();
    println!("sip={}", sip.local_addr()?.port());
    std::io::stdout().flush()?;
    // Call-ID -> (worker, the 200 OK sent: resent to a retransmitted INVITE).
    let mut calls: HashMap<String, (usize, String)> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sip.recv_from(&mut buf)?;
        let Ok(msg) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        let call_id = header(msg, &["call-id", "i"]).unwrap_or("").to_string();
        if msg.starts_with("INVITE ") {
            if let Some((_, ok)) = calls.get(&call_id) {
                sip.send_to(ok.as_bytes(), from)?;
                continue;
            }
            let Some(remote) = sdp_addr(msg) else {
                continue;
            };
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_nonblocking(true)?;
            let port = socket.local_addr()?.port();
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"
            );
            let ok = format!(
                "{}Contact: <sip:ref@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                ok_response(msg, Some("ref")),
                sip.local_addr()?,
                sdp.len()
            );
            sip.send_to(ok.as_bytes(), from)?;
            let w = next % workers.len();
            next += 1;
            let _ = workers[w].send(Cmd::Add {
                call_id: call_id.clone(),
                socket,
                remote,
            });
            calls.insert(call_id, (w, ok));
        } else if !msg.starts_with("ACK ") && !msg.starts_with("SIP/2.0") {
            // Any other request (BYE above all) is answered 200.
            let ok = format!("{}Content-Length: 0\r\n\r\n", ok_response(msg, None));
            sip.send_to(ok.as_bytes(), from)?;
            if msg.starts_with("BYE ") {
                if let Some((w, _)) = calls.remove(&call_id) {
                    let _ = workers[w].send(Cmd::Remove(call_id));
                }
            }
        }
    }
}

/// Datagrams taken per receive call.
const BATCH: usize = 4;

/// One `recvmmsg` without waiting; how many datagrams it took (0: none).
fn drain_batch(fd: std::os::fd::RawFd, bufs: &mut [[u8; 2048]; BATCH]) -> usize {
    let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|k| libc::iovec {
        iov_base: bufs[k].as_mut_ptr().cast(),
        iov_len: 2048,
    });
    // SAFETY: plain data for which all-zero is valid.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // The system call itself, as the node makes it: glibc's `recvmmsg` wraps
    // it in thread-cancellation bookkeeping, which is avoidable work.
    // SAFETY: the headers point at iovecs and buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_recvmmsg,
            fd as libc::c_long,
            msgs.as_mut_ptr(),
            BATCH as libc::c_long,
            libc::MSG_DONTWAIT as libc::c_long,
            std::ptr::null_mut::<libc::timespec>(),
        )
    };
    r.max(0) as usize
}

/// One worker: its calls, one pass per tick.
fn worker(rx: Receiver<Cmd>) {
    let mut calls: Vec<Call> = Vec::new();
    let mut ring = io_uring::IoUring::new(4096).ok();
    let mut out = vec![[0u8; PKT]; 0];
    let mut bufs = [[0u8; 2048]; BATCH];
    let mut next = Instant::now() + TICK;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Cmd::Add {
                    call_id,
                    socket,
                    remote,
                }) => {
                    if socket.connect(SocketAddr::V4(remote)).is_err() {
                        continue;
                    }
                    calls.push(Call {
                        call_id,
                        socket,
                        seq: calls.len() as u16 ^ 0x5a5a,
                        ts: 0,
                    })
                }
                Ok(Cmd::Remove(id)) => calls.retain(|c| c.call_id != id),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        // Drain each socket: one recvmmsg while it returns a full batch.
        for c in &calls {
            while drain_batch(c.socket.as_raw_fd(), &mut bufs) == BATCH {}
        }
        // One packet per call, all sent in one submission.
        out.resize(calls.len(), [0u8; PKT]);
        for (c, p) in calls.iter_mut().zip(out.iter_mut()) {
            c.seq = c.seq.wrapping_add(1);
            c.ts = c.ts.wrapping_add(160);
            p[0] = 0x80;
            p[1] = 8;
            p[2..4].copy_from_slice(&c.seq.to_be_bytes());
            p[4..8].copy_from_slice(&c.ts.to_be_bytes());
            p[8..12].copy_from_slice(&0x5eed_0001u32.to_be_bytes());
            p[12..].fill(0xd5);
        }
        match ring.as_mut() {
            Some(r) => send_batched(r, &calls, &out),
            None => {
                for (c, p) in calls.iter().zip(&out) {
                    let _ = c.socket.send(p);
                }
            }
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
            next += TICK;
        } else {
            next = now + TICK;
        }
    }
}

fn send_batched(ring: &mut io_uring::IoUring, calls: &[Call], out: &[[u8; PKT]]) {
    for (cs, ps) in calls.chunks(4096).zip(out.chunks(4096)) {
        {
            let mut sq = ring.submission();
            for (c, p) in cs.iter().zip(ps) {
                let op = io_uring::opcode::Send::new(
                    io_uring::types::Fd(c.socket.as_raw_fd()),
                    p.as_ptr(),
                    PKT as u32,
                )
                .flags(libc::MSG_DONTWAIT)
                .build();
                // SAFETY: the packets outlive the completions.
                let _ = unsafe { sq.push(&op) };
            }
        }
        let mut done = 0;
        while done < cs.len() {
            if ring.submit_and_wait(cs.len() - done).is_err() {
                return;
            }
            done += ring.completion().count();
        }
    }
}
