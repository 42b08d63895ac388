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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, UnboundedSender};

use crate::call::session::CallEvent;
use crate::call::Node;
use crate::sip::sdp;
use crate::sip::uac::UacEvent;

/// The first message must be a login within this time.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a browser may send (an SDP answer).
const MAX_MESSAGE: usize = 32 << 10;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FromBrowser {
    Login { token: String },
    Answer { call: String, sdp: String },
    Reject { call: String },
    Hangup { call: String },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToBrowser<'a> {
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
enum LegEvent {
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

    fn send(&self, user: &str, msg: &ToBrowser<'_>) -> bool {
        let text = serde_json::to_string(msg).unwrap_or_default();
        self.lock()
            .agents
            .get(user)
            .is_some_and(|a| a.out.send(text).is_ok())
    }

    fn end_call(&self, call_id: &str) {
        let mut inner = self.lock();
        if let Some((user, _)) = inner.calls.remove(call_id) {
            if let Some(a) = inner.agents.get_mut(&user) {
                a.calls.retain(|c| c != call_id);
            }
        }
    }
}

/// Rings the browser agent `user` with our SDP `offer`; the leg's progress
/// goes to `events` like a SIP leg's.
pub fn ring(
    node: Arc<Node>,
    leg_call_id: String,
    user: String,
    from: String,
    offer: String,
    events: crate::call::events::EventTx,
) {
    let call_id = leg_call_id.clone();
    let report = move |event| {
        let _ = events.send(CallEvent::Outbound {
            call_id: call_id.clone(),
            event,
        });
    };
    tokio::spawn(async move {
        let agents = &node.webrtc.agents;
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut inner = agents.lock();
            let Some(agent) = inner.agents.get_mut(&user) else {
                return report(UacEvent::Failed { code: 480 });
            };
            if !agent.calls.is_empty() {
                return report(UacEvent::Failed { code: 486 });
            }
            agent.calls.push(leg_call_id.clone());
            inner.calls.insert(leg_call_id.clone(), (user.clone(), tx));
        }
        let finish = |code| {
            agents.end_call(&leg_call_id);
            report(UacEvent::Failed { code })
        };
        // Our engine leg: where the offer (for a SIP callee) says to send media.
        let engine = match sdp::negotiate(offer.as_bytes()) {
            Ok(n) => n.remote,
            Err(_) => return finish(500),
        };
        let pending = match node.webrtc.offer(engine).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(call = %leg_call_id, "browser offer: {e}");
                return finish(500);
            }
        };
        let offered = agents.send(
            &user,
            &ToBrowser::Offer {
                call: &leg_call_id,
                from: &from,
                sdp: &pending.sdp,
            },
        );
        if !offered {
            pending.cancel().await;
            return finish(480);
        }
        report(UacEvent::Progress {
            code: 180,
            sdp: None,
        });
        let answer = match rx.recv().await {
            Some(LegEvent::Answer(sdp)) => sdp,
            Some(LegEvent::Reject) => {
                pending.cancel().await;
                return finish(486);
            }
            Some(LegEvent::Hangup) | None => {
                pending.cancel().await;
                return finish(480);
            }
            Some(LegEvent::Cancel) => {
                pending.cancel().await;
                agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
                return finish(487);
            }
        };
        let mut media = match pending.complete(answer).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(call = %leg_call_id, "browser answer: {e}");
                agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
                return finish(488);
            }
        };
        // To the dial verb the browser answered with plain RTP at the relay.
        let neg = sdp::Negotiated {
            remote: media.relay,
            codec: media.format,
            dtmf_pt: media.dtmf_pt,
            dtmf_rate: media.format.clock_rate(),
        };
        report(UacEvent::Answered {
            sdp: sdp::answer(media.relay, &neg, 1),
        });
        let remote_bye = loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(LegEvent::Cancel) => break false,
                    Some(LegEvent::Hangup) | None => break true,
                    Some(_) => {}
                },
                Some(()) = media.closed.recv() => break true,
            }
        };
        let _ = media.pc.close().await;
        agents.end_call(&leg_call_id);
        if remote_bye {
            report(UacEvent::RemoteBye);
        } else {
            agents.send(&user, &ToBrowser::Hangup { call: &leg_call_id });
        }
    });
}

/// `GET /webrtc/agent`: the softphone's WebSocket.
pub async fn connect(
    State(node): State<Arc<Node>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    if node
        .auth_failures
        .blocked(from.ip(), std::time::Instant::now())
    {
        return crate::auth::too_many();
    }
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(node, socket, from.ip()))
}

async fn serve(node: Arc<Node>, mut socket: WebSocket, from: std::net::IpAddr) {
    // Browsers cannot set headers on a WebSocket: the token comes first.
    let login = tokio::time::timeout(LOGIN_TIMEOUT, socket.recv()).await;
    let token = match login {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(&t) {
            Ok(FromBrowser::Login { token }) => token,
            _ => return,
        },
        _ => return,
    };
    let Some(user) = super::signalling::token_user(&node, &token) else {
        node.auth_failures.failed(from, std::time::Instant::now());
        let msg = ToBrowser::Error {
            message: "wrong token",
        };
        let _ = socket
            .send(Message::Text(
                serde_json::to_string(&msg).unwrap_or_default().into(),
            ))
            .await;
        return;
    };
    let agents = &node.webrtc.agents;
    let (out, mut outbox) = mpsc::unbounded_channel::<String>();
    let conn = {
        let mut inner = agents.lock();
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
    agents.send(&user, &ToBrowser::Ready { user: &user });
    loop {
        tokio::select! {
            Some(text) = outbox.recv() => {
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let event = match serde_json::from_str::<FromBrowser>(&t) {
                        Ok(FromBrowser::Answer { call, sdp }) => Some((call, LegEvent::Answer(sdp))),
                        Ok(FromBrowser::Reject { call }) => Some((call, LegEvent::Reject)),
                        Ok(FromBrowser::Hangup { call }) => Some((call, LegEvent::Hangup)),
                        _ => None,
                    };
                    if let Some((call, ev)) = event {
                        // Only the agent's own calls.
                        if let Some((owner, tx)) = agents.lock().calls.get(&call) {
                            if *owner == user {
                                let _ = tx.send(ev);
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    // Gone: its calls end; a newer login of the same user stays.
    let mut inner = agents.lock();
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
