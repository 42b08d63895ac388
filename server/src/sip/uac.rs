//! Outbound legs (UAC), sans-IO: the INVITE client transaction (timers A/B),
//! provisional and final responses, ACK for 2xx and non-2xx, CANCEL before
//! answer, BYE from either side. Each call returns what to send and what
//! happened; the endpoint owns the calls and routes messages to them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use rsip::Header;

use super::digest::Challenge;
use super::message::{self, Echo, OutRequest};
use super::retx::Retx;
use super::sdp::{self, Negotiated, SdpError};

const TIMER_B: Duration = super::retx::GIVE_UP;

/// What to call.
#[derive(Debug, Clone)]
pub struct Dial {
    pub call_id: String,
    /// Request-URI, e.g. `sip:201@10.0.0.2:5060`.
    pub target: String,
    /// Where the INVITE is sent (the registered source address for extensions).
    pub dest: SocketAddr,
    /// Caller ID: user part and display name of From.
    pub from_user: String,
    pub from_name: Option<String>,
    /// Our SDP offer.
    pub sdp: String,
    /// Digest credentials (user, password) for a trunk that challenges.
    pub auth: Option<(String, String)>,
    /// Max-Forwards of the INVITE (the inbound call's, less one).
    pub max_forwards: u8,
}

/// What the outbound leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UacEvent {
    /// 180/183; `media` when early media was offered in usable SDP.
    Progress {
        code: u16,
        media: Option<Negotiated>,
    },
    /// 2xx, with the media its SDP answer negotiated (an error if the callee
    /// sent none or one we cannot use).
    Answered { media: Result<Negotiated, SdpError> },
    /// Final failure: the status (408 on timeout, 487 after CANCEL).
    Failed { code: u16 },
    /// The callee hung up after answering.
    RemoteBye,
    /// 3xx: try this Contact instead.
    Redirected { contact: String },
}

/// Something to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(SocketAddr, Vec<u8>),
    Event(UacEvent),
}

#[derive(Debug)]
enum State {
    /// INVITE sent, nothing heard yet: retransmit (timer A) until timer B.
    Calling(Retx),
    /// A provisional response arrived; ringing.
    Proceeding,
    /// CANCEL sent (retransmitted until answered); waiting for 487.
    Cancelling(Retx),
    /// Answered and acknowledged.
    Confirmed,
    /// We sent BYE.
    Closing(Retx),
    /// Finished; absorbs retransmissions until the instant.
    Gone(Instant),
}

/// One outbound call leg.
#[derive(Debug)]
pub struct OutboundCall {
    dial: Dial,
    local: String,
    branch: String,
    from: String,
    /// The callee's To (with its tag once a response carried one).
    to: String,
    remote_target: String,
    cancel_pending: bool,
    ack: Option<Vec<u8>>,
    next_cseq: u32,
    /// CSeq of the current INVITE (2 after answering a challenge).
    invite_cseq: u32,
    /// `Authorization: …` or `Proxy-Authorization: …` line once challenged.
    auth_line: Option<String>,
    state: State,
}

impl OutboundCall {
    /// Sends the INVITE. `tag` and `branch` are fresh random tokens.
    pub fn start(
        now: Instant,
        local: &str,
        dial: Dial,
        tag: &str,
        branch: &str,
    ) -> (OutboundCall, Vec<Action>) {
        let from = match &dial.from_name {
            Some(name) => format!(
                "\"{}\" <sip:{}@{local}>;tag={tag}",
                name.replace('"', ""),
                dial.from_user
            ),
            None => format!("<sip:{}@{local}>;tag={tag}", dial.from_user),
        };
        let to = format!("<{}>", dial.target);
        let mut call = OutboundCall {
            local: local.to_string(),
            branch: format!("z9hG4bK{branch}"),
            from,
            to,
            remote_target: dial.target.clone(),
            cancel_pending: false,
            ack: None,
            next_cseq: 2,
            invite_cseq: 1,
            auth_line: None,
            state: State::Proceeding,
            dial,
        };
        let invite = call.invite();
        call.state = State::Calling(Retx::new(now, invite.clone()));
        let dest = call.dial.dest;
        (call, vec![Action::Send(dest, invite)])
    }

