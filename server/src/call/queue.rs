//! Queues: callers wait in order for a department's agents, hearing music
//! (one decoded copy shared by every caller) and, every so often, their
//! position and the estimated wait (from the measured handle time). The head
//! of the queue (or the first N callers, N = free agents) is offered to the
//! group by its strategy; the caller can leave with a key, and a full queue
//! or a long wait returns to the plugin, whose no-answer action takes over.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::dial::{DialOutcome, DialStatus};
use super::error::Error;
use super::queue_wait::{QueueWait, Step, WaitRules};
use super::session::{CallEvent, CallSession};
use super::targets::Target;
pub use crate::config::QueueConfig;
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{PlayItem, SpeechText};
pub use crate::store::callbacks::PendingCallback;

/// Handle time assumed before any call was measured.
const DEFAULT_HANDLE: Duration = Duration::from_secs(120);

struct Waiting {
    ticket: u64,
    since: Instant,
    priority: u32,
    callback: Option<PendingCallback>,
}

#[derive(Default)]
pub(crate) struct QueueState {
    /// Callers (and kept places of callbacks) in order.
    waiting: VecDeque<Waiting>,
    callbacks_requested: u64,
    pub(crate) answered: u64,
    abandoned: u64,
    timed_out: u64,
    pub(crate) talk_ms_total: u64,
    /// Announcements made, and how late they came against their schedule.
    announcements: u64,
    announce_late_ms_total: u64,
    announce_late_ms_max: u64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Callers on the line and kept places of callbacks.
    pub waiting: usize,
    pub callbacks_waiting: usize,
    pub callbacks_requested: u64,
    pub longest_wait_ms: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub average_handle_ms: u64,
    pub announcements: u64,
    pub announce_late_ms_avg: u64,
    pub announce_late_ms_max: u64,
}

/// What the callback scheduler does about one queue on one look.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackWork {
    /// Window passed: call the customer, apologise, take a message.
    pub expire: Vec<PendingCallback>,
    /// Their turn came and agents are free: ring the agents, then them.
    pub serve: Vec<PendingCallback>,
}

/// Every queue's waiting callers, node-wide.
#[derive(Default)]
pub struct Queues {
    inner: Mutex<HashMap<String, QueueState>>,
    next_ticket: std::sync::atomic::AtomicU64,
}

impl Queues {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, QueueState>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins a queue behind everyone of the same or a higher priority;
    /// `None` when it is full.
    pub fn join(&self, queue: &str, max_len: usize, priority: u32) -> Option<u64> {
        self.join_at(queue, max_len, priority, Instant::now())
    }

    /// [`Queues::join`] at a given time (simulated in tests).
    pub fn join_at(&self, queue: &str, max_len: usize, priority: u32, now: Instant) -> Option<u64> {
        let mut all = self.lock();
        let q = all.entry(queue.to_string()).or_default();
        if q.waiting.len() >= max_len {
            return None;
        }
        Some(self.place(q, now, priority, None))
    }

    /// Puts a new place in its order: higher priorities first, then by
    /// when they joined. Returns its ticket.
    fn place(
        &self,
        q: &mut QueueState,
        since: Instant,
        priority: u32,
        callback: Option<PendingCallback>,
    ) -> u64 {
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = q
            .waiting
            .iter()
            .position(|w| w.priority < priority || (w.priority == priority && w.since > since))
            .unwrap_or(q.waiting.len());
        q.waiting.insert(
            at,
            Waiting {
                ticket,
                since,
                priority,
                callback,
            },
        );
        ticket
    }

    /// The caller of `ticket` hung up for a callback: their place stays.
    pub fn to_callback(&self, queue: &str, ticket: u64, cb: PendingCallback) {
        if let Some(q) = self.lock().get_mut(queue) {
            if let Some(w) = q.waiting.iter_mut().find(|w| w.ticket == ticket) {
                w.callback = Some(cb);
                q.callbacks_requested += 1;
            }
        }
    }

