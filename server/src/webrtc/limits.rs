//! Each browser agent's share of the node: calls at once and offers per
//! minute. A stolen or buggy softphone cannot hold hundreds of peer
//! connections (each a DTLS stack, sockets and tasks) or churn offers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rate::Window;

#[derive(Default)]
pub struct AgentLimits(Arc<Mutex<HashMap<String, Use>>>);

struct Use {
    calls: u32,
    offers: Window,
}

/// One browser call of an agent; dropping it gives the slot back.
pub struct Seat {
    limits: Arc<Mutex<HashMap<String, Use>>>,
    user: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut map = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = map.get_mut(&self.user) {
            u.calls = u.calls.saturating_sub(1);
        }
    }
}

impl AgentLimits {
    /// A call slot for `user`, or why not.
    pub fn take(
        &self,
        user: &str,
        now: Instant,
        max_calls: u32,
        max_offers_per_minute: u32,
    ) -> Result<Seat, String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let u = map.entry(user.to_string()).or_insert_with(|| Use {
            calls: 0,
            offers: Window::new(now),
        });
        if u.calls >= max_calls {
            return Err(format!(
                "agent {user} has {} browser calls already (webrtc.max_calls_per_agent)",
                u.calls
            ));
        }
        if !u.offers.take(
            now,
            Duration::from_secs(60),
            1,
            max_offers_per_minute as u64,
        ) {
            return Err(format!(
                "agent {user} sent {max_offers_per_minute} offers this minute (webrtc.max_offers_per_minute)"
            ));
        }
        u.calls += 1;
        Ok(Seat {
            limits: self.0.clone(),
            user: user.to_string(),
        })
    }

    /// Browser calls `user` holds now.
    pub fn calls(&self, user: &str) -> u32 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(user).map(|u| u.calls).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_at_once_and_offers_per_minute_are_capped_and_given_back() {
        let l = AgentLimits::default();
        let t0 = Instant::now();
        let a = l.take("301", t0, 2, 5).unwrap(); // offer 1
        let _b = l.take("301", t0, 2, 5).unwrap(); // offer 2
        let Err(full) = l.take("301", t0, 2, 5) else {
            panic!("a third call at once")
        };
        assert!(full.contains("max_calls_per_agent"), "{full}");
        // Another agent is not affected.
        let _c = l.take("302", t0, 2, 5).unwrap();
        drop(a);
        assert_eq!(l.calls("301"), 1);
        drop(l.take("301", t0, 2, 5).unwrap()); // offer 3
        drop(l.take("301", t0, 2, 5).unwrap()); // offer 4
        drop(l.take("301", t0, 2, 5).unwrap()); // offer 5
        let Err(rate) = l.take("301", t0, 2, 5) else {
            panic!("a sixth offer in one minute")
        };
        assert!(rate.contains("max_offers_per_minute"), "{rate}");
        assert!(l.take("301", t0 + Duration::from_secs(61), 2, 5).is_ok());
    }
}
