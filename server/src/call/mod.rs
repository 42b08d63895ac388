//! Call control: the SIP driver task, routing of new calls to plugins, and the
//! per-call task that runs a plugin and writes the call record.

pub mod admission;
mod attempts;
pub mod callback;
pub mod collect;
pub mod conference;
pub mod dial;
pub mod forwarding;
pub(crate) mod held;
pub mod presence;
pub mod queue;
pub mod record;
mod recovery;
pub use recovery::recover_recordings;
mod ringer;
mod route;
pub mod schedule;
pub mod session;
pub mod speech;
pub mod targets;
pub mod verbs;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::config::{Config, DtmfMode};
use crate::media::prompt::PromptSet;
use crate::media::worker::{LegSetup, MediaEngine, MediaEvent, PortPool};
use crate::plugin::{CallInfo, Outcome, PluginHost};
use crate::sip::endpoint::{Endpoint, Event, Incoming, Output};
use crate::sip::registrar::Registrar;
use crate::sip::sdp;
use crate::sip::uac::Dial;
use crate::store::Store;
use admission::{Admission, Refusal};
use session::{CallEvent, CallSession, SessionParts};

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
        events: UnboundedSender<CallEvent>,
    },
}

/// Everything shared by the node's tasks.
pub struct Node {
    pub config: Config,
    pub media: Arc<MediaEngine>,
    pub ports: PortPool,
    pub plugins: PluginHost,
    pub prompts: Arc<PromptSet>,
    pub store: Store,
    /// Node-wide call and CPS limits.
    pub admission: Mutex<Admission>,
    /// Per-route limits, by route index.
    pub route_admission: Vec<Mutex<Admission>>,
    /// Set on SIGTERM: new calls get 503, running calls finish.
    pub draining: AtomicBool,
    pub refused: AtomicU64,
    /// Call tasks still running (a drain waits for them, records included).
    pub call_tasks: AtomicU64,
    /// Log lines strangers can cause (refused credentials, calls with no
    /// route): 20 a second, the rest counted.
    pub stranger_log: crate::rate::LogBudget,
    pub registrar: Arc<Mutex<Registrar>>,
    pub sip_addr: SocketAddr,
    /// Prompts of languages other than the default, by language.
    pub prompt_sets: HashMap<String, Arc<PromptSet>>,
    /// Speech for `say` items (cached).
    pub tts: Arc<crate::speech::tts::Tts>,
    /// Speech recognizers by language (models loaded once, shared by calls).
    pub recognizers: crate::speech::asr::Recognizers,
    /// Plugins' key-value data, recordings, call history.
    pub plugin_data: crate::store::plugin_data::PluginData,
    pub data_dir: std::path::PathBuf,
    /// Shared HTTP client for plugins' fetches.
    pub http: reqwest::Client,
    /// The API token in force (configured, or generated and kept in the data directory).
    pub api_token: String,
    /// Failed API and browser-token authentications per source address.
    pub auth_failures: crate::api::guard::AuthFailures,
    /// Addresses plugins' HTTP may not reach (the node's own services, metadata).
    pub net_guard: crate::plugin::net_guard::NetGuard,
    pub counters: crate::plugin::services::Counters,
    /// Browser legs and agents.
    pub webrtc: crate::webrtc::WebRtc,
    /// Agents' availability for ring groups.
    pub presence: presence::Presence,
    /// Callers waiting in queues.
    pub queues: queue::Queues,
    /// Conference rooms and their members.
    pub rooms: conference::Rooms,
    /// Queue callbacks kept across restarts.
    pub callbacks: crate::store::callbacks::Callbacks,
    /// Agents' results (answered, converted) kept across restarts.
    pub agent_results: crate::store::agent_results::AgentResultsStore,
    /// The SIP driver's commands, once it runs (browser calls dial through it).
    pub sip_tx: std::sync::OnceLock<UnboundedSender<SipCommand>>,
}

