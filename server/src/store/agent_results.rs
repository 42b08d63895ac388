//! Agents' measured results (department calls answered, conversions reported
//! by the CRM), kept across restarts: ranking by effectiveness needs weeks of
//! history, not what one process saw.

use std::path::Path;

use rusqlite::params;

use super::{Db, StoreError};

/// What an agent achieved: department calls answered, and how many of them
/// the CRM reported as converted (a sale, a resolved case).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AgentResults {
    pub answered: u64,
    pub converted: u64,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS agent_results (
        user TEXT PRIMARY KEY,
        answered INTEGER NOT NULL,
        converted INTEGER NOT NULL
    );";

#[derive(Clone)]
pub struct AgentResultsStore {
    db: Db,
}

impl AgentResultsStore {
    pub fn open(path: &Path) -> Result<AgentResultsStore, StoreError> {
        Ok(AgentResultsStore {
            db: Db::open(path, SCHEMA)?,
        })
    }

    /// Adds to an agent's counts (one upsert; SQLite commits before returning).
    pub fn add(&self, user: &str, answered: u64, converted: u64) -> Result<(), StoreError> {
        self.db.with(|c| {
            c.execute(
                "INSERT INTO agent_results (user, answered, converted) VALUES (?1, ?2, ?3)
                 ON CONFLICT(user) DO UPDATE SET answered = answered + ?2, converted = converted + ?3",
                params![user, answered as i64, converted as i64],
            )
            .map(|_| ())
        })
    }

    pub fn all(&self) -> Result<Vec<(String, AgentResults)>, StoreError> {
        self.db.with(|c| {
            let mut st = c.prepare("SELECT user, answered, converted FROM agent_results")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    AgentResults {
                        answered: r.get::<_, i64>(1)?.max(0) as u64,
                        converted: r.get::<_, i64>(2)?.max(0) as u64,
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
    fn results_add_up_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("hookline-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hookline.db");
        {
            let s = AgentResultsStore::open(&path).unwrap();
            s.add("201", 1, 0).unwrap();
            s.add("201", 1, 0).unwrap();
            s.add("201", 0, 1).unwrap();
            s.add("202", 0, 1).unwrap();
        }
        let mut all = AgentResultsStore::open(&path).unwrap().all().unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            [
                (
                    "201".to_string(),
                    AgentResults {
                        answered: 2,
                        converted: 1
                    }
                ),
                (
                    "202".to_string(),
                    AgentResults {
                        answered: 0,
                        converted: 1
                    }
                ),
            ]
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
