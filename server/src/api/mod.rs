//! HTTP API (axum): health, metrics and call records.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::call::Node;

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

/// The API's routes over a running node.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/calls", get(calls))
        .route("/api/registrations", get(registrations))
        .layer(middleware::from_fn_with_state(node.clone(), auth))
        .with_state(node)
}

/// Requires `Authorization: Bearer <node.api_token>` when a token is configured.
async fn auth(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    if let Some(token) = &node.config.node.api_token {
        let ok = req.uri().path() == "/health"
            || req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| t == token);
        if !ok {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    next.run(req).await
}

async fn calls(State(node): State<Arc<Node>>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let store = node.store.clone();
    match tokio::task::spawn_blocking(move || store.recent_calls(limit)).await {
        Ok(Ok(calls)) => Json(calls).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
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

async fn metrics(State(node): State<Arc<Node>>) -> String {
    let m = &node.media.stats;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "hookline_active_calls {}\nhookline_media_legs {}\nhookline_rtp_packets_in_total {}\n\
         hookline_rtp_packets_out_total {}\nhookline_rtp_lost_total {}\nhookline_rtp_late_total {}\n\
         hookline_rtp_malformed_total {}\nhookline_media_late_ticks_total {}\nhookline_calls_refused_total {}\n\
         hookline_draining {}\n",
        node.active_calls(),
        g(&m.legs),
        g(&m.packets_in),
        g(&m.packets_out),
        g(&m.lost),
        g(&m.late),
        g(&m.malformed),
        g(&m.late_ticks),
        node.refused.load(Ordering::Relaxed),
        node.draining.load(Ordering::Relaxed) as u8,
    )
}
