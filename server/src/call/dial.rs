//! The `dial` verb: ring targets at once, connect the first to answer, and
//! hold the bridge until one side hangs up. Each outbound leg gets its own
//! RTP port and call record (linked to the caller's by `parent`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::attempts::{Attempt, Attempts, Slot, AT_ONCE};
use super::forwarding::{ExtensionState, Forwarding, Missed, Reason as ForwardReason};
use super::presence::GroupOutcome;
use super::session::{CallEvent, CallSession};
use super::SipCommand;
use crate::config::RingStrategy;
use crate::media::worker::{LegId, LegSetup, MediaEvent};
use crate::plugin::CallError;
use crate::sip::endpoint::EndCause;
use crate::sip::uac::{Dial, UacEvent};
use crate::sip::{message, sdp};

/// Whom to call.
#[derive(Debug, Clone)]
pub enum Target {
    Extension(String),
    Uri(String),
    /// A phone number, out through the configured trunks in order.
    Number(String),
    /// A phone number through one named trunk.
    Trunk {
        trunk: String,
        number: String,
    },
}

/// One way to reach a target: where to send the INVITE and as whom.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    uri: String,
    dest: SocketAddr,
    auth: Option<(String, String)>,
    caller_id: Option<String>,
    /// Trunk name, for the call record.
    via: Option<String>,
}

impl Route {
    /// Straight to an address: no credentials, the caller's ID.
    fn direct(uri: String, dest: SocketAddr) -> Route {
        Route {
            uri,
            dest,
            auth: None,
            caller_id: None,
            via: None,
        }
    }
}

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

/// One way to reach one target, and when it rings.
struct Contact {
    target: u32,
    /// Who rings (the extension, a group member, the number).
    label: String,
    routes: Vec<Route>,
    slot: Slot,
    /// An extension or a group member: busy while connected.
    agent: bool,
    /// The ring group this contact rings for.
    group: Option<String>,
}

/// Responses that mean "this carrier failed", not "this callee declined".
fn fails_over(code: u16) -> bool {
    code == 408 || (500..600).contains(&code)
}

/// A SIP URI with a numeric host: `sip:user@1.2.3.4:5060` -> the address.
fn uri_dest(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let host_port = rest.rsplit('@').next()?.split(';').next()?;
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Some(addr);
    }
    host_port
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

/// Where an extension rings: every registered contact, and its browser if
/// one is logged in.
fn extension_routes(node: &super::Node, user: &str, now_unix: u64) -> Vec<Route> {
    let bindings = node
        .registrar
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .lookup(user, now_unix);
    let direct = Route::direct;
    let mut routes: Vec<Route> = bindings
        .into_iter()
        .map(|b| direct(b.contact, b.source))
        .collect();
    if node.webrtc.agents.is_online(user) {
        let nowhere = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0);
        routes.push(direct(format!("webrtc:{user}"), nowhere));
    }
    routes
}

/// A dial string from config: `tel:<number>`, `sip:<uri>`, else an extension or group.
pub fn parse_target(s: &str) -> Target {
    if s.starts_with("sip:") {
        Target::Uri(s.to_string())
    } else if let Some(number) = s.strip_prefix("tel:") {
        Target::Number(number.to_string())
    } else {
        Target::Extension(s.to_string())
    }
}

/// A number's routes: every trunk (or the one named), in failover order.
fn trunk_routes(node: &super::Node, number: &str, only: Option<&str>) -> Vec<Route> {
    node.config
        .trunks
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.name))
        .map(|t| Route {
            uri: format!("sip:{}{number}@{}", t.prefix, t.address),
            dest: t.address,
            auth: t.username.clone().zip(t.password.clone()),
            caller_id: t.caller_id.clone(),
            via: Some(t.name.clone()),
        })
        .collect()
}

