//! `Node`: everything the node's tasks share (config, media engine, plugin
//! host, store, call-control state), with the admission and per-plugin
//! lookups every call makes. Built by `crate::node` at start-up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::admission::{Admission, Refusal};
use super::routing::Route;
use super::{conference, presence, queue, session, sip_driver, SipCommand};
use crate::config::Config;
use crate::media::prompt::PromptSet;
use crate::media::worker::{MediaEngine, PortPool};
use crate::plugin::PluginHost;
use crate::sip::registrar::Registrar;
use crate::store::Store;

/// A plugin version as this node runs it: on a call's session.
pub type Plugin = crate::plugin::LoadedPlugin<session::CallSession>;

/// Lines per second strangers can make the node log.
const STRANGER_LINES_PER_S: u32 = 20;

/// Everything shared by the node's tasks.
pub struct Node {
    pub config: Config,
    pub media: Arc<MediaEngine>,
    pub ports: PortPool,
    pub plugins: PluginHost<session::CallSession>,
    pub prompts: Arc<PromptSet>,
    pub store: Store,
    /// Node-wide call and CPS limits.
    pub admission: Mutex<Admission>,
    /// Plugins and routes in force (the file's, then the API's changes).
    pub routing: super::routing::Routing,
    /// The changes made over the API, as kept on disk; held while one is
    /// made, so changes apply one at a time.
    pub changes: tokio::sync::Mutex<crate::config::catalog::Changes>,
    /// Set on SIGTERM: new calls get 503, running calls finish.
    pub draining: AtomicBool,
    pub refused: AtomicU64,
    /// Call tasks still running (a drain waits for them, records included).
    pub call_tasks: AtomicU64,
    /// Log lines strangers can cause (refused credentials, calls with no
    /// route): 20 a second, the rest counted.
    pub stranger_log: Mutex<crate::rate::LogBudget>,
    pub registrar: Arc<Mutex<Registrar>>,
    pub sip_addr: SocketAddr,
    /// Prompts of languages other than the default, by language.
    pub prompt_sets: HashMap<String, Arc<PromptSet>>,
    /// Speech for `say` items (cached).
    pub tts: Arc<crate::speech::tts::Tts>,
    /// Speech recognizers by language (models loaded once, shared by calls).
    pub recognizers: crate::speech::asr::Recognizers,
    /// Plugins' key-value data, recordings, call history.
    pub plugin_data: crate::store::plugin_data::PluginData,
    pub data_dir: std::path::PathBuf,
    /// Shared HTTP client for plugins' fetches.
    pub http: reqwest::Client,
    /// The API token in force (configured, or generated and kept in the data directory).
    pub api_token: String,
    /// Failed API and browser-token authentications per source address.
    pub auth_failures: crate::auth::AuthFailures,
    /// Addresses plugins' HTTP may not reach (the node's own services, metadata).
    pub net_guard: crate::plugin::net_guard::NetGuard,
    pub counters: crate::plugin::services::Counters,
    /// Browser legs and agents.
    pub webrtc: crate::webrtc::WebRtc,
    /// Agents' availability for ring groups.
    pub presence: presence::Presence,
    /// Callers waiting in queues.
    pub queues: queue::Queues,
    /// Conference rooms and their members.
    pub rooms: conference::Rooms,
    /// Queue callbacks kept across restarts.
    pub callbacks: crate::store::callbacks::Callbacks,
    /// Agents' results (answered, converted) kept across restarts.
    pub agent_results: crate::store::agent_results::AgentResultsStore,
    /// The SIP driver's commands, once it runs (browser calls dial through it).
    pub sip_tx: std::sync::OnceLock<UnboundedSender<SipCommand>>,
}

impl Node {
    /// Whether a line a stranger caused may be logged now (20 a second);
    /// `Some(n)`: yes, and `n` were dropped before it.
    pub fn stranger_line(&self) -> Option<u64> {
        let (admit, dropped) = lock(&self.stranger_log).admit(Instant::now(), STRANGER_LINES_PER_S);
        admit.then_some(dropped.unwrap_or(0))
    }

    /// Adds to an agent's results in memory (ranking reads them) and on disk
    /// (off the async threads: a call's answer does not wait on SQLite).
    pub fn add_agent_results(
        &self,
        user: &str,
        answered: u64,
        converted: u64,
    ) -> presence::AgentResults {
        let updated = self.presence.add_results(user, answered, converted);
        let (store, user) = (self.agent_results.clone(), user.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.add(&user, answered, converted) {
                tracing::warn!("agent {user}'s results not saved: {e}");
            }
        });
        updated
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        lock(&self.admission).active()
    }

    /// Admits a call on the node and on its route, or says why not; the
    /// slot gives both places back when dropped.
    pub(super) fn admit(self: &Arc<Self>, route: Arc<Route>) -> Result<Slot, Refusal> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(Refusal::Draining);
        }
        let now = Instant::now();
        lock(&self.admission).admit(now)?;
        if let Err(e) = route.admit(now) {
            lock(&self.admission).release();
            return Err(e);
        }
        Ok(Slot {
            node: self.clone(),
            route,
        })
    }

    /// Hands a command to the SIP driver.
    pub(crate) fn send_sip(&self, cmd: SipCommand) {
        if let Some(tx) = self.sip_tx.get() {
            let _ = tx.send(cmd);
        }
    }

    /// Config (JSON) a plugin gets when a call is handed over to it.
    pub fn plugin_config_json(&self, name: &str) -> String {
        self.routing
            .table()
            .plugin(name)
            .and_then(|p| serde_json::to_string(&p.config).ok())
            .unwrap_or_else(|| "{}".into())
    }

    /// What the operator granted a plugin (none for one not in the config).
    /// The quota caps the config gives plugin `name` (built-in defaults for
    /// a plugin it does not list).
    pub fn quotas_for(&self, name: &str) -> crate::plugin::quotas::Quotas {
        self.routing
            .table()
            .plugin(name)
            .map(|p| p.quotas)
            .unwrap_or_default()
    }

    pub fn grants_for(&self, name: &str) -> crate::plugin::manifest::Grants {
        self.routing
            .table()
            .plugin(name)
            .and_then(|p| crate::plugin::manifest::Grants::parse(&p.grants).ok())
            .unwrap_or_default()
    }

    /// The address to put in SDP for media towards `peer`.
    pub(crate) fn media_ip_for(&self, peer: SocketAddr) -> IpAddr {
        if let Some(ip) = self.config.node.advertise_ip {
            return ip;
        }
        if !self.sip_addr.ip().is_unspecified() {
            return self.sip_addr.ip();
        }
        sip_driver::local_ip_toward(peer.ip())
    }
}

/// A call's place on the node and on its route, given back when dropped
/// (whatever ends the call: a hang-up, a panic, a failed start).
pub(crate) struct Slot {
    node: Arc<Node>,
    pub route: Arc<Route>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.node.admission).release();
        self.route.release();
    }
}

/// Locks a mutex, ignoring poisoning (the guarded counters stay consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
