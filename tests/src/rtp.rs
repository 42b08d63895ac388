//! RTP a test receives itself (an `RtpSink`) and G.711 decoding of it.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::tone_share;

/// One RTP packet as received by a sink.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub payload: Vec<u8>,
}

/// A UDP socket that records every RTP packet sent to it, on its own thread.
pub struct RtpSink {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Received>>>,
}

impl RtpSink {
    pub fn bind() -> Result<RtpSink> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let port = socket.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if n >= 12 && buf[0] >> 6 == 2 {
                        got.push(Received {
                            at: Instant::now(),
                            marker: buf[1] & 0x80 != 0,
                            payload_type: buf[1] & 0x7f,
                            sequence: u16::from_be_bytes([buf[2], buf[3]]),
                            payload: buf[12..n].to_vec(),
                        });
                    }
                }
            }
            got
        });
        Ok(RtpSink {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening and returns what arrived.
    pub fn finish(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// G.711 A-law to linear (ITU-T G.711, written here independently of the node's tables).
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = ((a & 0x0f) as i32) << 4;
    t += 8;
    if seg > 0 {
        t += 0x100;
    }
    if seg > 1 {
        t <<= seg - 1;
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// G.711 µ-law to linear.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// Root-mean-square level of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Splits received audio into talkspurts at marker bits (one per prompt played).
pub fn talkspurts(packets: &[Received], payload_type: u8) -> Vec<Vec<&Received>> {
    let mut spurts: Vec<Vec<&Received>> = Vec::new();
    for p in packets.iter().filter(|p| p.payload_type == payload_type) {
        if p.marker || spurts.is_empty() {
            spurts.push(Vec::new());
        }
        if let Some(last) = spurts.last_mut() {
            last.push(p);
        }
    }
    spurts
}

/// What a sink heard between `from_s` and `to_s` seconds after its first
/// packet arrived, decoded (PCMA or PCMU; other payloads are skipped):
/// "what the caller heard at that point of the call".
pub fn heard_between(packets: &[Received], from_s: f64, to_s: f64) -> Vec<i16> {
    let Some(first) = packets.first() else {
        return Vec::new();
    };
    packets
        .iter()
        .filter(|p| (from_s..to_s).contains(&(p.at - first.at).as_secs_f64()))
        .flat_map(|p| {
            p.payload.iter().filter_map(move |b| match p.payload_type {
                8 => Some(alaw_to_linear(*b)),
                0 => Some(ulaw_to_linear(*b)),
                _ => None,
            })
        })
        .collect()
}

/// 100 ms windows of 8 kHz audio that are mostly ringback: the node's own
/// (ETSI, 425 Hz) or the North American one (440 + 480 Hz) a peer may send.
pub fn ringback_windows(pcm: &[i16]) -> usize {
    pcm.chunks_exact(800)
        .filter(|w| {
            rms(w) > 300.0
                && (tone_share(w, 8000, 425.0) > 0.5
                    || tone_share(w, 8000, 440.0) + tone_share(w, 8000, 480.0) > 0.5)
        })
        .count()
}

/// What a sink heard between `from_s` and `to_s` (as [`heard_between`]):
/// speech-level 100 ms windows, and windows of ringback among them.
pub fn speech_and_ringback(packets: &[Received], from_s: f64, to_s: f64) -> (usize, usize) {
    let pcm = heard_between(packets, from_s, to_s);
    (crate::audible_windows(&pcm, 8000), ringback_windows(&pcm))
}
