//! The UAS side of the node, sans-IO: datagrams, commands and time go in,
//! datagrams to send and call events come out (`poll_output`).
//!
//! It owns every inbound dialog, keyed by Call-ID, with the INVITE server
//! transaction folded in: provisional and final responses are resent when the
//! INVITE is retransmitted, a final response is retransmitted until its ACK
//! (timer G, given up after timer H), and a BYE we send is retransmitted until
//! answered (timers E/F). A dialog that ended lingers as a tombstone for 32 s so
//! late retransmissions are answered instead of getting 481.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use rsip::{Header, Method, SipMessage};

use super::message::{self, Echo, OutRequest};
use super::registrar::{RegisterOutcome, RegisterRequest, Registrar};
use super::retx::Retx;
use super::sdp::{self, Negotiated, SdpError};
use super::uac::{self, Dial, OutboundCall, UacEvent};

/// How long a finished dialog lingers to absorb retransmissions (64·T1).
const TIMER_H: Duration = super::retx::GIVE_UP;
const ALLOW: &str = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER";

/// What the endpoint wants done.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram.
    Transmit { to: SocketAddr, data: Vec<u8> },
    /// Tell call control.
    Event(Event),
}

/// What happened to a call, for call control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new call with an acceptable offer. 100 Trying was sent already; call
    /// control answers with `ringing`/`answer`/`reject`.
    Incoming(Incoming),
    /// The call ended from the network side.
    Ended { call_id: String, cause: EndCause },
    /// A key arrived by SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Dtmf { call_id: String, key: char },
    /// A re-INVITE changed the caller's media: put on hold (stop sending) or
    /// resumed, or moved to a new address.
    Reinvite {
        call_id: String,
        remote: SocketAddr,
        hold: bool,
        codec: crate::codec::Format,
        dtmf_pt: Option<u8>,
    },
    /// Progress of an outbound leg started with `dial`.
    Outbound { call_id: String, event: UacEvent },
    /// A REGISTER or INVITE was refused for its credentials.
    Refused {
        method: &'static str,
        refusal: super::registrar::Refusal,
    },
}

/// A new inbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub call_id: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: String,
    /// Host of the request URI.
    pub domain: String,
    pub source: SocketAddr,
    pub offer: Negotiated,
    /// The INVITE's Max-Forwards (70 when absent): legs the call places
    /// carry one less, and none at 0, so a loop through outside hops ends.
    pub max_forwards: u8,
}

/// Why the network ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The caller sent BYE.
    CallerBye,
    /// The caller cancelled before answer.
    Cancelled,
    /// Our 200 OK was never acknowledged (we sent BYE).
    AckTimeout,
    /// No media from the caller for the RTP timeout (we sent BYE).
    RtpTimeout,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EndCause::CallerBye => "caller-bye",
            EndCause::Cancelled => "caller-cancel",
            EndCause::AckTimeout => "ack-timeout",
            EndCause::RtpTimeout => "rtp-timeout",
        }
    }
}

/// Counters of what the endpoint refused or dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Datagrams that could not be answered at all (not SIP, or no way to reply).
    pub dropped: u64,
    /// Requests answered 400.
    pub bad_requests: u64,
}

#[derive(Debug)]
enum State {
    /// INVITE received, provisional responses sent.
    Early,
    /// 2xx sent, waiting for ACK.
    Answered(Retx),
    /// Non-2xx final response sent, waiting for ACK.
    Rejected(Retx),
    /// ACK received: the call is up.
    Confirmed,
    /// We sent BYE and wait for its response.
    Closing(Retx),
    /// Ended; absorbs retransmissions until the instant.
    Gone(Instant),
}

#[derive(Debug)]
struct Dialog {
    echo: Echo,
    invite_cseq: u32,
    peer: SocketAddr,
    local_tag: String,
    /// Where in-dialog requests go (the caller's Contact).
    remote_target: String,
    local_cseq: u32,
    /// Last response to the INVITE, resent on retransmission.
    last_response: Vec<u8>,
    /// The 2xx, for answering a re-INVITE with the same session.
    answer_sdp: Option<String>,
    /// CSeq and response of the last re-INVITE, resent on retransmission.
    last_reinvite: Option<(u32, Vec<u8>)>,
    /// CSeq and response of the last INFO/UPDATE/NOTIFY: a retransmission
    /// (same CSeq: our 200 was lost) gets the response again and delivers
    /// nothing twice (a key pressed once is one key).
    last_info: Option<(u32, Vec<u8>)>,
    state: State,
}

