//! `/api/routes`: the route table, and routes added, changed and removed
//! while the node runs. A route is checked like one in the config file (its
//! plugin exists and has a component, its config passes the plugin's
//! schema, its schedule is valid) and also refused when an earlier route
//! would always take its calls. Calls in progress finish on the route they
//! started with.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::changes::{commit, json_body, refused, unprocessable};
use crate::call::Node;
use crate::config::catalog::{Catalog, Change};

/// The routes in the order calls are matched, with their calls now.
pub(super) async fn list(State(node): State<Arc<Node>>) -> Response {
    let table = node.routing.table();
    let list: Vec<serde_json::Value> = table
        .routes
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.config).unwrap_or_default();
            v["id"] = r.id.clone().into();
            v["active_calls"] = r.active().into();
            v
        })
        .collect();
    Json(list).into_response()
}

/// `PUT /api/routes/{id}` with the route as JSON (the config file's
/// fields) and optionally `"before": "<id>"`: added, or replaced where it
/// stands.
pub(super) async fn put(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let before = match body.as_object_mut().map(|o| o.remove("before")) {
        Some(None) | Some(Some(serde_json::Value::Null)) => None,
        Some(Some(serde_json::Value::String(b))) => Some(b),
        Some(Some(_)) => return unprocessable("\"before\" must be a route id"),
        None => return unprocessable("the route must be a JSON object"),
    };
    let route = match Catalog::parse_route(&id, &body) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let mut kept = node.changes.lock().await;
    let mut catalog = node.routing.table().catalog.clone();
    let existed = catalog.route(&id).is_some();
    if let Err(e) = catalog.put_route(&id, before.as_deref(), route.clone(), true) {
        return refused(e);
    }
    // Its plugins run, and take its config.
    let named: Vec<_> = catalog
        .routes
        .iter()
        .filter(|r| r.id == id)
        .cloned()
        .collect();
    let plugins = std::iter::once(&route.plugin).chain(route.fallback.as_ref().map(|f| &f.plugin));
    for name in plugins {
        let Some(loaded) = node.plugins.get(name) else {
            return unprocessable(format!(
                "plugin {name:?} has no component deployed: PUT /api/plugins/{name} first"
            ));
        };
        if let Err(e) = crate::plugin::check_route_configs(&named, &loaded) {
            return unprocessable(format!("{e:#}"));
        }
    }
    let change = Change::PutRoute {
        id: id.clone(),
        // Where it stands now, so a replay at start puts it back there.
        before: catalog.next_route_id(&id),
        route: body,
    };
    if let Err(r) = commit(&node, &mut kept, catalog, change).await {
        return r;
    }
    tracing::info!(
        "route {id} {} over the API",
        if existed { "changed" } else { "added" }
    );
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut v = serde_json::to_value(&route).unwrap_or_default();
    v["id"] = id.into();
    (code, Json(v)).into_response()
}

/// `DELETE /api/routes/{id}`: new calls no longer match it.
pub(super) async fn delete(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    let mut kept = node.changes.lock().await;
    let mut catalog = node.routing.table().catalog.clone();
    if catalog.delete_route(&id).is_err() {
        return (StatusCode::NOT_FOUND, "no such route\n").into_response();
    }
    if let Err(r) = commit(
        &node,
        &mut kept,
        catalog,
        Change::DeleteRoute { id: id.clone() },
    )
    .await
    {
        return r;
    }
    tracing::info!("route {id} removed over the API");
    StatusCode::NO_CONTENT.into_response()
}
