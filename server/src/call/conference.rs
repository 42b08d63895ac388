//! Conference rooms by name: the first caller to join opens one (a mixer on
//! one media worker), the last to leave closes it. Members may be any kind
//! of leg — SIP phones, trunk calls, browsers — in any codec: each is decoded
//! on its own worker and hears the others mixed in its own format.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::error::Error;
use super::session::{CallEvent, CallSession};
use crate::media::worker::{LegId, Room};

/// Most members in one room (the mix is O(members) per tick).
pub const MAX_MEMBERS: usize = 100;

struct RoomEntry {
    room: Room,
    /// Members by leg: who (the caller) and whether muted.
    members: BTreeMap<LegId, (String, bool)>,
}

/// Every room on the node.
#[derive(Default)]
pub struct Rooms {
    inner: Mutex<BTreeMap<String, RoomEntry>>,
}

/// A room as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomInfo {
    pub room: String,
    pub members: Vec<MemberInfo>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberInfo {
    pub caller: String,
    pub muted: bool,
}

/// Room names are short and plain (they appear in metrics and records).
pub fn valid_room_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Rooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RoomEntry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member, opening the room with `open` if it is new; `None`
    /// when the room is full.
    pub fn join(
        &self,
        name: &str,
        leg: LegId,
        caller: &str,
        muted: bool,
        open: impl FnOnce() -> Room,
    ) -> Option<Room> {
        let mut all = self.lock();
        let entry = all.entry(name.to_string()).or_insert_with(|| RoomEntry {
            room: open(),
            members: BTreeMap::new(),
        });
        if entry.members.len() >= MAX_MEMBERS {
            return None;
        }
        entry.members.insert(leg, (caller.to_string(), muted));
        Some(entry.room.clone())
    }

    /// Removes a member; the room closes with its last one.
    pub fn leave(&self, name: &str, leg: LegId) {
        let mut all = self.lock();
        if let Some(entry) = all.get_mut(name) {
            entry.members.remove(&leg);
            if entry.members.is_empty() {
                all.remove(name);
            }
        }
    }

    pub fn list(&self) -> Vec<RoomInfo> {
        self.lock()
            .iter()
            .map(|(name, e)| RoomInfo {
                room: name.clone(),
                members: e
                    .members
                    .values()
                    .map(|(caller, muted)| MemberInfo {
                        caller: caller.clone(),
                        muted: *muted,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Prometheus lines: rooms open and members in each.
    /// Rooms open and who is in each.
    pub fn metrics(&self, m: &mut crate::metrics::Scrape) {
        let all = self.lock();
        m.gauge(
            "hookline_conference_rooms",
            "Conference rooms open now.",
            all.len() as i64,
        );
        for (name, e) in all.iter() {
            m.gauge_with(
                "hookline_conference_members",
                "Members in a room now.",
                &[("room", name.as_str())],
                e.members.len() as i64,
            );
        }
    }
}

impl CallSession {
    /// Joins the caller to `room` until they hang up. Keys pressed meanwhile
    /// wait for the plugin's next verb (there is none before the hang-up).
    pub async fn conference(&mut self, room: &str, muted: bool) -> Result<(), Error> {
        self.check_live()?;
        if !valid_room_name(room) {
            return Err(Error::InvalidArgument(
                "a room name is 1-64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        self.answer()?;
        let node = self.node.clone();
        let media = self.media.clone();
        let Some(mixer) = node
            .rooms
            .join(room, self.leg, &self.caller, muted, || media.new_room())
        else {
            self.mark(&format!("conference:{room}:full"));
            return Err(Error::Failed("the room is full".into()));
        };
        self.mark(&format!("conference:{room}"));
        self.media.conference(self.leg, mixer, muted);
        // Left however this verb ends, also when the plugin's wall-clock
        // budget drops it mid-wait.
        let _member = Membership {
            node,
            room: room.to_string(),
            leg: self.leg,
        };
        loop {
            self.check_live()?;
            match self.next_event().await {
                CallEvent::Media(crate::media::worker::MediaEvent::Dtmf(k)) => self.keep_digit(k),
                ev => self.absorb(ev),
            }
        }
    }
}

/// A leg's place in a room, given up on drop.
struct Membership {
    node: std::sync::Arc<super::Node>,
    room: String,
    leg: LegId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.node.rooms.leave(&self.room, self.leg);
        self.node.media.leave_conference(self.leg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_opens_with_its_first_member_and_closes_with_its_last() {
        let rooms = Rooms::default();
        let mut opened = 0;
        let a = rooms.join("sales", 1, "alice", false, || {
            opened += 1;
            Room::default()
        });
        let b = rooms.join("sales", 2, "bob", true, || {
            opened += 1;
            Room::default()
        });
        assert_eq!(opened, 1);
        assert!(std::sync::Arc::ptr_eq(&a.unwrap(), &b.unwrap()));
        let list = rooms.list();
        assert_eq!(list[0].members.len(), 2);
        assert!(crate::metrics::render_with(|m| rooms.metrics(m))
            .contains("hookline_conference_members{room=\"sales\"} 2"));
        rooms.leave("sales", 1);
        rooms.leave("sales", 2);
        assert!(rooms.list().is_empty());
    }

    #[test]
    fn room_names_are_plain() {
        assert!(valid_room_name("team-7.a_b"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name("x\"}"));
        assert!(!valid_room_name(&"a".repeat(65)));
    }
}