    /// Puts a stored callback back in its place (after a restart): before
    /// every caller who joined later.
    pub fn restore(&self, queue: &str, cb: PendingCallback) {
        let age_ms = (crate::store::now_ms() - cb.joined_ms).max(0) as u64;
        let since = Instant::now()
            .checked_sub(Duration::from_millis(age_ms))
            .unwrap_or_else(Instant::now);
        let mut all = self.lock();
        let q = all.entry(queue.to_string()).or_default();
        self.place(q, since, 0, Some(cb));
    }

    /// How long the caller of `ticket` has waited.
    pub fn waited(&self, queue: &str, ticket: u64) -> Duration {
        let all = self.lock();
        all.get(queue)
            .and_then(|q| q.waiting.iter().find(|w| w.ticket == ticket))
            .map(|w| w.since.elapsed())
            .unwrap_or_default()
    }

    /// Whether `ticket` became a callback.
    #[cfg(test)]
    pub fn is_callback(&self, queue: &str, ticket: u64) -> bool {
        let all = self.lock();
        all.get(queue)
            .and_then(|q| q.waiting.iter().find(|w| w.ticket == ticket))
            .is_some_and(|w| w.callback.is_some())
    }

    /// Callbacks whose turn has come (among the first `free` places) and
    /// that nobody serves yet; they are marked in progress.
    pub fn callbacks_due(&self, queue: &str, free: usize) -> Vec<PendingCallback> {
        let mut all = self.lock();
        let Some(q) = all.get_mut(queue) else {
            return Vec::new();
        };
        take_callbacks(q.waiting.iter_mut().take(free), |_| true)
    }

    /// Callbacks that waited longer than `window` at `now` (not being
    /// served); they are marked in progress.
    pub fn callbacks_expired(
        &self,
        queue: &str,
        window: Duration,
        now: Instant,
    ) -> Vec<PendingCallback> {
        let mut all = self.lock();
        let Some(q) = all.get_mut(queue) else {
            return Vec::new();
        };
        take_callbacks(q.waiting.iter_mut(), |w| {
            now.saturating_duration_since(w.since) >= window
        })
    }

    /// One look at a queue's kept places at `now` with `free` agents: the
    /// callbacks whose window passed are given up first (so one is never
    /// both expired and served), then those whose turn came are served.
    pub fn callback_work(
        &self,
        queue: &str,
        window: Duration,
        free: usize,
        now: Instant,
    ) -> CallbackWork {
        let expire = self.callbacks_expired(queue, window, now);
        let serve = if free > 0 {
            self.callbacks_due(queue, free)
        } else {
            Vec::new()
        };
        CallbackWork { expire, serve }
    }

    /// A callback's attempt ended without serving it: it waits again, in its place.
    pub fn callback_retry(&self, queue: &str, id: &str) {
        if let Some(q) = self.lock().get_mut(queue) {
            for w in q.waiting.iter_mut() {
                if let Some(cb) = w.callback.as_mut().filter(|cb| cb.id == id) {
                    cb.in_progress = false;
                }
            }
        }
    }

    /// A callback was served (or given up): its place is freed.
    pub fn callback_done(&self, queue: &str, id: &str) {
        if let Some(q) = self.lock().get_mut(queue) {
            q.waiting
                .retain(|w| w.callback.as_ref().is_none_or(|cb| cb.id != id));
        }
    }

    /// Whether any place in `queue` is kept for a callback.
    pub fn has_callbacks(&self, queue: &str) -> bool {
        self.lock()
            .get(queue)
            .is_some_and(|q| q.waiting.iter().any(|w| w.callback.is_some()))
    }

    /// Every kept place, with its queue and 1-based position.
    pub fn callbacks(&self) -> Vec<(String, usize, PendingCallback)> {
        let all = self.lock();
        let mut out = Vec::new();
        for (name, q) in all.iter() {
            for (i, w) in q.waiting.iter().enumerate() {
                if let Some(cb) = &w.callback {
                    out.push((name.clone(), i + 1, cb.clone()));
                }
            }
        }
        out
    }

