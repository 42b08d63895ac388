//! Testing a plugin from its own `cargo test`, with no phone and no node:
//! builds the crate's component and runs scripted calls against it, through
//! `hookline plugin test --json` (the harness is in the node's binary, so
//! the rules a script is checked by are the node's own). Scripts are the
//! TOML files `plugin-sdk/README.md` describes, from a folder or written in
//! the test.
//!
//! ```ignore
//! use hookline_sdk::testing::Harness;
//!
//! #[test]
//! fn scripts_pass() {
//!     let harness = Harness::for_crate(env!("CARGO_MANIFEST_DIR")).unwrap();
//!     harness.assert_scripts_pass(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"));
//! }
//! ```
//!
//! The `hookline` binary is `$HOOKLINE` if set, else `hookline` on the `PATH`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the plugin did on one scripted call, and whether that is what the
/// script's `[expect]` asked for.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub passed: bool,
    /// Expected and actual, from the first difference (when not passed).
    pub diff: Option<String>,
    /// The verbs issued, in order, as the README writes them (`dial extension:201`).
    pub verbs: Vec<String>,
    /// The call record's path as the node would write it.
    pub path: Vec<String>,
    /// The plugin's kv at the end.
    pub kv: BTreeMap<String, String>,
    /// `ok`, `error:<reason>` or `trap:<why>`.
    pub outcome: String,
    /// What the plugin logged.
    pub logs: Vec<String>,
}

/// A plugin's component, ready to run scripts against.
#[derive(Debug, Clone)]
pub struct Harness {
    hookline: PathBuf,
    wasm: PathBuf,
}

fn hookline_binary() -> PathBuf {
    std::env::var_os("HOOKLINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("hookline"))
}

impl Harness {
    /// A component already built.
    pub fn for_component(wasm: impl Into<PathBuf>) -> Harness {
        Harness {
            hookline: hookline_binary(),
            wasm: wasm.into(),
        }
    }

    /// Builds the crate at `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`)
    /// for `wasm32-wasip2`, release, as the node runs it.
    pub fn for_crate(manifest_dir: &str) -> Result<Harness, String> {
        let manifest = Path::new(manifest_dir).join("Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building {} for wasm32-wasip2 failed",
                manifest.display()
            ));
        }
        // The component is the artifact of this crate that ends in .wasm.
        let wanted = std::fs::canonicalize(&manifest).unwrap_or(manifest.clone());
        let wasm = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter(|m| {
                m["manifest_path"]
                    .as_str()
                    .is_some_and(|p| Path::new(p) == wanted)
            })
            .flat_map(|m| {
                m["filenames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| f.as_str().map(PathBuf::from))
            })
            .find(|f| f.extension().is_some_and(|e| e == "wasm"))
            .ok_or_else(|| format!("cargo built no .wasm for {}", manifest.display()))?;
        Ok(Harness::for_component(wasm))
    }

    /// The component scripts run against.
    pub fn component(&self) -> &Path {
        &self.wasm
    }

    /// Runs one script given as TOML text.
    pub fn run(&self, script: &str) -> Result<Report, String> {
        let mut child = self
            .command()
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.not_started(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| format!("writing the script: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("hookline plugin test: {e}"))?;
        Ok(parse_reports(&out.stdout, &out.stderr)?.remove(0))
    }

    /// Runs one script file.
    pub fn run_file(&self, script: impl AsRef<Path>) -> Result<Report, String> {
        let out = self
            .command()
            .arg(script.as_ref())
            .output()
            .map_err(|e| self.not_started(e))?;
        Ok(parse_reports(&out.stdout, &out.stderr)?.remove(0))
    }

    /// Runs every `*.toml` script in `dir`; panics naming each that failed,
    /// with its diff.
    pub fn assert_scripts_pass(&self, dir: impl AsRef<Path>) {
        let dir = dir.as_ref();
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        scripts.sort();
        assert!(
            !scripts.is_empty(),
            "no *.toml scripts in {}",
            dir.display()
        );
        let mut failed = String::new();
        for s in &scripts {
            match self.run_file(s) {
                Ok(r) if r.passed => {}
                Ok(r) => {
                    failed += &format!(
                        "{}:\n{}  verbs were: {:?}\n  outcome: {}\n",
                        s.display(),
                        r.diff.unwrap_or_default(),
                        r.verbs,
                        r.outcome
                    )
                }
                Err(e) => failed += &format!("{}: {e}\n", s.display()),
            }
        }
        assert!(failed.is_empty(), "scripts failed:\n{failed}");
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.hookline);
        c.args(["plugin", "test", "--json"]).arg(&self.wasm);
        c
    }

    fn not_started(&self, e: std::io::Error) -> String {
        format!(
            "cannot run {} ({e}): install hookline, or set HOOKLINE to its binary",
            self.hookline.display()
        )
    }
}

/// The JSON lines `hookline plugin test --json` prints, one per script.
fn parse_reports(stdout: &[u8], stderr: &[u8]) -> Result<Vec<Report>, String> {
    let reports: Vec<Report> = String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let strings = |k: &str| -> Vec<String> {
                v[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Report {
                passed: v["passed"] == true,
                diff: v["diff"].as_str().map(String::from),
                verbs: strings("verbs"),
                path: strings("path"),
                kv: v["kv"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                outcome: v["outcome"].as_str().unwrap_or_default().to_string(),
                logs: strings("logs"),
            }
        })
        .collect();
    if reports.is_empty() {
        // Not run at all: a script that does not parse, a component that does not load.
        return Err(String::from_utf8_lossy(stderr).trim().to_string());
    }
    Ok(reports)
}
