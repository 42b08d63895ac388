//! rtpengine (Debian's `rtpengine-daemon`, userspace only: no kernel module
//! here) as the reference relay for bridged calls, driven over its "ng"
//! control protocol the way Kamailio's `rtpengine` module drives it: an
//! `offer` with the caller's SDP, an `answer` with the agent's, a `delete`
//! at the end. SIP itself is not in the measured window of either relay, so
//! the comparison is of media relaying alone.

use std::collections::BTreeMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_bencode::value::Value;

/// A running rtpengine, killed on drop.
pub struct Rtpengine {
    child: Child,
    ng: UdpSocket,
    cookie: u64,
}

impl Rtpengine {
    /// Starts rtpengine on 127.0.0.1 with `threads` worker threads and the
    /// media ports `ports`.
    pub fn start(threads: usize, ports: (u16, u16)) -> anyhow::Result<Rtpengine> {
        let ng_port = hookline_tests::free_udp_port();
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--log-level=3",
                "--table=-1",
                "--interface=127.0.0.1",
                "--delete-delay=0",
            ])
            .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
            .arg(format!("--port-min={}", ports.0))
            .arg(format!("--port-max={}", ports.1))
            .arg(format!("--num-threads={threads}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rtpengine (scripts/setup.sh --bench installs rtpengine-daemon)")?;
        let ng = UdpSocket::bind("127.0.0.1:0")?;
        ng.connect(("127.0.0.1", ng_port))?;
        ng.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut r = Rtpengine {
            child,
            ng,
            cookie: 0,
        };
        // It generates a DTLS certificate before it listens (about 1.5 s).
        for _ in 0..100 {
            if r.call(&[("command", "ping")]).is_ok() {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("rtpengine did not answer a ping on its ng port {ng_port}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One ng request; returns the reply's dictionary when its result is "ok".
    fn call(&mut self, fields: &[(&str, &str)]) -> anyhow::Result<BTreeMap<String, Value>> {
        self.cookie += 1;
        let cookie = self.cookie.to_string();
        let dict: BTreeMap<&str, &str> = fields.iter().copied().collect();
        let mut msg = format!("{cookie} ").into_bytes();
        msg.extend(serde_bencode::to_bytes(&dict)?);
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            self.ng.send(&msg)?;
            let Ok(n) = self.ng.recv(&mut buf) else {
                continue;
            };
            let Some(body) = buf[..n].strip_prefix(format!("{cookie} ").as_bytes()) else {
                continue; // a late reply to an earlier try
            };
            let reply: BTreeMap<String, Value> = serde_bencode::from_bytes(body)?;
            return match reply.get("result") {
                Some(Value::Bytes(r)) if r == b"ok" || r == b"pong" => Ok(reply),
                other => bail!(
                    "rtpengine refused {}: {other:?} {:?}",
                    fields[0].1,
                    reply.get("error-reason")
                ),
            };
        }
        bail!("rtpengine did not answer {}", fields[0].1)
    }

    /// Sets up one call between a caller and an agent whose media is at
    /// `peer` (both legs); returns where the caller's packets go and where
    /// the agent's go.
    pub fn bridge(
        &mut self,
        call_id: &str,
        peer: SocketAddrV4,
    ) -> anyhow::Result<(SocketAddrV4, SocketAddrV4)> {
        let sdp = |sess: &str| {
            format!(
                "v=0\r\no=- {sess} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n",
                ip = peer.ip(),
                port = peer.port(),
            )
        };
        let offer = self.call(&[
            ("command", "offer"),
            ("call-id", call_id),
            ("from-tag", "caller"),
            ("sdp", &sdp("1")),
        ])?;
        let agent_dst = media_addr(&offer)?;
        let answer = self.call(&[
            ("command", "answer"),
            ("call-id", call_id),
            ("from-tag", "caller"),
            ("to-tag", "agent"),
            ("sdp", &sdp("2")),
        ])?;
        let caller_dst = media_addr(&answer)?;
        Ok((caller_dst, agent_dst))
    }

    pub fn delete(&mut self, call_id: &str) -> anyhow::Result<()> {
        self.call(&[
            ("command", "delete"),
            ("call-id", call_id),
            ("from-tag", "caller"),
        ])
        .map(drop)
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `c=` address and `m=audio` port of a reply's SDP.
fn media_addr(reply: &BTreeMap<String, Value>) -> anyhow::Result<SocketAddrV4> {
    let Some(Value::Bytes(sdp)) = reply.get("sdp") else {
        bail!("rtpengine's reply has no SDP");
    };
    let sdp = String::from_utf8_lossy(sdp);
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .context("no c= line")?
        .trim()
        .parse()?;
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .context("no m=audio line")?
        .parse()?;
    Ok(SocketAddrV4::new(ip, port))
}
