//! `hookline plugin new NAME [DIR]`: a Rust plugin project that builds
//! where it is put — outside this repository, as its own workspace, with
//! the SDK found by an absolute path — from the template in
//! `plugin-sdk/rust/template` (kept in the workspace, so CI builds it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

const TEMPLATE_LIB: &str = include_str!("../../../plugin-sdk/rust/template/src/lib.rs");
const TEMPLATE_TEST: &str = include_str!("../../../plugin-sdk/rust/template/tests/agent.toml");
const TEMPLATE_CARGO_TEST: &str =
    include_str!("../../../plugin-sdk/rust/template/tests/scripts.rs");

/// Where the SDK was when this binary was built (a checkout of the repository).
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/rust")
}

/// Writes the project; returns its directory.
pub fn run(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and '-', starting with a letter"
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let sdk = sdk.map_or_else(default_sdk, Path::to_path_buf);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the Rust SDK is not at {} (pass --sdk <checkout>/plugin-sdk/rust)",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").exists() {
        bail!("{} is not the Rust SDK (no Cargo.toml)", sdk.display());
    }
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join("tests"))?;
    std::fs::write(dir.join("tests/agent.toml"), TEMPLATE_TEST)?;
    std::fs::write(dir.join("tests/scripts.rs"), TEMPLATE_CARGO_TEST)?;
    std::fs::write(dir.join("Cargo.toml"), cargo_toml(name, &sdk))?;
    let lib = TEMPLATE_LIB.replace(
        "hookline_sdk::manifest(\"template\"",
        &format!("hookline_sdk::manifest({name:?}"),
    );
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(dir.join("route.toml"), route_toml(name))?;
    Ok(dir)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
hookline-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A project of its own, wherever it is put.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
"#,
        sdk = sdk.display().to_string().replace('\\', "/"),
    )
}

fn route_toml(name: &str) -> String {
    let file = name.replace('-', "_");
    format!(
        r#"# Add to the node's hookline.toml (paths resolve against that file's folder).
[[plugins]]
name = "{name}"
path = "/absolute/path/to/{name}/target/wasm32-wasip2/release/{file}.wasm"
grants = []

[[routes]]
number = "700"
plugin = "{name}"
config = {{ greeting = "Thank you for calling.", agent = "201" }}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_names_its_plugin_and_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("biz-hours");
        run("biz-hours", Some(&at), None).unwrap();
        let cargo = std::fs::read_to_string(at.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"biz-hours\""));
        assert!(cargo.contains("\n[workspace]\n"));
        assert!(!cargo.contains("path = \"..\""));
        let lib = std::fs::read_to_string(at.join("src/lib.rs")).unwrap();
        assert!(lib.contains("hookline_sdk::manifest(\"biz-hours\""));
        // Not over a project that is there already, nor with a bad name.
        assert!(run("biz-hours", Some(&at), None).is_err());
        assert!(run("Biz Hours", Some(&dir.path().join("x")), None).is_err());
    }
}
