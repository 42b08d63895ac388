//! A routed, admitted call becomes a running call: its media leg, record
//! and session, its plugin (and the route's fallback) in a task of its own,
//! and everything it held given back when it ends.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::session::{CallEvent, CallSession, SessionParts};
use super::{held, Node, SipCommand};
use crate::config::DtmfMode;
use crate::media::worker::{LegSetup, MediaEvent};
use crate::plugin::{CallInfo, Outcome};

/// A refused call: its Call-ID, the SIP status, and the Retry-After seconds if any.
pub(crate) type Rejection = (String, u16, Option<u32>);

/// Finds the route of a new call and admits it on the node and the route.
pub(crate) fn route_and_admit(
    node: &Arc<Node>,
    call_id: &str,
    caller: &str,
    callee: &str,
    domain: &str,
) -> Result<(super::node::Slot, Arc<super::Plugin>), Rejection> {
    let key = crate::config::CallKey {
        callee,
        caller,
        domain,
        now_s: crate::store::now_ms() / 1000,
    };
    let table = node.routing.table();
    let Some(route) = table.route_for(&key) else {
        if let Some(dropped) = node.stranger_line() {
            tracing::info!(call = %call_id.escape_debug(), callee = %callee.escape_debug(), dropped, "no route");
        }
        node.store.call_started(call_id, caller, callee, None);
        node.store.call_ended(call_id, "no-route", vec![]);
        return Err((call_id.to_string(), 404, None));
    };
    let Some(plugin) = node.plugins.get(&route.config.plugin) else {
        return Err((call_id.to_string(), 500, None));
    };
    match node.admit(route.clone()) {
        Ok(slot) => Ok((slot, plugin)),
        Err(refusal) => {
            // No call record: under overload, refusing must stay cheap.
            node.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(call = %call_id, "refused: {}", refusal.as_str());
            Err((call_id.to_string(), 503, Some(refusal.retry_after())))
        }
    }
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
    /// The call's place on the node and its route (given back when dropped).
    pub slot: super::node::Slot,
    pub plugin: Arc<super::Plugin>,
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
) -> crate::call::events::EventTx {
    let NewCall {
        max_forwards,
        call_id,
        caller,
        callee,
        caller_name,
        domain,
        slot,
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
    let route = &slot.route.clone().config;
    let node_cfg = &node.config.node;
    let inband_dtmf = match node_cfg.dtmf {
        DtmfMode::Auto => dtmf_pt.is_none(),
        DtmfMode::Rfc4733 => false,
        DtmfMode::Inband => true,
    };
    let (tx, rx) = crate::call::events::channel();
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
    let (outer_tx, mut outer_rx) = crate::call::events::channel();
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
    node.store.call_started(
        &call_id,
        &caller,
        &callee,
        Some((&plugin.name, &plugin.manifest.version)),
    );
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
    session.run.hung_up = Some(hung_rx.clone());
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
        slot,
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
        Box::new(session),
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
///
/// This future is most of what a call's task holds for the call's life,
/// so what it keeps is kept small: the session comes boxed (an `async fn`
/// keeps its arguments for good, and the session moves into the plugin's
/// store at once), and the rare recording steps' futures are boxed.
async fn run_logic(
    node: Arc<Node>,
    mut session: Box<CallSession>,
    plugin: Arc<super::Plugin>,
    info: CallInfo,
    fallback: Option<crate::config::FallbackConfig>,
    record: bool,
) -> (String, Vec<String>) {
    if record {
        // The node records the whole call; the plugin need not know.
        if let Err(e) = Box::pin(session.start_session_recording()).await {
            tracing::warn!(call = %session.call_id, "call recording: {e:?}");
        }
    }
    let (mut outcome, mut session) = node.plugins.run(&plugin, *session, info.clone()).await;
    // A plugin that failed while the caller is still on hands the call to the route's fallback.
    if let (Some(fb), None, Outcome::Failed(_) | Outcome::Trapped(_)) =
        (&fallback, &session.ended, &outcome)
    {
        if let Some(fb_plugin) = node.plugins.get(&fb.plugin) {
            let why = failure_step(&outcome).unwrap_or_default();
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
    // Why the (last) plugin failed, in the record where its author looks:
    // the panic text, the traceback's last line, the budget it ran out of.
    if let Some(why) = failure_step(&outcome) {
        if session.path.last() != Some(&why) {
            session.mark(&why);
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
    Box::pin(session.close_recordings()).await;
    let dropped = session.events.dropped();
    if dropped > 0 {
        // The far end sent keys (or re-INVITEs) faster than the plugin read them.
        session.mark(&format!("events-dropped:{dropped}"));
    }
    (cause, std::mem::take(&mut session.path))
}

/// A failed plugin's outcome as a route step: `plugin-trap:<first line>` or
/// `plugin-error:<reason>`, cut to 200 bytes.
fn failure_step(outcome: &Outcome) -> Option<String> {
    let step = match outcome {
        Outcome::Trapped(t) => format!("plugin-trap:{}", t.lines().next().unwrap_or("")),
        Outcome::Failed(r) => format!("plugin-error:{r}"),
        Outcome::Done => return None,
    };
    let mut end = step.len().min(200);
    while !step.is_char_boundary(end) {
        end -= 1;
    }
    Some(step[..end].to_string())
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
    let (tx, rx) = crate::call::events::channel();
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
    crate::call::events::EventTx,
    UnboundedReceiver<SipCommand>,
) {
    let (session, sip_rx) = detached_session(node, plugin);
    let (tx, rx) = crate::call::events::channel();
    let mut session = session;
    session.events = rx;
    session.events_tx = tx.clone();
    (session, tx, sip_rx)
}