    /// 1-based place in the queue.
    pub fn position(&self, queue: &str, ticket: u64) -> Option<usize> {
        let all = self.lock();
        let q = all.get(queue)?;
        q.waiting
            .iter()
            .position(|w| w.ticket == ticket)
            .map(|p| p + 1)
    }

    fn leave(&self, queue: &str, ticket: u64) {
        if let Some(q) = self.lock().get_mut(queue) {
            // A callback keeps its place after its caller has gone.
            q.waiting
                .retain(|w| w.ticket != ticket || w.callback.is_some());
        }
    }

    pub(crate) fn count(&self, queue: &str, f: impl FnOnce(&mut QueueState)) {
        f(self.lock().entry(queue.to_string()).or_default())
    }

    /// Average talk time of answered calls.
    pub fn average_handle(&self, queue: &str) -> Duration {
        let all = self.lock();
        match all.get(queue) {
            Some(q) if q.answered > 0 => Duration::from_millis(q.talk_ms_total / q.answered),
            _ => DEFAULT_HANDLE,
        }
    }

    pub fn stats(&self) -> BTreeMap<String, QueueStats> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(name, q)| {
                let longest = q.waiting.front().map(|w| now - w.since).unwrap_or_default();
                (
                    name.clone(),
                    QueueStats {
                        waiting: q.waiting.len(),
                        callbacks_waiting: q
                            .waiting
                            .iter()
                            .filter(|w| w.callback.is_some())
                            .count(),
                        callbacks_requested: q.callbacks_requested,
                        longest_wait_ms: longest.as_millis() as u64,
                        answered: q.answered,
                        abandoned: q.abandoned,
                        timed_out: q.timed_out,
                        average_handle_ms: q.talk_ms_total.checked_div(q.answered).unwrap_or(0),
                        announcements: q.announcements,
                        announce_late_ms_avg: q
                            .announce_late_ms_total
                            .checked_div(q.announcements)
                            .unwrap_or(0),
                        announce_late_ms_max: q.announce_late_ms_max,
                    },
                )
            })
            .collect()
    }

    /// Prometheus lines per queue.
    /// Each queue's figures, labelled by queue.
    pub fn metrics(&self, m: &mut crate::metrics::Scrape) {
        for (name, s) in self.stats() {
            let q = &[("queue", name.as_str())];
            let n = |v: usize| v as i64;
            m.gauge_with(
                "hookline_queue_waiting",
                "Callers waiting, kept callbacks included.",
                q,
                n(s.waiting),
            );
            m.gauge_with(
                "hookline_queue_callbacks_waiting",
                "Places kept for a callback.",
                q,
                n(s.callbacks_waiting),
            );
            m.counter_with(
                "hookline_queue_callbacks_requested",
                "Callbacks callers asked for.",
                q,
                s.callbacks_requested,
            );
            m.gauge_with(
                "hookline_queue_longest_wait_ms",
                "How long the first in line has waited.",
                q,
                s.longest_wait_ms as i64,
            );
            m.counter_with(
                "hookline_queue_answered",
                "Waits an agent answered (callbacks served included).",
                q,
                s.answered,
            );
            m.counter_with(
                "hookline_queue_abandoned",
                "Callers who hung up while waiting.",
                q,
                s.abandoned,
            );
            m.counter_with(
                "hookline_queue_timed_out",
                "Waits that reached the queue's limit, or the caller left with the key.",
                q,
                s.timed_out,
            );
            m.gauge_with(
                "hookline_queue_average_handle_ms",
                "Average talk time of answered calls.",
                q,
                s.average_handle_ms as i64,
            );
            m.counter_with(
                "hookline_queue_announcements",
                "Place and wait announcements played.",
                q,
                s.announcements,
            );
            m.gauge_with(
                "hookline_queue_announce_late_ms_avg",
                "How late announcements came on average (a busy node shows).",
                q,
                s.announce_late_ms_avg as i64,
            );
            m.gauge_with(
                "hookline_queue_announce_late_ms_max",
                "The latest an announcement came.",
                q,
                s.announce_late_ms_max as i64,
            );
        }
    }
}

