//! Queues: callers wait in order for a department's agents, hearing music
//! (one decoded copy shared by every caller) and, every so often, their
//! position and the estimated wait (from the measured handle time). The head
//! of the queue (or the first N callers, N = free agents) is offered to the
//! group by its strategy; the caller can leave with a key, and a full queue
//! or a long wait returns to the plugin, whose no-answer action takes over.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::dial::{DialOutcome, DialStatus, Target};
use super::session::{CallEvent, CallSession};
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{PlayItem, SpeechText};
use crate::plugin::CallError;

/// A queue in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// The queue's own number (dial it, or its name).
    pub number: Option<String>,
    /// The `[[groups]]` entry whose agents take the calls, by its strategy.
    pub group: String,
    /// Prompts looped while waiting; default: the node's hold music.
    #[serde(default = "default_music")]
    pub music: Vec<String>,
    /// Position and estimated wait every this many seconds (0 = never).
    #[serde(default = "default_announce_s")]
    pub announce_s: u64,
    /// Longest wait; then the dial returns no-answer to the plugin.
    #[serde(default = "default_max_wait_s")]
    pub max_wait_s: u64,
    /// Callers beyond this are not queued: the dial returns busy.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// The key that leaves the queue (the dial returns no-answer).
    pub leave_digit: Option<char>,
    /// How long each offer rings the agents.
    #[serde(default = "default_ring_s")]
    pub ring_s: u64,
}

fn default_music() -> Vec<String> {
    vec!["hold_music".into()]
}
fn default_announce_s() -> u64 {
    30
}
fn default_max_wait_s() -> u64 {
    600
}
fn default_max_len() -> usize {
    100
}
fn default_ring_s() -> u64 {
    20
}

