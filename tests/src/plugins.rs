//! Plugins the tests build and check (C, Python, the repository's samples).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::*;

/// Runs a command and returns what it printed; fails with its output when
/// it does not succeed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

/// Builds a C plugin from `sources` (relative to the workspace) with the SDK's script.
pub fn build_c_plugin(out: &Path, sources: &[&str]) {
    let root = workspace_root();
    let mut cmd = Command::new(root.join("plugin-sdk/c/build-plugin.sh"));
    cmd.arg(out);
    for s in sources {
        cmd.arg(root.join(s));
    }
    run_ok(&mut cmd);
}

/// Builds a Python plugin whose `app` module is in `dir` (relative to the
/// workspace) with componentize-py and the SDK's helpers.
pub fn build_py_plugin(out: &Path, dir: &str) {
    run_ok(
        Command::new("componentize-py")
            .current_dir(workspace_root())
            .args(["-d", "plugin-sdk/wit", "-w", "call-plugin", "componentize"])
            .args(["-p", dir, "-p", "plugin-sdk/python", "app", "-o"])
            .arg(out),
    );
}

/// A sample or test plugin's component, built by the README's setup.
pub fn plugin_wasm(crate_name: &str) -> PathBuf {
    workspace_root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// `hookline plugin check` on a component (extra arguments after it).
pub fn plugin_check(wasm: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    Command::new(hookline_bin("debug"))
        .args(["plugin", "check"])
        .arg(wasm)
        .args(extra)
        .output()
        .expect("running hookline plugin check")
}

/// `hookline plugin test` on a component with these scripts.
pub fn plugin_test(wasm: &Path, scripts: &[impl AsRef<Path>]) -> Output {
    Command::new(hookline_bin("debug"))
        .args(["plugin", "test"])
        .arg(wasm)
        .args(scripts.iter().map(AsRef::as_ref))
        .output()
        .expect("running hookline plugin test")
}

/// The test scripts (`*.toml`) in a folder of the workspace, in name order.
pub fn test_scripts(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(workspace_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// `plugin test` on every script in `dir`: all must pass.
pub fn plugin_passes_its_scripts(wasm: &Path, dir: &str) {
    let scripts = test_scripts(dir);
    assert!(!scripts.is_empty(), "no scripts in {dir}");
    let out = plugin_test(wasm, &scripts);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = said.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(passed, scripts.len(), "{said}");
}

/// `[[plugins]]` for the hostile test plugin and one route per (number, mode).
pub fn hostile_routes(routes: &[(&str, &str)]) -> String {
    let mut out = format!(
        "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n",
        plugin_wasm("hookline-hostile").display()
    );
    for (number, mode) in routes {
        out.push_str(&format!(
            "[[routes]]\nnumber = \"{number}\"\nplugin = \"hostile\"\nconfig = \"{mode}\"\n\n"
        ));
    }
    out
}
