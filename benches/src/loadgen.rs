//! A light SIP/RTP load generator: one thread, one SIP socket, one media socket
//! shared by all calls, RTP sent and received in batches (sendmmsg/recvmmsg)
//! from buffers allocated once. SIPp saturates near 1,000 calls on two cores;
//! this goes further while leaving the cores to the node under test.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::rx::{self, Rx};
use crate::wire::{header, ok_response, sdp_addr, set_buffers, sockaddr, tag};

const FRAME: usize = 160;
const PKT: usize = 12 + FRAME;
const RECV_BATCH: usize = 64;
/// Packets per sendmmsg (each batch stamped with its own send time).
const SEND_BATCH: usize = 32;
const TICK: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The node's SIP address.
    pub node: SocketAddr,
    /// Dialled number.
    pub service: String,
    pub calls: usize,
    /// How long all calls are held up together (the measured window).
    pub hold: Duration,
    /// Call attempts per second while ramping up.
    pub cps: u32,
    /// Also answer the node's outbound calls (the agents of bridged calls).
    pub answer_calls: bool,
    /// Our SIP port (0: any), so a node's route can dial back to us.
    pub sip_port: u16,
    /// The agents answer with Opus and send this 20 ms Opus packet (encoded
    /// once); callers then send a tone in A-law, so both directions of every
    /// bridge are transcoded. `None`: A-law silence everywhere.
    pub opus_agents: Option<Vec<u8>>,
    /// The callers offer only Opus and send this 20 ms packet (a caller on a
    /// modern phone or a WebRTC gateway). `None`: callers speak A-law.
    pub opus_callers: Option<Vec<u8>>,
    /// 0: every call dials `service`. k: calls dial `service` followed by
    /// their index / k, so groups of k meet under one number (conference rooms).
    pub group_size: usize,
    /// 1: every leg sends at the same instant each 20 ms (the worst burst).
    /// k: legs send in k groups spread evenly over the 20 ms (leg i in group
    /// i mod k), as independent calls' cadences are.
    pub phases: u32,
    /// Callers send true silence, unmarked (a caller listening to a menu:
    /// the node's endpointer must hear no one speak). No echo is then counted.
    pub quiet: bool,
}

impl LoadConfig {
    /// A-law callers dialling `service`, held `hold`, set up at `cps`: no
    /// agents answered, no groups, every leg sending in the same instant.
    /// Scenarios change what they need from here.
    pub fn callers(
        node: SocketAddr,
        service: &str,
        calls: usize,
        hold: Duration,
        cps: u32,
    ) -> Self {
        LoadConfig {
            node,
            service: service.into(),
            calls,
            hold,
            cps,
            answer_calls: false,
            sip_port: 0,
            opus_agents: None,
            opus_callers: None,
            group_size: 0,
            phases: 1,
            quiet: false,
        }
    }
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Every call is up; the measured window starts.
    HoldStart,
    /// The measured window ends; calls are torn down next.
    HoldEnd,
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub attempted: usize,
    pub answered: usize,
    /// Answered, held, and ended by our BYE with 200 OK.
    pub completed: usize,
    pub failed: usize,
    /// Calls the node hung up during the run.
    pub ended_by_node: usize,
    /// Calls the node placed to us that we answered (the far legs of bridges).
    pub bridged: usize,
    /// Media during the hold window.
    pub rtp_sent: u64,
    /// What should have reached us: every leg up in the window, one packet
    /// per 20 ms of the window each.
    pub rtp_expected: u64,
    pub rtp_received: u64,
    /// Expected packets that never came, counted per leg (a leg that got
    /// nothing or stopped early is all loss; another's surplus hides none).
    pub rtp_lost: u64,
    pub rtp_late: u64,
    /// Packets carrying another leg's marker, and those that came from the
    /// wrong leg (an echo, a cross-wired or shared stream). Only G.711 legs
    /// are marked: with Opus on either side `markers` is false.
    pub markers: bool,
    pub rtp_marked: u64,
    pub rtp_crossed: u64,
    /// Latency and jitter of relayed (marked, stamped) packets in the window.
    pub delays: crate::delay::Delays,
    /// Mean INVITE-to-200 time.
    pub setup_ms_avg: f64,
    pub held: Duration,
}