/// Handle time assumed before any call was measured.
const DEFAULT_HANDLE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct QueueState {
    /// Tickets in order, with when they joined.
    waiting: VecDeque<(u64, Instant)>,
    answered: u64,
    abandoned: u64,
    timed_out: u64,
    talk_ms_total: u64,
    /// Announcements made, and how late they came against their schedule.
    announcements: u64,
    announce_late_ms_total: u64,
    announce_late_ms_max: u64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub waiting: usize,
    pub longest_wait_ms: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub average_handle_ms: u64,
    pub announcements: u64,
    pub announce_late_ms_avg: u64,
    pub announce_late_ms_max: u64,
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

    /// Joins the end of a queue; `None` when it is full.
    pub fn join(&self, queue: &str, max_len: usize) -> Option<u64> {
        let mut all = self.lock();
        let q = all.entry(queue.to_string()).or_default();
        if q.waiting.len() >= max_len {
            return None;
        }
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        q.waiting.push_back((ticket, Instant::now()));
        Some(ticket)
    }

    /// 1-based place in the queue.
    pub fn position(&self, queue: &str, ticket: u64) -> Option<usize> {
        let all = self.lock();
        let q = all.get(queue)?;
        q.waiting
            .iter()
            .position(|(t, _)| *t == ticket)
            .map(|p| p + 1)
    }

    fn leave(&self, queue: &str, ticket: u64) {
        if let Some(q) = self.lock().get_mut(queue) {
            q.waiting.retain(|(t, _)| *t != ticket);
        }
    }

    fn count(&self, queue: &str, f: impl FnOnce(&mut QueueState)) {
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
                let longest = q.waiting.front().map(|(_, t)| now - *t).unwrap_or_default();
                (
                    name.clone(),
                    QueueStats {
                        waiting: q.waiting.len(),
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
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        for (name, s) in self.stats() {
            for (metric, value) in [
                ("waiting", s.waiting as u64),
                ("longest_wait_ms", s.longest_wait_ms),
                ("answered_total", s.answered),
                ("abandoned_total", s.abandoned),
                ("timed_out_total", s.timed_out),
                ("average_handle_ms", s.average_handle_ms),
                ("announcements_total", s.announcements),
                ("announce_late_ms_avg", s.announce_late_ms_avg),
                ("announce_late_ms_max", s.announce_late_ms_max),
            ] {
                out.push_str(&format!(
                    "hookline_queue_{metric}{{queue=\"{name}\"}} {value}\n"
                ));
            }
        }
        out
    }
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

/// Estimated wait at `position` with `agents` agents, from the handle time.
pub fn estimated_wait(position: usize, agents: usize, handle: Duration) -> Duration {
    handle * position as u32 / agents.max(1) as u32
}

impl CallSession {
    /// Waits in `q` until an agent of its group answers; see [`QueueConfig`].
    pub(crate) async fn wait_in_queue(
        &mut self,
        q: &QueueConfig,
        timeout: Duration,
        caller_id: Option<String>,
    ) -> Result<DialOutcome, CallError> {
        self.check_live()?;
        self.answer()?;
        let node = self.node.clone();
        let Some(ticket) = node.queues.join(&q.name, q.max_len) else {
            self.mark(&format!("queue:{}:full", q.name));
            return Ok(DialOutcome::missed(DialStatus::Busy));
        };
        self.mark(&format!("queue:{}", q.name));
        self.connected_at = None;
        let out = self.queued(q, ticket, timeout, caller_id).await;
        node.queues.leave(&q.name, ticket);
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
    ) -> Result<DialOutcome, CallError> {
        let node = self.node.clone();
        let Some(group) = node.config.group(&q.group).cloned() else {
            return Err(CallError::InvalidArgument(format!(
                "queue {}: no group {:?}",
                q.name, q.group
            )));
        };
        let music: Vec<_> = q
            .music
            .iter()
            .filter_map(|id| self.prompts.get(id).cloned())
            .collect();
        self.music = Some(music);
        let started = tokio::time::Instant::now();
        let deadline = started + timeout.min(Duration::from_secs(q.max_wait_s));
        let mut next_announce = started;
        let mut last_position = 0;
        self.hold_music();
        loop {
            self.check_live()?;
            let position = node.queues.position(&q.name, ticket).unwrap_or(1);
            // Only the first callers (as many as the group has agents) can be
            // served now; the rest need not look up every agent each tick.
            let free = if position <= group.members.len() {
                self.free_agents(&group.members)
            } else {
                0
            };
            let now = tokio::time::Instant::now();
            if q.announce_s > 0 && now >= next_announce && position > free {
                // Announcements are due every announce_s; how late this one is (the
                // first is due on joining) shows how busy the node is.
                let late = (now - next_announce).as_millis() as u64;
                node.queues.count(&q.name, |s| {
                    s.announcements += 1;
                    s.announce_late_ms_total += late;
                    s.announce_late_ms_max = s.announce_late_ms_max.max(late);
                });
                if position != last_position {
                    self.mark(&format!("queue:position:{position}"));
                    last_position = position;
                }
                let wait = estimated_wait(
                    position,
                    group.members.len(),
                    node.queues.average_handle(&q.name),
                );
                let items: Vec<PlayItem> = announcement(position, wait)
                    .into_iter()
                    .map(|text| {
                        PlayItem::Say(SpeechText {
                            text,
                            language: None,
                        })
                    })
                    .collect();
                self.play_items(&items, true).await?;
                next_announce += Duration::from_secs(q.announce_s);
                // After a long announcement, the next is due from now on.
                next_announce = next_announce.max(tokio::time::Instant::now());
                self.hold_music();
            }
            if let Some(k) = q.leave_digit {
                while let Some(d) = self.take_digit() {
                    if d == k {
                        self.mark("queue:left");
                        return Ok(DialOutcome::missed(DialStatus::NoAnswer));
                    }
                }
            }
            if position <= free {
                // Our turn: the group's agents ring by its strategy; the music goes on.
                let ring = Duration::from_secs(q.ring_s);
                let out = self
                    .dial_targets(
                        &[Target::Extension(group.name.clone())],
                        ring,
                        caller_id.clone(),
                    )
                    .await?;
                if out.status == DialStatus::Completed {
                    return Ok(DialOutcome {
                        answered_target: Some(0),
                        ..out
                    });
                }
                self.hold_music();
            }
            if tokio::time::Instant::now() >= deadline {
                self.mark("queue:timeout");
                return Ok(DialOutcome::missed(DialStatus::NoAnswer));
            }
            // Wait a moment for a key or the caller leaving, then look again.
            let mut wake = tokio::time::Instant::now() + Duration::from_millis(500);
            if q.announce_s > 0 {
                wake = wake.min(next_announce);
            }
            let tick = tokio::time::sleep_until(wake);
            tokio::pin!(tick);
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::Dtmf(k)) => self.keep_digit(k),
                    other => self.absorb(other),
                },
                _ = &mut tick => {}
            }
        }
    }

    /// Agents of the group who could take a call now.
    fn free_agents(&self, members: &[String]) -> usize {
        let node = &self.node;
        let now_unix = crate::store::now_ms() as u64 / 1000;
        members
            .iter()
            .map(|m| super::dial::member_devices(node, m, now_unix))
            .filter(|(name, devices)| !devices.is_empty() && node.presence.state(name).available())
            .count()
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
mod tests {
    use super::*;

    #[test]
    fn first_come_first_served_and_a_full_queue_refuses() {
        let qs = Queues::default();
        let a = qs.join("support", 2).unwrap();
        let b = qs.join("support", 2).unwrap();
        assert_eq!(qs.join("support", 2), None);
        assert_eq!(qs.position("support", a), Some(1));
        assert_eq!(qs.position("support", b), Some(2));
        qs.leave("support", a);
        assert_eq!(qs.position("support", b), Some(1));
        assert_eq!(qs.stats()["support"].waiting, 1);
    }

    #[test]
    fn estimated_wait_follows_the_measured_handle_time() {
        let qs = Queues::default();
        assert_eq!(qs.average_handle("q"), DEFAULT_HANDLE);
        qs.count("q", |s| {
            s.answered = 2;
            s.talk_ms_total = 180_000;
        });
        assert_eq!(qs.average_handle("q"), Duration::from_secs(90));
        let wait = estimated_wait(3, 2, Duration::from_secs(90));
        assert_eq!(wait, Duration::from_secs(135));
        assert_eq!(
            announcement(3, wait).join(" "),
            "You are number 3 in the queue. The estimated wait is about 3 minutes."
        );
        assert_eq!(announcement(1, Duration::from_secs(10))[3], "1 minute.");
    }
}
