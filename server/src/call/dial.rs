//! The `dial` verb: rings targets, connects the first to answer, and holds
//! the bridge until one side hangs up. Who rings when is the ringer's
//! (`ringer.rs`, no I/O); this is its driver: it turns the ringer's actions
//! into INVITEs, media legs, records and presence, and feeds it SIP
//! responses, the caller leaving and the time. Each outbound leg gets its
//! own RTP port and call record (linked to the caller's by `parent`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::attempts::{Attempt, Attempts};
use super::error::Error;
use super::forwarding::{ExtensionState, Forwarding, Missed, Reason as ForwardReason};
use super::presence::GroupOutcome;
use super::ringer::{Action, Input, Outcome, Ringer};
use super::route::{Reach, Route};
use super::session::{CallEvent, CallSession};
use super::targets::{self, extension_routes, parse_target, Target};
use super::SipCommand;
use crate::media::worker::{LegId, LegSetup, MediaEvent};
use crate::sip::endpoint::EndCause;
use crate::sip::sdp;
use crate::sip::uac::{Dial, UacEvent};

/// How a dial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStatus {
    Completed,
    NoAnswer,
    Busy,
    Failed,
}

/// What `dial` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutcome {
    pub status: DialStatus,
    pub answered_target: Option<u32>,
    pub talk_seconds: u32,
}

impl DialOutcome {
    /// Nobody connected.
    pub fn missed(status: DialStatus) -> DialOutcome {
        DialOutcome {
            status,
            answered_target: None,
            talk_seconds: 0,
        }
    }
}

