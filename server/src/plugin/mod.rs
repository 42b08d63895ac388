//! The wasmtime host: one engine, one pre-linked `InstancePre` per plugin
//! version, and one store and instance per call from the pooling allocator.
//!
//! Plugins are swapped atomically (hot reload): a call holds an `Arc` to the
//! version it started on and finishes there; new calls get the new version.

pub mod check;
mod epoch;
pub mod harness;
pub mod manifest;
pub mod net_guard;
pub mod new;
pub mod output;
mod prepare;
pub mod quotas;
pub mod rules;
pub mod services;
mod warm;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use thiserror::Error;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use manifest::{Checked, Grants, ManifestError};

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "call-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use hookline::call::types::CallError;

use epoch::EPOCH;

/// Longest a component may take to compile (a deploy or a start-up load).
const MAX_COMPILE: Duration = Duration::from_secs(120);

/// Deepest chain of hand-overs (IVR -> voicemail -> ...) on one call.
pub const MAX_HAND_OVER_DEPTH: u32 = 4;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin engine: {0}")]
    Engine(String),
    #[error("plugin {name}: {message}")]
    Load { name: String, message: String },
    #[error("plugin {name}: manifest: {source}")]
    Manifest { name: String, source: ManifestError },
}

/// What a plugin's `handle-call` came to.
#[derive(Debug)]
pub enum Outcome {
    /// Returned `ok`.
    Done,
    /// Returned `err(reason)`.
    Failed(String),
    /// Trapped, ran out of a budget, or could not be instantiated.
    Trapped(String),
}

/// The call a plugin runs on, as the plugin runtime sees it. The host API
/// itself is the call's business: `link` adds it to the linker (the node's
/// is `call::host_api`), so this runtime knows nothing of call control.
pub trait Session: Send + Sized + 'static {
    /// Adds the `hookline:call` imports for calls on this kind of session.
    fn link(linker: &mut Linker<CallState<Self>>) -> wasmtime::Result<()>;
    fn call_id(&self) -> &str;
    /// What the runtime keeps on the call across the plugins that run on it.
    fn run_state(&mut self) -> &mut RunState;
}

/// What the plugin runtime keeps on a call across its plugins (the route's,
/// then any it hands over to).
#[derive(Debug, Default)]
pub struct RunState {
    /// The plugin's wall-clock deadline, set by the first run.
    pub deadline: Option<tokio::time::Instant>,
    /// Hand-overs deep (0 for the route's plugin).
    pub depth: u32,
    /// The running plugin's config and hand-over arguments (JSON).
    pub running: Option<(String, Option<String>)>,
    /// Turns true when the caller hangs up (seen by the node at once; the
    /// runtime then gives the plugin a grace period to save its data).
    pub hung_up: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Per-call store data: the WASI context (nothing granted), the plugin's
/// grants and the call.
pub struct CallState<S: 'static> {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// 20 ms epoch slices this call's plugin has run for.
    cpu_slices: u64,
    /// The plugin version running (none while a manifest is read).
    pub(crate) plugin: Option<Arc<LoadedPlugin<S>>>,
    /// The call; lent out while a handed-over plugin runs on it.
    pub(crate) session: Option<S>,
    /// The plugin's route config (JSON).
    pub(crate) config: String,
    /// Epoch ticks met while the warmer runs the guest's `prepare`
    /// (`prepare.rs`); none outside it.
    prepare_ticks: Option<u32>,
    /// What this call has used of its plugin's per-call quotas.
    pub(crate) used: quotas::CallUse,
    /// The guest's stdout/stderr, and the log budget the `log` verb shares.
    pub(crate) output: Option<Arc<output::PluginOutput>>,
}

/// What one call's plugin may use beyond memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// CPU time across the whole call (the guest's own computation; waiting
    /// in a verb costs nothing). A manifest may ask for less, never more.
    pub cpu: Duration,
    /// Wall-clock time the plugin may keep the call.
    pub wall: Duration,
    /// Linear memory per instance: the pool's slot size and the manifests' ceiling.
    pub memory_mib: u32,
    /// The guest's native stack (`max_wasm_stack`), in KiB.
    pub stack_kib: u32,
    /// How long a plugin may go on after its caller hung up.
    pub grace: Duration,
}