impl Node {
    /// Adds to an agent's results in memory (ranking reads them) and on disk
    /// (off the async threads: a call's answer does not wait on SQLite).
    pub fn add_agent_results(
        &self,
        user: &str,
        answered: u64,
        converted: u64,
    ) -> presence::AgentResults {
        let updated = self.presence.add_results(user, answered, converted);
        let (store, user) = (self.agent_results.clone(), user.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.add(&user, answered, converted) {
                tracing::warn!("agent {user}'s results not saved: {e}");
            }
        });
        updated
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        lock(&self.admission).active()
    }

    /// Admits a call on the node and on its route, or says why not.
    fn admit(&self, route: usize) -> Result<(), Refusal> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(Refusal::Draining);
        }
        let now = Instant::now();
        lock(&self.admission).admit(now)?;
        if let Some(r) = self.route_admission.get(route) {
            if let Err(e) = lock(r).admit(now) {
                lock(&self.admission).release();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Frees a call's place on the node and its route.
    pub(crate) fn release_route(&self, route: usize) {
        self.release(route)
    }

    /// Hands a command to the SIP driver.
    pub(crate) fn send_sip(&self, cmd: SipCommand) {
        if let Some(tx) = self.sip_tx.get() {
            let _ = tx.send(cmd);
        }
    }

    fn release(&self, route: usize) {
        lock(&self.admission).release();
        if let Some(r) = self.route_admission.get(route) {
            lock(r).release();
        }
    }

    /// Config (JSON) a plugin gets when a call is handed over to it.
    pub fn plugin_config_json(&self, name: &str) -> String {
        self.config
            .plugins
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| serde_json::to_string(&p.config).ok())
            .unwrap_or_else(|| "{}".into())
    }

    /// What the operator granted a plugin (none for one not in the config).
    /// The quota caps the config gives plugin `name` (built-in defaults for
    /// a plugin it does not list).
    pub fn quotas_for(&self, name: &str) -> crate::plugin::quotas::Quotas {
        self.config
            .plugins
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.quotas)
            .unwrap_or_default()
    }

    pub fn grants_for(&self, name: &str) -> crate::plugin::manifest::Grants {
        self.config
            .plugins
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| crate::plugin::manifest::Grants::parse(&p.grants).ok())
            .unwrap_or_default()
    }

    /// The address to put in SDP for media towards `peer`.
    pub(crate) fn media_ip_for(&self, peer: SocketAddr) -> IpAddr {
        if let Some(ip) = self.config.node.advertise_ip {
            return ip;
        }
        if !self.sip_addr.ip().is_unspecified() {
            return self.sip_addr.ip();
        }
        local_ip_toward(peer.ip())
    }
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
    let mut calls: HashMap<String, UnboundedSender<CallEvent>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut timer = tokio::time::interval(Duration::from_millis(50));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
    loop {
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
                SipCommand::Dial { dial, events } if dial.target.starts_with("webrtc:") => {
                    crate::webrtc::agents::ring(node.clone(), dial, events);
                }
                SipCommand::Dial { dial, events } => {
                    calls.insert(dial.call_id.clone(), events);
                    endpoint.dial(Instant::now(), dial);
                }
            },
            _ = timer.tick() => {
                endpoint.set_draining(node.draining.load(Ordering::Relaxed));
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
                    if let Some(dropped) = node.stranger_log.admit(std::time::Instant::now()) {
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

/// A refused call: its Call-ID, the SIP status, and the Retry-After seconds if any.
type Rejection = (String, u16, Option<u32>);

/// Routes a new call, binds its media and starts its plugin. Errors carry the SIP code.
fn start_call(
    node: &Arc<Node>,
    sip: &UnboundedSender<SipCommand>,
    inc: Incoming,
) -> Result<(String, UnboundedSender<CallEvent>), Rejection> {
    let call_id = inc.call_id.clone();
    let (route_idx, plugin) =
        route_and_admit(node, &call_id, &inc.caller, &inc.callee, &inc.domain)?;
    let (socket, port) = match node.ports.bind() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(call = %call_id, "RTP port: {e}");
            node.release(route_idx);
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
            route_idx,
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

/// Finds the route of a new call and admits it on the node and the route.
pub(crate) fn route_and_admit(
    node: &Arc<Node>,
    call_id: &str,
    caller: &str,
    callee: &str,
    domain: &str,
) -> Result<(usize, Arc<crate::plugin::LoadedPlugin>), Rejection> {
    let key = crate::config::CallKey {
        callee,
        caller,
        domain,
        now_s: crate::store::now_ms() / 1000,
    };
    let Some(route_idx) = node.config.route_for(&key) else {
        if let Some(dropped) = node.stranger_log.admit(std::time::Instant::now()) {
            tracing::info!(call = %call_id.escape_debug(), callee = %callee.escape_debug(), dropped, "no route");
        }
        node.store.call_started(call_id, caller, callee, None);
        node.store.call_ended(call_id, "no-route", vec![]);
        return Err((call_id.to_string(), 404, None));
    };
    let route = &node.config.routes[route_idx];
    let Some(plugin) = node.plugins.get(&route.plugin) else {
        return Err((call_id.to_string(), 500, None));
    };
    if let Err(refusal) = node.admit(route_idx) {
        // No call record: under overload, refusing must stay cheap.
        node.refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(call = %call_id, "refused: {}", refusal.as_str());
        return Err((call_id.to_string(), 503, Some(refusal.retry_after())));
    }
    Ok((route_idx, plugin))
}

/// A routed and admitted call with its media socket, from SIP or a browser.
pub(crate) struct NewCall {
    /// The inbound INVITE's Max-Forwards (70 for browsers).
    pub max_forwards: u8,
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub caller_name: Option<String>,
    pub domain: String,
    pub route_idx: usize,
    pub plugin: Arc<crate::plugin::LoadedPlugin>,
    pub leg: crate::media::worker::LegId,
    pub port: u16,
    pub socket: StdUdpSocket,
    /// Where the caller's media goes, in which format.
    pub remote: SocketAddr,
    pub codec: crate::codec::Format,
    pub dtmf_pt: Option<u8>,
    pub latch: bool,
    /// Our SDP answer, sent when the plugin answers.
    pub answer_sdp: String,
    /// The trunk the call came in from, for the call record.
    pub via: Option<String>,
}

/// Adds the caller's media leg and runs the route's plugin on the call until
/// it ends; `sip` carries the call's signalling (SIP, or a browser's driver).
pub(crate) fn launch(
    node: &Arc<Node>,
    sip: &UnboundedSender<SipCommand>,
    call: NewCall,
) -> UnboundedSender<CallEvent> {
    let NewCall {
        max_forwards,
        call_id,
        caller,
        callee,
        caller_name,
        domain,
        route_idx,
        plugin,
        leg,
        port,
        socket,
        remote,
        codec,
        dtmf_pt,
        latch,
        answer_sdp,
        via,
    } = call;
    let route = &node.config.routes[route_idx];
    let node_cfg = &node.config.node;
    let inband_dtmf = match node_cfg.dtmf {
        DtmfMode::Auto => dtmf_pt.is_none(),
        DtmfMode::Rfc4733 => false,
        DtmfMode::Inband => true,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let media_tx = tx.clone();
    // The caller hung up (BYE, CANCEL, dead media): seen here at once, not
    // when the plugin next calls a verb, so what the call holds is given
    // back even while the plugin is busy.
    let (hung_tx, hung_rx) = tokio::sync::watch::channel(false);
    let hung_media = hung_tx.clone();
    let (stats_tx, final_stats) = tokio::sync::watch::channel(None);
    node.media.add_leg(LegSetup {
        id: leg,
        socket,
        remote,
        codec,
        dtmf_pt,
        inband_dtmf,
        rtp_timeout: (node_cfg.rtp_timeout_s > 0)
            .then(|| Duration::from_secs(node_cfg.rtp_timeout_s)),
        latch,
        rtcp: node.ports.bind_rtcp(port),
        events: Box::new(move |e| {
            match &e {
                MediaEvent::RtpTimeout => {
                    hung_media.send_replace(true);
                }
                MediaEvent::Final(stats) => {
                    stats_tx.send_replace(Some(*stats));
                }
                _ => {}
            }
            let _ = media_tx.send(CallEvent::Media(e));
        }),
    });
    // The SIP (or browser) side's events pass through here on their way to
    // the session, so a hang-up is noticed without the plugin's help.
    let (outer_tx, mut outer_rx) = mpsc::unbounded_channel::<CallEvent>();
    let inner_tx = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = outer_rx.recv().await {
            if matches!(ev, CallEvent::Ended(_)) {
                hung_tx.send_replace(true);
            }
            if inner_tx.send(ev).is_err() {
                break;
            }
        }
    });
    node.store
        .call_started(&call_id, &caller, &callee, Some(&plugin.name));
    // One line at the start and one at the end of every call (admitted calls
    // only: admission bounds how many a second).
    let started = std::time::Instant::now();
    let (who, whom, route_number) = (caller.clone(), callee.clone(), route.number.clone());
    tracing::info!(
        call = %call_id.escape_debug(),
        caller = %caller.escape_debug(),
        callee = %callee.escape_debug(),
        route = %route.number,
        plugin = %plugin.name,
        "call started"
    );
    let info = CallInfo {
        call_id: call_id.clone(),
        caller: caller.clone(),
        callee,
        caller_name,
        domain,
        config: serde_json::to_string(&route.config).unwrap_or_else(|_| "{}".into()),
        arguments: None,
    };
    let mut session = CallSession::new(SessionParts {
        call_id: call_id.clone(),
        plugin: plugin.name.clone(),
        leg,
        media: node.media.clone(),
        prompts: node.prompts.clone(),
        sip: sip.clone(),
        events: rx,
        events_tx: tx.clone(),
        node: node.clone(),
        caller,
        codec,
        store: node.store.clone(),
        answer_sdp,
        info: info.clone(),
        language: node.config.prompts.language.clone(),
    });
    session.hung_up = Some(hung_rx.clone());
    session.max_forwards = max_forwards;
    if let Some(trunk) = via {
        session.mark(&format!("from-trunk:{trunk}"));
    }
    let node = node.clone();
    let sip = sip.clone();
    let fallback = route.fallback.clone();
    let record = route.record;
    node.call_tasks.fetch_add(1, Ordering::SeqCst);
    let held = held::Held::new(
        node.clone(),
        route_idx,
        leg,
        port,
        final_stats,
        session.recordings_open.clone(),
    );
    let freeing = held.free_on_hang_up(hung_rx);
    let call_id = session.call_id.clone();
    // The call's logic runs in a task of its own, so a panic in it (a bug in
    // a host verb) costs this call only: what the call held is given back
    // and its record ends here either way.
    let logic = tokio::spawn(run_logic(
        node.clone(),
        session,
        plugin,
        info,
        fallback,
        record,
    ));
    let node = node.clone();
    tokio::spawn(async move {
        let (cause, path) = match logic.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(call = %call_id, "call logic failed: {e}");
                let _ = sip.send(SipCommand::Hangup {
                    call_id: call_id.clone(),
                });
                ("node-error".to_string(), vec!["node-error".to_string()])
            }
        };
        // Given back here unless the hang-up already did (then this waits for it).
        freeing.abort();
        let media = held.free().await;
        let _ = sip.send(SipCommand::Finished {
            call_id: call_id.clone(),
        });
        tracing::info!(
            call = %call_id.escape_debug(),
            caller = %who.escape_debug(),
            callee = %whom.escape_debug(),
            route = %route_number,
            %cause,
            duration_ms = started.elapsed().as_millis() as u64,
            "call ended"
        );
        node.store.call_finished(&call_id, &cause, path, media);
        node.call_tasks.fetch_sub(1, Ordering::SeqCst);
    });
    outer_tx
}

