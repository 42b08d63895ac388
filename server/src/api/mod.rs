//! HTTP API (axum): health, metrics and call records.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::call::presence::{AgentResults, AgentState};
use crate::call::Node;

mod browser;
mod changes;
pub mod guard;
mod plugins;
mod prompts;
mod routes;

/// Largest route or plugin settings body (JSON).
const MAX_JSON_BYTES: usize = 64 << 10;

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

impl ListQuery {
    /// 100 by default, 10,000 at most.
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).min(10_000)
    }
}

/// The API's routes over a running node.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/calls", get(calls))
        .route("/api/registrations", get(registrations))
        .route("/api/recordings", get(recordings))
        .route("/api/plugins", get(plugins::list))
        .route("/api/routes", get(routes::list))
        .route(
            "/api/routes/{id}",
            put(routes::put)
                .delete(routes::delete)
                .layer(DefaultBodyLimit::max(MAX_JSON_BYTES)),
        )
        .route(
            "/api/plugins/{name}/settings",
            put(plugins::settings).layer(DefaultBodyLimit::max(MAX_JSON_BYTES)),
        )
        .route("/api/agents", get(agents))
        .route("/api/conferences", get(conferences))
        .route("/api/callbacks", get(callbacks))
        .route("/api/agents/{user}/dnd", put(set_dnd))
        .route("/api/agents/{user}/pause", put(set_paused))
        .route("/api/agents/{user}/conversions", post(add_conversions))
        .route("/api/prompts", get(prompts::list))
        .route(
            "/api/prompts/{lang}/{id}",
            put(prompts::upload)
                .delete(prompts::remove)
                .layer(DefaultBodyLimit::max(prompts::MAX_UPLOAD_BYTES)),
        )
        .route(
            "/api/plugins/{name}",
            put(plugins::deploy)
                .delete(plugins::delete)
                .layer(DefaultBodyLimit::max(plugins::MAX_PLUGIN_BYTES)),
        )
        .route("/api/plugins/{name}/kv", get(plugins::kv))
        .layer(middleware::from_fn_with_state(node.clone(), guard::auth))
        .with_state(node.clone())
        // Browsers authenticate with their own tokens.
        .merge(browser::router(node.clone()))
        .layer(middleware::from_fn_with_state(node, guard::check_host))
}

async fn calls(State(node): State<Arc<Node>>, Query(q): Query<ListQuery>) -> Response {
    let store = node.store.clone();
    list_json(move || store.recent_calls(q.limit())).await
}

/// Recordings (voicemail messages, session recordings), newest first.
async fn recordings(State(node): State<Arc<Node>>, Query(q): Query<ListQuery>) -> Response {
    let data = node.plugin_data.clone();
    list_json(move || data.recordings(q.limit())).await
}

/// A database read off the async threads, as JSON or a 500 with the reason.
async fn list_json<T: serde::Serialize + Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Response {
    let failed = match tokio::task::spawn_blocking(read).await {
        Ok(Ok(list)) => return Json(list).into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    // The database's path and error are for the operator's log only.
    tracing::warn!("API read: {failed}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the store failed; see the node's log\n",
    )
        .into_response()
}

/// Extensions registered now, with where they are.
async fn registrations(State(node): State<Arc<Node>>) -> Response {
    let now = crate::store::now_ms() as u64 / 1000;
    let list = node
        .registrar
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .all(now);
    Json(list).into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let st = &node.media.stats;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut m = crate::metrics::Scrape::default();
    m.gauge(
        "hookline_active_calls",
        "Calls on the node now.",
        node.active_calls() as i64,
    );
    m.gauge(
        "hookline_media_legs",
        "Media legs open now (each leg holds an RTP port).",
        g(&st.legs) as i64,
    );
    m.counter(
        "hookline_rtp_packets_in",
        "RTP packets received.",
        g(&st.packets_in),
    );
    m.counter(
        "hookline_rtp_packets_out",
        "RTP packets sent.",
        g(&st.packets_out),
    );
    m.counter(
        "hookline_rtp_lost",
        "RTP packets that never arrived (sequence gaps).",
        g(&st.lost),
    );
    m.counter(
        "hookline_rtp_late",
        "RTP packets that arrived too late to play.",
        g(&st.late),
    );
    m.counter(
        "hookline_rtp_malformed",
        "Datagrams on media ports that were not valid RTP.",
        g(&st.malformed),
    );
    m.counter(
        "hookline_media_late_ticks",
        "Media ticks that ran late (the node is overloaded).",
        g(&st.late_ticks),
    );
    m.counter(
        "hookline_calls_refused",
        "Calls refused for capacity (503).",
        node.refused.load(Ordering::Relaxed),
    );
    m.gauge(
        "hookline_draining",
        "1 while the node drains for a restart.",
        node.draining.load(Ordering::Relaxed) as i64,
    );
    node.counters.metrics(&mut m);
    node.presence.metrics(&mut m);
    node.queues.metrics(&mut m);
    node.rooms.metrics(&mut m);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        m.render(),
    )
        .into_response()
}