impl LoadReport {
    /// Expected packets that never came, in per cent of the expected.
    pub fn lost_pct(&self) -> f64 {
        self.rtp_lost as f64 / self.rtp_expected.max(1) as f64 * 100.0
    }

    /// Packets later than a jitter buffer would wait, in per cent of the expected.
    pub fn late_pct(&self) -> f64 {
        self.rtp_late as f64 / self.rtp_expected.max(1) as f64 * 100.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Idle,
    Inviting,
    Up,
    Byeing,
    Done,
    Failed,
}

struct Call {
    st: St,
    call_id: String,
    from_tag: String,
    to_tag: String,
    node_rtp: Option<SocketAddrV4>,
    sent_at: Instant,
    invited_at: Instant,
    tries: u32,
    seq: u16,
    ts: u32,
    /// Timestamp units per packet (160 for G.711, 960 for Opus).
    ts_step: u32,
    rx: Rx,
    /// Up when the measured window began: it owes the window's packets.
    up_at_hold: bool,
}

impl Call {
    fn new(i: usize, pid: u32, now: Instant) -> Call {
        Call {
            st: St::Idle,
            call_id: format!("lg-{i}-{pid}"),
            from_tag: format!("lg{i}"),
            to_tag: String::new(),
            node_rtp: None,
            sent_at: now,
            invited_at: now,
            tries: 0,
            seq: (i as u16).wrapping_mul(7919),
            ts: (i as u32).wrapping_mul(104_729),
            ts_step: FRAME as u32,
            rx: Rx::new(i as u32, 8.0),
            up_at_hold: false,
        }
    }
}

struct Gen {
    cfg: LoadConfig,
    sip: UdpSocket,
    media: UdpSocket,
    local_sip: SocketAddr,
    media_port: u16,
    calls: Vec<Call>,
    by_port: Vec<u32>,
    report: LoadReport,
    setup_total_ms: f64,
    /// Setup benchmark: BYE as soon as the call is answered.
    immediate_bye: bool,
    /// Caller legs are `calls[..n]`; legs the node calls us on fill `calls[n..]`.
    n: usize,
    next_callee: usize,
    callee_ids: HashMap<String, usize>,
    epoch: Instant,
    // Batch buffers, allocated once.
    out_bufs: Vec<[u8; PKT]>,
    out_addrs: Vec<libc::sockaddr_in>,
    out_iov: Vec<libc::iovec>,
    out_msgs: Vec<libc::mmsghdr>,
    in_bufs: Vec<[u8; 256]>,
    in_addrs: Vec<libc::sockaddr_in>,
    in_iov: Vec<libc::iovec>,
    in_msgs: Vec<libc::mmsghdr>,
    /// The call each outgoing message of this tick belongs to.
    out_which: Vec<usize>,
    /// The group of legs that sends next (see `LoadConfig::phases`).
    phase: usize,
    /// Control buffers for the kernel's receive timestamps.
    in_ctrl: Vec<[u64; 8]>,
    /// Bytes of each leg's packet (Opus agents send shorter ones).
    out_len: Vec<usize>,
}

/// Runs the load and reports; `on_phase` is called at the edges of the hold window.
pub fn run(cfg: &LoadConfig, mut on_phase: impl FnMut(Phase)) -> io::Result<LoadReport> {
    let mut g = Gen::new(cfg)?;
    g.run(&mut on_phase)?;
    Ok(g.report)
}

/// Call setups per second: each call is INVITE, 200, ACK and at once BYE, 200.
/// Returns the report and how long the whole run took.
pub fn run_setups(cfg: &LoadConfig) -> io::Result<(LoadReport, Duration)> {
    let mut g = Gen::new(cfg)?;
    g.immediate_bye = true;
    let took = g.run_setups()?;
    Ok((g.report, took))
}

impl Gen {
    /// Binds the two sockets and allocates every buffer the run will use.
    fn new(cfg: &LoadConfig) -> io::Result<Gen> {
        let sip = UdpSocket::bind(("127.0.0.1", cfg.sip_port))?;
        sip.set_nonblocking(true)?;
        let media = UdpSocket::bind("127.0.0.1:0")?;
        media.set_nonblocking(true)?;
        crate::delay::enable_rx_timestamps(std::os::fd::AsRawFd::as_raw_fd(&media));
        let pid = std::process::id();
        let start = Instant::now();
        let legs = if cfg.answer_calls {
            2 * cfg.calls
        } else {
            cfg.calls
        };
        let calls = (0..legs).map(|i| Call::new(i, pid, start)).collect();
        set_buffers(&media, 8 << 20);
        set_buffers(&sip, 4 << 20);
        let local_sip = sip.local_addr()?;
        let media_port = media.local_addr()?.port();
        let now = Instant::now();
        let n = legs;
        let mut g = Gen {
            cfg: cfg.clone(),
            sip,
            media,
            local_sip,
            media_port,
            calls,
            by_port: vec![u32::MAX; 65536],
            report: LoadReport {
                attempted: 0,
                ..Default::default()
            },
            setup_total_ms: 0.0,
            immediate_bye: false,
            n: cfg.calls,
            next_callee: cfg.calls,
            callee_ids: HashMap::new(),
            epoch: now,
            out_bufs: vec![[0u8; PKT]; n],
            // SAFETY: these libc structs are plain data for which all-zero is valid.
            out_addrs: vec![unsafe { std::mem::zeroed() }; n],
            out_iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            out_msgs: vec![unsafe { std::mem::zeroed() }; n],
            in_bufs: vec![[0u8; 256]; RECV_BATCH],
            in_addrs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            in_iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                RECV_BATCH
            ],
            in_msgs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            in_ctrl: vec![[0u64; 8]; RECV_BATCH],
            phase: 0,
            out_which: vec![0; n],
            out_len: vec![PKT; n],
        };
        g.report.markers = cfg.opus_agents.is_none() && cfg.opus_callers.is_none() && !cfg.quiet;
        for (i, b) in g.out_bufs.iter_mut().enumerate() {
            b[0] = 0x80;
            b[1] = 8;
            b[8..12].copy_from_slice(&(0x1000_0000u32 + i as u32).to_be_bytes());
            b[12..].fill(0xd5); // A-law silence
            if g.report.markers {
                rx::mark(&mut b[12..], i as u32);
            }
        }
        if let Some(opus) = &cfg.opus_callers {
            let len = opus.len().min(FRAME);
            for (i, b) in g.out_bufs.iter_mut().enumerate().take(cfg.calls) {
                b[1] = 111;
                b[12..12 + len].copy_from_slice(&opus[..len]);
                g.out_len[i] = 12 + len;
                g.calls[i].ts_step = 960;
                g.calls[i].rx.clock_khz = 48.0;
            }
        }
        if let Some(opus) = &cfg.opus_agents {
            // Callers speak: a 400 Hz tone (whole cycles per frame), A-law.
            let pcm: Vec<i16> = (0..FRAME)
                .map(|k| {
                    ((k as f64 * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin() * 8000.0) as i16
                })
                .collect();
            let mut tone = [0u8; FRAME];
            hookline::codec::g711::G711::Alaw(8).encode(&pcm, &mut tone);
            let len = opus.len().min(FRAME);
            for (i, b) in g.out_bufs.iter_mut().enumerate() {
                if i < cfg.calls {
                    b[12..].copy_from_slice(&tone);
                } else {
                    b[1] = 111;
                    b[12..12 + len].copy_from_slice(&opus[..len]);
                    g.out_len[i] = 12 + len;
                }
            }
        }
        Ok(g)
    }
}

/// Relayed media without signalling: a relay (rtpengine, driven over its own
/// control protocol) was told where our legs are by `setup`, which gets our
/// media port and returns, per call, where the caller leg sends and where the
/// agent leg sends. Every leg is up from the start; `cfg.calls` is the number
/// of calls and `cfg.answer_calls` must be set (two legs per call).
pub fn run_relayed(
    cfg: &LoadConfig,
    setup: impl FnOnce(u16) -> io::Result<Vec<(SocketAddrV4, SocketAddrV4)>>,
    mut on_phase: impl FnMut(Phase),
) -> io::Result<LoadReport> {
    assert!(cfg.answer_calls, "a relayed call has two legs");
    let mut g = Gen::new(cfg)?;
    let pairs = setup(g.media_port)?;
    for (i, (caller_dst, agent_dst)) in pairs.into_iter().enumerate().take(g.n) {
        for (leg, dst) in [(i, caller_dst), (g.n + i, agent_dst)] {
            g.calls[leg].st = St::Up;
            g.calls[leg].node_rtp = Some(dst);
            g.by_port[dst.port() as usize] = leg as u32;
        }
        g.report.attempted += 1;
        g.report.answered += 1;
        g.report.bridged += 1;
    }
    g.next_callee = 2 * g.n;
    let mut next_send = Instant::now();
    // Let the relay learn both legs (and the kernel settle) before measuring.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(2) {
        let now = Instant::now();
        g.send_due(now, &mut next_send);
        g.recv_media(now);
        nap(next_send);
    }
    g.hold(&mut on_phase, next_send)?;
    g.report.completed = g.report.bridged;
    Ok(g.report)
}