/// A call's logic: its plugin, and the route's fallback if the plugin fails
/// while the caller is on. Returns why the call ended and its route path.
async fn run_logic(
    node: Arc<Node>,
    session: CallSession,
    plugin: Arc<crate::plugin::LoadedPlugin>,
    info: CallInfo,
    fallback: Option<crate::config::FallbackConfig>,
    record: bool,
) -> (String, Vec<String>) {
    let mut session = session;
    if record {
        // The node records the whole call; the plugin need not know.
        if let Err(e) = session.start_session_recording().await {
            tracing::warn!(call = %session.call_id, "call recording: {e:?}");
        }
    }
    let (mut outcome, mut session) = node.plugins.run(&plugin, session, info.clone()).await;
    // A plugin that failed while the caller is still on hands the call to the route's fallback.
    if let (Some(fb), None, Outcome::Failed(_) | Outcome::Trapped(_)) =
        (&fallback, &session.ended, &outcome)
    {
        if let Some(fb_plugin) = node.plugins.get(&fb.plugin) {
            let why = match &outcome {
                Outcome::Trapped(t) => {
                    format!("plugin-trap:{}", t.lines().next().unwrap_or(""))
                }
                Outcome::Failed(r) => format!("plugin-error:{r}"),
                Outcome::Done => String::new(),
            };
            tracing::warn!(call = %session.call_id, plugin = %session.plugin, "{why}; fallback {}", fb.plugin);
            session.mark(&why);
            session.mark(&format!("fallback:{}", fb.plugin));
            session.plugin = fb.plugin.clone();
            let fb_info = CallInfo {
                config: serde_json::to_string(&fb.config).unwrap_or_else(|_| "{}".into()),
                ..info
            };
            (outcome, session) = node.plugins.run(&fb_plugin, session, fb_info).await;
        }
    }
    let cause = match (&session.ended, &outcome) {
        (Some(cause), _) => cause.clone(),
        (None, Outcome::Done) => "plugin-return".to_string(),
        (None, Outcome::Failed(reason)) => {
            tracing::warn!(call = %session.call_id, plugin = %session.plugin, "plugin failed: {reason}");
            "plugin-error".to_string()
        }
        (None, Outcome::Trapped(trap)) => {
            tracing::warn!(call = %session.call_id, plugin = %session.plugin, "plugin trapped: {trap}");
            "plugin-trap".to_string()
        }
    };
    if session.ended.is_none() {
        let _ = session.sip.send(SipCommand::Hangup {
            call_id: session.call_id.clone(),
        });
    }
    session.close_recordings().await;
    (cause, std::mem::take(&mut session.path))
}

