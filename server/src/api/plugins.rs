//! `/api/plugins`: the plugins installed, their components deployed, their
//! settings (grants, config, quota caps) set, and plugins removed, while
//! the node runs. Checked like at start-up: a manifest beyond the plugin's
//! grants or caps, or whose schema refuses a route's config, is refused
//! (422) and what runs stays. Calls in progress finish on the version they
//! started with.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::changes::{commit, json_body, refused, unprocessable};
use crate::call::Node;
use crate::config::catalog::{valid_id, Change};
use crate::plugin::manifest::Grants;

/// Largest component accepted by a deploy.
pub(super) const MAX_PLUGIN_BYTES: usize = 64 << 20;

#[derive(serde::Serialize)]
struct PluginView {
    name: String,
    version: String,
    api_version: String,
    needs: Vec<String>,
    memory_mib: u32,
    cpu_ms: u32,
    bytes: usize,
    loaded_at_ms: i64,
    /// The optional `prepare` export (0.1.2): "none", "on", or "off" once
    /// it trapped (this version's calls then start without it).
    prepare: &'static str,
}

fn view(p: &crate::call::Plugin) -> PluginView {
    PluginView {
        name: p.name.clone(),
        version: p.manifest.version.clone(),
        api_version: p.manifest.api_version.clone(),
        needs: p.manifest.grants.list(),
        memory_mib: p.manifest.memory_mib,
        cpu_ms: p.manifest.cpu_ms,
        bytes: p.bytes,
        loaded_at_ms: p.loaded_at_ms,
        prepare: p.prepare_state(),
    }
}

/// Installed plugins and the versions new calls get.
pub(super) async fn list(State(node): State<Arc<Node>>) -> Response {
    let list: Vec<PluginView> = node.plugins.list().iter().map(|p| view(p)).collect();
    Json(list).into_response()
}

fn bad_name(name: &str) -> Option<Response> {
    (!valid_id(name)).then(|| (StatusCode::BAD_REQUEST, "bad plugin name\n").into_response())
}

/// Deploys a version of a plugin (the request body is the component). New
/// calls get it at once. A plugin the node does not know yet is added with
/// no grants (give it some with `PUT /api/plugins/{name}/settings`, before
/// or after).
pub(super) async fn deploy(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bad_name(&name) {
        return r;
    }
    let mut kept = node.changes.lock().await;
    let table = node.routing.table();
    let entry = table.plugin(&name);
    let granted = entry
        .and_then(|p| Grants::parse(&p.grants).ok())
        .unwrap_or_default();
    let caps = entry.map(|p| p.quotas).unwrap_or_default();
    let loaded = match node.plugins.prepare(&name, &body, &granted, &caps).await {
        Ok(p) => p,
        Err(e) => return unprocessable(e),
    };
    if loaded.manifest.name != name {
        // Deployed under another plugin's name, it would run in its place.
        return unprocessable(format!(
            "the component names itself {:?}, not {name:?}: deploy it to /api/plugins/{}",
            loaded.manifest.name, loaded.manifest.name
        ));
    }
    if let Err(e) = crate::plugin::check_route_configs(&table.catalog.routes, &loaded) {
        return unprocessable(format!("{e:#}"));
    }
    // Kept on disk so a restart runs the deployed version (written whole, then renamed).
    let path = crate::plugin::deployed_path(&node.data_dir, &name);
    let tmp = path.with_extension("wasm.tmp");
    let dir = path.parent().unwrap_or(&node.data_dir).to_path_buf();
    let saved = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&tmp, &body).await?;
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if let Err(e) = saved {
        tracing::warn!("saving deployed plugin {}: {e}", path.display());
        return (
            StatusCode::INSUFFICIENT_STORAGE,
            "cannot store the plugin; see the node's log\n",
        )
            .into_response();
    }
    if entry.is_none() {
        let mut catalog = table.catalog.clone();
        let settings = serde_json::json!({});
        if let Err(e) = catalog.put_plugin(&name, &settings, path.clone()) {
            let _ = tokio::fs::remove_file(&path).await;
            return refused(e);
        }
        let change = Change::PutPlugin {
            name: name.clone(),
            settings,
        };
        if let Err(r) = commit(&node, &mut kept, catalog, change).await {
            let _ = tokio::fs::remove_file(&path).await;
            return r;
        }
    }
    let new = view(&loaded);
    let old = node.plugins.install(loaded);
    tracing::info!(
        "plugin {name} {} deployed (was {})",
        new.version,
        old.as_ref()
            .map(|o| o.manifest.version.as_str())
            .unwrap_or("none")
    );
    Json(serde_json::json!({
        "deployed": new,
        "replaced": old.map(|o| o.manifest.version.clone()),
    }))
    .into_response()
}

