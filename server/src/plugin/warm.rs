//! Plugin instances made before their call, and stores dropped after it,
//! both off the call's path.
//!
//! Measured on the sample IVR, a call's plugin run was four tenths
//! instantiating (wiring the component's imports into three core instances),
//! a third dropping the store (the pool resets the slot's memory: one
//! `PAGEMAP_SCAN` ioctl), and the rest the guest's own entry. A caller waits
//! only for the last part when a spare instance is ready and the dead store
//! is handed on: one thread per plugin host (the warmer) makes spares and
//! drops stores. The CPU is the same; the wait at call start is not, and
//! neither is the work on the async threads that also serve SIP and the API.
//!
//! A spare is the fresh instance the call would have made itself (a core
//! module's start function, if any, has run under the plugin's CPU budget,
//! which the call goes on counting); each serves one call, so nothing
//! passes from one call to another. Every bound is fixed: spares per plugin
//! and in all, jobs queued for the warmer (past it a call drops its own
//! store), and the pool is sized for them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use wasmtime::{Engine, Store};

use super::output::OutputSlot;
use super::{new_store, CallPlugin, CallState, LoadedPlugin};

/// Spare instances kept per plugin: a burst of calls arriving together
/// finds them; the warmer makes the next in tens of microseconds.
const SPARES: usize = 2;
/// Spare instances kept across all plugins (a node may have many).
const MAX_SPARES: usize = 32;
/// Jobs queued for the warmer: refills, and stores waiting to be dropped.
const JOBS: usize = 96;
/// Pool slots beyond one per call: the spares, a full queue of stores
/// waiting to be dropped, and the one the warmer is dropping.
pub(super) const HEADROOM: u32 = (MAX_SPARES + JOBS + 1) as u32;

/// An instance ready for a call: streams whose output the call fills in.
pub(super) struct Spare<S: 'static> {
    pub(super) store: Store<CallState<S>>,
    pub(super) bindings: CallPlugin,
    pub(super) output: Arc<OutputSlot>,
}

/// One plugin version's spares.
pub(super) struct Spares<S: 'static> {
    ready: Mutex<Vec<Spare<S>>>,
    /// Spares across the host (shared by its plugins).
    total: Arc<AtomicUsize>,
}

impl<S> Spares<S> {
    pub(super) fn new(total: Arc<AtomicUsize>) -> Spares<S> {
        Spares {
            ready: Mutex::new(Vec::new()),
            total,
        }
    }

    pub(super) fn take(&self) -> Option<Spare<S>> {
        let spare = self.lock().pop()?;
        self.total.fetch_sub(1, Ordering::Relaxed);
        Some(spare)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn put(&self, spare: Spare<S>) {
        self.lock().push(spare);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Spare<S>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S> Drop for Spares<S> {
    fn drop(&mut self) {
        let n = self.lock().len();
        self.total.fetch_sub(n, Ordering::Relaxed);
    }
}

enum Job<S: 'static> {
    /// Make a spare for this plugin if it is short of them.
    Refill(Weak<LoadedPlugin<S>>),
    /// Drop a finished call's store (its slot goes back to the pool).
    Discard(Store<CallState<S>>),
}

/// The warmer's front: what calls hand it.
pub(super) struct Warmer<S: 'static> {
    jobs: Sender<Job<S>>,
    /// Spares across the host's plugins.
    pub(super) total: Arc<AtomicUsize>,
    /// Calls that found a spare ready.
    hits: AtomicU64,
}

impl<S: Send + 'static> Warmer<S> {
    /// Starts the warmer thread; it ends when the host (this front) goes.
    pub(super) fn start(engine: Engine, cpu: Duration) -> std::io::Result<Warmer<S>> {
        let (jobs, rx) = crossbeam_channel::bounded::<Job<S>>(JOBS);
        let total = Arc::new(AtomicUsize::new(0));
        let all = total.clone();
        std::thread::Builder::new()
            .name("plugin-warmer".into())
            .spawn(move || {
                // Instantiation is async (the store is): a small executor of
                // its own, with no I/O, drives it.
                let rt = match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!("plugin warmer: {e}: instances are made at call start");
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Discard(store) => drop(store),
                        Job::Refill(plugin) => {
                            if let Some(plugin) = plugin.upgrade() {
                                rt.block_on(refill(&engine, cpu, &plugin, &all));
                            }
                        }
                    }
                }
            })?;
        Ok(Warmer {
            jobs,
            total,
            hits: AtomicU64::new(0),
        })
    }

    /// Asks for a spare for `plugin` (after a call took one, or found none).
    pub(super) fn refill(&self, plugin: &Arc<LoadedPlugin<S>>) {
        // A full queue has refills in it already.
        let _ = self.jobs.try_send(Job::Refill(Arc::downgrade(plugin)));
    }

    /// Hands a finished call's store over to be dropped; drops it here when
    /// the warmer is behind.
    pub(super) fn discard(&self, store: Store<CallState<S>>) {
        match self.jobs.try_send(Job::Discard(store)) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => drop(job),
        }
    }

    pub(super) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls so far that started on a spare instance.
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

async fn refill<S: Send + 'static>(
    engine: &Engine,
    cpu: Duration,
    plugin: &Arc<LoadedPlugin<S>>,
    all: &AtomicUsize,
) {
    if plugin.spares.len() >= SPARES || all.load(Ordering::Relaxed) >= MAX_SPARES {
        return;
    }
    let output = OutputSlot::empty();
    let m = &plugin.manifest;
    let mut store = new_store(
        engine,
        None,
        None,
        m.memory_mib,
        plugin.cpu_budget(cpu),
        Some(&output),
    );
    match plugin.pre.instantiate_async(&mut store).await {
        Ok(bindings) => plugin.spares.put(Spare {
            store,
            bindings,
            output,
        }),
        // The call instantiates its own and meets the error there.
        Err(e) => tracing::debug!(plugin = %plugin.name, "spare instance: {e:#}"),
    }
}
