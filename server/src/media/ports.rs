//! RTP ports: a pool over the configured range; each call's port is bound
//! here and given back when its leg is gone.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{IpAddr, UdpSocket};
use std::sync::Mutex;

/// Hands out RTP ports from a range, least recently used first.
pub struct PortPool {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
}

impl PortPool {
    /// Even ports of `first..=last` (odd ones are left for RTCP).
    pub fn new(ip: IpAddr, first: u16, last: u16) -> Self {
        let free = (first..=last).filter(|p| p % 2 == 0).collect();
        PortPool {
            ip,
            free: Mutex::new(free),
        }
    }

    /// Binds a non-blocking socket on the next free port.
    pub fn bind(&self) -> std::io::Result<(UdpSocket, u16)> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..free.len().min(64) {
            let Some(port) = free.pop_front() else { break };
            match UdpSocket::bind((self.ip, port)) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    return Ok((s, port));
                }
                Err(_) => free.push_back(port),
            }
        }
        Err(std::io::Error::new(
            ErrorKind::AddrNotAvailable,
            "no free RTP port",
        ))
    }

    /// The RTCP socket beside an RTP port (port + 1), when it is free.
    pub fn bind_rtcp(&self, rtp_port: u16) -> Option<UdpSocket> {
        let s = UdpSocket::bind((self.ip, rtp_port.checked_add(1)?)).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }

    /// Ports not held by any leg (what a test checks is given back).
    pub fn free_count(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn release(&self, port: u16) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(port);
    }
}
