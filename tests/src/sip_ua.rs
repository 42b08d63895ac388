//! A bare-bones SIP caller over UDP for tests that need exact control of each message.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// A bare-bones SIP caller over UDP for tests that need exact control of each message.
pub struct SipUa {
    pub sock: UdpSocket,
    pub node: SocketAddr,
    me: SocketAddr,
    /// Who calls (the From user): `ua` unless `as_user` says otherwise.
    user: String,
}

/// The To tag of a response (needed for in-dialog requests).
pub fn to_tag(msg: &str) -> String {
    msg.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .unwrap_or_default()
}

impl SipUa {
    pub fn new(node: SocketAddr) -> Result<SipUa> {
        SipUa::bind(std::net::Ipv4Addr::LOCALHOST.into(), node)
    }

    /// A UA whose signalling comes from `local` (another of the machine's addresses).
    pub fn bind(local: std::net::IpAddr, node: SocketAddr) -> Result<SipUa> {
        let sock = UdpSocket::bind(SocketAddr::new(local, 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let me = sock.local_addr()?;
        Ok(SipUa {
            sock,
            node,
            me,
            user: "ua".into(),
        })
    }

    /// The same UA calling as `user` (a number, for a callback).
    pub fn as_user(mut self, user: &str) -> SipUa {
        self.user = user.to_string();
        self
    }

    /// Sends an INVITE offering PCMU and telephone-event, media to `rtp_port`.
    pub fn invite(&self, call_id: &str, number: &str, rtp_port: u16) -> Result<()> {
        self.invite_with_media_ip(call_id, number, "127.0.0.1", rtp_port)
    }

    /// Like `invite`, with the SDP naming `media_ip` (a phone behind NAT names
    /// an address other than the one its signalling comes from).
    pub fn invite_with_media_ip(
        &self,
        call_id: &str,
        number: &str,
        media_ip: &str,
        rtp_port: u16,
    ) -> Result<()> {
        self.invite_full(call_id, number, media_ip, rtp_port, 70)
    }

    /// An INVITE carrying `max_forwards` (a call that already crossed hops).
    pub fn invite_full(
        &self,
        call_id: &str,
        number: &str,
        media_ip: &str,
        rtp_port: u16,
        max_forwards: u32,
    ) -> Result<()> {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {media_ip}\r\ns=-\r\nc=IN IP4 {media_ip}\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        );
        let (me, user) = (self.me, &self.user);
        let msg = format!(
            "INVITE sip:{number}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-i\r\n\
             From: <sip:{user}@{me}>;tag=ua-{call_id}\r\nTo: <sip:{number}@{node}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:ua@{me}>\r\nMax-Forwards: {max_forwards}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            node = self.node
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// Sends an in-dialog request (ACK, BYE, INFO, OPTIONS …).
    pub fn request(
        &self,
        method: &str,
        call_id: &str,
        to_tag: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> Result<()> {
        let (me, user) = (self.me, &self.user);
        let msg = format!(
            "{method} sip:hookline@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq}{m}\r\n\
             From: <sip:{user}@{me}>;tag=ua-{call_id}\r\nTo: <sip:n@{node}>;tag={to_tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            node = self.node,
            m = method.to_ascii_lowercase(),
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// CANCELs our INVITE of `call_id` to `number` (same branch, as RFC 3261
    /// asks); the caller gives up while it rings.
    pub fn cancel(&self, call_id: &str, number: &str) -> Result<()> {
        let (me, user) = (self.me, &self.user);
        let msg = format!(
            "CANCEL sip:{number}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-i\r\n\
             From: <sip:{user}@{me}>;tag=ua-{call_id}\r\nTo: <sip:{number}@{node}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            node = self.node
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// ACKs a final error response to our INVITE (same branch, its To tag).
    pub fn ack_error(&self, call_id: &str, number: &str, response: &str) -> Result<()> {
        let (me, user) = (self.me, &self.user);
        let tag = to_tag(response);
        let msg = format!(
            "ACK sip:{number}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-i\r\n\
             From: <sip:{user}@{me}>;tag=ua-{call_id}\r\nTo: <sip:{number}@{node}>;tag={tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            node = self.node
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// Waits for a message about `call_id` whose first line starts with `start`
    /// (e.g. "SIP/2.0 200", "BYE "); other messages about it are skipped.
    pub fn expect(&self, call_id: &str, start: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !msg.contains(&format!("Call-ID: {call_id}\r\n")) {
                continue;
            }
            if msg.starts_with(start) {
                return Ok(msg);
            }
            seen.push(msg.lines().next().unwrap_or("").to_string());
        }
        bail!("no {start:?} for {call_id} within {timeout:?}; saw {seen:?}")
    }

    /// INVITE, wait for 200, ACK. Returns the To tag.
    pub fn call(&self, call_id: &str, number: &str, rtp_port: u16) -> Result<String> {
        self.invite(call_id, number, rtp_port)?;
        let ok = self.expect(call_id, "SIP/2.0 200", Duration::from_secs(10))?;
        let tag = to_tag(&ok);
        self.request("ACK", call_id, &tag, 1, "", "")?;
        Ok(tag)
    }
}
