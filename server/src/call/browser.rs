//! Browser legs seen from call control: ringing a logged-in agent's browser
//! as one more outbound leg of a dial, and driving a browser caller's leg
//! (what the call task asks of "SIP" is done on the peer connection).

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::events::EventTx;
use super::session::CallEvent;
use super::{Node, SipCommand};
use crate::sip::endpoint::EndCause;
use crate::sip::sdp;
use crate::sip::uac::UacEvent;
use crate::webrtc::agents::{LegEvent, ToBrowser};
use crate::webrtc::BrowserMedia;

/// Rings the browser agent `user` with our SDP `offer`; the leg's progress
/// goes to `events` like a SIP leg's.
pub fn ring(
    node: Arc<Node>,
    leg_call_id: String,
    user: String,
    from: String,
    offer: String,
    events: EventTx,
) {
    let call_id = leg_call_id.clone();
    let report = move |event| {
        let _ = events.send(CallEvent::Outbound {
            call_id: call_id.clone(),
            event,
        });
    };
    tokio::spawn(async move {
        let agents = &node.webrtc.agents;
        let mut rx = match agents.take_for_ring(&user, &leg_call_id) {
            Ok(rx) => rx,
            Err(code) => return report(UacEvent::Failed { code }),
        };
        let finish = |code| {
            agents.end_call(&leg_call_id);
            report(UacEvent::Failed { code })
        };
        // Our engine leg: where the offer (for a SIP callee) says to send media.
        let engine = match sdp::negotiate(offer.as_bytes()) {
            Ok(n) => n.remote,
            Err(_) => return finish(500),
        };
        let pending = match node.webrtc.offer(engine).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(call = %leg_call_id, "browser offer: {e}");
                return finish(500);
            }
        };
        let offered = agents.send(
            &user,
            &ToBrowser::Offer {
                call: &leg_call_id,
                from: &from,
                sdp: &pending.sdp,
            },
        );
        if !offered {
            pending.cancel().await;
            return finish(480);
        }
        report(UacEvent::Progress {
            code: 180,
            media: None,
        });
        let answer = match rx.recv().await {
            Some(LegEvent::Answer(sdp)) => sdp,
            Some(LegEvent::Reject) => {
                pending.cancel().await;
                return finish(486);
            }
            Some(LegEvent::Hangup) | None => {
                pending.cancel().await;
                return finish(480);
            }
            Some(LegEvent::Cancel) => {
                pending.cancel().await;
                agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
                return finish(487);
            }
        };
        let mut media = match pending.complete(answer).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(call = %leg_call_id, "browser answer: {e}");
                agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
                return finish(488);
            }
        };
        // To the dial verb the browser answered with plain RTP at the relay.
        let neg = sdp::Negotiated {
            remote: media.relay,
            codec: media.format,
            dtmf_pt: media.dtmf_pt,
            dtmf_rate: media.format.clock_rate(),
        };
        report(UacEvent::Answered { media: Ok(neg) });
        let remote_bye = loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(LegEvent::Cancel) => break false,
                    Some(LegEvent::Hangup) | None => break true,
                    Some(_) => {}
                },
                Some(()) = media.closed.recv() => break true,
            }
        };
        let _ = media.pc.close().await;
        agents.end_call(&leg_call_id);
        if remote_bye {
            report(UacEvent::RemoteBye);
        } else {
            agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
        }
    });
}

/// The signalling side of a browser call: what the call task asks of "SIP"
/// for this leg is done on the peer connection; commands for other legs
/// (the plugin dialling out) go to the SIP driver. A browser that leaves
/// ends the call.
pub(crate) async fn drive(
    node: Arc<Node>,
    call_id: String,
    mut media: BrowserMedia,
    mut commands: UnboundedReceiver<SipCommand>,
    events: EventTx,
) {
    let mut gone = false;
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(SipCommand::Finished { call_id: c }) if c == call_id => break,
                Some(SipCommand::Hangup { call_id: c }) | Some(SipCommand::Reject { call_id: c, .. })
                    if c == call_id =>
                {
                    let _ = media.pc.close().await;
                }
                Some(SipCommand::Answer { call_id: c, .. })
                | Some(SipCommand::EarlyMedia { call_id: c, .. })
                    if c == call_id => {}
                Some(other) => node.send_sip(other),
            },
            Some(()) = media.closed.recv(), if !gone => {
                gone = true;
                let _ = events.send(CallEvent::Ended(EndCause::CallerBye));
            }
        }
    }
    let _ = media.pc.close().await;
    node.webrtc
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&call_id);
}