    fn invite(&self) -> Vec<u8> {
        let d = &self.dial;
        let auth = self
            .auth_line
            .as_deref()
            .map(|l| format!("{l}\r\n"))
            .unwrap_or_default();
        format!(
            "INVITE {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\nMax-Forwards: {}\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {} INVITE\r\nContact: <sip:hookline@{}>\r\nUser-Agent: Hookline\r\n{auth}\
             Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            d.target,
            self.local,
            self.branch,
            d.max_forwards,
            self.from,
            self.to,
            d.call_id,
            self.invite_cseq,
            self.local,
            d.sdp.len(),
            d.sdp
        )
        .into_bytes()
    }

    /// A request of the INVITE transaction (CANCEL, non-2xx ACK): same branch and URI.
    fn same_transaction(&self, method: &str, to: &str) -> Vec<u8> {
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\n\
             Call-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
            self.dial.target, self.local, self.branch, self.from, self.dial.call_id, self.invite_cseq
        )
        .into_bytes()
    }

    fn in_dialog(&mut self, method: &str, cseq: u32, branch: &str) -> Vec<u8> {
        OutRequest {
            method,
            uri: &self.remote_target,
            transport: "UDP",
            via_host: &self.local,
            branch: &format!("z9hG4bK{branch}"),
            from: &self.from,
            to: &self.to,
            call_id: &self.dial.call_id,
            cseq,
        }
        .to_bytes()
    }

    /// Whether the leg is finished and can be forgotten at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        matches!(self.state, State::Gone(until) if until <= now)
    }

    /// Handles a response; `branch` makes a fresh branch for the 2xx ACK.
    pub fn on_response(
        &mut self,
        now: Instant,
        resp: &rsip::Response,
        branch: &str,
    ) -> Vec<Action> {
        let code = resp.status_code.code();
        let cseq = resp
            .cseq_header()
            .map(|c| c.value().to_ascii_uppercase())
            .unwrap_or_default();
        let dest = self.dial.dest;
        if cseq.ends_with("BYE") {
            if code >= 200 && matches!(self.state, State::Closing(_)) {
                self.state = State::Gone(now + TIMER_B);
            }
            return vec![];
        }
        if cseq.ends_with("CANCEL") {
            if let State::Cancelling(r) = &mut self.state {
                r.quiet_until_give_up(now); // answered: stop retransmitting, wait for 487
            }
            return vec![];
        }
        if !cseq.ends_with("INVITE") {
            return vec![];
        }
        if let Ok(to) = resp.to_header() {
            if message::has_tag(to.value()) {
                self.to = to.value().to_string();
            }
        }
        // The SDP is negotiated here, on the SIP driver: parsing it on the
        // dialling call's fiber would make that stack deeper for good (every
        // page a fiber touches stays resident until the call ends).
        let media = || sdp::negotiate(&resp.body);
        match code {
            100..=199 => {
                let mut out = Vec::new();
                if let State::Calling(_) = self.state {
                    self.state = State::Proceeding;
                    if self.cancel_pending {
                        out.extend(self.send_cancel(now));
                    }
                }
                if code > 100 {
                    let media = (!resp.body.is_empty()).then(media).and_then(Result::ok);
                    out.push(Action::Event(UacEvent::Progress { code, media }));
                }
                out
            }
            200..=299 => {
                if let Some(contact) = resp.headers.iter().find_map(|h| match h {
                    Header::Contact(c) => Some(message::uri_of(c.value()).to_string()),
                    _ => None,
                }) {
                    self.remote_target = contact;
                }
                if let Some(ack) = &self.ack {
                    return vec![Action::Send(dest, ack.clone())]; // retransmitted 2xx
                }
                let ack = self.in_dialog("ACK", 1, branch);
                self.ack = Some(ack.clone());
                let mut out = vec![Action::Send(dest, ack)];
                if matches!(self.state, State::Cancelling(_)) || self.cancel_pending {
                    // Answered while we cancelled: the call is up, so end it properly.
                    self.state = State::Confirmed;
                    out.extend(self.hangup(now, &format!("{branch}b")));
                    out.push(Action::Event(UacEvent::Failed { code: 487 }));
                } else {
                    self.state = State::Confirmed;
                    out.push(Action::Event(UacEvent::Answered { media: media() }));
                }
                out
            }
            401 | 407
                if self.auth_line.is_none()
                    && self.dial.auth.is_some()
                    && matches!(self.state, State::Calling(_) | State::Proceeding) =>
            {
                // Answer the trunk's challenge once: ACK the 401/407, INVITE again with credentials.
                let to = self.to.clone();
                let ack = self.same_transaction("ACK", &to);
                let header = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = resp.headers.iter().find_map(|h| match h {
                    Header::WwwAuthenticate(v) if code == 401 => Challenge::parse(v.value()),
                    Header::ProxyAuthenticate(v) if code == 407 => Challenge::parse(v.value()),
                    Header::Other(name, v) if name.eq_ignore_ascii_case(header) => {
                        Challenge::parse(v)
                    }
                    _ => None,
                });
                let (Some(challenge), Some((user, password))) = (challenge, self.dial.auth.clone())
                else {
                    self.state = State::Gone(now + TIMER_B);
                    return vec![
                        Action::Send(dest, ack),
                        Action::Event(UacEvent::Failed { code }),
                    ];
                };
                let value = challenge.answer(&user, &password, "INVITE", &self.dial.target, branch);
                let name = if code == 401 {
                    "Authorization"
                } else {
                    "Proxy-Authorization"
                };
                self.auth_line = Some(format!("{name}: {value}"));
                self.invite_cseq += 1;
                self.next_cseq = self.invite_cseq + 1;
                self.branch = format!("z9hG4bK{branch}");
                // The To of the new INVITE carries no tag.
                self.to = format!("<{}>", self.dial.target);
                let invite = self.invite();
                self.state = State::Calling(Retx::new(now, invite.clone()));
                vec![Action::Send(dest, ack), Action::Send(dest, invite)]
            }
            300..=399 if !matches!(self.state, State::Gone(_)) => {
                let to = self.to.clone();
                let ack = self.same_transaction("ACK", &to);
                self.state = State::Gone(now + TIMER_B);
                let contact = resp.headers.iter().find_map(|h| match h {
                    Header::Contact(c) => Some(message::uri_of(c.value()).to_string()),
                    _ => None,
                });
                let event = match contact {
                    Some(contact) => UacEvent::Redirected { contact },
                    None => UacEvent::Failed { code },
                };
                vec![Action::Send(dest, ack), Action::Event(event)]
            }
            _ => {
                let to = self.to.clone();
                let ack = self.same_transaction("ACK", &to);
                let was_done = matches!(self.state, State::Gone(_));
                self.state = State::Gone(now + TIMER_B);
                let mut out = vec![Action::Send(dest, ack)];
                if !was_done {
                    out.push(Action::Event(UacEvent::Failed { code }));
                }
                out
            }
        }
    }

    /// A request from the callee inside the dialog.
    pub fn on_request(&mut self, now: Instant, method: &rsip::Method, echo: &Echo) -> Vec<Action> {
        let dest = self.dial.dest;
        let ok = message::response(echo, 200, None, &[], None);
        match method {
            rsip::Method::Bye => {
                let live = matches!(self.state, State::Confirmed | State::Closing(_));
                self.state = State::Gone(now + TIMER_B);
                let mut out = vec![Action::Send(dest, ok)];
                if live {
                    out.push(Action::Event(UacEvent::RemoteBye));
                }
                out
            }
            rsip::Method::Ack => vec![],
            _ => vec![Action::Send(dest, ok)],
        }
    }

    fn send_cancel(&mut self, now: Instant) -> Vec<Action> {
        let to = format!("<{}>", self.dial.target);
        let cancel = self.same_transaction("CANCEL", &to);
        self.state = State::Cancelling(Retx::new(now, cancel.clone()));
        self.cancel_pending = false;
        vec![Action::Send(self.dial.dest, cancel)]
    }

    /// Stops ringing (CANCEL), or hangs up if the call was answered meanwhile.
    pub fn cancel(&mut self, now: Instant, branch: &str) -> Vec<Action> {
        match self.state {
            // No provisional response yet: RFC 3261 §9.1 says wait for one.
            State::Calling(_) => {
                self.cancel_pending = true;
                vec![]
            }
            State::Proceeding => self.send_cancel(now),
            State::Confirmed => self.hangup(now, branch),
            _ => vec![],
        }
    }

    /// BYE after answer (or CANCEL before).
    pub fn hangup(&mut self, now: Instant, branch: &str) -> Vec<Action> {
        match self.state {
            State::Confirmed => {
                let cseq = self.next_cseq;
                self.next_cseq += 1;
                let bye = self.in_dialog("BYE", cseq, branch);
                self.state = State::Closing(Retx::new(now, bye.clone()));
                vec![Action::Send(self.dial.dest, bye)]
            }
            State::Calling(_) | State::Proceeding => self.cancel(now, branch),
            _ => vec![],
        }
    }

    /// When [`OutboundCall::on_timeout`] is next due, if a timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Calling(r) | State::Cancelling(r) | State::Closing(r) => Some(r.poll_timeout()),
            State::Gone(until) => Some(*until),
            State::Proceeding | State::Confirmed => None,
        }
    }

    /// Retransmissions and timeouts.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let dest = self.dial.dest;
        let (retx, on_expiry) = match &mut self.state {
            State::Calling(r) => (r, Some(UacEvent::Failed { code: 408 })),
            State::Cancelling(r) => (r, Some(UacEvent::Failed { code: 487 })),
            State::Closing(r) => (r, None),
            _ => return vec![],
        };
        if retx.expired(now) {
            self.state = State::Gone(now + TIMER_B);
            return on_expiry
                .map(|e| vec![Action::Event(e)])
                .unwrap_or_default();
        }
        if retx.due(now) {
            return vec![Action::Send(dest, retx.data.clone())];
        }
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dial() -> Dial {
        Dial {
            max_forwards: 69,
            call_id: "out1".into(),
            target: "sip:201@127.0.0.1:5070".into(),
            dest: "127.0.0.1:5070".parse().unwrap(),
            from_user: "100".into(),
            from_name: Some("Alice".into()),
            sdp: "v=0\r\n".into(),
            auth: Some(("acct".into(), "pw".into())),
        }
    }

    fn response(code: u16, cseq: &str, tag: bool, body: &str) -> rsip::Response {
        let tag = if tag { ";tag=callee" } else { "" };
        let raw = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\r\nFrom: <sip:100@127.0.0.1:5060>;tag=t\r\n\
             To: <sip:201@127.0.0.1:5070>{tag}\r\nCall-ID: out1\r\nCSeq: {cseq}\r\nContact: <sip:201@127.0.0.1:5071>\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match rsip::SipMessage::try_from(raw.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r,
            _ => unreachable!(),
        }
    }

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(_, d) => Some(String::from_utf8_lossy(d).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn events(actions: &[Action]) -> Vec<UacEvent> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ring_answer_ack_and_bye() {
        let t = Instant::now();
        let (mut c, out) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        assert!(sent(&out)[0].starts_with("INVITE sip:201@127.0.0.1:5070 SIP/2.0\r\n"));
        assert!(sent(&out)[0].contains("From: \"Alice\" <sip:100@127.0.0.1:5060>;tag=t"));
        // Lost INVITE: retransmitted after T1.
        assert_eq!(sent(&c.on_timeout(t + Duration::from_millis(600))).len(), 1);
        let out = c.on_response(t, &response(180, "1 INVITE", true, ""), "x");
        assert_eq!(
            events(&out),
            vec![UacEvent::Progress {
                code: 180,
                media: None
            }]
        );
        // No retransmission once ringing.
        assert!(c.on_timeout(t + Duration::from_secs(3)).is_empty());
        let out = c.on_response(t, &response(200, "1 INVITE", true, "v=0\r\n"), "a1");
        let msgs = sent(&out);
        assert!(
            msgs[0].starts_with("ACK sip:201@127.0.0.1:5071 SIP/2.0"),
            "{}",
            msgs[0]
        );
        assert!(msgs[0].contains("To: <sip:201@127.0.0.1:5070>;tag=callee"));
        assert_eq!(
            events(&out),
            vec![UacEvent::Answered {
                media: sdp::negotiate(b"v=0\r\n")
            }]
        );
        // A retransmitted 200 gets the same ACK, no new event.
        let again = c.on_response(t, &response(200, "1 INVITE", true, "v=0\r\n"), "a2");
        assert_eq!(sent(&again), vec![msgs[0].clone()]);
        assert!(events(&again).is_empty());
        let out = c.hangup(t, "b2");
        assert!(sent(&out)[0].starts_with("BYE sip:201@127.0.0.1:5071 SIP/2.0"));
        assert!(sent(&out)[0].contains("CSeq: 2 BYE"));
        c.on_response(t, &response(200, "2 BYE", true, ""), "x");
        assert!(c.expired(t + Duration::from_secs(33)));
    }

    #[test]
    fn a_challenge_is_answered_once_with_credentials() {
        let t = Instant::now();
        let (mut c, _) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        let raw = "SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb1\r\n\
            From: <sip:100@127.0.0.1:5060>;tag=t\r\nTo: <sip:201@127.0.0.1:5070>;tag=x\r\nCall-ID: out1\r\nCSeq: 1 INVITE\r\n\
            Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(resp) = rsip::SipMessage::try_from(raw).unwrap() else {
            unreachable!()
        };
        let out = c.on_response(t, &resp, "b2");
        let msgs = sent(&out);
        assert!(msgs[0].starts_with("ACK "), "{}", msgs[0]);
        assert!(msgs[1].starts_with("INVITE sip:201@127.0.0.1:5070 SIP/2.0"));
        assert!(msgs[1].contains("CSeq: 2 INVITE"));
        let line = msgs[1]
            .lines()
            .find(|l| l.starts_with("Proxy-Authorization: "))
            .unwrap();
        let creds =
            super::super::digest::Credentials::parse(&line["Proxy-Authorization: ".len()..])
                .unwrap();
        assert_eq!(creds.expected("INVITE", "pw"), creds.response);
        assert!(events(&out).is_empty());
        // A second challenge means the credentials are wrong: give up.
        let again = raw.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
        let rsip::SipMessage::Response(resp) = rsip::SipMessage::try_from(again.as_str()).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(
            events(&c.on_response(t, &resp, "b3")),
            vec![UacEvent::Failed { code: 407 }]
        );
    }

    #[test]
    fn redirect_reports_the_contact() {
        let t = Instant::now();
        let (mut c, _) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        let out = c.on_response(t, &response(302, "1 INVITE", true, ""), "x");
        assert!(sent(&out)[0].starts_with("ACK sip:201@127.0.0.1:5070 "));
        assert_eq!(
            events(&out),
            vec![UacEvent::Redirected {
                contact: "sip:201@127.0.0.1:5071".into()
            }]
        );
    }

    #[test]
    fn busy_is_acked_and_reported_once() {
        let t = Instant::now();
        let (mut c, _) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        let out = c.on_response(t, &response(486, "1 INVITE", true, ""), "x");
        assert!(sent(&out)[0].starts_with("ACK sip:201@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb1;"));
        assert_eq!(events(&out), vec![UacEvent::Failed { code: 486 }]);
        let out = c.on_response(t, &response(486, "1 INVITE", true, ""), "x");
        assert!(events(&out).is_empty());
    }

    #[test]
    fn cancel_waits_for_a_provisional_then_487() {
        let t = Instant::now();
        let (mut c, _) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        assert!(
            c.cancel(t, "c").is_empty(),
            "no CANCEL before a provisional"
        );
        let out = c.on_response(t, &response(180, "1 INVITE", true, ""), "x");
        assert!(sent(&out)[0].starts_with("CANCEL sip:201@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb1;"));
        c.on_response(t, &response(200, "1 CANCEL", true, ""), "x");
        let out = c.on_response(t, &response(487, "1 INVITE", true, ""), "x");
        assert_eq!(events(&out), vec![UacEvent::Failed { code: 487 }]);
    }

    #[test]
    fn no_answer_at_all_times_out_with_408() {
        let t = Instant::now();
        let (mut c, _) = OutboundCall::start(t, "127.0.0.1:5060", dial(), "t", "b1");
        let mut retransmits = 0;
        let mut failed = vec![];
        let mut now = t;
        while now < t + Duration::from_secs(33) {
            now += Duration::from_millis(100);
            let out = c.on_timeout(now);
            retransmits += sent(&out).len();
            failed.extend(events(&out));
        }
        assert_eq!(failed, vec![UacEvent::Failed { code: 408 }]);
        assert!(retransmits >= 6, "{retransmits}");
    }
}
