//! Browser agents: a softphone that stays connected over a WebSocket and is
//! reachable as an extension. Dialling the extension sends the browser an SDP
//! offer; its answer connects the call. To the `dial` verb a browser agent is
//! one more outbound leg: ringing, answered (with a plain RTP SDP naming the
//! relay), failed, or hung up.
//!
//! Messages are JSON text frames:
//! browser -> node `{"type":"login","token":…}`, `{"type":"answer","call":…,"sdp":…}`,
//! `{"type":"reject","call":…}`, `{"type":"hangup","call":…}`;
//! node -> browser `{"type":"ready","user":…}`, `{"type":"offer","call":…,"from":…,"sdp":…}`,
//! `{"type":"hangup","call":…}`, `{"type":"error","message":…}`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// The first message must be a login within this time.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a browser may send (an SDP answer).
pub const MAX_MESSAGE: usize = 32 << 10;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FromBrowser {
    Login { token: String },
    Answer { call: String, sdp: String },
    Reject { call: String },
    Hangup { call: String },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToBrowser<'a> {
    Ready {
        user: &'a str,
    },
    Offer {
        call: &'a str,
        from: &'a str,
        sdp: &'a str,
    },
    Hangup {
        call: &'a str,
    },
    Error {
        message: &'a str,
    },
}

/// What happens to a call ringing or connected on a browser.
#[derive(Debug)]
pub enum LegEvent {
    Answer(String),
    Reject,
    /// The agent hung up, or its browser went away.
    Hangup,
    /// The node hangs up (caller gone, another agent answered).
    Cancel,
}

struct Agent {
    /// Connection number: a newer login replaces an older one.
    conn: u64,
    out: UnboundedSender<String>,
    calls: Vec<String>,
}

/// Agents logged in on this node, and their calls.
#[derive(Default)]
pub struct Agents {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    agents: HashMap<String, Agent>,
    /// Call id -> (agent, where its leg's events go).
    calls: HashMap<String, (String, UnboundedSender<LegEvent>)>,
    next_conn: u64,
}

impl Agents {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `user` has a browser logged in.
    pub fn is_online(&self, user: &str) -> bool {
        self.lock().agents.contains_key(user)
    }

    /// Users logged in from a browser.
    pub fn online(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().agents.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether a call id is a browser agent's leg.
    pub fn owns(&self, call_id: &str) -> bool {
        self.lock().calls.contains_key(call_id)
    }

    /// The node hangs up (or cancels) a browser leg.
    pub fn hang_up(&self, call_id: &str) {
        if let Some((_, tx)) = self.lock().calls.get(call_id) {
            let _ = tx.send(LegEvent::Cancel);
        }
    }

    /// Sends `user`'s browser a message; false if it is not logged in.
    pub fn send(&self, user: &str, msg: &ToBrowser<'_>) -> bool {
        let text = serde_json::to_string(msg).unwrap_or_default();
        self.lock()
            .agents
            .get(user)
            .is_some_and(|a| a.out.send(text).is_ok())
    }

    /// A browser leg is over: the agent is free again.
    pub fn end_call(&self, call_id: &str) {
        let mut inner = self.lock();
        if let Some((user, _)) = inner.calls.remove(call_id) {
            if let Some(a) = inner.agents.get_mut(&user) {
                a.calls.retain(|c| c != call_id);
            }
        }
    }

    /// Takes `user` for a ringing leg `call_id`: its answer, rejection or
    /// hang-up arrive on the receiver. `Err(480)` when the agent is not
    /// logged in, `Err(486)` when it is on a call already.
    pub fn take_for_ring(
        &self,
        user: &str,
        call_id: &str,
    ) -> Result<UnboundedReceiver<LegEvent>, u16> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        let agent = inner.agents.get_mut(user).ok_or(480u16)?;
        if !agent.calls.is_empty() {
            return Err(486);
        }
        agent.calls.push(call_id.to_string());
        inner
            .calls
            .insert(call_id.to_string(), (user.to_string(), tx));
        Ok(rx)
    }

    /// Runs a logged-in agent's WebSocket until the browser leaves; a newer
    /// login of the same user replaces this one.
    pub async fn serve(&self, user: String, mut socket: WebSocket) {
        let (out, mut outbox) = mpsc::unbounded_channel::<String>();
        let conn = {
            let mut inner = self.lock();
            inner.next_conn += 1;
            let conn = inner.next_conn;
            inner.agents.insert(
                user.clone(),
                Agent {
                    conn,
                    out,
                    calls: Vec::new(),
                },
            );
            conn
        };
        tracing::info!(%user, "browser agent logged in");
        self.send(&user, &ToBrowser::Ready { user: &user });
        loop {
            tokio::select! {
                Some(text) = outbox.recv() => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => self.on_message(&user, &t),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
        // Gone: its calls end; a newer login of the same user stays.
        let mut inner = self.lock();
        if inner.agents.get(&user).is_some_and(|a| a.conn == conn) {
            if let Some(agent) = inner.agents.remove(&user) {
                for c in agent.calls {
                    if let Some((_, tx)) = inner.calls.get(&c) {
                        let _ = tx.send(LegEvent::Hangup);
                    }
                }
            }
        }
        tracing::info!(%user, "browser agent left");
    }

    /// A message from `user`'s browser: an answer, rejection or hang-up of
    /// one of its own calls (others' are ignored).
    fn on_message(&self, user: &str, text: &str) {
        let event = match serde_json::from_str::<FromBrowser>(text) {
            Ok(FromBrowser::Answer { call, sdp }) => (call, LegEvent::Answer(sdp)),
            Ok(FromBrowser::Reject { call }) => (call, LegEvent::Reject),
            Ok(FromBrowser::Hangup { call }) => (call, LegEvent::Hangup),
            _ => return,
        };
        if let Some((owner, tx)) = self.lock().calls.get(&event.0) {
            if owner == user {
                let _ = tx.send(event.1);
            }
        }
    }
}
