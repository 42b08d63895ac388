//! Requests inside an inbound dialog: ACK, BYE, CANCEL, INFO (keys),
//! re-INVITE (hold, resume, new media), OPTIONS — each matched against its
//! transaction so a retransmission is answered again but acted on once.

use super::*;

impl Endpoint {
    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &rsip::Request,
        echo: Echo,
        cseq: u32,
    ) {
        let call_id = echo.call_id.clone();
        let contact_host = self.local_for(from);
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return;
        };
        match req.method {
            Method::Invite if cseq == d.invite_cseq => {
                // Retransmitted INVITE: repeat our latest response.
                let data = d.last_response.clone();
                self.send(from, data);
            }
            Method::Invite => {
                // Re-INVITE: hold/unhold (direction) or a new media address; same codec.
                if let Some((seen, data)) = &d.last_reinvite {
                    if *seen == cseq {
                        let data = data.clone();
                        return self.send(from, data); // retransmission
                    }
                }
                let tag = d.local_tag.clone();
                let contact = format!("Contact: <sip:hookline@{contact_host}>");
                let mut event = None;
                let data = match (&d.state, d.answer_sdp.clone()) {
                    (State::Confirmed, Some(ours)) if req.body.is_empty() => message::response(
                        &echo,
                        200,
                        Some(&tag),
                        &[contact],
                        Some(("application/sdp", &ours)),
                    ),
                    (State::Confirmed, Some(ours)) => match sdp::negotiate(&req.body) {
                        Ok(neg) => {
                            let dir = sdp::direction(&req.body);
                            // A new codec choice gets a new answer on the same media address.
                            let answer = match sdp::negotiate(ours.as_bytes()) {
                                Ok(mine)
                                    if mine.codec != neg.codec || mine.dtmf_pt != neg.dtmf_pt =>
                                {
                                    let fresh = sdp::answer(mine.remote, &neg, u64::from(cseq));
                                    d.answer_sdp = Some(fresh.clone());
                                    fresh
                                }
                                _ => ours,
                            };
                            let body = sdp::with_direction(&answer, dir.answer());
                            event = Some(Event::Reinvite {
                                call_id: call_id.clone(),
                                remote: neg.remote,
                                hold: !dir.peer_receives(),
                                codec: neg.codec,
                                dtmf_pt: neg.dtmf_pt,
                            });
                            message::response(
                                &echo,
                                200,
                                Some(&tag),
                                &[contact],
                                Some(("application/sdp", &body)),
                            )
                        }
                        Err(_) => message::response(&echo, 488, Some(&tag), &[], None),
                    },
                    _ => message::response(&echo, 491, Some(&tag), &[], None),
                };
                d.last_reinvite = Some((cseq, data.clone()));
                self.send(from, data);
                if let Some(e) = event {
                    self.out.push_back(Output::Event(e));
                }
            }
            Method::Ack => match &d.state {
                State::Answered(_) => d.state = State::Confirmed,
                State::Rejected(_) => {
                    d.state = State::Gone(now + TIMER_H);
                    earliest(&mut self.wake, now + TIMER_H);
                }
                _ => {}
            },
            Method::Cancel => {
                let early = matches!(d.state, State::Early);
                self.reply(from, &echo, 200, &[]);
                if early {
                    self.finish_with(now, &call_id, 487, &[]);
                    self.ended(&call_id, EndCause::Cancelled);
                }
            }
            Method::Bye => {
                let tag = d.local_tag.clone();
                let was_live = !matches!(d.state, State::Gone(_) | State::Rejected(_));
                d.state = State::Gone(now + TIMER_H);
                earliest(&mut self.wake, now + TIMER_H);
                let data = message::response(&echo, 200, Some(&tag), &[], None);
                self.send(from, data);
                if was_live {
                    self.ended(&call_id, EndCause::CallerBye);
                }
            }
            Method::Info | Method::Update | Method::Notify => {
                if let Some((seen, data)) = &d.last_info {
                    if *seen == cseq {
                        let data = data.clone();
                        return self.send(from, data);
                    }
                }
                let tag = d.local_tag.clone();
                let live = matches!(
                    d.state,
                    State::Answered(_) | State::Confirmed | State::Early
                );
                let data = message::response(&echo, 200, Some(&tag), &[], None);
                d.last_info = Some((cseq, data.clone()));
                self.send(from, data);
                if req.method == Method::Info && live {
                    if let Some(key) = info_dtmf(req) {
                        self.out
                            .push_back(Output::Event(Event::Dtmf { call_id, key }));
                    }
                }
            }
            _ => self.reply(from, &echo, 501, &[ALLOW.to_string()]),
        }
    }
}

/// The key carried by a DTMF INFO body, if the body is one.
fn info_dtmf(req: &rsip::Request) -> Option<char> {
    let content_type = req.headers.iter().find_map(|h| match h {
        Header::ContentType(ct) => Some(ct.value().trim().to_ascii_lowercase()),
        _ => None,
    })?;
    let body = std::str::from_utf8(&req.body).ok()?;
    let signal = match content_type.split(';').next()?.trim() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    match signal {
        "10" => Some('*'),
        "11" => Some('#'),
        s if s.len() == 1 => {
            let c = s.chars().next()?.to_ascii_uppercase();
            "0123456789*#ABCD".contains(c).then_some(c)
        }
        _ => None,
    }
}
