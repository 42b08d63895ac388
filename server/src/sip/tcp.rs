//! SIP over TCP: accepts connections on the SIP port, frames messages and
//! hands them to the SIP driver; replies go back on the connection. The one
//! I/O module under `sip/` (the rest is sans-IO).
//!
//! Everything a stranger can make it hold is bounded: connections in all
//! and per source address, how long a silent connection stays, how much is
//! queued towards the driver (a full queue stops reading, so TCP pushes back
//! on the peer) and towards a peer that does not read (the driver drops it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::stream::Framer;

/// Messages queued from all connections towards the SIP driver.
pub const EVENTS_QUEUED: usize = 1024;
/// Replies queued towards one peer; past it the driver drops the connection.
pub const REPLIES_QUEUED: usize = 64;
/// A write to a peer that does not read gives up after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one address.
    pub per_source: usize,
    /// A connection that sends nothing for this long is closed (phones send
    /// keep-alives well within a few minutes).
    pub idle: Duration,
}

/// What a connection tells the SIP driver.
pub enum TcpEvent {
    /// A connection opened; replies to this peer go through the sender.
    Open(SocketAddr, mpsc::Sender<Vec<u8>>),
    Message(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// Connections open per source address.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in the counts, given back on drop.
struct Place {
    _all: OwnedSemaphorePermit,
    per_source: Arc<PerSource>,
    ip: IpAddr,
}

impl PerSource {
    fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        limit: usize,
        all: OwnedSemaphorePermit,
    ) -> Option<Place> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Place {
            _all: all,
            per_source: self.clone(),
            ip,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.per_source.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until the listener fails for good.
pub async fn accept(
    listener: tokio::net::TcpListener,
    events: mpsc::Sender<TcpEvent>,
    limits: Limits,
) {
    let all = Arc::new(Semaphore::new(limits.max));
    let per_source = Arc::new(PerSource::default());
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Over a limit the connection is closed at once: nothing is read.
        let Some(place) = all
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|p| per_source.take(peer.ip(), limits.per_source, p))
        else {
            tracing::debug!("SIP/TCP from {peer}: too many connections; closed");
            continue;
        };
        tokio::spawn(serve(stream, peer, events.clone(), limits.idle, place));
    }
}

/// One connection: reads framed messages to the driver, writes its replies,
/// until either side ends, the peer is silent for `idle`, or stops reading.
async fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
    idle: Duration,
    _place: Place,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(REPLIES_QUEUED);
    if events.send(TcpEvent::Open(peer, tx)).await.is_err() {
        return;
    }
    let writer = async {
        while let Some(data) = rx.recv().await {
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&data)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    };
    let reader = async {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match tokio::time::timeout(idle, rd.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return, // closed, failed, or silent too long
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_message() {
                    Ok(Some(msg)) => {
                        // Waits while the driver is behind: reading stops.
                        if events.send(TcpEvent::Message(peer, msg)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("SIP/TCP from {peer}: {e}; closing");
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    let _ = events.send(TcpEvent::Closed(peer)).await;
}
