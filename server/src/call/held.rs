//! What an inbound call holds from the node — its admission slot, its media
//! leg and RTP port — given back exactly once: when the caller hangs up
//! (even while the plugin is still busy saving its data), or when the call
//! task ends, whichever comes first. A leg with a recording open is kept
//! until the call task ends (within the hang-up grace period), so the
//! message the caller left is finished and listed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OnceCell};

use super::Node;
use crate::media::worker::{LegId, LegStats};

pub(crate) struct Held {
    node: Arc<Node>,
    slot: std::sync::Mutex<Option<super::node::Slot>>,
    leg: LegId,
    port: u16,
    /// The leg's final counters, as the worker reports them on removal.
    stats: watch::Receiver<Option<LegStats>>,
    recordings_open: Arc<AtomicUsize>,
    freed: OnceCell<Option<LegStats>>,
}

impl Held {
    pub(crate) fn new(
        node: Arc<Node>,
        slot: super::node::Slot,
        leg: LegId,
        port: u16,
        stats: watch::Receiver<Option<LegStats>>,
        recordings_open: Arc<AtomicUsize>,
    ) -> Arc<Held> {
        Arc::new(Held {
            node,
            slot: std::sync::Mutex::new(Some(slot)),
            leg,
            port,
            stats,
            recordings_open,
            freed: OnceCell::new(),
        })
    }

    /// The admission slot (call capacity), once.
    fn free_slot(&self) {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(slot);
    }

    /// Gives everything back (once; later calls wait for the first) and
    /// returns the leg's final counters when the worker sent them in time.
    pub(crate) async fn free(&self) -> Option<LegStats> {
        self.freed
            .get_or_init(|| async {
                // Capacity is free at once; the port only once the worker
                // has dropped the socket (it says so with the counters).
                self.free_slot();
                self.node.media.remove_leg(self.leg);
                let mut stats = self.stats.clone();
                let stats = tokio::time::timeout(
                    Duration::from_millis(500),
                    stats.wait_for(Option::is_some),
                )
                .await
                .ok()
                .and_then(|s| s.ok().and_then(|s| *s));
                self.node.ports.release(self.port);
                stats
            })
            .await
            .to_owned()
    }

    /// Frees everything as soon as `hung_up` turns true (a task; abort it
    /// once the call task frees things itself).
    pub(crate) fn free_on_hang_up(
        self: &Arc<Held>,
        mut hung_up: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let held = self.clone();
        tokio::spawn(async move {
            if hung_up.wait_for(|h| *h).await.is_ok() {
                held.free_slot();
                // A message being recorded keeps its leg until it is saved.
                if held.recordings_open.load(Ordering::SeqCst) == 0 {
                    held.free().await;
                }
            }
        })
    }
}