/// Room on a call's fiber above the guest's stack for the host's own frames
/// (host functions, the epoch callback, the allocator). wasmtime checks the
/// guest against `max_wasm_stack` only: were the fiber no larger, a guest
/// recursing to that limit would leave the host nothing and the process
/// would abort on the fiber's guard page.
pub const HOST_STACK_ROOM: usize = 512 << 10;

impl Budget {
    /// (guest stack, fiber stack) in bytes.
    pub fn stacks(&self) -> (usize, usize) {
        let guest = (self.stack_kib.clamp(64, 8192) as usize) << 10;
        (guest, guest + HOST_STACK_ROOM)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            cpu: Duration::from_secs(2),
            wall: Duration::from_secs(4 * 3600),
            memory_mib: 64,
            stack_kib: 512,
            grace: Duration::from_secs(10),
        }
    }
}

impl<S: Send + 'static> WasiView for CallState<S> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plugin version ready to instantiate on sessions of type `S`.
pub struct LoadedPlugin<S: 'static> {
    /// The name routes use (from the node's config).
    pub name: String,
    pub manifest: Checked,
    /// Size of the component and when it was installed (shown by the API).
    pub bytes: usize,
    pub loaded_at_ms: i64,
    /// New speech this version had synthesised in the current minute (all its calls).
    pub(crate) tts_minute: std::sync::Mutex<crate::rate::Window>,
    pre: CallPluginPre<CallState<S>>,
    /// Where the exports are, for instances the warmer makes from `pre`.
    indices: CallPluginIndices,
    /// The optional `prepare` export and the config spares get.
    prepare: prepare::Prepare,
    /// Instances made ahead of their calls (`warm.rs`).
    spares: warm::Spares<S>,
}

impl<S> LoadedPlugin<S> {
    /// The optional `prepare` export: "none", "on", or "off" once it trapped.
    pub fn prepare_state(&self) -> &'static str {
        match (self.prepare.exported(), self.prepare.is_off()) {
            (false, _) => "none",
            (true, false) => "on",
            (true, true) => "off",
        }
    }

    /// The guest CPU a call may use: the host's budget, or less if the
    /// manifest asks for less.
    fn cpu_budget(&self, host: Duration) -> Duration {
        match self.manifest.cpu_ms {
            0 => host,
            ms => host.min(Duration::from_millis(ms.into())),
        }
    }
}

/// A component compiled and checked to be a plugin.
struct Compiled<S: 'static> {
    pre: CallPluginPre<CallState<S>>,
    manifest: Manifest,
    prepare: prepare::Prepare,
}

/// Compiles plugins and runs calls in them.
pub struct PluginHost<S: 'static> {
    engine: Engine,
    linker: Linker<CallState<S>>,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin<S>>>>,
    pub budget: Budget,
    /// One compile at a time.
    compiling: Arc<tokio::sync::Semaphore>,
    /// Makes spare instances and drops finished stores, off the calls' path.
    warmer: warm::Warmer<S>,
    /// Moves the epoch on (its own thread, or the media tick once driven).
    epochs: epoch::Epochs,
}

