//! The browser door. Signalling over HTTP, WHIP-style: `POST /webrtc/call/{number}` with
//! the SDP offer (ICE gathered) returns `201 Created` with the answer and a
//! `Location` to `DELETE` for hanging up. Tokens are the agents' (config
//! `[webrtc] agents`) or the node's API token. `GET /phone` is the softphone;
//! `GET /webrtc/agent` is a logged-in agent's WebSocket (`webrtc::agents`).

use std::sync::Arc;

use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;

use crate::auth as guard;
use crate::call::browser::drive;
use crate::call::{launch, route_and_admit, NewCall, Node};
use crate::webrtc::agents::{FromBrowser, ToBrowser, LOGIN_TIMEOUT, MAX_MESSAGE};
use crate::webrtc::WebRtcError;

/// Largest SDP offer accepted.
const MAX_SDP: usize = 32 << 10;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route(
            "/phone",
            get(|| async { Html(include_str!("../../assets/phone.html")) }),
        )
        .route("/webrtc/call/{target}", post(call).delete(hang_up))
        .route("/webrtc/agent", get(connect))
        .with_state(node)
}

/// Who a bearer token logs in as: an agent's extension, or "browser" for the
/// node's API token. Failures count against the source address (ten a
/// minute, then 429), as on the API.
fn who(node: &Node, ip: IpAddr, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let now = Instant::now();
    if node.auth_failures.blocked(ip, now) {
        return Err(Box::new(guard::too_many()));
    }
    match guard::bearer(headers).and_then(|t| token_user(node, t)) {
        Some(user) => Ok(user),
        None => {
            node.auth_failures.failed(ip, now);
            Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            )))
        }
    }
}

fn token_user(node: &Node, token: &str) -> Option<String> {
    if let Some(a) = node
        .config
        .webrtc
        .agents
        .iter()
        .find(|a| guard::same(&a.token, token))
    {
        return Some(a.user.clone());
    }
    guard::same(&node.api_token, token).then(|| "browser".to_string())
}

fn error(code: StatusCode, why: impl std::fmt::Display) -> Response {
    (code, format!("{why}\n")).into_response()
}

/// A browser calls `number` like any SIP caller: routed to a plugin.
async fn call(
    State(node): State<Arc<Node>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match who(&node, from.ip(), &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    // The agent's share of the node: calls at once and offers per minute.
    let seat = match node.webrtc.limits.take(
        &user,
        Instant::now(),
        node.config.webrtc.max_calls_per_agent,
        node.config.webrtc.max_offers_per_minute,
    ) {
        Ok(seat) => seat,
        Err(why) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "10")],
                format!("{why}\n"),
            )
                .into_response()
        }
    };
    if body.len() > MAX_SDP {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large");
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "SDP offer is not UTF-8");
    };
    let call_id = format!("webrtc-{:016x}", rand::random::<u64>());
    // The slot goes back by itself on any early return below.
    let (slot, plugin) = match route_and_admit(&node, &call_id, &user, &number, "webrtc") {
        Ok(r) => r,
        Err((_, code, _)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error(code, format!("call to {number} refused"));
        }
    };
    let (socket, port) = match node.ports.bind() {
        Ok(s) => s,
        Err(e) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("RTP port: {e}"));
        }
    };
    let engine = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            node.ports.release(port);
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let media = match node.webrtc.answer(offer, engine).await {
        Ok(m) => m,
        Err(e) => {
            node.ports.release(port);
            let code = match e {
                WebRtcError::NoCommonCodec => StatusCode::NOT_ACCEPTABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(code, e);
        }
    };
    let answer = media.local_sdp.clone();
    let caller_user = user.clone();
    let call_id_for_task = call_id.clone();
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    let events = launch(
        &node,
        &sip_tx,
        NewCall {
            max_forwards: 70,
            call_id: call_id.clone(),
            caller: user,
            callee: number,
            caller_name: None,
            domain: "webrtc".into(),
            slot,
            plugin,
            leg: node.media.new_leg_id(None),
            port,
            socket,
            remote: media.relay,
            codec: media.format,
            dtmf_pt: media.dtmf_pt,
            latch: false,
            // The answer went back in the HTTP response already.
            answer_sdp: String::new(),
            via: None,
        },
    );
    node.webrtc
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(call_id.clone(), (media.pc.clone(), caller_user));
    tokio::spawn(async move {
        drive(node.clone(), call_id_for_task, media, sip_rx, events).await;
        drop(seat); // the agent's call slot comes back when the leg is gone
    });
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/webrtc/call/{call_id}")),
        ],
        answer,
    )
        .into_response()
}

/// `DELETE /webrtc/call/{id}`: the browser hangs up. An agent may end only
/// its own calls (another's id is answered as unknown); the API token may
/// end any.
async fn hang_up(
    State(node): State<Arc<Node>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match who(&node, from.ip(), &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let pc = node
        .webrtc
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .filter(|(_, owner)| *owner == user || user == "browser")
        .map(|(pc, _)| pc.clone());
    match pc {
        Some(pc) => {
            let _ = pc.close().await;
            StatusCode::OK.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such call"),
    }
}

/// `GET /webrtc/agent`: the softphone's WebSocket.
async fn connect(
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
    let Some(user) = token_user(&node, &token) else {
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
    node.webrtc.agents.serve(user, socket).await;
}
