//! Agents' availability for ring groups: busy while in a call, idle since when
//! (the uniform strategy rings the agent idle longest first), do-not-disturb.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::config::RingStrategy;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AgentState {
    /// Calls the agent is in now.
    pub calls: u32,
    /// When the agent's last call ended (Unix ms); 0 = no call yet.
    pub idle_since_ms: i64,
    pub dnd: bool,
}

impl AgentState {
    pub fn available(&self) -> bool {
        self.calls == 0 && !self.dnd
    }
}

#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<String, AgentState>>,
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, AgentState>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self, user: &str) -> AgentState {
        self.lock().get(user).copied().unwrap_or_default()
    }

    /// The agent is in one more call.
    pub fn busy(&self, user: &str) {
        self.lock().entry(user.to_string()).or_default().calls += 1;
    }

    /// One of the agent's calls ended at `now_ms`.
    pub fn free(&self, user: &str, now_ms: i64) {
        let mut agents = self.lock();
        let a = agents.entry(user.to_string()).or_default();
        a.calls = a.calls.saturating_sub(1);
        a.idle_since_ms = now_ms;
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

    /// A group's members in ringing order, without busy or do-not-disturb
    /// agents: list order, or for `uniform` the longest idle first (agents
    /// that had no call yet before all others, in list order).
    pub fn ring_order(&self, members: &[String], strategy: RingStrategy) -> Vec<String> {
        let agents = self.lock();
        let mut order: Vec<(i64, &String)> = members
            .iter()
            .map(|m| (agents.get(m).copied().unwrap_or_default(), m))
            .filter(|(s, _)| s.available())
            .map(|(s, m)| (s.idle_since_ms, m))
            .collect();
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
        assert_eq!(p.ring_order(&members, RingStrategy::Uniform), members);
        p.busy("201");
        p.free("201", 1_000);
        p.busy("203");
        p.free("203", 500);
        p.set_dnd("204", true);
        assert_eq!(
            p.ring_order(&members, RingStrategy::Uniform),
            names(&["202", "203", "201"])
        );
        // List order for the other strategies; a busy agent is skipped.
        p.busy("202");
        assert_eq!(
            p.ring_order(&members, RingStrategy::InTurn),
            names(&["201", "203"])
        );
        p.free("202", 2_000);
        p.set_dnd("204", false);
        assert_eq!(p.ring_order(&members, RingStrategy::All), members);
    }
}
