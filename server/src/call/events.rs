//! A call's event channel, bounded where the far end can flood it. Keys
//! (SIP INFO, RFC 4733 packets) and re-INVITEs come at the rate a peer
//! chooses, and a plugin busy elsewhere (a slow HTTP request) reads none of
//! them: past [`MAX_QUEUED`] waiting events those are dropped and counted.
//! What the call cannot do without — its end, its legs' progress, a prompt
//! finishing, a leg's final figures — is always delivered: a bounded tokio
//! channel could not promise that when full, so this counts beside an
//! unbounded one. Those events are a handful per leg.
//!
//! The channel is flume's: its queue is a `VecDeque` that grows to what is
//! waiting (a few events), where tokio's unbounded channel keeps blocks of
//! 32 slots (two of 32 × 88 bytes per call, measured with heaptrack: about
//! 5.7 KiB of every call's memory).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub use flume::{SendError, TryRecvError};

use super::session::CallEvent;
use crate::media::worker::MediaEvent;

/// Events waiting for the plugin beyond which keys and re-INVITEs are dropped.
pub const MAX_QUEUED: usize = 256;

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    dropped: AtomicU64,
    warned: AtomicBool,
}

/// The sending side; cloned for the media worker, the SIP driver and dials.
#[derive(Debug, Clone)]
pub struct EventTx {
    tx: flume::Sender<CallEvent>,
    shared: Arc<Shared>,
}

/// The call's side.
#[derive(Debug)]
pub struct EventRx {
    rx: flume::Receiver<CallEvent>,
    shared: Arc<Shared>,
}

/// A new call's channel.
pub fn channel() -> (EventTx, EventRx) {
    let (tx, rx) = flume::unbounded();
    let shared = Arc::new(Shared::default());
    (
        EventTx {
            tx,
            shared: shared.clone(),
        },
        EventRx { rx, shared },
    )
}

/// Whether the far end sets the pace of this event (so it may be dropped).
fn floodable(ev: &CallEvent) -> bool {
    matches!(
        ev,
        CallEvent::Media(MediaEvent::Dtmf(_)) | CallEvent::Reinvite { .. }
    )
}

impl EventTx {
    /// Queues `ev`; a floodable event past the bound is dropped (counted,
    /// and said once per call in the log). Errs only when the call is gone.
    pub fn send(&self, ev: CallEvent) -> Result<(), SendError<CallEvent>> {
        let queued = self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if queued >= MAX_QUEUED && floodable(&ev) {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.shared.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "a call's events are not being read ({MAX_QUEUED} waiting): \
                     further keys and re-INVITEs are dropped"
                );
            }
            return Ok(());
        }
        self.tx.send(ev).inspect_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Whether the call's side is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_disconnected()
    }
}

impl EventRx {
    pub async fn recv(&mut self) -> Option<CallEvent> {
        let ev = self.rx.recv_async().await.ok();
        if ev.is_some() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        ev
    }

    pub fn try_recv(&mut self) -> Result<CallEvent, TryRecvError> {
        let ev = self.rx.try_recv();
        if ev.is_ok() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        ev
    }

    /// Keys and re-INVITEs dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::endpoint::EndCause;

    #[test]
    fn a_key_flood_is_bounded_but_the_end_of_the_call_always_arrives() {
        let (tx, mut rx) = channel();
        for _ in 0..100_000 {
            tx.send(CallEvent::Media(MediaEvent::Dtmf('1'))).unwrap();
        }
        tx.send(CallEvent::Media(MediaEvent::PlayDone {
            token: 7,
            interrupted: false,
        }))
        .unwrap();
        tx.send(CallEvent::Ended(EndCause::CallerBye)).unwrap();
        assert_eq!(rx.dropped(), 100_000 - MAX_QUEUED as u64);
        let mut keys = 0;
        let mut tail = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            match ev {
                CallEvent::Media(MediaEvent::Dtmf(_)) => keys += 1,
                other => tail.push(format!("{other:?}")),
            }
        }
        assert_eq!(keys, MAX_QUEUED);
        assert_eq!(tail.len(), 2, "{tail:?}");
        // Read, the queue takes keys again.
        tx.send(CallEvent::Media(MediaEvent::Dtmf('2'))).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(CallEvent::Media(MediaEvent::Dtmf('2')))
        ));
    }
}
