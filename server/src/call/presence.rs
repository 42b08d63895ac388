//! Agents' availability for ring groups: busy while in a call, idle since when
//! (the uniform strategy rings the agent idle longest first), wrap-up time
//! after a group's call, paused (no group or queue calls; direct calls still
//! ring), do-not-disturb (nothing rings); and what each agent achieved
//! (department calls answered, conversions the CRM reported), by which a
//! department may rank its agents.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::config::{Rank, RingStrategy};
pub use crate::store::agent_results::AgentResults;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AgentState {
    /// Calls the agent is in now.
    pub calls: u32,
    /// When the agent's last call ended (Unix ms); 0 = no call yet.
    pub idle_since_ms: i64,
    pub dnd: bool,
    /// On a break: groups and queues pass them over.
    pub paused: bool,
    /// After a group's call the agent wraps up (notes) until then (Unix ms).
    pub wrap_up_until_ms: i64,
}

impl AgentState {
    /// Free for a direct call.
    pub fn available(&self) -> bool {
        self.calls == 0 && !self.dnd
    }

    /// Free for a group's or a queue's call at `now_ms`.
    pub fn ready(&self, now_ms: i64) -> bool {
        self.available() && !self.paused && now_ms >= self.wrap_up_until_ms
    }
}

impl AgentResults {
    /// Conversion rate with one success and one failure assumed (Laplace):
    /// a new agent starts at 0.5, so neither tops nor trails the ranking on
    /// no evidence, and one lucky call does not make a champion.
    pub fn score(&self) -> f64 {
        (self.converted as f64 + 1.0) / (self.answered.max(self.converted) as f64 + 2.0)
    }
}

/// What a ring group did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GroupCounters {
    /// Calls that rang the group.
    pub offered: u64,
    pub answered: u64,
    /// Answered within 20 s of ringing (the usual service level).
    pub answered_in_20s: u64,
    /// Nobody answered (no answer, busy, nobody reachable).
    pub missed: u64,
    /// The caller hung up while it rang.
    pub abandoned: u64,
    /// Total ringing time of answered calls.
    pub ring_ms_total: u64,
}

#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<String, AgentState>>,
    groups: Mutex<std::collections::BTreeMap<String, GroupCounters>>,
    results: Mutex<HashMap<String, AgentResults>>,
}

