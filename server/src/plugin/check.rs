//! `hookline plugin check FILE.wasm`: what the node would see when loading a
//! plugin, before anyone deploys it.

/// Prints a line; a closed pipe (`| head`) ends the output, not the process.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use std::path::Path;

use anyhow::{bail, Context};

use super::manifest::{self, Grants};
use super::{Budget, PluginHost, Session};

/// Prints the manifest; fails when the component or its manifest would be refused.
/// `S`: the sessions the node runs plugins on (the check links the same host API).
pub async fn run<S: Session>(
    file: &Path,
    config: Option<&Path>,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let host = PluginHost::<S>::new(4, Budget::default())?;
    let m = host
        .inspect(&bytes)
        .await
        .with_context(|| format!("{} is not a usable plugin", file.display()))?;
    out!("file:        {} ({} bytes)", file.display(), bytes.len());
    out!("name:        {}", m.name);
    out!("version:     {}", m.version);
    out!("api-version: {}", m.api_version);
    out!(
        "needs:       {}",
        if m.needs.is_empty() {
            "(nothing)".to_string()
        } else {
            m.needs.join(", ")
        }
    );
    out!("memory-mib:  {}", m.memory_mib);
    out!("cpu-ms:      {}", m.cpu_ms);
    out!("config:");
    for f in &m.config_schema {
        out!(
            "  {:<20} {:<7} {:<9} {}",
            f.name,
            f.kind,
            if f.required { "required" } else { "optional" },
            f.description
        );
    }
    // Everything the manifest could be refused for, with all it asks granted.
    let caps: Vec<&String> = m
        .needs
        .iter()
        .filter(|n| !n.starts_with("quota:"))
        .collect();
    let all = Grants::parse(&caps).unwrap_or_default();
    manifest::check(
        &m,
        &all,
        manifest::MAX_MEMORY_MIB,
        &super::quotas::Quotas::unlimited(),
    )
    .context("manifest refused")?;
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
        let loaded = host.prepare(name, &bytes, &granted, &p.quotas).await?;
        let routes = crate::config::catalog::Catalog::from_config(&config).routes;
        crate::plugin::check_route_configs(&routes, &loaded)?;
        out!("grants and routes in {}: ok", config_path.display());
    }
    out!("ok: hookline:call {} plugin", m.api_version);
    Ok(())
}