impl<S: Session> PluginHost<S> {
    /// `max_calls` sizes the pool: the node's call capacity (hand-overs
    /// hold a second instance for their duration), plus room for the
    /// warmer's spares and the stores it has yet to drop.
    pub fn new(max_calls: u32, budget: Budget) -> Result<Self, PluginError> {
        let max_instances = max_calls + warm::HEADROOM;
        let memory = (budget.memory_mib.clamp(1, manifest::MAX_MEMORY_MIB) as usize) << 20;
        let mut pool = PoolingAllocationConfig::default();
        // A call's instance is made and dropped once per call: a freed slot
        // keeps up to 128 KiB of the pages the call wrote resident (found
        // with Linux's PAGEMAP_SCAN where the kernel has it, 6.7+; else the
        // first 128 KiB), reset in place, and decommits are batched, so the
        // next instance takes fewer page faults and TLB shootdowns. Measured,
        // instantiate + first entry: 50.5 -> 45.3 µs keeping the first pages,
        // 39 -> 25 µs with the scan (a Rust guest's stack tops out at 1 MiB,
        // beyond the first pages).
        pool.total_component_instances(max_instances)
            .linear_memory_keep_resident(128 << 10)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(64)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .total_memories(max_instances * 2)
            .total_tables(max_instances * 4)
            .total_stacks(max_instances)
            .total_core_instances(max_instances * 4)
            .max_memory_size(memory)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(32)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20);
        let (guest_stack, fiber_stack) = budget.stacks();
        let mut config = Config::new();
        config
            .max_wasm_stack(guest_stack)
            .epoch_interruption(true)
            .memory_reservation(memory as u64)
            .memory_guard_size(64 << 10)
            .memory_init_cow(true)
            .async_stack_size(fiber_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `perf` sees plugins' compiled code as bare addresses; with this set
        // wasmtime writes /tmp/perf-<pid>.map and `perf report` names the
        // guest's functions (profiling a plugin, or the node with plugins).
        if std::env::var_os("HOOKLINE_PLUGIN_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        S::link(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        // Epoch ticks let a busy plugin yield its thread (20 ms slices).
        let epochs =
            epoch::Epochs::start(&engine).map_err(|e| PluginError::Engine(e.to_string()))?;
        let warmer = warm::Warmer::start(engine.clone(), budget.cpu)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(PluginHost {
            engine,
            linker,
            plugins: RwLock::new(HashMap::new()),
            budget,
            compiling: Arc::new(tokio::sync::Semaphore::new(1)),
            warmer,
            epochs,
        })
    }

    /// A tick to call every 20 ms from a thread that wakes that often anyway
    /// (the node gives it to the media clock): the host's own epoch thread
    /// then only checks, once a second, that it is still called.
    pub fn epoch_driver(&self) -> impl Fn() + Send + 'static {
        self.epochs.driver()
    }

    /// Compiles and pre-links a component, reads its manifest and checks it
    /// against `granted`. Nothing is installed: see [`PluginHost::install`].
    pub async fn prepare(
        &self,
        name: &str,
        bytes: &[u8],
        granted: &Grants,
        caps: &quotas::Quotas,
    ) -> Result<Arc<LoadedPlugin<S>>, PluginError> {
        let Compiled {
            pre,
            manifest,
            prepare,
        } = self.compile(name, bytes).await?;
        let indices =
            CallPluginIndices::new(pre.instance_pre()).map_err(|e| PluginError::Load {
                name: name.into(),
                message: format!("{e:#}"),
            })?;
        let checked = manifest::check(&manifest, granted, self.budget.memory_mib, caps).map_err(
            |source| PluginError::Manifest {
                name: name.into(),
                source,
            },
        )?;
        Ok(Arc::new(LoadedPlugin {
            name: name.into(),
            manifest: checked,
            bytes: bytes.len(),
            loaded_at_ms: crate::store::now_ms(),
            tts_minute: std::sync::Mutex::new(crate::rate::Window::new(Instant::now())),
            pre,
            indices,
            prepare,
            spares: warm::Spares::new(self.warmer.total.clone()),
        }))
    }

    /// Compiles a component and reads its manifest, without checking grants
    /// (`hookline plugin check`).
    pub async fn inspect(&self, bytes: &[u8]) -> Result<Manifest, PluginError> {
        self.compile("(file)", bytes).await.map(|c| c.manifest)
    }

