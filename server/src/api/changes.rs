//! Making one change to the plugins and routes over the API: kept on disk
//! first (so what the API said took effect survives a crash), then put in
//! force for new calls.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::call::Node;
use crate::config::catalog::{Catalog, CatalogError, Change, Changes};

/// Keeps `change` with the others and puts `catalog` in force. The caller
/// holds `node.changes` (one change at a time) and passes its guard.
pub(super) async fn commit(
    node: &Arc<Node>,
    kept: &mut Changes,
    catalog: Catalog,
    change: Change,
) -> Result<(), Response> {
    let mut next = kept.clone();
    next.record(change);
    let data = node.data_dir.clone();
    let saved = tokio::task::spawn_blocking(move || next.save(&data).map(|()| next)).await;
    *kept = match saved {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => return Err(not_saved(e)),
        Err(e) => return Err(not_saved(e)),
    };
    node.routing.swap(catalog);
    Ok(())
}

fn not_saved(e: impl std::fmt::Display) -> Response {
    tracing::warn!("saving a change made over the API: {e}");
    (
        StatusCode::INSUFFICIENT_STORAGE,
        "the change could not be kept on disk; nothing changed (see the node's log)\n",
    )
        .into_response()
}

/// A refused change as the API answers it: the reason, and a status by kind.
pub(super) fn refused(e: CatalogError) -> Response {
    let code = match e {
        CatalogError::BadId(_) => StatusCode::BAD_REQUEST,
        CatalogError::PluginInUse { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (code, format!("{e}\n")).into_response()
}

/// A 422 with a reason.
pub(super) fn unprocessable(why: impl std::fmt::Display) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, format!("{why}\n")).into_response()
}

/// A JSON body, or a 400 naming what is wrong with it.
// The error is the handler's answer, returned at once: its size costs nothing.
#[allow(clippy::result_large_err)]
pub(super) fn json_body(body: &[u8]) -> Result<serde_json::Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}\n"),
        )
            .into_response()
    })
}
