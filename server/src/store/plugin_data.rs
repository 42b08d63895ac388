//! What plugins keep and read through the host API: a key-value store per
//! plugin (with expiry), the recordings they made, and call history lookups.
//! Synchronous on its own connection: callers run it on a blocking thread.

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now_ms, Db, StoreError};

/// Longest key and value a plugin may store.
pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 64 * 1024;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        plugin TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_ms INTEGER,
        PRIMARY KEY (plugin, key)
    );
    CREATE TABLE IF NOT EXISTS recordings (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller);
    CREATE INDEX IF NOT EXISTS calls_parent ON calls (parent);";

/// How much one plugin may keep.
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    pub keys: u64,
    pub bytes: u64,
}

impl KvLimits {
    pub const NONE: KvLimits = KvLimits {
        keys: u64::MAX,
        bytes: u64::MAX,
    };
}

/// A recording as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordingRow {
    pub id: String,
    pub call_id: String,
    pub plugin: String,
    /// "message" (the record verb) or "session".
    pub kind: String,
    pub path: String,
    pub duration_ms: u64,
    pub created_ms: i64,
    /// What was said (messages, where the node has a recognizer).
    pub transcript: Option<String>,
    /// `recording` (still being written, or cut by a crash until the next
    /// start), `done`, `recovered` (cut by a crash, repaired at the next start
    /// and handed back to its plugin).
    pub state: String,
}

/// A recording a crash cut short, with what its plugin was running on
/// (to hand it back), and the call's parties.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub row: RecordingRow,
    /// The plugin's config and hand-over arguments (JSON) when it recorded.
    pub config: String,
    pub arguments: Option<String>,
    pub caller: String,
    pub callee: String,
}

/// One key of a plugin's store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KvEntry {
    pub key: String,
    pub value: String,
}

/// A recording row from the first nine columns: id, call_id, plugin, kind,
/// path, duration_ms, created_ms, transcript, state.
fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingRow> {
    Ok(RecordingRow {
        id: r.get(0)?,
        call_id: r.get(1)?,
        plugin: r.get(2)?,
        kind: r.get(3)?,
        path: r.get(4)?,
        duration_ms: r.get::<_, i64>(5)? as u64,
        created_ms: r.get(6)?,
        transcript: r.get(7)?,
        state: r.get(8)?,
    })
}

/// A past call for `call-history`.
#[derive(Debug, Clone, PartialEq)]
pub struct PastCall {
    pub call_id: String,
    pub started_ms: i64,
    pub caller: String,
    pub callee: String,
    pub answered_by: Option<String>,
    pub duration_s: u32,
}

#[derive(Clone)]
pub struct PluginData {
    db: Db,
}