    async fn compile(&self, name: &str, bytes: &[u8]) -> Result<Compiled<S>, PluginError> {
        let err = |message: String| PluginError::Load {
            name: name.into(),
            message,
        };
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        // Compiling a large component takes a while: off the async threads,
        // one at a time (the permit goes with the compile, so a component
        // that takes too long still holds it until it is done), bounded in time.
        let permit = self
            .compiling
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| err(e.to_string()))?;
        let compile = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = permit;
            Component::new(&engine, &owned)
        });
        let component = tokio::time::timeout(MAX_COMPILE, compile)
            .await
            .map_err(|_| err(format!("compiling took longer than {MAX_COMPILE:?}")))?
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(format!("not a WebAssembly component: {e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| err(format!("imports something this node does not offer: {e:#}")))?;
        let pre = CallPluginPre::new(pre)
            .map_err(|e| err(format!("not a hookline:call plugin: {e:#}")))?;
        let mut store = new_store(
            &self.engine,
            None,
            None,
            64,
            Duration::from_millis(500),
            None,
        );
        let instance = pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await
            .map_err(|e| err(format!("instantiate: {e:#}")))?;
        let bindings = CallPlugin::new(&mut store, &instance)
            .map_err(|e| err(format!("not a hookline:call plugin: {e:#}")))?;
        let prepare = prepare::Prepare::find(&component, &instance, &mut store).map_err(err)?;
        let manifest =
            tokio::time::timeout(Duration::from_secs(5), bindings.call_manifest(&mut store))
                .await
                .map_err(|_| err("manifest() did not return within 5 s".into()))?
                .map_err(|e| err(format!("manifest() trapped: {}", e.root_cause())))?;
        Ok(Compiled {
            pre,
            manifest,
            prepare,
        })
    }

    /// Makes `plugin` the version new calls get; returns the one it replaced.
    pub fn install(&self, plugin: Arc<LoadedPlugin<S>>) -> Option<Arc<LoadedPlugin<S>>> {
        let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        map.insert(plugin.name.clone(), plugin)
    }

    /// Takes a plugin out: new calls cannot reach it; calls on it finish.
    pub fn remove(&self, name: &str) -> Option<Arc<LoadedPlugin<S>>> {
        let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        map.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin<S>>> {
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).cloned()
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Vec<Arc<LoadedPlugin<S>>> {
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Runs one call in a fresh instance; gives the session back with the outcome.
    ///
    /// Not an `async fn`: the session goes into the call's store before the
    /// returned future first runs. An `async fn` keeps each argument in its
    /// future for the whole call, and this future lives in every call's task
    /// as long as the call does: the session (808 bytes), moved out at once,
    /// stayed there as dead weight.
    pub fn run<'a>(
        &'a self,
        plugin: &'a Arc<LoadedPlugin<S>>,
        mut session: S,
        info: CallInfo,
    ) -> impl std::future::Future<Output = (Outcome, S)> + Send + 'a {
        // One wall-clock deadline for the call; a handed-over plugin's ends
        // just before its caller's, so the session is always handed back.
        let wall = self.budget.wall;
        let run = session.run_state();
        let deadline = match run.deadline {
            Some(d) => d - Duration::from_millis(100 * run.depth as u64),
            None => *run.deadline.insert(tokio::time::Instant::now() + wall),
        };
        // After a hang-up the plugin has a grace period, then its instance ends.
        let grace = self.budget.grace;
        let hung_up = run.hung_up.clone();
        let cut = async move {
            // No caller to hang up (a placed call), or its channel gone: never.
            let Some(mut h) = hung_up else {
                return std::future::pending().await;
            };
            if h.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await
        };
        // What this plugin runs on, for the recordings it makes (a crash
        // hands an interrupted one back to it with the same config).
        let outer = run
            .running
            .replace((info.config.clone(), info.arguments.clone()));
        // The guest's stdout and stderr go to the node log, under the call.
        let output = output::PluginOutput::new(
            session.call_id(),
            &plugin.name,
            plugin.manifest.quotas.log_lines_per_s,
        );
        // A spare instance if one is ready (`warm.rs`); the warmer makes the
        // next, prepared with this call's config (`prepare.rs`).
        plugin.prepare.note(&info.config, info.arguments.as_deref());
        let spare = plugin.spares.take();
        self.warmer.refill(plugin);
        let (mut store, ready) = match spare {
            Some(spare) => {
                let prepared = spare.prepared.as_deref() == Some(info.config.as_str())
                    && info.arguments.is_none();
                self.warmer.hit(prepared);
                spare.output.fill(&output);
                let mut store = spare.store;
                let state = store.data_mut();
                state.plugin = Some(plugin.clone());
                state.session = Some(session);
                // The epoch moved on while the spare waited: its first slice
                // starts now.
                store.set_epoch_deadline(1);
                (store, Some(spare.bindings))
            }
            None => {
                let slot = output::OutputSlot::empty();
                slot.fill(&output);
                let store = new_store(
                    &self.engine,
                    Some(plugin.clone()),
                    Some(session),
                    plugin.manifest.memory_mib,
                    plugin.cpu_budget(self.budget.cpu),
                    Some(&slot),
                );
                (store, None)
            }
        };
        let state = store.data_mut();
        state.config = info.config.clone();
        state.output = Some(output.clone());
        async move {
            let bindings = match ready {
                Some(bindings) => Ok(bindings),
                // Boxed: instantiation's future (1.2 KB) is done with once
                // the guest is entered; inline it would stay in the call's task.
                None => Box::pin(plugin.pre.instantiate_async(&mut store)).await,
            };
            let outcome = match bindings {
                Ok(bindings) => {
                    tokio::select! {
                        r = bindings.call_handle_call(&mut store, &info) => match r {
                            Ok(Ok(())) => Outcome::Done,
                            Ok(Err(reason)) => Outcome::Failed(reason),
                            Err(trap) => {
                                tracing::debug!("plugin trap: {trap:?}");
                                Outcome::Trapped(output.trap_cause(&trap))
                            }
                        },
                        _ = tokio::time::sleep_until(deadline) => {
                            Outcome::Trapped(format!("wall-clock budget of {wall:?} exhausted"))
                        }
                        _ = cut => Outcome::Trapped(format!(
                            "still running {grace:?} after the caller hung up"
                        )),
                    }
                }
                Err(e) => Outcome::Trapped(format!("instantiate: {e:#}")),
            };
            output.finish();
            let state = store.data_mut();
            let mut session = state
                .session
                .take()
                .expect("a run's session is back once its hand-overs return");
            // What the guest held of the host (streams, requests) goes here
            // and now, as the call ends; the instance's own memory is reset
            // by the warmer, off the call's path.
            // So does its hold on the plugin version (a replaced version goes
            // with its last call, not when the warmer gets to the store).
            drop(std::mem::replace(&mut state.table, ResourceTable::new()));
            state.plugin = None;
            self.warmer.discard(store);
            session.run_state().running = outer;
            (outcome, session)
        }
    }

    /// Calls so far that started on a spare instance.
    pub fn warm_hits(&self) -> u64 {
        self.warmer.hits()
    }

    /// Calls so far that started on a spare prepared with their config.
    pub fn prepared_hits(&self) -> u64 {
        self.warmer.prepared_hits()
    }

    /// Instantiate + first entry, each call timed on its own, calls starting
    /// `gap` apart (as calls arrive, not back to back): the microseconds
    /// each took to start and return, and whether the warmer was running a
    /// job (making a spare, dropping a store) while it did.
    pub async fn instantiate_latencies(
        &self,
        plugin: &Arc<LoadedPlugin<S>>,
        make: impl Fn() -> S,
        info: &CallInfo,
        n: u32,
        gap: Duration,
        expect: impl Fn(&Outcome) -> bool,
    ) -> Result<Vec<(f64, bool)>, String> {
        let mut took = Vec::with_capacity(n as usize);
        let mut next = Instant::now();
        for i in 0..n {
            // Blocking the bench's own runtime between calls: nothing else runs on it.
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += gap;
            // What the node does before and after the plugin (the call's
            // session and info made, the session's teardown) is not timed.
            let (session, info) = (make(), info.clone());
            let working = self.warmer.working();
            let start = Instant::now();
            let session = self
                .run_expecting(plugin, session, info, i, &expect)
                .await?;
            let micros = start.elapsed().as_secs_f64() * 1e6;
            let beside = working % 2 == 1 || self.warmer.working() != working;
            took.push((micros, beside));
            drop(session);
        }
        Ok(took)
    }

    /// Measures instantiate + first entry into the guest (a call that hangs up at once).
    pub async fn instantiate_micros(
        &self,
        plugin: &Arc<LoadedPlugin<S>>,
        make: impl Fn() -> S,
        info: &CallInfo,
        n: u32,
        expect: impl Fn(&Outcome) -> bool,
    ) -> Result<f64, String> {
        let start = Instant::now();
        for i in 0..n {
            self.run_expecting(plugin, make(), info.clone(), i, &expect)
                .await?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
    }

    /// One measured run; gives the session back. A plugin that traps at
    /// entry would look fast: every run must end as the benchmark expects.
    async fn run_expecting(
        &self,
        plugin: &Arc<LoadedPlugin<S>>,
        session: S,
        info: CallInfo,
        i: u32,
        expect: impl Fn(&Outcome) -> bool,
    ) -> Result<S, String> {
        let (outcome, session) = self.run(plugin, session, info).await;
        match expect(&outcome) {
            true => Ok(session),
            false => Err(format!("run {i} of {}: {outcome:?}", plugin.manifest.name)),
        }
    }
}

/// Runs blocking work (SQLite, files, a synthesizer) off the async threads.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, CallError> {
    tokio::task::spawn_blocking(f).await.map_err(failed)
}

/// A node-side failure as the plugin sees it.
pub(crate) fn failed(e: impl std::fmt::Display) -> CallError {
    CallError::Failed(e.to_string())
}

/// A call-info for benchmarks and checks.
pub fn bench_info() -> CallInfo {
    CallInfo {
        call_id: "bench".into(),
        caller: "bench".into(),
        callee: "bench".into(),
        caller_name: None,
        domain: "localhost".into(),
        config: "{}".into(),
        arguments: None,
    }
}

/// Where a plugin deployed over the API is kept.
pub fn deployed_path(data: &std::path::Path, name: &str) -> std::path::PathBuf {
    data.join("plugins").join(format!("{name}.wasm"))
}

/// Every route (and fallback) that uses `plugin` has a config its schema accepts.
pub fn check_route_configs<S>(
    routes: &[crate::config::catalog::NamedRoute],
    plugin: &LoadedPlugin<S>,
) -> anyhow::Result<()> {
    let schema = &plugin.manifest.schema;
    let as_json = |v: &toml::Value| serde_json::to_value(v).unwrap_or_default();
    for crate::config::catalog::NamedRoute { id, route: r } in routes {
        if r.plugin == plugin.name {
            manifest::check_config(schema, &as_json(&r.config)).map_err(|e| {
                anyhow::anyhow!("route {id:?} config for plugin {}: {e}", plugin.name)
            })?;
        }
        if let Some(fb) = r.fallback.as_ref().filter(|f| f.plugin == plugin.name) {
            manifest::check_config(schema, &as_json(&fb.config)).map_err(|e| {
                anyhow::anyhow!(
                    "route {id:?} fallback config for plugin {}: {e}",
                    plugin.name
                )
            })?;
        }
    }
    Ok(())
}

/// A call's store: its limits, its CPU accounting, and its guest's output.
fn new_store<S: Send + 'static>(
    engine: &Engine,
    plugin: Option<Arc<LoadedPlugin<S>>>,
    session: Option<S>,
    memory_mib: u32,
    cpu: Duration,
    output: Option<&Arc<output::OutputSlot>>,
) -> Store<CallState<S>> {
    let mut wasi = WasiCtx::builder();
    if let Some(out) = output {
        let (stdout, stderr) = out.streams();
        wasi.stdout(stdout).stderr(stderr);
    }
    let state = CallState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size((memory_mib.max(1) as usize) << 20)
            .instances(32)
            .build(),
        cpu_slices: 0,
        plugin,
        session,
        config: String::new(),
        prepare_ticks: None,
        used: quotas::CallUse::default(),
        output: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    // Every 20 ms epoch that finds the guest running costs a slice and
    // yields the thread (a busy plugin never stalls others); past the CPU
    // budget the guest traps.
    let max_slices = (cpu.as_millis() / EPOCH.as_millis()).max(1) as u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        let state = ctx.data_mut();
        state.cpu_slices += 1;
        if state.cpu_slices > max_slices {
            return Err(wasmtime::Error::msg("CPU budget exhausted"));
        }
        if let Some(ticks) = state.prepare_ticks.as_mut() {
            *ticks += 1;
            if *ticks >= prepare::MAX_TICKS {
                return Err(wasmtime::Error::msg("prepare() ran past its 20 ms slice"));
            }
        }
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
    store
}