/// A group member's devices, each with its routes in failover order: an
/// extension's registered phones and browser, a `sip:` URI, or a `tel:`
/// number out through the trunks. Its name for records and presence.
pub(crate) fn member_devices(
    node: &super::Node,
    member: &str,
    now_unix: u64,
) -> (String, Vec<Vec<Route>>) {
    if let Some(number) = member.strip_prefix("tel:") {
        let routes = trunk_routes(node, number, None);
        let devices = if routes.is_empty() {
            vec![]
        } else {
            vec![routes]
        };
        return (number.to_string(), devices);
    }
    if member.starts_with("sip:") {
        let devices = uri_dest(member)
            .map(|dest| vec![vec![Route::direct(member.to_string(), dest)]])
            .unwrap_or_default();
        return (message::user_of(member).to_string(), devices);
    }
    let devices = extension_routes(node, member, now_unix)
        .into_iter()
        .map(|r| vec![r])
        .collect();
    (member.to_string(), devices)
}

impl CallSession {
    /// Rings `targets`, connects the first to answer; see the WIT `dial`. A
    /// single extension with forwarding rules is dialled by its rules.
    pub async fn dial(
        &mut self,
        targets: &[Target],
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, CallError> {
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
    ) -> Result<DialOutcome, CallError> {
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
    ) -> Result<DialOutcome, CallError> {
        self.check_live()?;
        // Answer on answer: a caller the plugin has not answered hears the
        // ringing as early media (183) and is answered only when a callee
        // answers, so an unanswered call is never billed, and a caller who
        // gives up gets 487.
        self.pre_answer()?;
        let node = self.node.clone();
        let now_unix = crate::store::now_ms() as u64 / 1000;
        // Every reachable contact of every target; a number gets its trunks in failover order.
        let mut contacts: Vec<Contact> = Vec::new();
        let at_once = |target: u32, label: &str, routes: Vec<Route>, agent: bool| Contact {
            target,
            label: label.to_string(),
            routes,
            slot: AT_ONCE,
            agent,
            group: None,
        };
        let direct = Route::direct;
        for (i, t) in targets.iter().enumerate() {
            let i = i as u32;
            match t {
                Target::Extension(name) if node.config.group(name).is_some() => {
                    let Some(group) = node.config.group(name) else {
                        continue;
                    };
                    self.mark(&format!("group:{}:{}", group.name, group.strategy.as_str()));
                    // Busy and do-not-disturb agents are skipped, unreachable ones too;
                    // turns are counted over the agents that can ring.
                    let step = Duration::from_secs(group.step_s);
                    // A key client's personal manager, if free, has the first turn alone.
                    let manager = group
                        .managers
                        .get(&self.caller)
                        .map(|m| member_devices(&node, m, now_unix))
                        .filter(|(m, devices)| {
                            !devices.is_empty()
                                && node.presence.state(m).ready(crate::store::now_ms())
                        });
                    let head_start = if manager.is_some() {
                        step
                    } else {
                        Duration::ZERO
                    };
                    let manager_name = manager.as_ref().map(|(m, _)| m.clone());
                    if let Some((m, devices)) = manager {
                        self.mark(&format!("manager:{m}"));
                        for routes in devices {
                            contacts.push(Contact {
                                slot: Slot {
                                    start: Duration::ZERO,
                                    stop: Some(step),
                                },
                                group: Some(group.name.clone()),
                                ..at_once(i, &m, routes, true)
                            });
                        }
                    }
                    let reachable: Vec<(String, Vec<Vec<Route>>)> = node
                        .presence
                        .ring_order(&group.members, group.strategy, group.rank)
                        .into_iter()
                        .map(|m| member_devices(&node, &m, now_unix))
                        .filter(|(m, devices)| {
                            !devices.is_empty() && Some(m) != manager_name.as_ref()
                        })
                        .collect();
                    let last = reachable.len().saturating_sub(1) as u32;
                    for (turn, (member, devices)) in (0u32..).zip(reachable) {
                        let slot = match group.strategy {
                            RingStrategy::All => Slot {
                                start: head_start,
                                stop: None,
                            },
                            RingStrategy::Cascade => Slot {
                                start: head_start + step * turn,
                                stop: None,
                            },
                            // The last agent rings until the dial's time is up.
                            RingStrategy::InTurn | RingStrategy::Uniform => Slot {
                                start: head_start + step * turn,
                                stop: (turn < last).then(|| head_start + step * (turn + 1)),
                            },
                        };
                        for routes in devices {
                            contacts.push(Contact {
                                slot,
                                group: Some(group.name.clone()),
                                ..at_once(i, &member, routes, true)
                            });
                        }
                    }
                }
                Target::Extension(user) => {
                    for route in extension_routes(&node, user, now_unix) {
                        contacts.push(at_once(i, user, vec![route], true));
                    }
                }
                Target::Uri(uri) => match uri_dest(uri) {
                    Some(dest) => {
                        let label = message::user_of(uri).to_string();
                        contacts.push(at_once(i, &label, vec![direct(uri.clone(), dest)], false));
                    }
                    None => {
                        return Err(CallError::InvalidArgument(format!(
                            "not a SIP URI with a numeric host: {uri}"
                        )))
                    }
                },
                Target::Number(number) | Target::Trunk { number, .. } => {
                    let valid = !number.is_empty()
                        && number
                            .chars()
                            .all(|c| c.is_ascii_digit() || "+*#".contains(c));
                    if !valid {
                        return Err(CallError::InvalidArgument(format!(
                            "not a phone number: {number:?}"
                        )));
                    }
                    let only = match t {
                        Target::Trunk { trunk, .. } => {
                            if !node.config.trunks.iter().any(|x| &x.name == trunk) {
                                return Err(CallError::InvalidArgument(format!(
                                    "no trunk named {trunk:?}"
                                )));
                            }
                            Some(trunk.as_str())
                        }
                        _ => None,
                    };
                    let routes = trunk_routes(&node, number, only);
                    if !routes.is_empty() {
                        contacts.push(at_once(i, number, routes, false));
                    }
                }
            }
        }
        let label: Vec<String> = targets
            .iter()
            .map(|t| match t {
                Target::Extension(e) => e.clone(),
                Target::Uri(u) => message::user_of(u).to_string(),
                Target::Number(n) | Target::Trunk { number: n, .. } => n.clone(),
            })
            .collect();
        self.mark(&format!("dial:{}", label.join(",")));
        if contacts.is_empty() {
            self.mark("dial:failed");
            return Ok(DialOutcome::missed(DialStatus::Failed));
        }
        let from_user = caller_id.unwrap_or_else(|| self.caller.clone());
        let mut attempts = Attempts::new(node.clone(), self.sip.clone());
        for contact in contacts {
            let mut routes: std::collections::VecDeque<Route> = contact.routes.into();
            let Some(route) = routes.pop_front() else {
                continue;
            };
            // A later turn gets its media port when its turn comes.
            let started = contact.slot.start.is_zero();
            let (leg, port, local) = if started {
                match self.open_leg(&route) {
                    Some(l) => l,
                    None => continue,
                }
            } else {
                (0, 0, SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0))
            };
            let call_id = if started {
                self.start_route(&route, &from_user, &contact.label, local, leg)
            } else {
                String::new()
            };
            let reserved = started && contact.agent;
            if reserved {
                node.presence.busy(&contact.label);
            }
            attempts.push(Attempt {
                target: contact.target,
                label: contact.label,
                slot: contact.slot,
                agent: contact.agent,
                started,
                unanswered: false,
                reserved,
                group: contact.group,
                first: (!started).then_some(route),
                call_id,
                leg,
                port,
                local,
                done: false,
                busy: false,
                failover: routes,
                from_user: from_user.clone(),
                redirects: 0,
                talked: false,
                open: started,
            });
        }
        // Ringback until someone answers.
        self.ringback();
        let outcome = self.ring_and_talk(&mut attempts[..], timeout).await;
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
    ) -> Result<DialOutcome, CallError> {
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
        let _ = self.sip.send(SipCommand::Dial {
            dial: Dial {
                call_id: call_id.clone(),
                target: route.uri.clone(),
                dest: route.dest,
                from_user,
                from_name: None,
                sdp: sdp::offer(local, self.codec, leg),
                auth: route.auth.clone(),
                max_forwards: self.max_forwards - 1,
            },
            events: self.events_tx.clone(),
        });
        call_id
    }

