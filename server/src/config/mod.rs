//! `hookline.toml`: plugins, routes and node settings.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

pub mod catalog;
mod forwarding;
mod groups;
mod media;
mod node;
mod queue;
mod quotas;
mod routes;
pub mod schedule;
mod webrtc;

pub use forwarding::Forwarding;
pub use groups::{GroupConfig, Rank, RingStrategy};
pub use media::{CodecsConfig, PromptsConfig, SpeechConfig};
pub use node::{DtmfMode, MediaIo, NodeConfig};
pub use queue::QueueConfig;
pub use quotas::Quotas;
pub use routes::{
    CallKey, ExtensionConfig, FallbackConfig, PluginConfig, RouteConfig, TrunkConfig,
};
pub use schedule::Schedule;
pub use webrtc::{WebRtcAgent, WebRtcConfig};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeConfig,
    #[serde(default)]
    pub prompts: PromptsConfig,
    #[serde(default)]
    pub speech: SpeechConfig,
    #[serde(default)]
    pub codecs: CodecsConfig,
    #[serde(default)]
    pub webrtc: WebRtcConfig,
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Extensions (agents' phones) that may REGISTER, with their credentials.
    #[serde(default)]
    pub extensions: Vec<ExtensionConfig>,
    /// Carriers for calls to numbers, tried in this order (failover).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// Departments: agents rung together by a strategy, dialled like an extension.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Queues in front of departments, dialled like an extension.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Directory the relative paths above are resolved against (the file's own).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: String::new(),
            source: Box::new(source),
        })?;
        let mut ids = std::collections::HashSet::new();
        for route in &config.routes {
            if let Some(id) = &route.id {
                if !catalog::valid_id(id) {
                    return Err(ConfigError::Invalid(format!(
                        "route id {id:?}: 1 to 64 letters, digits or _ - . * + ~ @"
                    )));
                }
                if !ids.insert(id) {
                    return Err(ConfigError::Invalid(format!(
                        "two routes have the id {id:?}"
                    )));
                }
            }
            if let Some(fb) = &route.fallback {
                if !config.plugins.iter().any(|p| p.name == fb.plugin) {
                    return Err(ConfigError::Invalid(format!(
                        "route {:?} falls back to plugin {:?}, which is not in [[plugins]]",
                        route.number, fb.plugin
                    )));
                }
            }
            if let Some(s) = &route.schedule {
                s.validate().map_err(|e| {
                    ConfigError::Invalid(format!("route {:?} schedule: {e}", route.number))
                })?;
            }
            if !config.plugins.iter().any(|p| p.name == route.plugin) {
                return Err(ConfigError::Invalid(format!(
                    "route {:?} names plugin {:?}, which is not in [[plugins]]",
                    route.number, route.plugin
                )));
            }
        }
        if config.node.max_calls == 0 {
            return Err(ConfigError::Invalid(
                "node.max_calls must be at least 1".into(),
            ));
        }
        if !(0..=10).contains(&config.codecs.opus_complexity) {
            return Err(ConfigError::Invalid(format!(
                "codecs.opus_complexity must be 0..=10, not {}",
                config.codecs.opus_complexity
            )));
        }
        for e in &config.extensions {
            if let Some(h) = e.forward.as_ref().and_then(|f| f.hours.as_ref()) {
                h.validate().map_err(|err| {
                    ConfigError::Invalid(format!("extension {:?} forward.hours: {err}", e.user))
                })?;
            }
        }
        for g in &config.groups {
            if g.members.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "group {:?} has no members",
                    g.name
                )));
            }
            if g.step_s == 0 && g.strategy != RingStrategy::All {
                return Err(ConfigError::Invalid(format!(
                    "group {:?}: step_s must be at least 1",
                    g.name
                )));
            }
        }
        for q in &config.queues {
            if config.group(&q.group).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "queue {:?} names group {:?}, which is not in [[groups]]",
                    q.name, q.group
                )));
            }
            if q.callback_digit.is_some() && q.callback_digit == q.leave_digit {
                return Err(ConfigError::Invalid(format!(
                    "queue {:?}: callback_digit and leave_digit must differ",
                    q.name
                )));
            }
        }
        for a in &config.webrtc.agents {
            if a.token.len() < 8 {
                return Err(ConfigError::Invalid(format!(
                    "webrtc agent {:?}: a token of at least 8 characters is required",
                    a.user
                )));
            }
        }
        Ok(config)
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The group dialled as `name` (its name or number).
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups
            .iter()
            .find(|g| g.name == name || g.number.as_deref() == Some(name))
    }

    /// The queue dialled as `name` (its name or number).
    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues
            .iter()
            .find(|q| q.name == name || q.number.as_deref() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_in_order() {
        let c = Config::parse(
            r#"
            [[plugins]]
            name = "ivr"
            path = "x.wasm"
            [[routes]]
            number = "100"
            plugin = "ivr"
            config = { a = 1 }
            [[routes]]
            number = "55*"
            plugin = "ivr"
            "#,
        )
        .unwrap();
        let first = |n: &str| c.routes.iter().find(|r| r.matches(n));
        assert_eq!(first("100").unwrap().config["a"].as_integer(), Some(1));
        assert!(first("5512").is_some());
        assert!(first("7").is_none());
    }

    #[test]
    fn wrong_config_is_a_clear_error() {
        let e = Config::parse("[[routes]]\nnumber='*'\nplugin='nope'\n").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(Config::parse("[node]\nmax_calls = -1").is_err());
        assert!(Config::parse("[node]\nbogus = 1")
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }
}
