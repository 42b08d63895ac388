//! The load generator's SIP: the messages it sends (INVITE, ACK, BYE and
//! in-dialog requests), retransmissions, and what it does with the node's
//! answers (and, as an agent, with the node's INVITEs).

use super::*;

impl Gen {
    pub(super) fn send_sip(&self, msg: &str) -> io::Result<()> {
        match self.sip.send_to(msg.as_bytes(), self.cfg.node) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()), // retransmission covers it
            Err(e) => Err(e),
        }
    }

    /// The number call `i` dials.
    pub(super) fn service(&self, i: usize) -> String {
        match self.cfg.group_size {
            0 => self.cfg.service.clone(),
            k => format!("{}{}", self.cfg.service, i / k),
        }
    }

    pub(super) fn invite_text(&self, i: usize) -> String {
        let c = &self.calls[i];
        let local = self.local_sip;
        let media = if self.cfg.opus_callers.is_some() {
            "RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/48000"
        } else {
            "RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000"
        };
        let sdp = format!(
            "v=0\r\no=load {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} {media}\r\n",
            self.media_port
        );
        format!(
            "INVITE sip:{svc}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{id}-inv;rport\r\n\
             From: <sip:load@{local}>;tag={ft}\r\nTo: <sip:{svc}@{node}>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:load@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            svc = self.service(i),
            node = self.cfg.node,
            id = c.call_id,
            ft = c.from_tag,
            len = sdp.len()
        )
    }

    pub(super) fn in_dialog(&self, i: usize, method: &str, cseq: u32) -> String {
        let c = &self.calls[i];
        let local = self.local_sip;
        format!(
            "{method} sip:{svc}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{id}-{m};rport\r\n\
             From: <sip:load@{local}>;tag={ft}\r\nTo: <sip:{svc}@{node}>;tag={tt}\r\nCall-ID: {id}\r\n\
             CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            svc = self.service(i),
            node = self.cfg.node,
            id = c.call_id,
            ft = c.from_tag,
            tt = c.to_tag,
            m = method.to_ascii_lowercase(),
        )
    }

    pub(super) fn invite(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let msg = self.invite_text(i);
        self.send_sip(&msg)?;
        let c = &mut self.calls[i];
        c.st = St::Inviting;
        c.invited_at = now;
        c.sent_at = now;
        c.tries = 1;
        self.report.attempted += 1;
        Ok(())
    }

    pub(super) fn bye(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let msg = self.in_dialog(i, "BYE", 2);
        self.send_sip(&msg)?;
        let c = &mut self.calls[i];
        c.st = St::Byeing;
        c.sent_at = now;
        c.tries = 1;
        Ok(())
    }

    pub(super) fn retransmit(&mut self, now: Instant) -> io::Result<()> {
        for i in 0..self.calls.len() {
            let c = &self.calls[i];
            if !matches!(c.st, St::Inviting | St::Byeing)
                || now - c.sent_at < Duration::from_secs(1)
            {
                continue;
            }
            if c.tries >= 6 {
                self.calls[i].st = St::Failed;
                self.report.failed += 1;
                continue;
            }
            let msg = if c.st == St::Inviting {
                self.invite_text(i)
            } else {
                self.in_dialog(i, "BYE", 2)
            };
            self.send_sip(&msg)?;
            let c = &mut self.calls[i];
            c.sent_at = now;
            c.tries += 1;
        }
        Ok(())
    }

    pub(super) fn poll(&mut self, now: Instant) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            match self.sip.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.on_sip(&msg, now)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        self.recv_media(now);
        Ok(())
    }

    pub(super) fn index_of(&self, msg: &str) -> Option<usize> {
        let id = header(msg, &["Call-ID", "i"])?;
        if let Some(i) = self.callee_ids.get(id) {
            return Some(*i);
        }
        let i: usize = id.strip_prefix("lg-")?.split('-').next()?.parse().ok()?;
        (i < self.n && self.calls[i].call_id == id).then_some(i)
    }

    /// The node calls us (the far leg of a bridge): answer at once.
    pub(super) fn on_invite(&mut self, msg: &str) -> io::Result<()> {
        let Some(id) = header(msg, &["Call-ID", "i"]).map(str::to_string) else {
            return Ok(());
        };
        let i = match self.callee_ids.get(&id) {
            Some(i) => *i,
            None if self.next_callee < self.calls.len() => {
                let i = self.next_callee;
                self.next_callee += 1;
                self.callee_ids.insert(id.clone(), i);
                i
            }
            None => return Ok(()),
        };
        let sdp = if self.cfg.opus_agents.is_some() {
            format!(
                "v=0\r\no=agent {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {} RTP/AVP 111 102\r\na=rtpmap:111 opus/48000/2\r\n\
                 a=rtpmap:102 telephone-event/48000\r\n",
                self.media_port
            )
        } else {
            format!(
                "v=0\r\no=agent {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
                self.media_port
            )
        };
        let mut resp = ok_response(msg, Some(&format!("agent{i}")));
        resp.push_str(&format!(
            "Contact: <sip:agent@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.local_sip,
            sdp.len()
        ));
        self.send_sip(&resp)?;
        let c = &mut self.calls[i];
        if c.st == St::Idle {
            c.st = St::Up;
            if self.cfg.opus_agents.is_some() {
                c.rx.clock_khz = 48.0;
                c.ts_step = 960;
            }
            c.call_id = id;
            c.node_rtp = sdp_addr(msg);
            if let Some(a) = c.node_rtp {
                self.by_port[a.port() as usize] = i as u32;
            }
            self.report.bridged += 1;
        }
        Ok(())
    }

    pub(super) fn on_sip(&mut self, msg: &str, now: Instant) -> io::Result<()> {
        if msg.starts_with("INVITE ") && self.cfg.answer_calls {
            return self.on_invite(msg);
        }
        let Some(i) = self.index_of(msg) else {
            return Ok(());
        };
        let cseq = header(msg, &["CSeq"]).unwrap_or("");
        if let Some(status) = msg.strip_prefix("SIP/2.0 ") {
            let code: u16 = status.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let is_invite = cseq.ends_with("INVITE");
            if is_invite && code >= 200 {
                if let Some(t) = header(msg, &["To", "t"]).and_then(tag) {
                    self.calls[i].to_tag = t.to_string();
                }
                let ack = self.in_dialog(i, "ACK", 1);
                self.send_sip(&ack)?;
                let c = &mut self.calls[i];
                if c.st == St::Inviting {
                    if (200..300).contains(&code) {
                        c.st = St::Up;
                        c.node_rtp = sdp_addr(msg);
                        if let Some(a) = c.node_rtp {
                            self.by_port[a.port() as usize] = i as u32;
                        }
                        self.report.answered += 1;
                        self.setup_total_ms += (now - c.invited_at).as_secs_f64() * 1000.0;
                        if self.immediate_bye {
                            self.bye(i, now)?;
                        }
                    } else {
                        c.st = St::Failed;
                        self.report.failed += 1;
                    }
                }
            } else if cseq.ends_with("BYE") && code >= 200 && self.calls[i].st == St::Byeing {
                // Only a 200 ends the call as asked; a 481 or 500 means the
                // node had lost it.
                self.calls[i].st = if code == 200 { St::Done } else { St::Failed };
                if code == 200 {
                    self.report.completed += 1;
                } else {
                    self.report.failed += 1;
                }
                if let Some(a) = self.calls[i].node_rtp {
                    self.by_port[a.port() as usize] = u32::MAX;
                }
            }
        } else if msg.starts_with("BYE ") {
            let mut resp = ok_response(msg, None);
            resp.push_str("Content-Length: 0\r\n\r\n");
            self.send_sip(&resp)?;
            let callee = i >= self.n;
            let c = &mut self.calls[i];
            if c.st == St::Up {
                c.st = St::Done;
                if let Some(a) = c.node_rtp {
                    self.by_port[a.port() as usize] = u32::MAX;
                }
                if !callee {
                    self.report.ended_by_node += 1;
                }
            }
        }
        Ok(())
    }
}
