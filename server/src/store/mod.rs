//! Persistence: call records in SQLite (embedded, bundled).
//!
//! Writes go through one writer thread that batches whatever is queued into a
//! transaction, so call setup never waits on the disk.

pub mod agent_results;
pub mod callbacks;
pub mod plugin_data;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
}

/// A connection to the node's SQLite file for one subsystem (plugin data,
/// callbacks): synchronous, so callers run it on a blocking thread.
#[derive(Clone)]
pub struct Db {
    conn: std::sync::Arc<std::sync::Mutex<Connection>>,
    path: String,
}

impl Db {
    /// Opens `path` and creates the subsystem's tables (`schema`) if missing.
    pub fn open(path: &Path, schema: &str) -> Result<Db, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(schema).map_err(err)?;
        Ok(Db {
            conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
            path: path.display().to_string(),
        })
    }

    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn rfc3339(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    Some(humantime::format_rfc3339_millis(t).to_string())
}

/// One call as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub started_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub caller: String,
    pub callee: String,
    pub plugin: Option<String>,
    /// The version of the plugin the call started on (its manifest's).
    pub plugin_version: Option<String>,
    /// For an outbound leg: the call it was dialled from.
    pub parent: Option<String>,
    pub hangup_cause: Option<String>,
    /// Steps in order: `prompt:<id>`, `digits:<keys>`, `branch:<name>`, ...
    pub path: Vec<String>,
    /// Media counters of the caller's leg (packets, loss), when known.
    pub media: Option<serde_json::Value>,
}

enum Op {
    /// Answer once everything queued before is committed.
    Flush(mpsc::Sender<()>),
    Start {
        id: String,
        at: i64,
        caller: String,
        callee: String,
        plugin: Option<String>,
        plugin_version: Option<String>,
        parent: Option<String>,
    },
    Answer {
        id: String,
        at: i64,
    },
    End {
        id: String,
        at: i64,
        media: Option<String>,
        cause: String,
        path: Vec<String>,
    },
}

/// Handle to the call-record store.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
    path: PathBuf,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS calls (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        started_ms INTEGER NOT NULL,
        answered_ms INTEGER,
        ended_ms INTEGER,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        plugin TEXT,
        hangup_cause TEXT,
        path TEXT NOT NULL DEFAULT '[]',
        parent TEXT,
        media TEXT
    );
    CREATE TABLE IF NOT EXISTS node_alive (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at_ms INTEGER NOT NULL
    );";