/// Lets benchmarks build a session with no network behind it: the call has
/// already ended, so the first verb that waits returns `hung-up`.
pub fn detached_session(
    node: &Arc<Node>,
    plugin: &str,
) -> (CallSession, UnboundedReceiver<SipCommand>) {
    ended_session(node, plugin, crate::plugin::bench_info())
}

/// A session for a call that has already ended (the first verb that waits
/// returns `hung-up`): benchmarks, and handing a recording a crash cut
/// short back to the plugin that made it.
pub(crate) fn ended_session(
    node: &Arc<Node>,
    plugin: &str,
    info: CallInfo,
) -> (CallSession, UnboundedReceiver<SipCommand>) {
    let (sip, sip_rx) = mpsc::unbounded_channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(CallEvent::Ended(crate::sip::endpoint::EndCause::CallerBye));
    let session = CallSession::new(SessionParts {
        call_id: info.call_id.clone(),
        plugin: plugin.into(),
        leg: 0,
        media: node.media.clone(),
        prompts: node.prompts.clone(),
        sip,
        events: rx,
        events_tx: tx,
        node: node.clone(),
        caller: info.caller.clone(),
        codec: crate::codec::Format::PCMU,
        store: node.store.clone(),
        answer_sdp: String::new(),
        info,
        language: node.config.prompts.language.clone(),
    });
    (session, sip_rx)
}

/// Lets benchmarks park plugins on calls with no network behind them: the
/// call stays up until `Ended` is sent on the returned sender.
pub fn parked_session(
    node: &Arc<Node>,
    plugin: &str,
) -> (
    CallSession,
    UnboundedSender<CallEvent>,
    UnboundedReceiver<SipCommand>,
) {
    let (session, sip_rx) = detached_session(node, plugin);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut session = session;
    session.events = rx;
    session.events_tx = tx.clone();
    (session, tx, sip_rx)
}

/// The local address the kernel would use to reach `peer` (a connected UDP
/// socket; no packet is sent).
fn local_ip_toward(peer: IpAddr) -> IpAddr {
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

/// Locks a mutex, ignoring poisoning (the guarded counters stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
