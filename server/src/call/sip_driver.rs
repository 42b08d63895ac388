//! The SIP side of the node: one task drives the sans-IO endpoint with the
//! UDP socket, SIP/TCP connections and call control's commands, starts a
//! call for each new INVITE and routes the endpoint's events to calls.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, UnboundedSender};

use super::node::lock;
use super::session::CallEvent;
use super::{launch, route_and_admit, NewCall, Node, Rejection};
use crate::config::DtmfMode;
use crate::media::worker::MediaEvent;
use crate::sip::endpoint::{Endpoint, Event, Incoming, Output};
use crate::sip::sdp;
use crate::sip::uac::Dial;

/// What call tasks ask of the SIP driver.
#[derive(Debug)]
pub enum SipCommand {
    Answer {
        call_id: String,
        sdp: String,
    },
    Hangup {
        call_id: String,
    },
    /// 183 with SDP: early media before answering.
    EarlyMedia {
        call_id: String,
        sdp: String,
    },
    /// Refuse an unanswered call with this status.
    Reject {
        call_id: String,
        code: u16,
    },
    /// The call task is done; forget its event channel.
    Finished {
        call_id: String,
    },
    /// Start an outbound leg; its progress goes to `events`.
    Dial {
        dial: Dial,
        events: crate::call::events::EventTx,
    },
    /// Ring an agent's browser with our SDP offer; its progress goes to
    /// `events` like a SIP leg's.
    RingBrowser {
        call_id: String,
        user: String,
        /// The caller ID shown to the agent.
        from: String,
        sdp: String,
        events: crate::call::events::EventTx,
    },
}

/// Runs the SIP side of the node until the socket fails.
pub async fn run_sip(
    node: Arc<Node>,
    socket: UdpSocket,
    tcp: Option<tokio::net::TcpListener>,
) -> std::io::Result<()> {
    let local = match node.config.node.advertise_ip {
        Some(ip) => SocketAddr::new(ip, node.sip_addr.port()),
        None if node.sip_addr.ip().is_unspecified() => SocketAddr::new(
            node.media_ip_for("127.0.0.1:5060".parse().unwrap_or(node.sip_addr)),
            node.sip_addr.port(),
        ),
        None => node.sip_addr,
    };
    let mut endpoint = Endpoint::new(local)
        .with_registrar(node.registrar.clone())
        .with_invite_auth(node.config.node.invite_auth_for(node.sip_addr))
        .with_source_limit(node.config.node.sip_requests_per_source_s);
    if node.config.node.advertise_ip.is_none() && node.sip_addr.ip().is_unspecified() {
        // Listening on all interfaces: Contact/Via name the address that faces each peer.
        let cache = Mutex::new(HashMap::new());
        endpoint = endpoint.with_local_ip_for(move |peer| {
            let mut cache = lock(&cache);
            if cache.len() > 10_000 {
                cache.clear();
            }
            *cache.entry(peer).or_insert_with(|| local_ip_toward(peer))
        });
    }
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<SipCommand>();
    let _ = node.sip_tx.set(cmd_tx.clone());
    let mut calls: HashMap<String, crate::call::events::EventTx> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let (tcp_tx, mut tcp_rx) = mpsc::channel(crate::sip::tcp::EVENTS_QUEUED);
    if let Some(listener) = tcp {
        let cfg = &node.config.node;
        let limits = crate::sip::tcp::Limits {
            max: cfg.sip_tcp_connections,
            per_source: cfg.sip_tcp_per_source,
            idle: Duration::from_secs(cfg.sip_tcp_idle_s),
        };
        tokio::spawn(crate::sip::tcp::accept(listener, tcp_tx, limits));
    }
    // Peers connected over TCP: their responses and requests go back on the connection.
    let mut streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    // One timer for the driver's life, re-armed only when the endpoint's next
    // deadline moves (not once per message).
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        endpoint.set_draining(node.draining.load(Ordering::Relaxed));
        // Sleep until the endpoint's next timer (a retransmission, a give-up,
        // forgetting a finished dialog); with none running, until something comes.
        let wake = endpoint.poll_timeout();
        if wake != armed {
            if let Some(at) = wake {
                timer.as_mut().reset(at.into());
            }
            armed = wake;
        }
        tokio::select! {
            Some(ev) = tcp_rx.recv() => match ev {
                crate::sip::tcp::TcpEvent::Open(peer, writer) => {
                    streams.insert(peer, writer);
                    endpoint.set_stream_peer(peer, true);
                }
                crate::sip::tcp::TcpEvent::Message(peer, data) => endpoint.handle_datagram(Instant::now(), peer, &data),
                crate::sip::tcp::TcpEvent::Closed(peer) => {
                    streams.remove(&peer);
                    endpoint.set_stream_peer(peer, false);
                }
            },
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => endpoint.handle_datagram(Instant::now(), from, &buf[..n]),
                // ICMP errors from earlier sends surface here on Linux; they are not ours to act on.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::warn!("SIP socket: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(cmd) = cmd_rx.recv() => match cmd {
                SipCommand::Answer { call_id, sdp } => {
                    endpoint.answer(Instant::now(), &call_id, sdp);
                }
                SipCommand::Hangup { call_id } if node.webrtc.agents.owns(&call_id) => {
                    node.webrtc.agents.hang_up(&call_id)
                }
                SipCommand::Hangup { call_id } => endpoint.hangup(Instant::now(), &call_id),
                SipCommand::EarlyMedia { call_id, sdp } => endpoint.early_media(&call_id, &sdp),
                SipCommand::Reject { call_id, code } => {
                    endpoint.reject(Instant::now(), &call_id, code, None)
                }
                SipCommand::Finished { call_id } => {
                    calls.remove(&call_id);
                }
                SipCommand::RingBrowser { call_id, user, from, sdp, events } => {
                    crate::call::browser::ring(node.clone(), call_id, user, from, sdp, events);
                }
                SipCommand::Dial { dial, events } => {
                    calls.insert(dial.call_id.clone(), events);
                    endpoint.dial(Instant::now(), dial);
                }
            },
            _ = &mut timer, if armed.is_some() => {
                armed = None;
                endpoint.handle_timeout(Instant::now());
            }
        }
        while let Some(out) = endpoint.poll_output() {
            match out {
                Output::Transmit { to, data } => {
                    if let Some(stream) = streams.get(&to) {
                        if stream.try_send(data).is_err() {
                            // Not reading its replies: the connection goes.
                            streams.remove(&to);
                            endpoint.set_stream_peer(to, false);
                        }
                    } else if let Err(e) = socket.send_to(&data, to).await {
                        tracing::debug!("SIP send to {to}: {e}");
                    }
                }
                Output::Event(Event::Incoming(inc)) => match start_call(&node, &cmd_tx, inc) {
                    Ok((call_id, tx)) => {
                        endpoint.ringing(&call_id);
                        calls.insert(call_id, tx);
                    }
                    Err((call_id, code, retry_after)) => {
                        endpoint.reject(Instant::now(), &call_id, code, retry_after)
                    }
                },
                Output::Event(Event::Ended { call_id, cause }) => {
                    if let Some(tx) = calls.get(&call_id) {
                        let _ = tx.send(CallEvent::Ended(cause));
                    }
                }
                Output::Event(Event::Outbound { call_id, event }) => {
                    if let Some(tx) = calls.get(&call_id) {
                        let _ = tx.send(CallEvent::Outbound { call_id, event });
                    }
                }
                Output::Event(Event::Reinvite {
                    call_id,
                    remote,
                    hold,
                    codec,
                    dtmf_pt,
                }) => {
                    if let Some(tx) = calls.get(&call_id) {
                        let _ = tx.send(CallEvent::Reinvite {
                            remote,
                            hold,
                            codec,
                            dtmf_pt,
                        });
                    }
                }
                Output::Event(Event::Dtmf { call_id, key }) => {
                    if let Some(tx) = calls.get(&call_id) {
                        let _ = tx.send(CallEvent::Media(MediaEvent::Dtmf(key)));
                    }
                }
                Output::Event(Event::Refused { method, refusal }) => {
                    if let Some(dropped) = node.stranger_line() {
                        tracing::info!(
                            user = %refusal.user.escape_debug(),
                            source = %refusal.source,
                            blocked = refusal.blocked,
                            dropped,
                            "{method} refused: wrong credentials"
                        );
                    }
                }
            }
        }
    }
}