/// How often the writer notes that the node is alive: a crash's open
/// records are closed at most this long after the node really stopped.
const HEARTBEAT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (creating) the database and starts its writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Databases from before outbound legs lack the column; adding it twice fails harmlessly.
        let _ = conn.execute_batch("ALTER TABLE calls ADD COLUMN parent TEXT");
        let _ = conn.execute_batch("ALTER TABLE calls ADD COLUMN media TEXT");
        let _ = conn.execute_batch("ALTER TABLE calls ADD COLUMN plugin_version TEXT");
        let closed = close_left_open(&conn).map_err(err)?;
        if closed > 0 {
            tracing::warn!(
                "{closed} call records left open by the last run (killed, or power lost) \
                 closed with cause node-restart at the last time it was known alive"
            );
        }
        alive(&conn, now_ms()).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("store".into())
            .spawn(move || writer(conn, rx))
            .expect("spawn store writer");
        Ok(Store {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// A call came in; `plugin` is the name and version it runs on.
    pub fn call_started(&self, id: &str, caller: &str, callee: &str, plugin: Option<(&str, &str)>) {
        let _ = self.tx.send(Op::Start {
            id: id.into(),
            at: now_ms(),
            caller: caller.into(),
            callee: callee.into(),
            plugin: plugin.map(|p| p.0.into()),
            plugin_version: plugin.map(|p| p.1.into()),
            parent: None,
        });
    }

    /// An outbound leg dialled from call `parent`.
    pub fn leg_started(&self, id: &str, caller: &str, callee: &str, parent: &str) {
        let _ = self.tx.send(Op::Start {
            id: id.into(),
            at: now_ms(),
            caller: caller.into(),
            callee: callee.into(),
            plugin: None,
            plugin_version: None,
            parent: Some(parent.into()),
        });
    }

    pub fn call_answered(&self, id: &str) {
        let _ = self.tx.send(Op::Answer {
            id: id.into(),
            at: now_ms(),
        });
    }

    /// Ends a call's record with its leg's media counters.
    pub fn call_finished(
        &self,
        id: &str,
        cause: &str,
        path: Vec<String>,
        media: impl serde::Serialize,
    ) {
        let _ = self.tx.send(Op::End {
            id: id.into(),
            at: now_ms(),
            media: serde_json::to_string(&media).ok(),
            cause: cause.into(),
            path,
        });
    }

    pub fn call_ended(&self, id: &str, cause: &str, path: Vec<String>) {
        let _ = self.tx.send(Op::End {
            media: None,
            id: id.into(),
            at: now_ms(),
            cause: cause.into(),
            path,
        });
    }

    /// Waits (bounded) until every record queued so far is on disk.
    pub fn flush(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// The newest calls first (reads on its own connection).
    pub fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        };
        let conn = Connection::open(&self.path).map_err(err)?;
        let mut stmt = conn
            .prepare(
                "SELECT id, started_ms, answered_ms, ended_ms, caller, callee, plugin, hangup_cause, path, parent, media,
                 plugin_version FROM calls ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([limit], |r| {
                let path: String = r.get(8)?;
                Ok(CallRecord {
                    id: r.get(0)?,
                    started_at: rfc3339(r.get(1)?),
                    answered_at: rfc3339(r.get(2)?),
                    ended_at: rfc3339(r.get(3)?),
                    caller: r.get(4)?,
                    callee: r.get(5)?,
                    plugin: r.get(6)?,
                    plugin_version: r.get(11)?,
                    hangup_cause: r.get(7)?,
                    parent: r.get(9)?,
                    media: r
                        .get::<_, Option<String>>(10)?
                        .and_then(|m| serde_json::from_str(&m).ok()),
                    path: serde_json::from_str(&path).unwrap_or_default(),
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}

/// Records a crash left open (no `ended_ms`) end at the node's last heartbeat
/// (never before they started or were answered), with cause `node-restart`.
fn close_left_open(conn: &Connection) -> rusqlite::Result<usize> {
    let last: Option<i64> = conn
        .query_row("SELECT at_ms FROM node_alive WHERE id = 1", [], |r| {
            r.get(0)
        })
        .ok();
    conn.execute(
        "UPDATE calls SET ended_ms = MAX(started_ms, COALESCE(answered_ms, started_ms), COALESCE(?1, started_ms)),
                          hangup_cause = 'node-restart'
         WHERE ended_ms IS NULL",
        params![last],
    )
}

fn alive(conn: &Connection, at: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO node_alive (id, at_ms) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
        [at],
    )
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Op>) {
    let mut beat = std::time::Instant::now();
    loop {
        let first = match rx.recv_timeout(HEARTBEAT) {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = alive(&conn, now_ms()) {
                    tracing::error!("call records: heartbeat: {e}");
                }
                beat = std::time::Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("call records: {e}");
                continue;
            }
        };
        let mut op = Some(first);
        let mut waiting = Vec::new();
        while let Some(o) = op {
            match o {
                Op::Flush(done) => waiting.push(done),
                o => {
                    if let Err(e) = apply(&tx, o) {
                        tracing::error!("call records: {e}");
                    }
                }
            }
            op = rx.try_recv().ok();
        }
        if beat.elapsed() >= HEARTBEAT {
            // A busy writer never times out: the heartbeat rides with the batch.
            if let Err(e) = alive(&tx, now_ms()) {
                tracing::error!("call records: heartbeat: {e}");
            }
            beat = std::time::Instant::now();
        }
        if let Err(e) = tx.commit() {
            tracing::error!("call records: commit: {e}");
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

fn apply(conn: &Connection, op: Op) -> rusqlite::Result<usize> {
    match op {
        Op::Flush(_) => Ok(0),
        Op::Start { id, at, caller, callee, plugin, plugin_version, parent } => conn.execute(
            "INSERT OR IGNORE INTO calls (id, started_ms, caller, callee, plugin, plugin_version, parent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, at, caller, callee, plugin, plugin_version, parent],
        ),
        Op::Answer { id, at } => {
            conn.execute("UPDATE calls SET answered_ms = ?2 WHERE id = ?1 AND answered_ms IS NULL", params![id, at])
        }
        Op::End { id, at, cause, path, media } => conn.execute(
            "UPDATE calls SET ended_ms = ?2, hangup_cause = ?3, path = ?4, media = COALESCE(?5, media) WHERE id = ?1",
            params![id, at, cause, serde_json::to_string(&path).unwrap_or_else(|_| "[]".into()), media],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_a_crash_left_open_are_closed_at_the_last_heartbeat() {
        let dir = std::env::temp_dir().join(format!(
            "hookline-store-crash-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        {
            // A run that is killed with a call up, its last heartbeat at 5,000.
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO calls (id, started_ms, answered_ms, caller, callee) VALUES ('up', 1000, 2000, 'a', '100')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO calls (id, started_ms, ended_ms, caller, callee, hangup_cause) VALUES ('done', 1000, 3000, 'b', '100', 'caller-bye')",
                [],
            )
            .unwrap();
            alive(&conn, 5000).unwrap();
        }
        let store = Store::open(&db).unwrap();
        let calls = store.recent_calls(10).unwrap();
        let up = calls.iter().find(|c| c.id == "up").unwrap();
        assert_eq!(up.hangup_cause.as_deref(), Some("node-restart"));
        assert_eq!(up.ended_at, rfc3339(Some(5000)));
        let done = calls.iter().find(|c| c.id == "done").unwrap();
        assert_eq!(done.hangup_cause.as_deref(), Some("caller-bye"));
        assert_eq!(done.ended_at, rfc3339(Some(3000)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn records_a_call_and_lists_newest_first() {
        let dir = std::env::temp_dir().join(format!("hookline-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("t.db")).unwrap();
        store.call_started("a", "alice", "100", Some(("ivr", "1.2.0")));
        store.call_answered("a");
        store.call_ended("a", "caller-bye", vec!["digits:2".into()]);
        store.call_started("b", "bob", "100", None);
        let mut calls = Vec::new();
        for _ in 0..100 {
            calls = store.recent_calls(10).unwrap();
            if calls.len() == 2 && calls[1].ended_at.is_some() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(calls[0].id, "b");
        assert_eq!(calls[1].path, vec!["digits:2".to_string()]);
        assert_eq!(calls[1].hangup_cause.as_deref(), Some("caller-bye"));
        assert_eq!(calls[1].plugin_version.as_deref(), Some("1.2.0"));
        assert_eq!(calls[0].plugin_version, None);
        assert!(calls[1].answered_at.as_deref().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(dir).ok();
    }
}