/// Sleeps until the next media send is due, or 1 ms at most (signalling
/// and received media are read between sends).
fn nap(next_send: Instant) {
    let left = next_send.saturating_duration_since(Instant::now());
    std::thread::sleep(left.min(Duration::from_millis(1)));
}

impl Gen {
    fn run(&mut self, on_phase: &mut impl FnMut(Phase)) -> io::Result<()> {
        let next_send = self.ramp()?;
        self.hold(on_phase, next_send)?;
        self.teardown()
    }

    /// Sets every call up at the configured rate, media flowing to those up;
    /// returns when the next media send is due.
    fn ramp(&mut self) -> io::Result<Instant> {
        let start = Instant::now();
        let mut next_tick = start;
        let mut started = 0usize;
        let mut budget = 0.0f64;
        let setup_deadline = start
            + Duration::from_secs(30)
            + Duration::from_secs_f64(self.cfg.calls as f64 / self.cfg.cps.max(1) as f64);
        let mut next_send = start;
        // Ramp up.
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.start_calls(&mut started, &mut budget, now)?;
                self.retransmit(now)?;
                next_tick += TICK;
            }
            self.send_due(now, &mut next_send);
            self.poll(now)?;
            let settled = self.calls[..self.n]
                .iter()
                .all(|c| matches!(c.st, St::Up | St::Failed | St::Done));
            let agents_up =
                !self.cfg.answer_calls || self.next_callee - self.n >= self.report.answered;
            if (started == self.n && settled && agents_up) || now > setup_deadline {
                break;
            }
            nap(next_send);
        }
        for c in &mut self.calls {
            if c.st == St::Inviting {
                c.st = St::Failed;
                self.report.failed += 1;
            }
        }
        Ok(next_send)
    }

    /// The measured window: media both ways for `cfg.hold`.
    fn hold(&mut self, on_phase: &mut impl FnMut(Phase), mut next_send: Instant) -> io::Result<()> {
        for c in &mut self.calls {
            c.rx.counting = true;
            c.up_at_hold = c.st == St::Up;
        }
        on_phase(Phase::HoldStart);
        let hold_start = Instant::now();
        let sent_before = self.report.rtp_sent;
        while hold_start.elapsed() < self.cfg.hold {
            let now = Instant::now();
            self.send_due(now, &mut next_send);
            self.poll(now)?;
            nap(next_send);
        }
        self.report.held = hold_start.elapsed();
        on_phase(Phase::HoldEnd);
        self.report.rtp_sent -= sent_before;
        let owed = (self.report.held.as_millis() / TICK.as_millis()) as u64;
        for c in &mut self.calls {
            c.rx.counting = false;
            let expected = if c.up_at_hold { owed } else { 0 };
            self.report.rtp_expected += expected;
            self.report.rtp_received += c.rx.received;
            self.report.rtp_lost += c.rx.lost(expected);
            self.report.rtp_late += c.rx.late;
            self.report.rtp_marked += c.rx.marked;
            self.report.rtp_crossed += c.rx.crossed;
        }
        let legs: Vec<Rx> = self.calls.iter().map(|c| c.rx).collect();
        self.report.rtp_crossed += rx::miswired(&legs);
        Ok(())
    }

    /// Hangs every call up at the same pace as calls were set up.
    fn teardown(&mut self) -> io::Result<()> {
        let mut next_bye = 0;
        let mut budget = 0.0f64;
        let mut last = Instant::now();
        let deadline = last
            + Duration::from_secs(15)
            + Duration::from_secs_f64(self.cfg.calls as f64 / self.cfg.cps.max(1) as f64);
        while Instant::now() < deadline
            && (next_bye < self.n
                || self.calls.iter().any(|c| {
                    matches!(c.st, St::Byeing)
                        || (c.st == St::Up && c.call_id.ends_with("@hookline"))
                }))
        {
            let now = Instant::now();
            budget += (now - last).as_secs_f64() * self.cfg.cps as f64;
            last = now;
            while budget >= 1.0 && next_bye < self.n {
                if self.calls[next_bye].st == St::Up {
                    self.bye(next_bye, now)?;
                    budget -= 1.0;
                }
                next_bye += 1;
            }
            self.retransmit(now)?;
            self.poll(now)?;
            std::thread::sleep(Duration::from_millis(2));
        }
        self.report.failed += self.calls.iter().filter(|c| c.st == St::Byeing).count();
        if self.report.answered > 0 {
            self.report.setup_ms_avg = self.setup_total_ms / self.report.answered as f64;
        }
        Ok(())
    }

    /// One tick's worth of new caller legs at the configured calls per second.
    fn start_calls(
        &mut self,
        started: &mut usize,
        budget: &mut f64,
        now: Instant,
    ) -> io::Result<()> {
        *budget += self.cfg.cps as f64 * TICK.as_secs_f64();
        while *budget >= 1.0 && *started < self.n {
            self.invite(*started, now)?;
            *started += 1;
            *budget -= 1.0;
        }
        Ok(())
    }

    fn run_setups(&mut self) -> io::Result<Duration> {
        let start = Instant::now();
        let mut next_tick = start;
        let mut started = 0usize;
        let mut budget = 0.0f64;
        let deadline = start
            + Duration::from_secs(30)
            + Duration::from_secs_f64(self.cfg.calls as f64 / self.cfg.cps.max(1) as f64);
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.start_calls(&mut started, &mut budget, now)?;
                self.retransmit(now)?;
                next_tick += TICK;
            }
            self.poll(now)?;
            let settled = self
                .calls
                .iter()
                .all(|c| matches!(c.st, St::Done | St::Failed));
            if (started == self.n && settled) || now > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = start.elapsed();
        self.report.failed += self
            .calls
            .iter()
            .filter(|c| matches!(c.st, St::Inviting | St::Byeing))
            .count();
        if self.report.answered > 0 {
            self.report.setup_ms_avg = self.setup_total_ms / self.report.answered as f64;
        }
        Ok(took)
    }

    /// Sends every phase due by `now` (phases closer than the loop's sleep
    /// go in the same wake-up, in order). After a stall of up to five ticks
    /// it catches up at once, a burst as a network hiccup gives; further
    /// behind, it starts again from `now`.
    fn send_due(&mut self, now: Instant, next_send: &mut Instant) {
        if now > *next_send + TICK * 5 {
            *next_send = now;
        }
        while now >= *next_send {
            self.send_media();
            *next_send += self.send_step();
        }
    }

    /// The time between two `send_media` calls.
    fn send_step(&self) -> Duration {
        TICK / self.cfg.phases.max(1)
    }

    /// One 20 ms frame to every call of this phase that is up, in sendmmsg batches.
    fn send_media(&mut self) {
        use std::os::fd::AsRawFd;
        let mut n = 0;
        let stamped = self.report.markers;
        let phases = self.cfg.phases.max(1) as usize;
        let phase = self.phase;
        self.phase = (self.phase + 1) % phases;
        for (i, c) in self.calls.iter_mut().enumerate() {
            if i % phases != phase {
                continue;
            }
            let (St::Up, Some(dst)) = (c.st, c.node_rtp) else {
                continue;
            };
            c.seq = c.seq.wrapping_add(1);
            c.ts = c.ts.wrapping_add(c.ts_step);
            let b = &mut self.out_bufs[i];
            b[2..4].copy_from_slice(&c.seq.to_be_bytes());
            b[4..8].copy_from_slice(&c.ts.to_be_bytes());
            self.out_which[n] = i;
            self.out_addrs[n] = sockaddr(dst);
            self.out_iov[n] = libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: self.out_len[i],
            };
            n += 1;
        }
        for k in 0..n {
            let m = &mut self.out_msgs[k];
            m.msg_hdr.msg_name = &mut self.out_addrs[k] as *mut _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut self.out_iov[k];
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut off = 0;
        while off < n {
            // Send times are stamped per batch of SEND_BATCH, just before it
            // goes, so a packet late in the tick is not charged to the node.
            let batch = (n - off).min(SEND_BATCH);
            if stamped {
                let now = crate::delay::now_us();
                for k in off..off + batch {
                    crate::delay::stamp(&mut self.out_bufs[self.out_which[k]][12..], now);
                }
            }
            // SAFETY: msgs[off..off + batch] point at live buffers, addresses and iovecs owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    self.media.as_raw_fd(),
                    self.out_msgs.as_mut_ptr().add(off),
                    batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                break; // buffer full or ICMP error: the rest of this tick is dropped and shows up as loss
            }
            off += r as usize;
            self.report.rtp_sent += r as u64;
        }
    }

    fn recv_media(&mut self, now: Instant) {
        use std::os::fd::AsRawFd;
        let arrival_ms = (now - self.epoch).as_secs_f64() * 1000.0;
        loop {
            for k in 0..RECV_BATCH {
                self.in_iov[k] = libc::iovec {
                    iov_base: self.in_bufs[k].as_mut_ptr() as *mut libc::c_void,
                    iov_len: 256,
                };
                let m = &mut self.in_msgs[k];
                m.msg_hdr.msg_name = &mut self.in_addrs[k] as *mut _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                m.msg_hdr.msg_iov = &mut self.in_iov[k];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_hdr.msg_control = self.in_ctrl[k].as_mut_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_controllen = std::mem::size_of::<[u64; 8]>();
            }
            // SAFETY: every message points at a live buffer, address, iovec
            // and control buffer owned by self.
            let r = unsafe {
                libc::recvmmsg(
                    self.media.as_raw_fd(),
                    self.in_msgs.as_mut_ptr(),
                    RECV_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r <= 0 {
                return;
            }
            for k in 0..r as usize {
                let len = self.in_msgs[k].msg_len as usize;
                let b = &self.in_bufs[k];
                if len < 12 || b[0] >> 6 != 2 {
                    continue;
                }
                let port = u16::from_be(self.in_addrs[k].sin_port);
                let idx = self.by_port[port as usize];
                if idx == u32::MAX {
                    continue;
                }
                let ts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let payload = &b[12.min(len)..len];
                let rx = &mut self.calls[idx as usize].rx;
                rx.on_packet(ts, payload, arrival_ms);
                // Relayed media (another leg's marker): how long it took.
                let relayed = rx::marker(payload).is_some_and(|from| from != rx.own);
                if rx.counting && relayed {
                    // SAFETY: recvmmsg just filled this header; its control buffer is self's.
                    let arrived = unsafe { crate::delay::arrival_us(&self.in_msgs[k].msg_hdr) };
                    if let (Some(arrived), Some(sent)) = (arrived, crate::delay::stamped(payload)) {
                        let latency = arrived.saturating_sub(sent);
                        self.report.delays.add(latency, rx.last_latency_us);
                        rx.last_latency_us = Some(latency);
                    }
                }
            }
            if (r as usize) < RECV_BATCH {
                return;
            }
        }
    }
}

#[path = "loadgen_sip.rs"]
mod sip;