/// Routes a new call, binds its media and starts its plugin. Errors carry the SIP code.
fn start_call(
    node: &Arc<Node>,
    sip: &UnboundedSender<SipCommand>,
    inc: Incoming,
) -> Result<(String, crate::call::events::EventTx), Rejection> {
    let call_id = inc.call_id.clone();
    // The slot goes back by itself if the call does not start.
    let (slot, plugin) = route_and_admit(node, &call_id, &inc.caller, &inc.callee, &inc.domain)?;
    let (socket, port) = match node.ports.bind() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(call = %call_id, "RTP port: {e}");
            return Err((call_id, 503, Some(5)));
        }
    };
    let leg = node.media.new_leg_id(None);
    let local = SocketAddr::new(node.media_ip_for(inc.source), port);
    let node_cfg = &node.config.node;
    let mut offer = inc.offer.clone();
    if node_cfg.dtmf == DtmfMode::Inband {
        offer.dtmf_pt = None; // not offered back: the caller sends tones in the audio
    }
    let answer = sdp::answer(local, &offer, leg);
    let via = trunk_of(node, inc.source);
    let tx = launch(
        node,
        sip,
        NewCall {
            max_forwards: inc.max_forwards,
            call_id: call_id.clone(),
            caller: inc.caller,
            callee: inc.callee,
            caller_name: inc.caller_name,
            domain: inc.domain,
            slot,
            plugin,
            leg,
            port,
            socket,
            remote: offer.remote,
            codec: offer.codec,
            dtmf_pt: offer.dtmf_pt,
            // Latch only when the caller looks NATed: its SDP names another address
            // than the one its signalling came from (RFC 4961 symmetric RTP, as
            // SBCs apply it). Otherwise a stray sender could divert the media.
            latch: node_cfg.rtp_latch && offer.remote.ip() != inc.source.ip(),
            answer_sdp: answer,
            via,
        },
    );
    Ok((call_id, tx))
}

/// The trunk a call came in from: the one whose address sent it. (By IP
/// alone it could be a phone behind the same SBC; trust by IP is the
/// registrar's business, the record names only an exact match.)
fn trunk_of(node: &Node, source: SocketAddr) -> Option<String> {
    node.config
        .trunks
        .iter()
        .find(|t| t.address == source)
        .map(|t| t.name.clone())
}

/// The local address the kernel would use to reach `peer` (a connected UDP
/// socket; no packet is sent).
pub(super) fn local_ip_toward(peer: IpAddr) -> IpAddr {
    let any: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap_or_else(|_| SocketAddr::new(peer, 0));
    StdUdpSocket::bind(any)
        .and_then(|s| s.connect(SocketAddr::new(peer, 9)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(peer)
}