    async fn ring_and_talk(
        &mut self,
        attempts: &mut [Attempt],
        timeout: Duration,
    ) -> Result<DialOutcome, CallError> {
        let t0 = tokio::time::Instant::now();
        let deadline = t0 + timeout;
        // The attempt whose early media the caller hears, if any.
        let mut early: Option<usize> = None;
        // Ringing.
        // The answering leg's codec, for its call record.
        let codec;
        let winner = loop {
            let wake = self.turns(attempts, t0, &mut early);
            if attempts.iter().all(|a| a.done) {
                let status = if attempts.iter().any(|a| a.busy) {
                    DialStatus::Busy
                } else if attempts.iter().any(|a| a.unanswered) {
                    DialStatus::NoAnswer
                } else {
                    DialStatus::Failed
                };
                self.count_groups(attempts, None, GroupOutcome::Missed);
                return Ok(DialOutcome::missed(status));
            }
            let ev = tokio::select! {
                ev = self.next_event() => ev,
                _ = tokio::time::sleep_until(deadline.min(wake)) => {
                    if tokio::time::Instant::now() < deadline {
                        continue; // a group's next turn
                    }
                    self.end_attempts(attempts, None, "no-answer");
                    self.count_groups(attempts, None, GroupOutcome::Missed);
                    return Ok(DialOutcome::missed(DialStatus::NoAnswer));
                }
            };
            match ev {
                CallEvent::Outbound { call_id, event } => {
                    let Some(i) = attempts.iter().position(|a| a.call_id == call_id) else {
                        continue;
                    };
                    if attempts[i].done {
                        continue; // its turn is over: the CANCEL's 487, late responses
                    }
                    match event {
                        UacEvent::Progress {
                            sdp: Some(body), ..
                        } if early.is_none() && !self.placeholder() => {
                            // Early media (183 + SDP): the caller hears the callee's tones instead of ringback.
                            if let Ok(neg) = sdp::negotiate(body.as_bytes()) {
                                self.media.set_remote(
                                    attempts[i].leg,
                                    neg.remote,
                                    neg.codec,
                                    neg.dtmf_pt,
                                );
                                self.media.bridge(self.leg, attempts[i].leg);
                                self.mark("early-media");
                                early = Some(i);
                            }
                        }
                        UacEvent::Progress { .. } => {}
                        UacEvent::Redirected { contact } => {
                            self.leave_early_media(&mut early, i, attempts[i].leg);
                            self.store.call_ended(&call_id, "redirected", vec![]);
                            attempts[i].open = false;
                            match uri_dest(&contact).filter(|_| attempts[i].redirects < 3) {
                                Some(dest) => {
                                    let route = Route {
                                        uri: contact,
                                        dest,
                                        auth: None,
                                        caller_id: None,
                                        via: None,
                                    };
                                    let label = message::user_of(&route.uri).to_string();
                                    self.mark(&format!("redirect:{label}"));
                                    let (local, leg) = (attempts[i].local, attempts[i].leg);
                                    let from = attempts[i].from_user.clone();
                                    attempts[i].redirects += 1;
                                    attempts[i].call_id =
                                        self.start_route(&route, &from, &label, local, leg);
                                    attempts[i].open = true;
                                }
                                None => attempts[i].done = true,
                            }
                        }
                        UacEvent::Answered { sdp: answer } => {
                            match sdp::negotiate(answer.as_bytes()) {
                                Ok(neg) => {
                                    let a = &attempts[i];
                                    self.media.set_remote(
                                        a.leg,
                                        neg.remote,
                                        neg.codec,
                                        neg.dtmf_pt,
                                    );
                                    // The callee's answer is recorded first, so
                                    // the caller's never reads as earlier.
                                    self.store.call_answered(&a.call_id);
                                    if !self.placeholder() {
                                        // Connected now, not a ring earlier.
                                        self.answer()?;
                                        self.media.bridge(self.leg, a.leg);
                                    }
                                    codec = neg.codec;
                                    break i;
                                }
                                Err(e) => {
                                    tracing::warn!(call = %self.call_id, "callee's SDP answer: {e}");
                                    let _ = self.sip.send(SipCommand::Hangup {
                                        call_id: call_id.clone(),
                                    });
                                    attempts[i].done = true;
                                    attempts[i].open = false;
                                    self.store.call_ended(&call_id, "bad-sdp-answer", vec![]);
                                }
                            }
                        }
                        UacEvent::Failed { code } => {
                            self.leave_early_media(&mut early, i, attempts[i].leg);
                            self.store
                                .call_ended(&call_id, &format!("sip-{code}"), vec![]);
                            attempts[i].open = false;
                            let next = if fails_over(code) {
                                attempts[i].failover.pop_front()
                            } else {
                                None
                            };
                            match next {
                                Some(route) => {
                                    // The carrier failed: the same leg goes out through the next trunk.
                                    let label = message::user_of(&route.uri).to_string();
                                    let (local, leg) = (attempts[i].local, attempts[i].leg);
                                    let from = attempts[i].from_user.clone();
                                    attempts[i].call_id =
                                        self.start_route(&route, &from, &label, local, leg);
                                    attempts[i].open = true;
                                }
                                None => {
                                    attempts[i].done = true;
                                    attempts[i].busy = matches!(code, 486 | 600);
                                }
                            }
                        }
                        UacEvent::RemoteBye => {
                            // Hung up before it was answered (a 200 we
                            // never saw): its record ends here.
                            attempts[i].done = true;
                            attempts[i].open = false;
                            self.store.call_ended(&call_id, "callee-bye", vec![]);
                        }
                    }
                }
                ev @ CallEvent::Ended(_) => {
                    self.absorb(ev);
                    self.end_attempts(attempts, None, "caller-hangup");
                    self.count_groups(attempts, None, GroupOutcome::Abandoned);
                    return Err(CallError::HungUp);
                }
                other => self.absorb(other),
            }
        };
        let ring_ms = t0.elapsed().as_millis() as u64;
        self.count_groups(attempts, Some(winner), GroupOutcome::Answered { ring_ms });
        if attempts[winner].group.is_some() {
            // The base of the agent's conversion rate.
            self.node.add_agent_results(&attempts[winner].label, 1, 0);
        }
        self.end_attempts(attempts, Some(winner), "answered-elsewhere");
        self.mark(&format!("answered:{}", attempts[winner].label));
        attempts[winner].talked = true;
        // The others stop ringing: free for other calls; the winner stays busy
        // until the dial ends.
        for (i, a) in attempts.iter_mut().enumerate() {
            if i != winner {
                self.node.release_agent(a);
            }
        }
        self.connected_at = Some(Instant::now());
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
                codec: codec.name(),
            });
            self.leg = a.leg;
            self.codec = codec;
            return Ok(DialOutcome {
                status: DialStatus::Completed,
                answered_target: Some(a.target),
                talk_seconds: 0,
            });
        }
        self.talk(attempts, winner, codec.name()).await
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
        codec: &str,
    ) -> Result<DialOutcome, CallError> {
        let answered_at = Instant::now();
        let target = attempts[winner].target;
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
                    return Err(CallError::HungUp);
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
        let local = SocketAddr::new(node.media_ip_for(route.dest), port);
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

    /// Ring groups' turns: starts the legs whose turn has come and stops those
    /// whose turn is over; when nobody is left ringing, the next turn comes at
    /// once. Returns when the next turn is due.
    fn turns(
        &mut self,
        attempts: &mut [Attempt],
        t0: tokio::time::Instant,
        early: &mut Option<usize>,
    ) -> tokio::time::Instant {
        let elapsed = tokio::time::Instant::now() - t0;
        if !attempts.iter().any(|a| a.started && !a.done) {
            let next = attempts
                .iter()
                .filter(|a| !a.started && !a.done)
                .map(|a| a.slot.start)
                .min();
            if let Some(shift) = next.and_then(|n| n.checked_sub(elapsed)) {
                for a in attempts.iter_mut().filter(|a| !a.started) {
                    a.slot.start = a.slot.start.saturating_sub(shift);
                    a.slot.stop = a.slot.stop.map(|s| s.saturating_sub(shift));
                }
            }
        }
        for (i, a) in attempts.iter_mut().enumerate() {
            if a.done {
                continue;
            }
            if !a.started && a.slot.start <= elapsed {
                a.started = true;
                let Some(route) = a.first.take() else {
                    continue;
                };
                let Some((leg, port, local)) = self.open_leg(&route) else {
                    a.done = true; // no media port free: this agent is skipped
                    continue;
                };
                (a.leg, a.port, a.local) = (leg, port, local);
                let (label, from) = (a.label.clone(), a.from_user.clone());
                a.call_id = self.start_route(&route, &from, &label, local, leg);
                a.open = true;
                if a.agent {
                    self.node.presence.busy(&label);
                    a.reserved = true;
                }
            } else if a.started && a.slot.stop.is_some_and(|s| s <= elapsed) {
                a.done = true;
                a.unanswered = true;
                let (call_id, leg) = (a.call_id.clone(), a.leg);
                let _ = self.sip.send(SipCommand::Hangup {
                    call_id: call_id.clone(),
                });
                self.store.call_ended(&call_id, "next-agent", vec![]);
                a.open = false;
                self.leave_early_media(early, i, leg);
            }
        }
        let next = attempts
            .iter()
            .filter(|a| !a.done)
            .filter_map(|a| {
                if a.started {
                    a.slot.stop
                } else {
                    Some(a.slot.start)
                }
            })
            .min()
            .unwrap_or(Duration::from_secs(24 * 3600));
        t0 + next
    }

    /// Attempt `i` ended: if the caller heard its early media, back to ringback.
    fn leave_early_media(&mut self, early: &mut Option<usize>, i: usize, leg: LegId) {
        if *early == Some(i) {
            *early = None;
            self.media.unbridge(self.leg, leg);
            self.ringback();
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

    /// Stops every attempt still ringing except `keep`, recording why.
    fn end_attempts(&mut self, attempts: &mut [Attempt], keep: Option<usize>, cause: &str) {
        for (i, a) in attempts.iter_mut().enumerate() {
            if Some(i) == keep || a.done {
                continue;
            }
            a.done = true;
            if !a.started {
                continue; // its turn never came: nothing rang
            }
            let _ = self.sip.send(SipCommand::Hangup {
                call_id: a.call_id.clone(),
            });
            self.store.call_ended(&a.call_id, cause, vec![]);
            a.open = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_destinations() {
        assert_eq!(
            uri_dest("sip:a@127.0.0.1:5070"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            uri_dest("sip:a@127.0.0.1"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            uri_dest("sip:a@127.0.0.1:5070;transport=udp"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(uri_dest("sip:a@example.com"), None);
        assert_eq!(uri_dest("tel:+1"), None);
    }
}
