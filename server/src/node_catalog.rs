//! The plugins and routes a node starts with: the config file's, then the
//! changes made over the API since (kept in the data directory), each said
//! in the log; and their components loaded and checked against the routes.

use std::path::Path;

use anyhow::{bail, Context};

use crate::call::session::CallSession;
use crate::config::catalog::{Catalog, Changes};
use crate::config::Config;
use crate::plugin::manifest::Grants;
use crate::plugin::PluginHost;

/// The table to start with, and the changes it came from.
pub struct Assembled {
    pub catalog: Catalog,
    pub changes: Changes,
}

/// The file's plugins and routes with the API's kept changes applied. A
/// change that no longer applies (the file changed under it) is said and
/// skipped; an unreadable changes file stops the start, naming it.
pub fn assemble(config: &Config, data: &Path) -> anyhow::Result<Assembled> {
    let mut catalog = Catalog::from_config(config);
    let changes =
        Changes::load(data).map_err(|e| anyhow::anyhow!("changes made over the API: {e}"))?;
    for change in &changes.changes {
        match catalog.apply(change, |name| crate::plugin::deployed_path(data, name)) {
            Ok(()) => tracing::info!(
                "kept from the API (over the config file): {}",
                serde_json::to_string(change).unwrap_or_default()
            ),
            Err(e) => tracing::warn!(
                "a change made over the API no longer applies ({e}), skipped: {}",
                serde_json::to_string(change).unwrap_or_default()
            ),
        }
    }
    Ok(Assembled { catalog, changes })
}

/// Loads every plugin of the table, checked like a deploy: grants, quotas,
/// each route's config against the plugin's schema. A plugin of the config
/// file without its component stops the start; one added over the API that
/// has none deployed yet is said and left out.
pub async fn load_plugins(
    host: &PluginHost<CallSession>,
    config: &Config,
    table: &Assembled,
    data: &Path,
) -> anyhow::Result<()> {
    for p in &table.catalog.plugins {
        // A version deployed over the API outlives restarts, and wins over
        // the config's `path` (said in the log: the config alone no longer
        // tells which code runs).
        let deployed = crate::plugin::deployed_path(data, &p.name);
        let configured = config.resolve(&p.path);
        let in_file = config.plugins.iter().any(|f| f.name == p.name);
        let path = if deployed.exists() {
            if in_file {
                tracing::info!(
                    "plugin {}: running the version deployed over the API ({}), not {} \
                     (remove the deployed file to go back to the config's)",
                    p.name,
                    deployed.display(),
                    configured.display()
                );
            }
            deployed
        } else {
            configured
        };
        if !path.exists() {
            if !in_file {
                tracing::warn!(
                    "plugin {}: added over the API, no component deployed yet (PUT /api/plugins/{})",
                    p.name,
                    p.name
                );
                continue;
            }
            bail!(
                "{}",
                missing_plugin(&p.name, &p.path, &path, &config.base_dir)
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let granted = Grants::parse(&p.grants)
            .map_err(|e| anyhow::anyhow!("plugin {}: grants: {e}", p.name))?;
        let loaded = host
            .prepare(&p.name, &bytes, &granted, &p.quotas)
            .await
            .with_context(|| format!("loading {}", path.display()))?;
        crate::plugin::check_route_configs(&table.catalog.routes, &loaded)?;
        let m = &loaded.manifest;
        if m.name != p.name {
            tracing::warn!(
                "plugin {}: its component names itself {:?} (deploys to /api/plugins/{} must be named {:?})",
                p.name,
                m.name,
                p.name,
                p.name
            );
        }
        tracing::info!(
            "plugin {} {} (api {}, needs [{}]) loaded from {}",
            p.name,
            m.version,
            m.api_version,
            m.grants.describe(),
            path.display()
        );
        host.install(loaded);
    }
    Ok(())
}

/// Why a plugin's component is missing, with what to do: the sample plugins
/// are built by the setup script; anything else is the author's build, or a
/// path that resolves somewhere unexpected (relative paths resolve against
/// the config file's folder).
fn missing_plugin(name: &str, written: &Path, resolved: &Path, base: &Path) -> String {
    let ours = resolved
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.starts_with("hookline_"))
        && resolved.to_string_lossy().contains("wasm32-wasip2");
    let hint = if ours {
        "it is one of the sample plugins: run scripts/setup.sh, which builds them".to_string()
    } else if written.is_relative() {
        format!(
            "build it for wasm32-wasip2 (plugin-sdk/README.md), or fix [[plugins]] path: \
             {:?} is resolved against the config file's folder, {}",
            written.display().to_string(),
            base.display()
        )
    } else {
        "build it for wasm32-wasip2 (plugin-sdk/README.md), or fix [[plugins]] path".to_string()
    };
    format!(
        "plugin {name}: no component at {} ({hint})",
        resolved.display()
    )
}