/// The node's SIP user-agent server.
pub struct Endpoint {
    /// host:port placed in Via and Contact.
    local: String,
    dialogs: HashMap<String, Dialog>,
    /// Outbound legs (we are the UAC), by Call-ID.
    outbound: HashMap<String, OutboundCall>,
    /// When the node listens on all interfaces: the local address that faces a
    /// peer, for Contact and Via (the driver asks the kernel's routing table).
    local_ip_for: Option<Box<dyn Fn(std::net::IpAddr) -> std::net::IpAddr + Send>>,
    /// Peers connected over TCP (the driver tells us); our requests to them say so in Via.
    stream_peers: std::collections::HashSet<SocketAddr>,
    out: VecDeque<Output>,
    stats: Stats,
    next_id: u64,
    draining: bool,
    /// No timer is due before this (`None`: none at all). Kept as timers are
    /// set and recomputed exactly by `handle_timeout`, so a wake can come
    /// early (a timer since cancelled) but never late.
    wake: Option<Instant>,
    /// INVITEs from untrusted sources must carry extension credentials.
    invite_auth: bool,
    /// Out-of-dialog requests per second per source (trunks and loopback exempt).
    source_limit: super::source_limit::SourceLimit,
    /// Extensions' registrations; shared with the API, which lists them.
    registrar: Option<Arc<Mutex<Registrar>>>,
    /// Wall-clock seconds at `epoch`, so registrations get Unix times from the
    /// monotonic `now` callers pass in.
    epoch: (Instant, u64),
}

impl Endpoint {
    /// `local` is the address peers reach this node's SIP at (Contact, Via).
    pub fn new(local: SocketAddr) -> Self {
        Endpoint {
            local: local.to_string(),
            dialogs: HashMap::new(),
            outbound: HashMap::new(),
            stream_peers: Default::default(),
            local_ip_for: None,
            out: VecDeque::new(),
            stats: Stats::default(),
            next_id: rand::random::<u32>() as u64,
            draining: false,
            wake: None,
            invite_auth: false,
            source_limit: super::source_limit::SourceLimit::new(0),
            registrar: None,
            epoch: (
                Instant::now(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            ),
        }
    }

    /// Picks Contact/Via addresses per peer (a node bound to 0.0.0.0 has no single address).
    pub fn with_local_ip_for(
        mut self,
        f: impl Fn(std::net::IpAddr) -> std::net::IpAddr + Send + 'static,
    ) -> Self {
        self.local_ip_for = Some(Box::new(f));
        self
    }

    /// host:port of this node as `peer` reaches it.
    fn local_for(&self, peer: SocketAddr) -> String {
        match &self.local_ip_for {
            Some(f) => {
                let port = self.local.rsplit(':').next().unwrap_or("5060");
                let ip = f(peer.ip());
                match ip {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                    std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
                }
            }
            None => self.local.clone(),
        }
    }

    /// Challenges INVITEs from sources the registrar does not trust (407).
    pub fn with_invite_auth(mut self, on: bool) -> Self {
        self.invite_auth = on;
        self
    }

    /// Limits out-of-dialog requests (INVITE, REGISTER, OPTIONS …) to
    /// `per_s` a second per source address; 0 = no limit.
    pub fn with_source_limit(mut self, per_s: u32) -> Self {
        self.source_limit = super::source_limit::SourceLimit::new(per_s);
        self
    }

    /// Requests refused by the per-source limit so far.
    pub fn source_refused(&self) -> u64 {
        self.source_limit.refused
    }

    /// Answers REGISTER with this registrar (without one, REGISTER gets 501).
    pub fn with_registrar(mut self, registrar: Arc<Mutex<Registrar>>) -> Self {
        self.registrar = Some(registrar);
        self
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of dialogs held, tombstones included.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn token(&mut self) -> String {
        self.next_id += 1;
        format!("{:x}{:08x}", self.next_id, rand::random::<u32>())
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.out.push_back(Output::Transmit { to, data });
    }

    fn reply(&mut self, to: SocketAddr, echo: &Echo, code: u16, extra: &[String]) {
        let data = message::response(echo, code, None, extra, None);
        self.send(to, data);
    }

    /// Takes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive (RFC 5626 CRLF ping)
        }
        let msg = match SipMessage::try_from(data) {
            Ok(m) => m,
            Err(_) => return self.malformed(from, data),
        };
        match msg {
            SipMessage::Request(req) => match Echo::from_request(&req) {
                Some(echo) => self.on_request(now, from, req, echo),
                None => self.malformed(from, data),
            },
            SipMessage::Response(resp) => self.on_response(now, resp),
        }
    }