impl PluginData {
    pub fn open(path: &Path) -> Result<PluginData, StoreError> {
        let db = Db::open(path, SCHEMA)?;
        // Added after the first release: databases from before get the column.
        db.with(|c| {
            if c.prepare("SELECT transcript FROM recordings LIMIT 0")
                .is_err()
            {
                c.execute_batch("ALTER TABLE recordings ADD COLUMN transcript TEXT")?;
            }
            // Write-ahead of recordings: a row from the first frame.
            if c.prepare("SELECT state FROM recordings LIMIT 0").is_err() {
                c.execute_batch(
                    "ALTER TABLE recordings ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
                     ALTER TABLE recordings ADD COLUMN config TEXT;
                     ALTER TABLE recordings ADD COLUMN arguments TEXT;",
                )?;
            }
            Ok(())
        })?;
        Ok(PluginData { db })
    }

    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        self.db.with(|c| {
            c.query_row(
                "SELECT value FROM kv WHERE plugin = ?1 AND key = ?2 AND (expires_ms IS NULL OR expires_ms > ?3)",
                params![plugin, key, now],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The plugin's live keys starting with `prefix`, in key order (for the
    /// API: what a survey stored, say).
    pub fn kv_list(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<KvEntry>, StoreError> {
        let now = now_ms();
        // LIKE would treat % and _ in the prefix as patterns: compare the
        // key's start instead.
        self.db.with(|c| {
            let mut stmt = c.prepare(
                "SELECT key, value FROM kv WHERE plugin = ?1 AND substr(key, 1, length(?2)) = ?2 \
                 AND (expires_ms IS NULL OR expires_ms > ?3) ORDER BY key LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![plugin, prefix, now, limit], |r| {
                Ok(KvEntry {
                    key: r.get(0)?,
                    value: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Stores a value unless the plugin would go past `limits` (keys, or
    /// bytes of keys and values together, expired ones not counted): then
    /// `Ok(Err(why))` and nothing changes.
    pub fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl_s: Option<u32>,
        limits: KvLimits,
    ) -> Result<Result<(), String>, StoreError> {
        let now = now_ms();
        let expires = ttl_s.map(|t| now + t as i64 * 1000);
        self.db.with(|c| {
            // Expired keys are swept now and then, not on every write.
            if rand::random::<u8>() == 0 {
                c.execute(
                    "DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
                    [now],
                )?;
            }
            // What the plugin holds besides this key (a key's old value is replaced).
            let (keys, bytes): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)
                 FROM kv WHERE plugin = ?1 AND key != ?2 AND (expires_ms IS NULL OR expires_ms > ?3)",
                params![plugin, key, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if keys as u64 + 1 > limits.keys {
                return Ok(Err(format!("{} keys per plugin (kv-keys)", limits.keys)));
            }
            if (bytes as u64).saturating_add((key.len() + value.len()) as u64) > limits.bytes {
                return Ok(Err(format!("{} bytes of keys and values per plugin (kv-bytes)", limits.bytes)));
            }
            c.execute(
                "INSERT INTO kv (plugin, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
                params![plugin, key, value, expires],
            )
            .map(|_| Ok(()))
        })
    }

    pub fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "DELETE FROM kv WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
            )
            .map(|_| ())
        })
    }

    /// A recording begins: its row exists before its first frame is
    /// written (state `recording`), with what its plugin runs on, so a crash
    /// mid-message leaves something to recover.
    pub fn recording_started(
        &self,
        r: &RecordingRow,
        config: &str,
        arguments: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO recordings
                 (id, call_id, plugin, kind, path, duration_ms, created_ms, state, config, arguments)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 'recording', ?7, ?8)",
                params![r.id, r.call_id, r.plugin, r.kind, r.path, r.created_ms, config, arguments],
            )
            .map(|_| ())
        })
    }

    /// A recording was finished and its file closed.
    pub fn recording_saved(&self, r: &RecordingRow) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "INSERT INTO recordings (id, call_id, plugin, kind, path, duration_ms, created_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'done')
                 ON CONFLICT(id) DO UPDATE SET duration_ms = ?6, state = 'done'",
                params![r.id, r.call_id, r.plugin, r.kind, r.path, r.duration_ms as i64, r.created_ms],
            )
            .map(|_| ())
        })
    }

    /// Recordings a crash cut short (still `recording` at a start).
    pub fn recordings_unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT r.id, r.call_id, r.plugin, r.kind, r.path, r.duration_ms, r.created_ms,
                        r.transcript, r.state, COALESCE(r.config, '{}'), r.arguments,
                        COALESCE(k.caller, ''), COALESCE(k.callee, '')
                 FROM recordings r LEFT JOIN calls k ON k.id = r.call_id
                 WHERE r.state = 'recording' ORDER BY r.created_ms",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Unfinished {
                    row: row_of(r)?,
                    config: r.get(9)?,
                    arguments: r.get(10)?,
                    caller: r.get(11)?,
                    callee: r.get(12)?,
                })
            })?;
            rows.collect()
        })
    }

    /// A recovered recording's length and state.
    pub fn recording_recovered(&self, id: &str, duration_ms: u64) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "UPDATE recordings SET duration_ms = ?2, state = 'recovered' WHERE id = ?1",
                params![id, duration_ms as i64],
            )
            .map(|_| ())
        })
    }

    pub fn recording_transcribed(&self, id: &str, text: &str) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "UPDATE recordings SET transcript = ?2 WHERE id = ?1",
                params![id, text],
            )
            .map(|_| ())
        })
    }

    pub fn recordings(&self, limit: u32) -> Result<Vec<RecordingRow>, StoreError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT id, call_id, plugin, kind, path, duration_ms, created_ms, transcript, state
                 FROM recordings ORDER BY created_ms DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit], row_of)?;
            rows.collect()
        })
    }

    /// The plugin that made a recording (plugins play only their own).
    pub fn recording_owner(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        self.db.with(|c| {
            c.query_row(
                "SELECT plugin, path FROM recordings WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Finished calls from `number`, newest first, with who answered them.
    pub fn call_history(&self, number: &str, limit: u32) -> Result<Vec<PastCall>, StoreError> {
        self.db.with(|c| {
            let mut st = c.prepare(
                "SELECT c.id, c.started_ms, c.caller, c.callee, c.ended_ms,
                        (SELECT l.callee FROM calls l WHERE l.parent = c.id AND l.answered_ms IS NOT NULL
                         ORDER BY l.answered_ms LIMIT 1)
                 FROM calls c WHERE c.caller = ?1 AND c.parent IS NULL AND c.ended_ms IS NOT NULL
                 ORDER BY c.seq DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![number, limit], |r| {
                let started: i64 = r.get(1)?;
                let ended: Option<i64> = r.get(4)?;
                Ok(PastCall {
                    call_id: r.get(0)?,
                    started_ms: started,
                    caller: r.get(2)?,
                    callee: r.get(3)?,
                    duration_s: ended.map(|e| ((e - started).max(0) / 1000) as u32).unwrap_or(0),
                    answered_by: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_quotas_refuse_the_write_that_goes_over_and_keep_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let db = dir.join("t.db");
        let _records = super::super::Store::open(&db).unwrap();
        let d = PluginData::open(&db).unwrap();
        let limits = KvLimits {
            keys: 3,
            bytes: 100,
        };
        for k in ["a", "b", "c"] {
            d.kv_set("p", k, "0123456789", None, limits)
                .unwrap()
                .unwrap();
        }
        let e = d.kv_set("p", "d", "x", None, limits).unwrap().unwrap_err();
        assert!(e.contains("kv-keys"), "{e}");
        // Replacing a key is not a new key; growing it past the bytes is refused.
        d.kv_set("p", "a", "short", None, limits).unwrap().unwrap();
        let e = d
            .kv_set("p", "a", &"x".repeat(90), None, limits)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("kv-bytes"), "{e}");
        assert_eq!(d.kv_get("p", "a").unwrap().as_deref(), Some("short"));
        // Another plugin has its own quota.
        d.kv_set("q", "d", "x", None, limits).unwrap().unwrap();
        // Freed room can be used again.
        d.kv_delete("p", "b").unwrap();
        d.kv_set("p", "d", "x", None, limits).unwrap().unwrap();
    }

    #[test]
    fn kv_is_per_plugin_and_expires() {
        let dir = std::env::temp_dir().join(format!("hl-kv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let _records = super::super::Store::open(&db).unwrap(); // creates `calls`
        let d = PluginData::open(&db).unwrap();
        d.kv_set("a", "k", "1", None, KvLimits::NONE)
            .unwrap()
            .unwrap();
        d.kv_set("b", "k", "2", None, KvLimits::NONE)
            .unwrap()
            .unwrap();
        d.kv_set("a", "gone", "x", Some(0), KvLimits::NONE)
            .unwrap()
            .unwrap();
        assert_eq!(d.kv_get("a", "k").unwrap().as_deref(), Some("1"));
        assert_eq!(d.kv_get("b", "k").unwrap().as_deref(), Some("2"));
        assert_eq!(d.kv_get("a", "gone").unwrap(), None);
        // Listed by prefix: the plugin's own live keys; % is not a pattern.
        d.kv_set("a", "r:1", "x", None, KvLimits::NONE)
            .unwrap()
            .unwrap();
        d.kv_set("a", "r%2", "y", None, KvLimits::NONE)
            .unwrap()
            .unwrap();
        let keys = |p: &str| -> Vec<String> {
            d.kv_list("a", p, 10)
                .unwrap()
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(keys(""), ["k", "r%2", "r:1"]);
        assert_eq!(keys("r:"), ["r:1"]);
        assert_eq!(keys("r%"), ["r%2"]);
        assert_eq!(d.kv_list("a", "", 1).unwrap().len(), 1);
        d.kv_delete("a", "k").unwrap();
        assert_eq!(d.kv_get("a", "k").unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }
}
