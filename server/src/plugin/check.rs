//! `hookline plugin check FILE.wasm`: what the node would see when loading a
//! plugin, before anyone deploys it.

use std::path::Path;

use anyhow::{bail, Context};

use super::manifest::{self, Grants};
use super::{Budget, PluginHost};

/// Prints the manifest; fails when the component or its manifest would be refused.
pub async fn run(file: &Path, config: Option<&Path>, name: Option<&str>) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let host = PluginHost::new(4, Budget::default())?;
    let m = host
        .inspect(&bytes)
        .await
        .with_context(|| format!("{} is not a usable plugin", file.display()))?;
    println!("file:        {} ({} bytes)", file.display(), bytes.len());
    println!("name:        {}", m.name);
    println!("version:     {}", m.version);
    println!("api-version: {}", m.api_version);
    println!(
        "needs:       {}",
        if m.needs.is_empty() {
            "(nothing)".to_string()
        } else {
            m.needs.join(", ")
        }
    );
    println!("memory-mib:  {}", m.memory_mib);
    println!("cpu-ms:      {}", m.cpu_ms);
    println!("config:");
    for f in &m.config_schema {
        println!(
            "  {:<20} {:<7} {:<9} {}",
            f.name,
            f.kind,
            if f.required { "required" } else { "optional" },
            f.description
        );
    }
    // Everything the manifest could be refused for, with all it asks granted.
    let all = Grants::parse(&m.needs).unwrap_or_default();
    manifest::check(&m, &all, manifest::MAX_MEMORY_MIB).context("manifest refused")?;
    if let Some(config_path) = config {
        let config = crate::config::Config::load(config_path)?;
        let name = name.unwrap_or(&m.name);
        let Some(p) = config.plugins.iter().find(|p| p.name == name) else {
            bail!(
                "{} has no [[plugins]] entry named {name:?}",
                config_path.display()
            );
        };
        let granted = Grants::parse(&p.grants).map_err(|e| anyhow::anyhow!("grants: {e}"))?;
        let loaded = host.prepare(name, &bytes, &granted).await?;
        crate::node::check_route_configs(&config, &loaded)?;
        println!("grants and routes in {}: ok", config_path.display());
    }
    println!("ok: hookline:call {} plugin", m.api_version);
    Ok(())
}
