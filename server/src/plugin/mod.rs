//! The wasmtime host: one engine, one pre-linked `InstancePre` per plugin, and
//! one store and instance per call from the pooling allocator.

pub mod host_api;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::call::session::CallSession;

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "call-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use hookline::call::types::CallError;

/// The epoch tick: the unit of CPU accounting and the longest a plugin holds a thread.
const EPOCH: Duration = Duration::from_millis(10);

/// Memory one call's plugin instance may grow to.
const MAX_MEMORY: usize = 32 << 20;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin engine: {0}")]
    Engine(String),
    #[error("cannot load plugin {name} from {path}: {message}")]
    Load {
        name: String,
        path: String,
        message: String,
    },
}

/// What a plugin's `handle-call` came to.
#[derive(Debug)]
pub enum Outcome {
    /// Returned `ok`.
    Done,
    /// Returned `err(reason)`.
    Failed(String),
    /// Trapped, or could not be instantiated.
    Trapped(String),
}

/// Per-call store data: the WASI context (nothing granted) and the call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// 10 ms epoch slices this call's plugin has run for.
    cpu_slices: u64,
    pub session: CallSession,
}

/// What one call's plugin may use beyond memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// CPU time across the whole call (the guest's own computation; waiting
    /// in a verb costs nothing).
    pub cpu: Duration,
    /// Wall-clock time the plugin may keep the call.
    pub wall: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            cpu: Duration::from_secs(2),
            wall: Duration::from_secs(4 * 3600),
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plugin ready to instantiate.
pub struct LoadedPlugin {
    pub name: String,
    pre: CallPluginPre<CallState>,
}

/// Compiles plugins and runs calls in them.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    plugins: HashMap<String, Arc<LoadedPlugin>>,
    pub budget: Budget,
}

impl PluginHost {
    /// `max_instances` sizes the pool: the node's call capacity.
    pub fn new(max_instances: u32) -> Result<Self, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(max_instances)
            .total_memories(max_instances * 2)
            .total_tables(max_instances * 4)
            .total_stacks(max_instances)
            .total_core_instances(max_instances * 4)
            .max_memory_size(MAX_MEMORY)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .memory_reservation(MAX_MEMORY as u64)
            .memory_guard_size(64 << 10)
            .memory_init_cow(true)
            .async_stack_size(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        CallPlugin::add_to_linker::<_, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        // Epoch ticks let a busy plugin yield its thread (10 ms slices).
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH);
                }
            })
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(PluginHost {
            engine,
            linker,
            plugins: HashMap::new(),
            budget: Budget::default(),
        })
    }

    /// Compiles and pre-links a component.
    pub fn load(&mut self, name: &str, path: &Path) -> Result<(), PluginError> {
        let err = |message: String| PluginError::Load {
            name: name.into(),
            path: path.display().to_string(),
            message,
        };
        let component =
            Component::from_file(&self.engine, path).map_err(|e| err(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| err(format!("{e:#}")))?;
        let pre = CallPluginPre::new(pre)
            .map_err(|e| err(format!("not a hookline:call plugin: {e:#}")))?;
        self.plugins.insert(
            name.into(),
            Arc::new(LoadedPlugin {
                name: name.into(),
                pre,
            }),
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.get(name).cloned()
    }

    /// Runs one call in a fresh instance; gives the session back with the outcome.
    pub async fn run(
        &self,
        plugin: &LoadedPlugin,
        session: CallSession,
        info: CallInfo,
    ) -> (Outcome, CallSession) {
        let state = CallState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY)
                .instances(16)
                .build(),
            cpu_slices: 0,
            session,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every 10 ms epoch that finds the guest running costs a slice and
        // yields the thread (a busy plugin never stalls others); past the CPU
        // budget the guest traps.
        let max_slices = (self.budget.cpu.as_millis() / EPOCH.as_millis()).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.cpu_slices += 1;
            if state.cpu_slices > max_slices {
                return Err(wasmtime::Error::msg("CPU budget exhausted"));
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        let wall = self.budget.wall;
        let outcome = match plugin.pre.instantiate_async(&mut store).await {
            Ok(bindings) => {
                match tokio::time::timeout(wall, bindings.call_handle_call(&mut store, &info)).await
                {
                    Ok(Ok(Ok(()))) => Outcome::Done,
                    Ok(Ok(Err(reason))) => Outcome::Failed(reason),
                    Ok(Err(trap)) => {
                        tracing::debug!("plugin trap: {trap:?}");
                        Outcome::Trapped(trap.root_cause().to_string())
                    }
                    Err(_) => Outcome::Trapped(format!("wall-clock budget of {wall:?} exhausted")),
                }
            }
            Err(e) => Outcome::Trapped(format!("instantiate: {e:#}")),
        };
        (outcome, store.into_data().session)
    }

    /// Measures instantiate + first entry into the guest (a call that hangs up at once).
    pub async fn instantiate_micros(
        &self,
        plugin: &LoadedPlugin,
        make: impl Fn() -> CallSession,
        n: u32,
    ) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            let info = CallInfo {
                call_id: "bench".into(),
                caller: "bench".into(),
                callee: "bench".into(),
                caller_name: None,
                config: "{}".into(),
            };
            let _ = self.run(plugin, make(), info).await;
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    }
}
