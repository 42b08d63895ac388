//! The plugins' epoch clock: every [`EPOCH`] the engine's epoch moves on, so
//! a guest that runs on is interrupted, charged a slice and made to yield.
//!
//! In a node the media worker's 20 ms tick moves it ([`Epochs::driver`]):
//! that thread wakes then anyway, and on this VM every wake-up of a thread
//! of its own cost 30-70 µs of CPU, 100 a second 0.3 % of a core idle and
//! 0.7 % under the IVR load (per-thread CPU from /proc). A host without a
//! driver (tests, benches, tools) ticks on its own thread, and that thread
//! stays as a watchdog: if the driver stops ticking for [`WATCH`] (its
//! worker died), the thread ticks again, so a spinning guest is still
//! stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// The epoch tick: the unit of CPU accounting and the longest a plugin holds
/// a thread; the media tick, which drives it in a node.
pub(super) const EPOCH: Duration = Duration::from_millis(20);
/// How often a driven clock's own thread checks the driver still ticks.
const WATCH: Duration = Duration::from_secs(1);

pub(super) struct Epochs {
    engine: EngineWeak,
    /// Ticks the driver made (0: none yet, the thread ticks).
    driven: Arc<AtomicU64>,
}

impl Epochs {
    /// Starts the clock's own thread; it ends when the engine is dropped.
    pub(super) fn start(engine: &Engine) -> std::io::Result<Epochs> {
        let driven = Arc::new(AtomicU64::new(0));
        let (weak, seen) = (engine.weak(), driven.clone());
        std::thread::Builder::new()
            .name("epoch".into())
            .spawn(move || run(ticks(weak), &seen, EPOCH, WATCH))?;
        Ok(Epochs {
            engine: engine.weak(),
            driven,
        })
    }

    /// A tick for a thread that wakes every [`EPOCH`] anyway; once it ticks,
    /// the clock's own thread only watches that it goes on.
    pub(super) fn driver(&self) -> impl Fn() + Send + 'static {
        let (engine, driven) = (self.engine.clone(), self.driven.clone());
        move || {
            if let Some(engine) = engine.upgrade() {
                driven.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
            }
        }
    }
}

/// The clock's own thread: ticks every `epoch` while nobody drives the
/// clock; while a driver ticks, looks every `watch` that it still does.
/// `tick(own)` moves the epoch on when `own` and says whether the engine
/// is still there (the thread ends with it).
fn run(tick: impl Fn(bool) -> bool, driven: &AtomicU64, epoch: Duration, watch: Duration) {
    let mut last = driven.load(Ordering::Relaxed);
    loop {
        let now = driven.load(Ordering::Relaxed);
        let own = now == last;
        last = now;
        if !tick(own) {
            return;
        }
        std::thread::sleep(if own { epoch } else { watch });
    }
}

/// [`run`]'s tick for `engine`.
fn ticks(engine: EngineWeak) -> impl Fn(bool) -> bool {
    move |own| match engine.upgrade() {
        Some(engine) if own => {
            engine.increment_epoch();
            true
        }
        alive => alive.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Whether the epoch moves on within `t`: a guest spinning with its
    /// deadline one tick ahead traps when it does (wasmtime has no getter).
    fn moved_within(engine: &Engine, t: Duration) -> bool {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(1);
        let module =
            wasmtime::Module::new(engine, r#"(module (func (export "spin") (loop br 0)))"#)
                .unwrap();
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let start = Instant::now();
        // The spin only ends when the epoch passes the deadline (a trap).
        let trapped = spin.call(&mut store, ()).is_err();
        trapped && start.elapsed() <= t
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn its_own_thread_ticks_without_a_driver() {
        let engine = engine();
        let _epochs = Epochs::start(&engine).unwrap();
        assert!(moved_within(&engine, Duration::from_secs(2)));
    }

    /// With a driver ticking, the thread only watches (it ticks no more);
    /// when the driver stops (its worker is gone), the thread ticks again.
    #[test]
    fn a_driver_takes_over_and_the_thread_resumes_when_it_stops() {
        let engine = engine();
        let driven = Arc::new(AtomicU64::new(0));
        let epochs = Epochs {
            engine: engine.weak(),
            driven: driven.clone(),
        };
        let tick = epochs.driver();
        let own = Arc::new(AtomicU64::new(0));
        let (weak, seen, counted) = (engine.weak(), driven.clone(), own.clone());
        let watch = Duration::from_millis(300);
        std::thread::spawn(move || {
            let ticks = ticks(weak);
            let count = move |mine: bool| {
                counted.fetch_add(mine as u64, Ordering::Relaxed);
                ticks(mine)
            };
            run(count, &seen, Duration::from_millis(5), watch)
        });
        let driver = std::thread::spawn(move || {
            for _ in 0..200 {
                tick();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(driven.load(Ordering::Relaxed) > 0);
        // Driven: the thread's own ticks stop, and a guest is still stopped
        // within a few of the driver's ticks.
        let before = own.load(Ordering::Relaxed);
        assert!(moved_within(&engine, Duration::from_millis(100)));
        std::thread::sleep(Duration::from_millis(500));
        assert!(own.load(Ordering::Relaxed) <= before + 1);
        driver.join().unwrap();
        // The driver is gone: the thread notices within a watch and ticks.
        std::thread::sleep(watch * 2);
        assert!(own.load(Ordering::Relaxed) > before + 10);
        assert!(moved_within(&engine, Duration::from_millis(100)));
    }
}
