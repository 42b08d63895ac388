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
//! Calls hand it work without waking it (see [`Shared`]).
//!
//! A spare is the fresh instance the call would have made itself (a core
//! module's start function, if any, has run under the plugin's CPU budget,
//! which the call goes on counting); each serves one call, so nothing
//! passes from one call to another. Every bound is fixed: spares per plugin
//! and in all, jobs queued for the warmer (past it a call drops its own
//! store), and the pool is sized for them.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store};

use super::output::OutputSlot;
use super::{new_store, CallPlugin, CallState, LoadedPlugin};

/// Spare instances kept per plugin: a burst of calls arriving together
/// finds them. The warmer makes the next in tens of microseconds, but looks
/// for work only every `POLL` while calls come in, so enough for the calls
/// of a few milliseconds at thousands a second (with two, one call in ten
/// found none at 2,000 a second).
const SPARES: usize = 4;
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
    /// The config its `prepare` was given, if it was prepared.
    pub(super) prepared: Option<Arc<str>>,
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

/// How often the warmer looks for jobs while calls are coming in.
const POLL: Duration = Duration::from_millis(1);
/// How long after its last job the warmer goes on looking before it sleeps
/// until a call wakes it.
const AWAKE: Duration = Duration::from_millis(200);

/// What calls and the warmer thread share.
///
/// Calls do not wake the warmer for each job: waking a thread parked on
/// another core is a futex call and an inter-processor interrupt, which on
/// this VM (a VM exit) was seven tenths of a call's plugin start with a
/// spare ready (perf of `plugin_instantiate` as calls arrive). While calls
/// come in, the warmer looks for jobs every millisecond on its own; only a
/// call that finds it asleep (nothing to do for `AWAKE`) wakes it.
struct Shared<S: 'static> {
    jobs: Mutex<VecDeque<Job<S>>>,
    /// The warmer sleeps without a timeout: a job must wake it.
    asleep: AtomicBool,
    /// The host is gone: the warmer ends.
    closed: AtomicBool,
    /// Jobs begun plus jobs ended: odd while the warmer runs one. Read by
    /// the start-up benchmark to tell the calls that ran beside the warmer's
    /// work from those that ran alone.
    working: AtomicU64,
}

impl<S> Shared<S> {
    fn new() -> Shared<S> {
        Shared {
            jobs: Mutex::new(VecDeque::with_capacity(JOBS)),
            asleep: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            working: AtomicU64::new(0),
        }
    }

    /// No more jobs are taken; those queued are dropped here.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job<S>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The warmer's front: what calls hand it.
pub(super) struct Warmer<S: 'static> {
    shared: Arc<Shared<S>>,
    thread: std::thread::Thread,
    /// Spares across the host's plugins.
    pub(super) total: Arc<AtomicUsize>,
    /// Calls that found a spare ready.
    hits: AtomicU64,
    /// Of those, calls whose spare was prepared with their own config.
    prepared_hits: AtomicU64,
}

impl<S: Send + 'static> Warmer<S> {
    /// Starts the warmer thread; it ends when the host (this front) goes.
    pub(super) fn start(engine: Engine, cpu: Duration) -> std::io::Result<Warmer<S>> {
        let shared = Arc::new(Shared::new());
        let total = Arc::new(AtomicUsize::new(0));
        let (all, theirs) = (total.clone(), shared.clone());
        let handle = std::thread::Builder::new()
            .name("plugin-warmer".into())
            .spawn(move || {
                // Instantiation is async (the store is): a small executor of
                // its own, with no I/O, drives it; with timers, so a guest's
                // `prepare` that waits (a WASI sleep) is timed out, not a panic.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!("plugin warmer: {e}: instances are made at call start");
                        // Calls then drop their own stores, as the queue refuses them.
                        theirs.close();
                        return;
                    }
                };
                work(&theirs, |job| match job {
                    Job::Discard(store) => drop(store),
                    Job::Refill(plugin) => {
                        if let Some(plugin) = plugin.upgrade() {
                            rt.block_on(refill(&engine, cpu, &plugin, &all));
                        }
                    }
                });
            })?;
        Ok(Warmer {
            shared,
            thread: handle.thread().clone(),
            total,
            hits: AtomicU64::new(0),
            prepared_hits: AtomicU64::new(0),
        })
    }

    fn send(&self, job: Job<S>) -> Result<(), Job<S>> {
        send(&self.shared, &self.thread, job)
    }

    /// Asks for a spare for `plugin` (after a call took one, or found none).
    pub(super) fn refill(&self, plugin: &Arc<LoadedPlugin<S>>) {
        // A full queue has refills in it already.
        let _ = self.send(Job::Refill(Arc::downgrade(plugin)));
    }

    /// Hands a finished call's store over to be dropped; drops it here when
    /// the warmer is behind.
    pub(super) fn discard(&self, store: Store<CallState<S>>) {
        // Refused, the job (and the store in it) drops here.
        let _ = self.send(Job::Discard(store));
    }

    /// A call started on a spare, `prepared` with its own config or not.
    pub(super) fn hit(&self, prepared: bool) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if prepared {
            self.prepared_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls so far that started on a spare instance.
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Calls so far that started on a spare prepared with their own config.
    pub(super) fn prepared_hits(&self) -> u64 {
        self.prepared_hits.load(Ordering::Relaxed)
    }

    /// Jobs begun plus jobs ended (odd: one is running).
    pub(super) fn working(&self) -> u64 {
        self.shared.working.load(Ordering::Relaxed)
    }
}