impl CallSession {
    /// Rings `targets`, connects the first to answer; see the WIT `dial`. A
    /// single extension with forwarding rules is dialled by its rules.
    pub async fn dial(
        &mut self,
        targets: &[Target],
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, Error> {
        if let [Target::Extension(name)] = targets {
            if let Some(q) = self.node.config.queue(name).cloned() {
                return self.wait_in_queue(&q, timeout, caller_id).await;
            }
        }
        if let [Target::Extension(user)] = targets {
            let rules = self
                .node
                .config
                .extensions
                .iter()
                .find(|e| &e.user == user)
                .and_then(|e| e.forward.clone());
            if let Some(rules) = rules {
                return self.dial_forwarding(user, &rules, timeout, caller_id).await;
            }
        }
        self.dial_targets(targets, timeout, caller_id).await
    }

    /// Follows an extension's forwarding rules step by step until someone
    /// connects or nothing is left; `answered_target` is 0 (the extension's
    /// place in the plugin's list) whoever answered.
    async fn dial_forwarding(
        &mut self,
        user: &str,
        rules: &Forwarding,
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, Error> {
        let now_unix = crate::store::now_ms() as u64 / 1000;
        let state = ExtensionState {
            registered: !extension_routes(&self.node, user, now_unix).is_empty(),
            busy: self.node.presence.state(user).calls > 0,
            now_s: now_unix as i64,
        };
        let mut step = Some(rules.first(user, state));
        let mut last = DialOutcome::missed(DialStatus::Failed);
        while let Some(s) = step {
            if s.reason != ForwardReason::Extension {
                self.mark(&format!("forward:{}:{}", s.reason.as_str(), s.target));
            }
            let ring = s
                .ring_s
                .map_or(timeout, |r| timeout.min(Duration::from_secs(r as u64)));
            last = self
                .dial_targets(&[parse_target(&s.target)], ring, caller_id.clone())
                .await?;
            let missed = match last.status {
                DialStatus::Completed => return Ok(last),
                DialStatus::NoAnswer => Missed::NoAnswer,
                DialStatus::Busy => Missed::Busy,
                DialStatus::Failed => Missed::Failed,
            };
            step = rules.next(&s, missed);
        }
        Ok(last)
    }

    /// Rings `targets` (no forwarding), connects the first to answer.
    pub(crate) async fn dial_targets(
        &mut self,
        targets: &[Target],
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, Error> {
        self.check_live()?;
        // Answer on answer: a caller the plugin has not answered hears the
        // ringing as early media (183) and is answered only when a callee
        // answers, so an unanswered call is never billed, and a caller who
        // gives up gets 487.
        self.pre_answer()?;
        let node = self.node.clone();
        let ready = |agent: &str| node.presence.ready_now(agent);
        let mut marks = Vec::new();
        let plans = targets::plans(&node, targets, &self.caller, &ready, &mut |m| marks.push(m))?;
        for m in marks {
            self.mark(&m);
        }
        self.mark(&format!("dial:{}", targets::label(targets)));
        if plans.is_empty() {
            self.mark("dial:failed");
            return Ok(DialOutcome::missed(DialStatus::Failed));
        }
        let from_user = caller_id.unwrap_or_else(|| self.caller.clone());
        let mut attempts = Attempts::new(node.clone(), self.sip.clone());
        for p in &plans {
            attempts.push(Attempt::new(&p.label, p.group.clone(), p.agent, &from_user));
        }
        let mut ringer = Ringer::new(plans, timeout, !self.placeholder());
        // Ringback until someone answers.
        self.ringback();
        let outcome = self.ring(&mut ringer, &mut attempts).await;
        self.media.stop(self.leg);
        // Agents, legs and ports back (the same happens if this future is
        // dropped before here: a budget, a trap).
        drop(attempts);
        match &outcome {
            Ok(o) => self.mark(&format!("dial:{}", status_str(o.status))),
            Err(_) => self.mark("dial:caller-hangup"),
        }
        outcome
    }

    /// Rings targets one after the other, each for `timeout`, until one answers
    /// (or the caller leaves). `answered_target` indexes `targets`.
    pub async fn dial_sequential(
        &mut self,
        targets: &[Target],
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, Error> {
        let mut last = DialOutcome::missed(DialStatus::Failed);
        let mut busy = false;
        for (i, t) in targets.iter().enumerate() {
            let out = self
                .dial(std::slice::from_ref(t), timeout, caller_id.clone())
                .await?;
            if out.status == DialStatus::Completed {
                return Ok(DialOutcome {
                    answered_target: Some(i as u32),
                    ..out
                });
            }
            busy |= out.status == DialStatus::Busy;
            last = out;
        }
        if busy && last.status != DialStatus::NoAnswer {
            last.status = DialStatus::Busy;
        }
        Ok(last)
    }

    /// Sends the INVITE for one route of an attempt; returns its Call-ID.
    fn start_route(
        &mut self,
        route: &Route,
        from_user: &str,
        label: &str,
        local: SocketAddr,
        leg: LegId,
    ) -> String {
        let call_id = format!("{:016x}@hookline", rand::random::<u64>());
        let from_user = route
            .caller_id
            .clone()
            .unwrap_or_else(|| from_user.to_string());
        self.store
            .leg_started(&call_id, &from_user, label, &self.call_id);
        if let Some(trunk) = &route.via {
            self.mark(&format!("trunk:{trunk}"));
        }
        if self.max_forwards == 0 {
            // The call came with Max-Forwards 0: forwarding it would loop
            // on (483 Too Many Hops), so this leg fails at once.
            self.mark("max-forwards:exhausted");
            let _ = self.events_tx.send(CallEvent::Outbound {
                call_id: call_id.clone(),
                event: crate::sip::uac::UacEvent::Failed { code: 483 },
            });
            return call_id;
        }
        let offer = sdp::offer(local, self.codec, leg);
        let command = match &route.reach {
            Reach::Sip { uri, dest } => SipCommand::Dial {
                dial: Dial {
                    call_id: call_id.clone(),
                    target: uri.clone(),
                    dest: *dest,
                    from_user,
                    from_name: None,
                    sdp: offer,
                    auth: route.auth.clone(),
                    max_forwards: self.max_forwards - 1,
                },
                events: self.events_tx.clone(),
            },
            Reach::Browser { user } => SipCommand::RingBrowser {
                call_id: call_id.clone(),
                user: user.clone(),
                from: from_user,
                sdp: offer,
                events: self.events_tx.clone(),
            },
        };
        let _ = self.sip.send(command);
        call_id
    }

    /// Drives the ringer until someone answers (then talks) or nobody will.
    async fn ring(
        &mut self,
        ringer: &mut Ringer,
        attempts: &mut Attempts,
    ) -> Result<DialOutcome, Error> {
        let t0 = tokio::time::Instant::now();
        let node = self.node.clone();
        let ready = |agent: &str| node.presence.ready_now(agent);
        ringer.handle_timeout(Duration::ZERO, &ready);
        let outcome = loop {
            self.apply(ringer, attempts, t0, &ready);
            if let Some(outcome) = ringer.outcome() {
                break outcome.clone();
            }
            let wake = t0
                + ringer
                    .poll_timeout()
                    .unwrap_or(Duration::from_secs(24 * 3600));
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Outbound { call_id, event } => {
                        let Some(ring) = attempts.iter().position(|a| a.open && a.call_id == call_id) else {
                            continue; // a leg already over: the CANCEL's 487, late responses
                        };
                        ringer.handle(t0.elapsed(), Input::Sip { ring, event }, &ready);
                    }
                    ev @ CallEvent::Ended(_) => {
                        self.absorb(ev);
                        ringer.handle(t0.elapsed(), Input::CallerGone, &ready);
                    }
                    other => self.absorb(other),
                },
                _ = tokio::time::sleep_until(wake) => ringer.handle_timeout(t0.elapsed(), &ready),
            }
        };
        let (winner, media, after) = match outcome {
            Outcome::Answered { ring, media, after } => (ring, media, after),
            Outcome::Missed(status) => {
                self.count_groups(attempts, None, GroupOutcome::Missed);
                return Ok(DialOutcome::missed(status));
            }
            Outcome::CallerGone => {
                self.count_groups(attempts, None, GroupOutcome::Abandoned);
                return Err(Error::HungUp);
            }
        };
        let a = &attempts[winner];
        self.media
            .set_remote(a.leg, media.remote, media.codec, media.dtmf_pt);
        // The callee's answer is recorded first, so the caller's never
        // reads as earlier.
        self.store.call_answered(&a.call_id);
        if !self.placeholder() {
            // Connected now, not a ring earlier.
            self.answer()?;
            self.media.bridge(self.leg, a.leg);
        }
        let ring_ms = after.as_millis() as u64;
        self.count_groups(attempts, Some(winner), GroupOutcome::Answered { ring_ms });
        if attempts[winner].group.is_some() {
            // The base of the agent's conversion rate.
            self.node.add_agent_results(&attempts[winner].label, 1, 0);
        }
        self.mark(&format!("answered:{}", attempts[winner].label));
        attempts[winner].talked = true;
        self.connected_at = Some(Instant::now());
        let target = ringer.plan(winner).target;
        if self.placeholder() {
            // A call the node places: whoever answered becomes its own leg
            // (the agent of a callback), kept busy until the session ends.
            let a = &mut attempts[winner];
            // The session owns this leg from here (its record, port, agent).
            a.open = false;
            self.adopted = Some(super::session::Adopted {
                call_id: a.call_id.clone(),
                port: std::mem::take(&mut a.port),
                label: a.label.clone(),
                reserved: std::mem::take(&mut a.reserved),
                codec: media.codec.name(),
            });
            self.leg = a.leg;
            self.codec = media.codec;
            self.keep_media_flowing();
            return Ok(DialOutcome {
                status: DialStatus::Completed,
                answered_target: Some(target),
                talk_seconds: 0,
            });
        }
        self.talk(attempts, winner, target, media.codec.name())
            .await
    }

    /// Does what the ringer asked, in order; a leg with no media port free
    /// is reported back and the ringer moves on.
    fn apply(
        &mut self,
        ringer: &mut Ringer,
        attempts: &mut Attempts,
        t0: tokio::time::Instant,
        ready: &dyn Fn(&str) -> bool,
    ) {
        while let Some(action) = ringer.poll_action() {
            match action {
                Action::Invite { ring, route } => {
                    let a = &mut attempts[ring];
                    let first = a.call_id.is_empty();
                    if a.port == 0 {
                        let Some((leg, port, local)) = self.open_leg(&route) else {
                            ringer.handle(t0.elapsed(), Input::NoMedia { ring }, ready);
                            continue;
                        };
                        (a.leg, a.port, a.local) = (leg, port, local);
                    }
                    // A failover or redirect is recorded under whom it reaches.
                    let label = if first {
                        a.label.clone()
                    } else {
                        route.label().to_string()
                    };
                    if !first && route.via.is_none() {
                        self.mark(&format!("redirect:{label}"));
                    }
                    let (from, local, leg) = (a.from_user.clone(), a.local, a.leg);
                    let call_id = self.start_route(&route, &from, &label, local, leg);
                    let a = &mut attempts[ring];
                    a.call_id = call_id;
                    a.open = true;
                    if a.agent && !a.reserved {
                        self.node.presence.busy(&a.label);
                        a.reserved = true;
                    }
                }
                Action::Close {
                    ring,
                    cause,
                    cancel,
                } => {
                    let a = &mut attempts[ring];
                    a.open = false;
                    let call_id = a.call_id.clone();
                    if cancel {
                        let _ = self.sip.send(SipCommand::Hangup {
                            call_id: call_id.clone(),
                        });
                    } else {
                        // Over at the far end: nothing more to hear from it.
                        let _ = self.sip.send(SipCommand::Finished {
                            call_id: call_id.clone(),
                        });
                    }
                    self.store.call_ended(&call_id, &cause, vec![]);
                }
                Action::Release { ring } => attempts.release(ring),
                Action::Skipped { ring } => {
                    self.mark(&format!("skipped:{}", attempts[ring].label));
                }
                Action::EarlyMedia { ring, media } => {
                    // Early media (183 + SDP): the caller hears the callee's
                    // tones instead of ringback.
                    let leg = attempts[ring].leg;
                    self.media
                        .set_remote(leg, media.remote, media.codec, media.dtmf_pt);
                    self.media.bridge(self.leg, leg);
                    self.mark("early-media");
                }
                Action::EarlyMediaOver { ring } => {
                    self.media.unbridge(self.leg, attempts[ring].leg);
                    self.ringback();
                }
            }
        }
    }

    /// A node-placed call that has no leg of its own yet.
    pub(crate) fn placeholder(&self) -> bool {
        self.originating && self.adopted.is_none()
    }

    /// Connected until one side hangs up.
    async fn talk(
        &mut self,
        attempts: &mut [Attempt],
        winner: usize,
        target: u32,
        codec: &str,
    ) -> Result<DialOutcome, Error> {
        let answered_at = Instant::now();
        let call_id = attempts[winner].call_id.clone();
        let leg = attempts[winner].leg;
        // Connected until one side hangs up.
        loop {
            match self.next_event().await {
                CallEvent::Outbound {
                    call_id: c,
                    event: UacEvent::RemoteBye,
                } if c == call_id => {
                    self.media.unbridge(self.leg, leg);
                    self.store
                        .call_ended(&call_id, "callee-bye", vec![format!("codec:{codec}")]);
                    attempts[winner].open = false;
                    return Ok(DialOutcome {
                        status: DialStatus::Completed,
                        answered_target: Some(target),
                        talk_seconds: answered_at.elapsed().as_secs() as u32,
                    });
                }
                ev @ CallEvent::Ended(_) => {
                    let cause = match &ev {
                        CallEvent::Ended(EndCause::RtpTimeout) => "caller-rtp-timeout",
                        _ => "caller-bye",
                    };
                    self.absorb(ev);
                    self.media.unbridge(self.leg, leg);
                    let _ = self.sip.send(SipCommand::Hangup {
                        call_id: call_id.clone(),
                    });
                    self.store
                        .call_ended(&call_id, cause, vec![format!("codec:{codec}")]);
                    attempts[winner].open = false;
                    return Err(Error::HungUp);
                }
                other => self.absorb(other),
            }
        }
    }

    /// An outbound leg's media: a port and an engine leg beside the caller's.
    fn open_leg(&self, route: &Route) -> Option<(LegId, u16, SocketAddr)> {
        let node = &self.node;
        let (socket, port) = node.ports.bind().ok()?;
        let leg = self.media.new_leg_id(Some(self.leg));
        let local = SocketAddr::new(node.media_ip_for(route.media_peer()), port);
        node.media.add_leg(LegSetup {
            id: leg,
            socket,
            // Nothing is sent on the leg until it answers and `set_remote` says where.
            remote: SocketAddr::new(local.ip(), 9),
            codec: self.codec,
            dtmf_pt: None,
            inband_dtmf: false,
            rtp_timeout: None,
            latch: false,
            rtcp: node.ports.bind_rtcp(port),
            events: if self.placeholder() {
                // The leg may become the session's own: its plays must report back.
                let tx = self.events_tx.clone();
                Box::new(move |e| {
                    if matches!(e, MediaEvent::PlayDone { .. }) {
                        let _ = tx.send(CallEvent::Media(e));
                    }
                })
            } else {
                Box::new(|_| {})
            },
        });
        Some((leg, port, local))
    }

    /// Counts the call in the metrics of every group it rang: `outcome` for
    /// the winner's group, missed for the others.
    fn count_groups(&self, attempts: &[Attempt], winner: Option<usize>, outcome: GroupOutcome) {
        let won = winner.and_then(|w| attempts[w].group.as_deref());
        let mut seen: Vec<&str> = Vec::new();
        for g in attempts.iter().filter_map(|a| a.group.as_deref()) {
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
            let o = match (winner, won == Some(g)) {
                (Some(_), false) => GroupOutcome::Missed,
                _ => outcome,
            };
            self.node.presence.group_call(g, o);
        }
    }

    /// Plays the ringback cadence to the caller until stopped.
    fn ringback(&mut self) {
        if self.music.is_some() {
            return self.hold_music(); // queued callers keep their music while agents ring
        }
        if let Some(tone) = self.prompts.get("ringback") {
            self.media.play(self.leg, vec![tone], u64::MAX);
            self.media.loop_play(self.leg);
        }
    }
}

fn status_str(s: DialStatus) -> &'static str {
    match s {
        DialStatus::Completed => "completed",
        DialStatus::NoAnswer => "no-answer",
        DialStatus::Busy => "busy",
        DialStatus::Failed => "failed",
    }
}
