//! The optional `prepare` export (host API 0.1.2): a spare instance's head
//! start on its call.
//!
//! Why: with a spare ready, a call's plugin start is the guest's first
//! entry, and perf of `plugin_instantiate` put the sample IVR's parse of
//! its route config at 83 % of that entry, paid while the caller waits. The
//! warmer (`warm.rs`) calls `prepare(config)` on each spare it makes, with
//! the config of the plugin's latest call, so the guest can parse it then;
//! the call that brings the same config starts without parsing it.
//!
//! What the guest can do in `prepare` is bounded as in a call, and more:
//! the store has no call and no plugin grants, so every call verb and every
//! granted service returns an error; its CPU counts against the call's
//! budget; and it traps on the second epoch tick it meets (20-40 ms of
//! computing) or is cut after `MAX_WALL` by the clock (waiting). A
//! `prepare` that traps costs the spare, and the plugin version is not
//! prepared again (the warmer is never held up by it twice). Nothing passes
//! between calls: the config is the operator's route config, and each
//! instance still serves one call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, Instance};
use wasmtime::Store;

use super::CallState;

/// Epoch ticks a `prepare` may meet; it traps on this one. One would trap a
/// prepare of microseconds that a tick happened to land on (and turn it off
/// for good); two give it at least one whole 20 ms slice.
pub(super) const MAX_TICKS: u32 = 2;
/// Longest a `prepare` may take by the clock: epoch ticks count only time
/// the guest computes, and one waiting in WASI (a sleep) would hold the
/// warmer, and every plugin's spares, for as long as it liked.
const MAX_WALL: Duration = Duration::from_millis(100);

/// One plugin version's `prepare`: the export, and what spares get.
pub(super) struct Prepare {
    /// Present when the plugin exports `prepare: func(config: string)`.
    export: Option<ComponentExportIndex>,
    /// The config of the version's latest call without hand-over
    /// arguments: the one spares are prepared with.
    config: Mutex<Option<Arc<str>>>,
    /// A `prepare` of this version trapped: it is not called again.
    off: AtomicBool,
}

impl Prepare {
    /// Finds the export in `component`, checking its type on `instance` (an
    /// instance of it): a `prepare` of another type is an error, not skipped.
    pub(super) fn find<T: Send>(
        component: &Component,
        instance: &Instance,
        store: &mut Store<T>,
    ) -> Result<Prepare, String> {
        let export = component.get_export_index(None, "prepare");
        if let Some(index) = &export {
            instance
                .get_typed_func::<(&str,), ()>(&mut *store, index)
                .map_err(|e| format!("exports `prepare` but not as func(config: string): {e:#}"))?;
        }
        Ok(Prepare {
            export,
            config: Mutex::new(None),
            off: AtomicBool::new(false),
        })
    }

    /// Whether the plugin exports `prepare`.
    pub(super) fn exported(&self) -> bool {
        self.export.is_some()
    }

    /// Whether `prepare` trapped and is no longer called.
    pub(super) fn is_off(&self) -> bool {
        self.off.load(Ordering::Relaxed)
    }

    /// A call starts with `config`: spares made from now on are prepared with it.
    pub(super) fn note(&self, config: &str, arguments: Option<&str>) {
        // A handed-over call's config is the plugin's own, merged with
        // arguments that differ from call to call: not worth preparing.
        if self.export.is_none() || arguments.is_some() {
            return;
        }
        let mut latest = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if latest.as_deref() != Some(config) {
            *latest = Some(config.into());
        }
    }

    /// Calls `prepare` on a fresh spare's `instance`, when there is a config
    /// to prepare and it is still on: the config it prepared, if any. An
    /// error when it trapped: the instance is not fit for a call, and
    /// `prepare` is turned off for this version.
    pub(super) async fn run<S: Send + 'static>(
        &self,
        plugin: &str,
        store: &mut Store<CallState<S>>,
        instance: &Instance,
    ) -> Result<Option<Arc<str>>, Trapped> {
        let Some(export) = &self.export else {
            return Ok(None);
        };
        let config = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(config) = config.filter(|_| !self.is_off()) else {
            return Ok(None);
        };
        store.data_mut().prepare_ticks = Some(0);
        store.set_epoch_deadline(1);
        let outcome = match instance.get_typed_func::<(&str,), ()>(&mut *store, export) {
            Ok(prepare) => {
                match tokio::time::timeout(MAX_WALL, prepare.call_async(&mut *store, (&config,)))
                    .await
                {
                    Ok(done) => done,
                    Err(_) => Err(wasmtime::Error::msg(format!(
                        "prepare() waited past {MAX_WALL:?}"
                    ))),
                }
            }
            Err(e) => Err(e),
        };
        store.data_mut().prepare_ticks = None;
        match outcome {
            Ok(()) => Ok(Some(config)),
            Err(e) => {
                // Said once: the version is not prepared again.
                if !self.off.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %plugin,
                        "prepare() failed, so this plugin version's calls start without it: {}",
                        e.root_cause()
                    );
                }
                Err(Trapped)
            }
        }
    }
}

/// A `prepare` trapped (said in the log).
pub(super) struct Trapped;