/// Queue callbacks waiting: queue, place, number, since when.
async fn callbacks(State(node): State<Arc<Node>>) -> Response {
    let list: Vec<serde_json::Value> = node
        .queues
        .callbacks()
        .into_iter()
        .map(|(queue, position, cb)| {
            serde_json::json!({
                "id": cb.id, "queue": queue, "position": position, "number": cb.number,
                "joined_ms": cb.joined_ms, "in_progress": cb.in_progress,
            })
        })
        .collect();
    Json(list).into_response()
}

/// Conference rooms open now and who is in each.
async fn conferences(State(node): State<Arc<Node>>) -> Response {
    Json(node.rooms.list()).into_response()
}

/// Agents' presence: in a call, idle since, do-not-disturb; and browser agents online.
async fn agents(State(node): State<Arc<Node>>) -> Response {
    // Agents with a state now, and those known only by their results (after a restart).
    let mut merged: std::collections::BTreeMap<String, (AgentState, AgentResults)> =
        Default::default();
    for (user, s) in node.presence.snapshot() {
        merged.entry(user).or_default().0 = s;
    }
    for (user, r) in node.presence.all_results() {
        merged.entry(user).or_default().1 = r;
    }
    let agents: Vec<serde_json::Value> = merged
        .into_iter()
        .map(|(user, (s, r))| {
            serde_json::json!({
                "user": user, "calls": s.calls, "idle_since_ms": s.idle_since_ms, "dnd": s.dnd,
                "paused": s.paused, "wrap_up_until_ms": s.wrap_up_until_ms,
                "answered": r.answered, "converted": r.converted, "score": r.score(),
            })
        })
        .collect();
    Json(serde_json::json!({
        "agents": agents,
        "browsers": node.webrtc.agents.online(),
        "groups": node.presence.groups().into_iter().map(|(g, c)| serde_json::json!({ "group": g, "counters": c })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `PUT /api/agents/{user}/dnd` with `on` or `off`: nothing rings an agent in do-not-disturb.
async fn set_dnd(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    body: String,
) -> Response {
    if !known_agent(&node, &user) {
        return no_such_agent();
    }
    put_on_off(&body, |dnd| node.presence.set_dnd(&user, dnd))
}

/// `PUT /api/agents/{user}/pause` with `on` or `off`: groups and queues pass
/// a paused agent over (a break); direct calls still ring.
async fn set_paused(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    body: String,
) -> Response {
    if !known_agent(&node, &user) {
        return no_such_agent();
    }
    put_on_off(&body, |paused| node.presence.set_paused(&user, paused))
}

/// An agent of a group, a phone extension or a browser agent: only these
/// get a state (anything else would grow the presence table without end).
fn known_agent(node: &Node, user: &str) -> bool {
    let cfg = &node.config;
    cfg.groups
        .iter()
        .any(|g| g.members.iter().any(|m| m == user))
        || cfg.extensions.iter().any(|e| e.user == user)
        || cfg.webrtc.agents.iter().any(|a| a.user == user)
}

fn no_such_agent() -> Response {
    (StatusCode::NOT_FOUND, "no such agent\n").into_response()
}

/// `POST /api/agents/{user}/conversions` (body: how many, default 1): the
/// CRM reports that an agent's call converted (a sale, a solved case).
/// Departments with `rank = "conversion"` ring the best rate first.
async fn add_conversions(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    body: String,
) -> Response {
    let count = match body.trim() {
        "" => 1,
        n => match n.parse::<u64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "body must be a count from 1 to 1000\n",
                )
                    .into_response()
            }
        },
    };
    if !known_agent(&node, &user) {
        return no_such_agent();
    }
    let r = node.add_agent_results(&user, 0, count);
    Json(serde_json::json!({
        "user": user, "answered": r.answered, "converted": r.converted, "score": r.score(),
    }))
    .into_response()
}

/// An agent switch set by a body of `on` or `off`.
fn put_on_off(body: &str, set: impl FnOnce(bool)) -> Response {
    match body.trim() {
        "on" | "true" => set(true),
        "off" | "false" => set(false),
        _ => return (StatusCode::BAD_REQUEST, "body must be on or off\n").into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}