    fn malformed(&mut self, from: SocketAddr, data: &[u8]) {
        match Echo::from_raw(data) {
            Some(echo) => {
                self.stats.bad_requests += 1;
                self.reply(from, &echo, 400, &[]);
            }
            None => self.stats.dropped += 1,
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, req: rsip::Request, echo: Echo) {
        let Some(cseq) = parse_cseq(&echo.cseq) else {
            self.stats.bad_requests += 1;
            return self.reply(from, &echo, 400, &[]);
        };
        if let Some(call) = self.outbound.get_mut(&echo.call_id) {
            let actions = call.on_request(now, &req.method, &echo);
            return self.apply(&echo.call_id.clone(), actions);
        }
        // A new INVITE on the Call-ID of one we refused (a retry with credentials after 407).
        let retry = req.method == Method::Invite
            && self.dialogs.get(&echo.call_id).is_some_and(|d| {
                cseq > d.invite_cseq
                    && matches!(d.state, State::Rejected(_) | State::Gone(_))
                    && d.answer_sdp.is_none()
            });
        if retry {
            self.dialogs.remove(&echo.call_id);
        }
        // What opens something new is rate-limited per source; trunks and
        // this machine (a local proxy) are not.
        let opens = req.method != Method::Ack && !self.dialogs.contains_key(&echo.call_id);
        if opens && !from.ip().is_loopback() {
            let trusted = self.registrar.as_ref().is_some_and(|r| {
                r.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .trusted_ips
                    .contains(&from.ip())
            });
            if !trusted {
                use super::source_limit::Verdict;
                match self.source_limit.check(from.ip(), now) {
                    Verdict::Pass => {}
                    Verdict::Busy => {
                        return self.reply(from, &echo, 503, &["Retry-After: 5".to_string()])
                    }
                    Verdict::Drop => {
                        self.stats.dropped += 1;
                        return;
                    }
                }
            }
        }
        match (&req.method, self.dialogs.contains_key(&echo.call_id)) {
            (Method::Invite, false) => self.on_new_invite(now, from, &req, echo, cseq),
            // A draining node says so to load balancers' OPTIONS probes.
            (Method::Options, _) if self.draining => self.reply(
                from,
                &echo,
                503,
                &[ALLOW.to_string(), "Retry-After: 60".to_string()],
            ),
            (Method::Options, _) => self.reply(from, &echo, 200, &[ALLOW.to_string()]),
            (Method::Register, _) => self.on_register(now, from, &req, &echo),
            (Method::Ack, false) => {}
            (_, true) => self.on_in_dialog(now, from, &req, echo, cseq),
            (_, false) => {
                let code = match req.method {
                    Method::Bye | Method::Cancel | Method::Info => 481,
                    _ => 501,
                };
                self.reply(from, &echo, code, &[ALLOW.to_string()]);
            }
        }
    }

    fn on_new_invite(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &rsip::Request,
        echo: Echo,
        cseq: u32,
    ) {
        if message::has_tag(&echo.to) {
            return self.reply(from, &echo, 481, &[]);
        }
        if self.invite_auth {
            if let Some(registrar) = self.registrar.clone() {
                let unix = self.unix(now);
                let mut reg = registrar.lock().unwrap_or_else(|e| e.into_inner());
                if !reg.trusted(from, unix) {
                    let auth = req.headers.iter().find_map(|h| match h {
                        Header::ProxyAuthorization(a) => Some(a.value().to_string()),
                        _ => None,
                    });
                    if let Err(outcome) = reg.authorize_invite(unix, from, auth.as_deref()) {
                        if let Some(refusal) = reg.take_refusal() {
                            self.out.push_back(Output::Event(Event::Refused {
                                method: "INVITE",
                                refusal,
                            }));
                        }
                        drop(reg);
                        let tag = self.token();
                        let data = match outcome {
                            RegisterOutcome::Challenge(v) => message::response(
                                &echo,
                                407,
                                Some(&tag),
                                &[format!("Proxy-Authenticate: {v}")],
                                None,
                            ),
                            _ => message::response(&echo, 403, Some(&tag), &[], None),
                        };
                        // Remember the refusal so the ACK and retransmissions are absorbed.
                        self.dialogs.insert(
                            echo.call_id.clone(),
                            Dialog {
                                echo: echo.clone(),
                                invite_cseq: cseq,
                                peer: from,
                                local_tag: tag,
                                remote_target: String::new(),
                                local_cseq: 0,
                                last_response: data.clone(),
                                answer_sdp: None,
                                last_reinvite: None,
                                last_info: None,
                                state: State::Gone(now + TIMER_H),
                            },
                        );
                        earliest(&mut self.wake, now + TIMER_H);
                        return self.send(from, data);
                    }
                }
            }
        }
        let local_tag = self.token();
        let remote_target = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::Contact(c) => Some(message::uri_of(c.value()).to_string()),
                _ => None,
            })
            .unwrap_or_else(|| message::uri_of(&echo.from).to_string());
        let caller_uri = message::uri_of(&echo.from).to_string();
        let request_uri = req.uri.to_string();
        let callee = message::user_of(&request_uri).to_string();
        let domain = message::host_of(&request_uri).to_string();
        let max_forwards = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::MaxForwards(m) => m.value().trim().parse::<u32>().ok(),
                _ => None,
            })
            .map(|n| n.min(255) as u8)
            .unwrap_or(70);
        let mut dialog = Dialog {
            echo: echo.clone(),
            invite_cseq: cseq,
            peer: from,
            local_tag,
            remote_target,
            local_cseq: 0,
            last_response: Vec::new(),
            answer_sdp: None,
            last_reinvite: None,
            last_info: None,
            state: State::Early,
        };
        let is_sdp = req.headers.iter().any(|h| match h {
            Header::ContentType(ct) => ct.value().trim().eq_ignore_ascii_case("application/sdp"),
            _ => false,
        });
        let offer = if req.body.is_empty() {
            // Late offer (offer in our 200, answer in ACK) is not supported yet.
            Err((
                488,
                "Warning: 399 hookline \"INVITE without SDP offer\"".to_string(),
            ))
        } else if !is_sdp {
            Err((415, "Accept: application/sdp".to_string()))
        } else {
            sdp::negotiate(&req.body).map_err(|e| match e {
                SdpError::Malformed(m) => (
                    400,
                    format!("Warning: 399 hookline \"{}\"", m.replace('"', "'")),
                ),
                SdpError::NoCommonCodec => (
                    488,
                    "Warning: 304 hookline \"Media type not available\"".to_string(),
                ),
            })
        };
        match offer {
            Ok(offer) => {
                let trying = message::response(&echo, 100, None, &[], None);
                dialog.last_response = trying.clone();
                self.send(from, trying);
                self.dialogs.insert(echo.call_id.clone(), dialog);
                self.out.push_back(Output::Event(Event::Incoming(Incoming {
                    call_id: echo.call_id.clone(),
                    caller: message::user_of(&caller_uri).to_string(),
                    caller_name: message::display_name_of(&echo.from),
                    callee,
                    domain,
                    source: from,
                    offer,
                    max_forwards,
                })));
            }
            Err((code, extra)) => {
                if code == 400 {
                    self.stats.bad_requests += 1;
                }
                let call_id = echo.call_id.clone();
                self.dialogs.insert(call_id.clone(), dialog);
                self.finish_with(now, &call_id, code, &[extra]);
            }
        }
    }

    fn on_response(&mut self, now: Instant, resp: rsip::Response) {
        let Ok(call_id) = resp.call_id_header().map(|c| c.value().to_string()) else {
            self.stats.dropped += 1;
            return;
        };
        if self.outbound.contains_key(&call_id) {
            let branch = self.token();
            let actions = match self.outbound.get_mut(&call_id) {
                Some(call) => call.on_response(now, &resp, &branch),
                None => vec![],
            };
            return self.apply(&call_id, actions);
        }
        let is_bye = resp
            .cseq_header()
            .map(|c| c.value().to_ascii_uppercase().ends_with("BYE"))
            .unwrap_or(false);
        let code = resp.status_code.code();
        if let Some(d) = self.dialogs.get_mut(&call_id) {
            if is_bye && code >= 200 && matches!(d.state, State::Closing(_)) {
                d.state = State::Gone(now + TIMER_H);
                earliest(&mut self.wake, now + TIMER_H);
            }
        }
    }

    fn ended(&mut self, call_id: &str, cause: EndCause) {
        self.out.push_back(Output::Event(Event::Ended {
            call_id: call_id.to_string(),
            cause,
        }));
    }

    /// Sends a final non-2xx response to the INVITE and waits for its ACK.
    fn finish_with(&mut self, now: Instant, call_id: &str, code: u16, extra: &[String]) {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let data = message::response(&d.echo, code, Some(&d.local_tag), extra, None);
        d.last_response = data.clone();
        let retx = Retx::new(now, data.clone());
        earliest(&mut self.wake, retx.poll_timeout());
        d.state = State::Rejected(retx);
        let peer = d.peer;
        self.send(peer, data);
    }

    /// Sends 180 Ringing (call control found a route).
    pub fn ringing(&mut self, call_id: &str) {
        self.provisional(call_id, 180, None);
    }

    /// Early media: 183 Session Progress with the SDP answer, the call not yet answered.
    pub fn early_media(&mut self, call_id: &str, sdp: &str) {
        self.provisional(call_id, 183, Some(("application/sdp", sdp)));
    }

    /// A provisional response on an unanswered call (kept for INVITE retransmissions).
    fn provisional(&mut self, call_id: &str, code: u16, body: Option<(&str, &str)>) {
        let Some(peer) = self.dialogs.get(call_id).map(|d| d.peer) else {
            return;
        };
        let contact = format!("Contact: <sip:hookline@{}>", self.local_for(peer));
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if !matches!(d.state, State::Early) {
            return;
        }
        let data = message::response(&d.echo, code, Some(&d.local_tag), &[contact], body);
        d.last_response = data.clone();
        let peer = d.peer;
        self.send(peer, data);
    }

    /// Answers with 200 OK and the SDP answer. Returns false when the call is gone.
    pub fn answer(&mut self, now: Instant, call_id: &str, sdp: String) -> bool {
        let Some(peer) = self.dialogs.get(call_id).map(|d| d.peer) else {
            return false;
        };
        let contact = format!("Contact: <sip:hookline@{}>", self.local_for(peer));
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return false;
        };
        if !matches!(d.state, State::Early) {
            return matches!(d.state, State::Answered(_) | State::Confirmed);
        }
        let data = message::response(
            &d.echo,
            200,
            Some(&d.local_tag),
            &[contact, ALLOW.to_string()],
            Some(("application/sdp", &sdp)),
        );
        d.answer_sdp = Some(sdp);
        d.last_response = data.clone();
        let retx = Retx::new(now, data.clone());
        earliest(&mut self.wake, retx.poll_timeout());
        d.state = State::Answered(retx);
        let peer = d.peer;
        self.send(peer, data);
        true
    }

    /// Refuses an unanswered call with a final response (404, 480, 486, 503 ...).
    /// `retry_after` adds a Retry-After header (seconds), as a 503 should carry.
    pub fn reject(&mut self, now: Instant, call_id: &str, code: u16, retry_after: Option<u32>) {
        if matches!(
            self.dialogs.get(call_id).map(|d| &d.state),
            Some(State::Early)
        ) {
            let extra: Vec<String> = retry_after
                .map(|s| format!("Retry-After: {s}"))
                .into_iter()
                .collect();
            self.finish_with(now, call_id, code, &extra);
        }
    }

    /// Records whether `peer` is connected over a stream (TCP) rather than UDP.
    pub fn set_stream_peer(&mut self, peer: SocketAddr, connected: bool) {
        if connected {
            self.stream_peers.insert(peer);
        } else {
            self.stream_peers.remove(&peer);
        }
    }

    /// Marks the node as draining: OPTIONS probes get 503 so load balancers stop sending calls.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Carries out an outbound leg's actions.
    fn apply(&mut self, call_id: &str, actions: Vec<uac::Action>) {
        if let Some(at) = self.outbound.get(call_id).and_then(|c| c.poll_timeout()) {
            earliest(&mut self.wake, at);
        }
        for a in actions {
            match a {
                uac::Action::Send(to, data) => self.send(to, data),
                uac::Action::Event(event) => self.out.push_back(Output::Event(Event::Outbound {
                    call_id: call_id.to_string(),
                    event,
                })),
            }
        }
    }

    /// Starts an outbound leg (INVITE). Its progress arrives as `Event::Outbound`.
    pub fn dial(&mut self, now: Instant, dial: Dial) {
        let (tag, branch) = (self.token(), self.token());
        let call_id = dial.call_id.clone();
        let local = self.local_for(dial.dest);
        let (call, actions) = OutboundCall::start(now, &local, dial, &tag, &branch);
        self.outbound.insert(call_id.clone(), call);
        self.apply(&call_id, actions);
    }

    /// Ends the call from our side: BYE once answered, 480 before (CANCEL for outbound legs).
    pub fn hangup(&mut self, now: Instant, call_id: &str) {
        if self.outbound.contains_key(call_id) {
            let branch = self.token();
            let actions = match self.outbound.get_mut(call_id) {
                Some(call) => call.hangup(now, &branch),
                None => vec![],
            };
            return self.apply(call_id, actions);
        }
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        match d.state {
            State::Early => self.finish_with(now, call_id, 480, &[]),
            State::Answered(_) | State::Confirmed => self.send_bye(now, call_id),
            _ => {}
        }
    }

    fn send_bye(&mut self, now: Instant, call_id: &str) {
        let branch = format!("z9hG4bK{}", self.token());
        let Some(via_host) = self.dialogs.get(call_id).map(|d| self.local_for(d.peer)) else {
            return;
        };
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        d.local_cseq += 1;
        // We are the UAS: our From is their To (with our tag) and vice versa.
        let from = if message::has_tag(&d.echo.to) {
            d.echo.to.clone()
        } else {
            format!("{};tag={}", d.echo.to, d.local_tag)
        };
        let data = OutRequest {
            method: "BYE",
            uri: &d.remote_target,
            transport: if self.stream_peers.contains(&d.peer) {
                "TCP"
            } else {
                "UDP"
            },
            via_host: &via_host,
            branch: &branch,
            from: &from,
            to: &d.echo.from,
            call_id,
            cseq: d.local_cseq,
        }
        .to_bytes();
        let retx = Retx::new(now, data.clone());
        earliest(&mut self.wake, retx.poll_timeout());
        d.state = State::Closing(retx);
        let peer = d.peer;
        self.send(peer, data);
    }
}

/// Lowers `wake` to `at` if `at` comes first.
fn earliest(wake: &mut Option<Instant>, at: Instant) {
    *wake = Some(wake.map_or(at, |w| w.min(at)));
}

fn parse_cseq(value: &str) -> Option<u32> {
    value.split_whitespace().next()?.parse().ok()
}

#[path = "endpoint_dialog.rs"]
mod dialog;
#[path = "endpoint_register.rs"]
mod register;
#[path = "endpoint_timers.rs"]
mod timers;

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