/// How a group's ringing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOutcome {
    Answered { ring_ms: u64 },
    Missed,
    Abandoned,
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, AgentState>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self, user: &str) -> AgentState {
        self.lock().get(user).copied().unwrap_or_default()
    }

    /// Free for a group's or a queue's call now.
    pub fn ready_now(&self, user: &str) -> bool {
        self.state(user).ready(crate::store::now_ms())
    }

    /// The agent is in one more call.
    pub fn busy(&self, user: &str) {
        self.lock().entry(user.to_string()).or_default().calls += 1;
    }

    /// The agent's phone stopped ringing unanswered: held no longer, and
    /// their idle time stays (an unanswered ring is not a call).
    pub fn unring(&self, user: &str) {
        let mut agents = self.lock();
        let a = agents.entry(user.to_string()).or_default();
        a.calls = a.calls.saturating_sub(1);
    }

    /// One of the agent's calls ended at `now_ms`.
    pub fn free(&self, user: &str, now_ms: i64) {
        self.free_after(user, now_ms, 0);
    }

    /// A call ended at `now_ms` after which the agent wraps up for `wrap_up_ms`.
    pub fn free_after(&self, user: &str, now_ms: i64, wrap_up_ms: i64) {
        let mut agents = self.lock();
        let a = agents.entry(user.to_string()).or_default();
        a.calls = a.calls.saturating_sub(1);
        a.idle_since_ms = now_ms;
        if wrap_up_ms > 0 {
            a.wrap_up_until_ms = a.wrap_up_until_ms.max(now_ms + wrap_up_ms);
        }
    }

    fn results_lock(&self) -> MutexGuard<'_, HashMap<String, AgentResults>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds to an agent's results (a department call answered, a conversion).
    pub fn add_results(&self, user: &str, answered: u64, converted: u64) -> AgentResults {
        let mut all = self.results_lock();
        let r = all.entry(user.to_string()).or_default();
        r.answered += answered;
        r.converted += converted;
        *r
    }

    /// Every agent with results, by name.
    pub fn all_results(&self) -> Vec<(String, AgentResults)> {
        let mut v: Vec<_> = self
            .results_lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn set_paused(&self, user: &str, paused: bool) {
        self.lock().entry(user.to_string()).or_default().paused = paused;
    }

    /// Counts one call to a group and how it ended.
    pub fn group_call(&self, group: &str, outcome: GroupOutcome) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let g = groups.entry(group.to_string()).or_default();
        g.offered += 1;
        match outcome {
            GroupOutcome::Answered { ring_ms } => {
                g.answered += 1;
                g.ring_ms_total += ring_ms;
                if ring_ms <= 20_000 {
                    g.answered_in_20s += 1;
                }
            }
            GroupOutcome::Missed => g.missed += 1,
            GroupOutcome::Abandoned => g.abandoned += 1,
        }
    }

    pub fn groups(&self) -> Vec<(String, GroupCounters)> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Prometheus lines: agents by state, groups' counters.
    /// Agents' states, results and each ring group's figures.
    pub fn metrics(&self, m: &mut crate::metrics::Scrape) {
        let agents = self.snapshot();
        let count =
            |f: &dyn Fn(&AgentState) -> bool| agents.iter().filter(|(_, a)| f(a)).count() as i64;
        let now = crate::store::now_ms();
        m.gauge(
            "hookline_agents_busy",
            "Agents in a call now.",
            count(&|a| a.calls > 0),
        );
        m.gauge(
            "hookline_agents_dnd",
            "Agents on do-not-disturb.",
            count(&|a| a.dnd),
        );
        m.gauge(
            "hookline_agents_paused",
            "Agents paused.",
            count(&|a| a.paused),
        );
        m.gauge(
            "hookline_agents_wrap_up",
            "Agents in wrap-up after a call.",
            count(&|a| a.calls == 0 && a.wrap_up_until_ms > now),
        );
        for (agent, r) in self.results_lock().iter() {
            let l = &[("agent", agent.as_str())];
            m.counter_with(
                "hookline_agent_answered",
                "Department calls the agent answered.",
                l,
                r.answered,
            );
            m.counter_with(
                "hookline_agent_converted",
                "Of those, conversions the CRM reported.",
                l,
                r.converted,
            );
        }
        for (name, g) in self.groups() {
            let l = &[("group", name.as_str())];
            m.counter_with(
                "hookline_group_offered",
                "Calls that rang the group.",
                l,
                g.offered,
            );
            m.counter_with(
                "hookline_group_answered",
                "Calls an agent of the group answered.",
                l,
                g.answered,
            );
            m.counter_with(
                "hookline_group_answered_in_20s",
                "Answered within 20 s of ringing.",
                l,
                g.answered_in_20s,
            );
            m.counter_with(
                "hookline_group_missed",
                "Calls nobody in the group answered.",
                l,
                g.missed,
            );
            m.counter_with(
                "hookline_group_abandoned",
                "Callers who hung up while the group rang.",
                l,
                g.abandoned,
            );
            m.counter_with(
                "hookline_group_ring_ms",
                "Milliseconds the group's agents rang before an answer.",
                l,
                g.ring_ms_total,
            );
        }
    }

    pub fn set_dnd(&self, user: &str, dnd: bool) {
        self.lock().entry(user.to_string()).or_default().dnd = dnd;
    }

    /// Every agent with a state, by name.
    pub fn snapshot(&self) -> Vec<(String, AgentState)> {
        let mut v: Vec<_> = self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A group's members in ringing order, without busy, wrapping-up,
    /// paused or do-not-disturb agents: list order, or by `rank` (the best
    /// conversion rate first; equal rates keep list order); for `uniform`
    /// then the longest idle first (agents that had no call yet before all
    /// others).
    pub fn ring_order(
        &self,
        members: &[String],
        strategy: RingStrategy,
        rank: Rank,
    ) -> Vec<String> {
        let now = crate::store::now_ms();
        let mut order: Vec<(i64, &String)> = {
            let agents = self.lock();
            members
                .iter()
                .map(|m| (agents.get(m).copied().unwrap_or_default(), m))
                .filter(|(s, _)| s.ready(now))
                .map(|(s, m)| (s.idle_since_ms, m))
                .collect()
        };
        if rank == Rank::Conversion {
            let results = self.results_lock();
            let score = |m: &String| results.get(m).copied().unwrap_or_default().score();
            order.sort_by(|a, b| score(b.1).total_cmp(&score(a.1)));
        }
        if strategy == RingStrategy::Uniform {
            order.sort_by_key(|(idle_since, _)| *idle_since);
        }
        order.into_iter().map(|(_, m)| m.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uniform_rings_the_longest_idle_first_and_skips_the_unavailable() {
        let p = Presence::default();
        let members = names(&["201", "202", "203", "204"]);
        assert_eq!(
            p.ring_order(&members, RingStrategy::Uniform, Rank::List),
            members
        );
        p.busy("201");
        p.free("201", 1_000);
        p.busy("203");
        p.free("203", 500);
        p.set_dnd("204", true);
        assert_eq!(
            p.ring_order(&members, RingStrategy::Uniform, Rank::List),
            names(&["202", "203", "201"])
        );
        // List order for the other strategies; a busy agent is skipped.
        p.busy("202");
        assert_eq!(
            p.ring_order(&members, RingStrategy::InTurn, Rank::List),
            names(&["201", "203"])
        );
        p.free("202", 2_000);
        p.set_dnd("204", false);
        assert_eq!(
            p.ring_order(&members, RingStrategy::All, Rank::List),
            members
        );
    }

    #[test]
    fn wrapping_up_and_paused_agents_are_passed_over_but_not_for_direct_calls() {
        let p = Presence::default();
        let members = names(&["201", "202", "203"]);
        let now = crate::store::now_ms();
        p.busy("201");
        p.free_after("201", now, 60_000);
        p.set_paused("202", true);
        assert_eq!(
            p.ring_order(&members, RingStrategy::All, Rank::List),
            names(&["203"])
        );
        assert!(p.state("201").available(), "a direct call still rings");
        assert!(!p.state("201").ready(now + 59_000));
        assert!(p.state("201").ready(now + 60_000), "wrap-up over");
        p.set_paused("202", false);
        assert!(p.state("202").ready(now));
        assert!(crate::metrics::render_with(|m| p.metrics(m)).contains("hookline_agents_wrap_up 1"));
    }

    #[test]
    fn ranking_by_conversion_rings_the_best_rate_first() {
        let p = Presence::default();
        let members = names(&["201", "202", "203"]);
        let order = |rank| p.ring_order(&members, RingStrategy::InTurn, rank);
        // No evidence yet: list order.
        assert_eq!(order(Rank::Conversion), members);
        // 201 answered two calls and converted none; 203 converted one of one.
        p.add_results("201", 2, 0);
        p.add_results("203", 1, 1);
        assert_eq!(order(Rank::Conversion), names(&["203", "202", "201"]));
        assert_eq!(order(Rank::List), members, "list order unless ranked");
        // A busy agent is still skipped, whatever their rate.
        p.busy("203");
        assert_eq!(order(Rank::Conversion), names(&["202", "201"]));
    }

    #[test]
    fn a_rate_needs_evidence() {
        let new = AgentResults::default();
        let lucky = AgentResults {
            answered: 1,
            converted: 1,
        };
        let proven = AgentResults {
            answered: 40,
            converted: 30,
        };
        assert_eq!(new.score(), 0.5);
        assert!(proven.score() > lucky.score(), "30 of 40 beats 1 of 1");
        // A CRM reporting more conversions than answered calls cannot push past 1.
        assert!(
            AgentResults {
                answered: 0,
                converted: 5
            }
            .score()
                <= 1.0
        );
    }
}