/// `PUT /api/plugins/{name}/settings` with `{"grants": [...], "config":
/// {...}, "quotas": {...}}` (the config file's `[[plugins]]` fields): adds
/// the plugin or changes what it may use. A running version that needs
/// more than the new grants is refused, and keeps running as before.
pub(super) async fn settings(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bad_name(&name) {
        return r;
    }
    let settings = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut kept = node.changes.lock().await;
    let mut catalog = node.routing.table().catalog.clone();
    let path = catalog
        .plugin(&name)
        .map(|p| p.path.clone())
        .unwrap_or_else(|| crate::plugin::deployed_path(&node.data_dir, &name));
    if let Err(e) = catalog.put_plugin(&name, &settings, path) {
        return refused(e);
    }
    let Some(entry) = catalog.plugin(&name).cloned() else {
        return unprocessable("the plugin went away");
    };
    let granted = match Grants::parse(&entry.grants) {
        Ok(g) => g,
        Err(e) => return unprocessable(format!("plugin {name:?} grants: {e}")),
    };
    // The running version, checked again under the new grants and caps.
    let mut again = None;
    if node.plugins.get(&name).is_some() {
        let deployed = crate::plugin::deployed_path(&node.data_dir, &name);
        let file = if deployed.exists() {
            deployed
        } else {
            node.config.resolve(&entry.path)
        };
        let bytes = match tokio::fs::read(&file).await {
            Ok(b) => b,
            Err(e) => return unprocessable(format!("reading {}: {e}", file.display())),
        };
        match node
            .plugins
            .prepare(&name, &bytes, &granted, &entry.quotas)
            .await
        {
            Ok(p) => again = Some(p),
            Err(e) => return unprocessable(e),
        }
    }
    let change = Change::PutPlugin {
        name: name.clone(),
        settings,
    };
    if let Err(r) = commit(&node, &mut kept, catalog, change).await {
        return r;
    }
    if let Some(p) = again {
        node.plugins.install(p);
    }
    tracing::info!(
        "plugin {name}: settings set over the API (grants [{}])",
        entry.grants.join(", ")
    );
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /api/plugins/{name}`: removes a plugin no route uses (409 names
/// the route that does), with its deployed component.
pub(super) async fn delete(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    if let Some(r) = bad_name(&name) {
        return r;
    }
    let mut kept = node.changes.lock().await;
    let mut catalog = node.routing.table().catalog.clone();
    if let Err(e) = catalog.delete_plugin(&name) {
        return match e {
            crate::config::catalog::CatalogError::UnknownPlugin(_) => {
                (StatusCode::NOT_FOUND, "no such plugin\n").into_response()
            }
            e => refused(e),
        };
    }
    if let Err(r) = commit(
        &node,
        &mut kept,
        catalog,
        Change::DeletePlugin { name: name.clone() },
    )
    .await
    {
        return r;
    }
    node.plugins.remove(&name);
    let deployed = crate::plugin::deployed_path(&node.data_dir, &name);
    if let Err(e) = tokio::fs::remove_file(&deployed).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", deployed.display());
        }
    }
    tracing::info!("plugin {name} removed over the API");
    StatusCode::NO_CONTENT.into_response()
}

/// `?prefix=` and `?limit=` of a plugin's key-value listing.
#[derive(Deserialize)]
pub(super) struct KvQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<u32>,
}

/// What a plugin keeps (a survey's results, say): its live keys starting
/// with `prefix`, in key order, 100 by default, 1,000 at most.
pub(super) async fn kv(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<KvQuery>,
) -> Response {
    if node.plugins.get(&name).is_none() {
        return (StatusCode::NOT_FOUND, "no such plugin\n").into_response();
    }
    let data = node.plugin_data.clone();
    let limit = q.limit.unwrap_or(100).min(1000);
    super::list_json(move || data.kv_list(&name, &q.prefix, limit)).await
}