/// Marks the callbacks among `places` that `pick` accepts and nobody serves
/// yet as in progress, and returns them.
fn take_callbacks<'a>(
    places: impl Iterator<Item = &'a mut Waiting>,
    pick: impl Fn(&Waiting) -> bool,
) -> Vec<PendingCallback> {
    let mut out = Vec::new();
    for w in places {
        if !pick(w) {
            continue;
        }
        if let Some(cb) = w.callback.as_mut().filter(|cb| !cb.in_progress) {
            cb.in_progress = true;
            out.push(cb.clone());
        }
    }
    out
}

/// What a caller hears about their place, in pieces so that the fixed
/// phrases and each number are synthesised once and then come from the
/// cache: "You are number | 2 | in the queue. The estimated wait is about |
/// 3 minutes."
pub fn announcement(position: usize, wait: Duration) -> Vec<String> {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    vec![
        "You are number".into(),
        position.to_string(),
        "in the queue. The estimated wait is about".into(),
        format!("{minutes} {unit}."),
    ]
}

/// The offer of a callback, said after the position.
pub fn callback_offer(key: char) -> String {
    let name = match key {
        '*' => "star".to_string(),
        '#' => "the pound key".to_string(),
        k => k.to_string(),
    };
    format!("To be called back without losing your place, press {name}.")
}

/// Whether a caller's number can be called back (a number or an extension).
pub fn callable(number: &str) -> bool {
    !number.is_empty()
        && number.len() <= 32
        && number.chars().all(|c| c.is_ascii_digit() || c == '+')
}

/// Text for the call's voice.
pub(crate) fn say(text: impl Into<String>) -> PlayItem {
    PlayItem::Say(SpeechText {
        text: text.into(),
        language: None,
    })
}

/// Agents of a group who could take a call now.
pub(crate) fn free_agents(node: &super::Node, members: &[String]) -> usize {
    let now_ms = crate::store::now_ms();
    let now_unix = now_ms as u64 / 1000;
    members
        .iter()
        .map(|m| super::targets::member_devices(node, m, now_unix))
        .filter(|(name, devices)| !devices.is_empty() && node.presence.state(name).ready(now_ms))
        .count()
}

/// Estimated wait at `position` with `agents` agents, from the handle time.
pub fn estimated_wait(position: usize, agents: usize, handle: Duration) -> Duration {
    handle * position as u32 / agents.max(1) as u32
}

/// How waiting in a queue ended (the `enqueue` verb's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    /// An agent answered; the call with them has ended since.
    Answered,
    Timeout,
    Full,
    /// The caller pressed the leave key.
    Left,
    /// The caller asked for a callback (and the node hung up).
    Callback,
}

/// A caller's place in a queue, given up on drop (a callback's place stays:
/// see [`Queues::leave`]). Dropped unsettled — the wait was cut short — it
/// counts as abandoned.
struct Place {
    node: std::sync::Arc<super::Node>,
    queue: String,
    ticket: u64,
    settled: bool,
}

impl Place {
    /// The wait ended normally: its outcome is counted by the caller.
    fn settle(mut self) -> Place {
        self.settled = true;
        self
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.node.queues.leave(&self.queue, self.ticket);
        if !self.settled {
            self.node.queues.count(&self.queue, |s| s.abandoned += 1);
        }
    }
}

