//! Queue callbacks that must survive a restart: a caller's kept place (queue,
//! number, when they joined) is written before they are told "we will call
//! you back", and read back into the queues when the node starts.

use std::path::Path;

use rusqlite::params;

use super::{now_ms, Db, StoreError};

/// A callback waiting in a queue: the caller hung up, their place is kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingCallback {
    pub id: String,
    /// Whom to call back (the caller's number or extension).
    pub number: String,
    /// When the caller joined the queue (Unix ms): their place.
    pub joined_ms: i64,
    /// An agent is being rung for it (or it is being served) now.
    pub in_progress: bool,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS callbacks (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        number TEXT NOT NULL,
        joined_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );";

/// How a callback ended (its state once it is no longer waiting).
pub const WAITING: &str = "waiting";

#[derive(Clone)]
pub struct Callbacks {
    db: Db,
}

impl Callbacks {
    pub fn open(path: &Path) -> Result<Callbacks, StoreError> {
        Ok(Callbacks {
            db: Db::open(path, SCHEMA)?,
        })
    }

    /// Keeps a caller's place (durably: SQLite commits before returning).
    pub fn save(&self, queue: &str, cb: &PendingCallback) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO callbacks (id, queue, number, joined_ms, state, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![cb.id, queue, cb.number, cb.joined_ms, WAITING, now_ms()],
            )
            .map(|_| ())
        })
    }

    /// A callback is over: `state` says how (answered, customer-missed, expired…).
    pub fn finish(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "UPDATE callbacks SET state = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, state, now_ms()],
            )
            .map(|_| ())
        })
    }

    /// Callbacks still waiting, oldest place first, with their queue.
    pub fn waiting(&self) -> Result<Vec<(String, PendingCallback)>, StoreError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT queue, id, number, joined_ms FROM callbacks
                 WHERE state = ?1 ORDER BY joined_ms",
            )?;
            let rows = st.query_map(params![WAITING], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    PendingCallback {
                        id: r.get(1)?,
                        number: r.get(2)?,
                        joined_ms: r.get(3)?,
                        in_progress: false,
                    },
                ))
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_place_survives_reopening_until_it_is_finished() {
        let dir = std::env::temp_dir().join(format!("hl-cb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.db");
        let cb = |id: &str, joined_ms| PendingCallback {
            id: id.into(),
            number: "5551234".into(),
            joined_ms,
            in_progress: true,
        };
        {
            let s = Callbacks::open(&path).unwrap();
            s.save("support", &cb("b", 2000)).unwrap();
            s.save("support", &cb("a", 1000)).unwrap();
            s.save("sales", &cb("c", 3000)).unwrap();
            s.finish("c", "answered").unwrap();
        }
        let s = Callbacks::open(&path).unwrap();
        let waiting = s.waiting().unwrap();
        let ids: Vec<&str> = waiting.iter().map(|(_, c)| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "oldest first, finished ones gone");
        assert_eq!(waiting[0].0, "support");
        assert!(
            !waiting[0].1.in_progress,
            "nobody serves it after a restart"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