impl<S: 'static> Drop for Warmer<S> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Queues a job for the warmer running on `thread`; gives it back when the
/// queue is full or the warmer has ended.
fn send<S>(shared: &Shared<S>, thread: &std::thread::Thread, job: Job<S>) -> Result<(), Job<S>> {
    {
        let mut jobs = shared.lock();
        if jobs.len() >= JOBS || shared.closed.load(Ordering::Relaxed) {
            return Err(job);
        }
        jobs.push_back(job);
    }
    // Pairs with the fence in `work`: either the warmer sees this job
    // before it sleeps, or this sees it asleep and wakes it.
    fence(Ordering::SeqCst);
    if shared.asleep.load(Ordering::Relaxed) {
        thread.unpark();
    }
    Ok(())
}

/// The warmer's loop: runs jobs as they come, looking every `POLL` while
/// calls come in, asleep until woken once they stop; ends when the host goes.
fn work<S>(shared: &Shared<S>, mut run: impl FnMut(Job<S>)) {
    let mut last_job = Instant::now();
    loop {
        let job = shared.lock().pop_front();
        if let Some(job) = job {
            shared.working.fetch_add(1, Ordering::Relaxed);
            run(job);
            shared.working.fetch_add(1, Ordering::Relaxed);
            last_job = Instant::now();
            continue;
        }
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        if last_job.elapsed() < AWAKE {
            std::thread::park_timeout(POLL);
            continue;
        }
        shared.asleep.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Warmer::send`.
        fence(Ordering::SeqCst);
        if shared.lock().is_empty() && !shared.closed.load(Ordering::SeqCst) {
            std::thread::park();
        }
        shared.asleep.store(false, Ordering::Relaxed);
        last_job = Instant::now();
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
    let made = async {
        let instance = plugin
            .pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await?;
        let bindings = plugin.indices.load(&mut store, &instance)?;
        Ok::<_, wasmtime::Error>((instance, bindings))
    };
    match made.await {
        Ok((instance, bindings)) => {
            // A spare whose `prepare` trapped is not fit for a call.
            if let Ok(prepared) = plugin
                .prepare
                .run(&plugin.name, &mut store, &instance)
                .await
            {
                plugin.spares.put(Spare {
                    store,
                    bindings,
                    output,
                    prepared,
                });
            }
        }
        // The call instantiates its own and meets the error there.
        Err(e) => tracing::debug!(plugin = %plugin.name, "spare instance: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared<()>> {
        Arc::new(Shared::new())
    }

    #[test]
    fn a_job_wakes_the_warmer_asleep_and_closing_ends_it() {
        let shared = shared();
        let (done, ran) = std::sync::mpsc::channel();
        let theirs = shared.clone();
        let warmer = std::thread::spawn(move || work(&theirs, |_| done.send(()).unwrap()));
        let thread = warmer.thread().clone();
        // Busy: jobs a millisecond apart are found by its own looks.
        for _ in 0..5 {
            assert!(send(&shared, &thread, Job::Refill(Weak::new())).is_ok());
            ran.recv_timeout(Duration::from_millis(100))
                .expect("a job sent while the warmer looks runs");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Idle past `AWAKE`: asleep until a job wakes it.
        std::thread::sleep(AWAKE * 2);
        assert!(
            shared.asleep.load(Ordering::SeqCst),
            "the idle warmer sleeps"
        );
        assert!(send(&shared, &thread, Job::Refill(Weak::new())).is_ok());
        ran.recv_timeout(Duration::from_millis(100))
            .expect("a job sent to the sleeping warmer wakes it and runs");
        shared.closed.store(true, Ordering::SeqCst);
        thread.unpark();
        warmer.join().unwrap();
    }

    #[test]
    fn a_full_queue_or_an_ended_warmer_gives_the_job_back() {
        let shared = shared();
        let me = std::thread::current();
        for _ in 0..JOBS {
            assert!(send(&shared, &me, Job::Refill(Weak::new())).is_ok());
        }
        assert!(send(&shared, &me, Job::Refill(Weak::new())).is_err());
        // A warmer that ended takes nothing (and holds nothing).
        shared.close();
        assert!(shared.lock().is_empty());
        assert!(send(&shared, &me, Job::Refill(Weak::new())).is_err());
    }
}