impl CallSession {
    /// Waits in `q` until an agent of its group answers; see [`QueueConfig`].
    pub(crate) async fn wait_in_queue(
        &mut self,
        q: &QueueConfig,
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, Error> {
        let priority = q.priority_of(&self.caller);
        match self
            .wait_in_queue_as(q, timeout, caller_id, priority)
            .await?
        {
            (_, QueueExit::Callback) => Err(Error::HungUp),
            (out, _) => Ok(out),
        }
    }

    /// The `enqueue` verb: waits in the queue named `name` with at least
    /// `priority`, at most `max_wait` (zero: the queue's own limit).
    pub async fn enqueue(
        &mut self,
        name: &str,
        priority: u32,
        max_wait: Duration,
    ) -> Result<QueueExit, Error> {
        self.check_live()?;
        let Some(q) = self.node.config.queue(name).cloned() else {
            return Err(Error::InvalidArgument(format!("no queue {name:?}")));
        };
        let limit = Duration::from_secs(q.max_wait_s);
        let timeout = if max_wait.is_zero() {
            limit
        } else {
            max_wait.min(limit)
        };
        let priority = priority.max(q.priority_of(&self.caller));
        let (_, exit) = self.wait_in_queue_as(&q, timeout, None, priority).await?;
        Ok(exit)
    }

    async fn wait_in_queue_as(
        &mut self,
        q: &QueueConfig,
        timeout: Duration,
        caller_id: Option<String>,
        priority: u32,
    ) -> Result<(DialOutcome, QueueExit), Error> {
        self.check_live()?;
        self.answer()?;
        let node = self.node.clone();
        let Some(ticket) = node.queues.join(&q.name, q.max_len, priority) else {
            self.mark(&format!("queue:{}:full", q.name));
            return Ok((DialOutcome::missed(DialStatus::Busy), QueueExit::Full));
        };
        self.mark(&format!("queue:{}", q.name));
        if priority > 0 {
            self.mark(&format!("queue:priority:{priority}"));
        }
        self.connected_at = None;
        // Left however this ends, also when the plugin's budget drops the
        // call mid-wait: nobody behind waits for a place that is gone.
        let place = Place {
            node: node.clone(),
            queue: q.name.clone(),
            ticket,
            settled: false,
        };
        let out = self.queued(q, ticket, timeout, caller_id).await;
        drop(place.settle());
        self.music = None;
        if self.ended.is_none() {
            self.media.stop(self.leg);
        }
        // Answered whoever hung up afterwards; the talk time is the handle time.
        match (self.connected_at.take(), &out) {
            (Some(at), _) => {
                let talk = at.elapsed().as_millis() as u64;
                node.queues.count(&q.name, |s| {
                    s.answered += 1;
                    s.talk_ms_total += talk;
                });
            }
            // A callback is not abandoned: the place is still in the queue.
            (None, Ok((_, QueueExit::Callback))) => {}
            (None, Ok(_)) => node.queues.count(&q.name, |s| s.timed_out += 1),
            (None, Err(_)) => node.queues.count(&q.name, |s| s.abandoned += 1),
        }
        out
    }

    async fn queued(
        &mut self,
        q: &QueueConfig,
        ticket: u64,
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<(DialOutcome, QueueExit), Error> {
        let node = self.node.clone();
        let Some(group) = node.config.group(&q.group).cloned() else {
            return Err(Error::InvalidArgument(format!(
                "queue {}: no group {:?}",
                q.name, q.group
            )));
        };
        let music: Vec<_> = q
            .music
            .iter()
            .filter_map(|id| self.prompts.get(id))
            .collect();
        self.music = Some(music);
        let rules = WaitRules {
            announce_every: (q.announce_s > 0).then(|| Duration::from_secs(q.announce_s)),
            timeout: timeout.min(Duration::from_secs(q.max_wait_s)),
            leave_digit: q.leave_digit,
            callback_digit: q.callback_digit,
            callable: callable(&self.caller),
        };
        let mut wait = QueueWait::new(rules, Instant::now());
        self.hold_music();
        loop {
            self.check_live()?;
            let position = node.queues.position(&q.name, ticket).unwrap_or(1);
            // Only the first callers (as many as the group has agents) can be
            // served now; the rest need not look up every agent each time.
            let free = if position <= group.members.len() {
                free_agents(&node, &group.members)
            } else {
                0
            };
            // Keys pressed while an announcement or a ring went on.
            while let Some(d) = self.take_digit() {
                wait.key(d);
            }
            match wait.step(Instant::now(), position, free) {
                Step::Announce {
                    position,
                    late,
                    new_position,
                    offer_callback,
                } => {
                    let late = late.as_millis() as u64;
                    node.queues.count(&q.name, |s| {
                        s.announcements += 1;
                        s.announce_late_ms_total += late;
                        s.announce_late_ms_max = s.announce_late_ms_max.max(late);
                    });
                    if let Some(p) = new_position {
                        self.mark(&format!("queue:position:{p}"));
                    }
                    let estimate = estimated_wait(
                        position,
                        group.members.len(),
                        node.queues.average_handle(&q.name),
                    );
                    let mut pieces = announcement(position, estimate);
                    pieces.extend(offer_callback.map(callback_offer));
                    let items: Vec<PlayItem> = pieces.into_iter().map(say).collect();
                    self.play_items(&items, true).await?;
                    wait.announced(Instant::now());
                    self.hold_music();
                }
                Step::Ring => {
                    // The group's agents ring by its strategy; the music goes on.
                    let ring = Duration::from_secs(q.ring_s);
                    let out = self
                        .dial_targets(
                            &[Target::Extension(group.name.clone())],
                            ring,
                            caller_id.clone(),
                        )
                        .await?;
                    if out.status == DialStatus::Completed {
                        let out = DialOutcome {
                            answered_target: Some(0),
                            ..out
                        };
                        return Ok((out, QueueExit::Answered));
                    }
                    wait.ring_ended(Instant::now());
                    self.hold_music();
                }
                Step::Callback => {
                    self.request_callback(q, ticket).await?;
                    let out = DialOutcome::missed(DialStatus::NoAnswer);
                    return Ok((out, QueueExit::Callback));
                }
                Step::NoCallback => {
                    self.mark("queue:callback-unavailable");
                    let sorry = say("We cannot call your number back. Please stay on the line.");
                    self.play_items(&[sorry], false).await?;
                    self.hold_music();
                }
                Step::Exit(exit) => {
                    self.mark(match exit {
                        QueueExit::Left => "queue:left",
                        _ => "queue:timeout",
                    });
                    return Ok((DialOutcome::missed(DialStatus::NoAnswer), exit));
                }
                Step::Wait(until) => {
                    // A key or the caller leaving wakes the wait early.
                    let tick = tokio::time::sleep_until(until.into());
                    tokio::pin!(tick);
                    tokio::select! {
                        ev = self.next_event() => match ev {
                            CallEvent::Media(MediaEvent::Dtmf(k)) => wait.key(k),
                            other => self.absorb(other),
                        },
                        _ = &mut tick => {}
                    }
                }
            }
        }
    }

    /// The caller asked to be called back: their place is kept (and
    /// stored, so a restart keeps it too); they hear so and the node hangs up.
    async fn request_callback(&mut self, q: &QueueConfig, ticket: u64) -> Result<(), Error> {
        let node = self.node.clone();
        let waited = node.queues.waited(&q.name, ticket);
        let cb = PendingCallback {
            id: format!("cb-{:016x}", rand::random::<u64>()),
            number: self.caller.clone(),
            joined_ms: crate::store::now_ms() - waited.as_millis() as i64,
            in_progress: false,
        };
        let store = node.callbacks.clone();
        let (queue, saved) = (q.name.clone(), cb.clone());
        super::error::blocking(move || store.save(&queue, &saved))
            .await?
            .map_err(super::error::failed)?;
        node.queues.to_callback(&q.name, ticket, cb);
        self.mark("queue:callback");
        self.music = None;
        let spaced: Vec<String> = self.caller.chars().map(String::from).collect();
        let bye = say(format!(
            "Thank you. We will call you back at {}. You keep your place in the queue. Goodbye.",
            spaced.join(" ")
        ));
        self.play_items(&[bye], false).await?;
        self.hangup()
    }

    /// Loops the queue's music on the caller's leg.
    pub(crate) fn hold_music(&mut self) {
        if let Some(music) = self.music.clone().filter(|m| !m.is_empty()) {
            self.media.play(self.leg, music, u64::MAX - 1);
            self.media.loop_play(self.leg);
        }
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
