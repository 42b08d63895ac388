//! `hookline plugin test PLUGIN.wasm SCRIPT.toml`: runs a plugin against a
//! scripted call — no SIP, no media, no node — and checks what it did: the
//! verbs it issued in order, the call record's path, its kv, how it ended.
//! Milliseconds per script and deterministic (the clock is the script's; the
//! guest runs on fuel, so a loop ends as a trap, not a hang).

mod host;
pub mod script;

use std::fmt::Write as _;

use anyhow::Context;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use super::{CallInfo, CallPlugin};
use host::ScriptState;
use script::Script;

/// Guest instructions one script may run (a loop traps instead of hanging).
const FUEL: u64 = 20_000_000_000;

/// What the plugin did on the scripted call.
#[derive(Debug)]
pub struct Report {
    pub verbs: Vec<String>,
    pub path: Vec<String>,
    pub kv: std::collections::BTreeMap<String, String>,
    /// `ok`, `error:<reason>` or `trap:<why>`.
    pub outcome: String,
    pub logs: Vec<String>,
}

/// A compiled plugin, ready to run scripts (compiling is the slow part;
/// each script then costs an instantiation and the plugin's own work).
pub struct Harness {
    engine: Engine,
    component: Component,
    linker: Linker<ScriptState>,
}

impl Harness {
    pub fn new(wasm: &[u8]) -> anyhow::Result<Harness> {
        let mut config = Config::new();
        config.consume_fuel(true);
        // Authors run the same component again and again (a Python one takes
        // seconds to compile): the compiled code is kept in wasmtime's cache
        // in the user's cache folder. Without one, it compiles each time.
        if let Ok(cache) = wasmtime::Cache::from_file(None) {
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let component = Component::new(&engine, wasm)
            .map_err(|e| anyhow::anyhow!("not a plugin component: {e:#}"))?;
        let mut linker = Linker::<ScriptState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        CallPlugin::add_to_linker::<_, HasSelf<ScriptState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Harness {
            engine,
            component,
            linker,
        })
    }

    /// Runs the plugin on the call `script` describes.
    pub async fn run(&self, script: &Script) -> anyhow::Result<Report> {
        let start: jiff::Timestamp = script
            .call
            .time
            .parse()
            .with_context(|| format!("[call] time {:?}", script.call.time))?;
        let config_json = serde_json::to_string(&script.call.config)?;
        // The guest's stdout and stderr: in the report, and a crash's last words in its outcome.
        let output = crate::plugin::output::PluginOutput::keeping("test-call", "plugin");
        let mut store = Store::new(
            &self.engine,
            ScriptState::new(
                script,
                config_json.clone(),
                start.as_millisecond() as u64,
                &output,
            ),
        );
        store.set_fuel(FUEL).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let plugin = CallPlugin::instantiate_async(&mut store, &self.component, &self.linker)
            .await
            .map_err(|e| anyhow::anyhow!("instantiating: {e:#}"))?;
        let info = CallInfo {
            call_id: "test-call".into(),
            caller: script.call.caller.clone(),
            callee: script.call.callee.clone(),
            caller_name: script.call.caller_name.clone(),
            domain: "localhost".into(),
            config: config_json,
            arguments: script.call.arguments.clone(),
        };
        let outcome = match plugin.call_handle_call(&mut store, &info).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(reason)) => format!("error:{reason}"),
            Err(trap) => format!("trap:{}", output.trap_cause(&trap)),
        };
        let state = store.into_data();
        let mut logs = state.logs;
        logs.extend(output.kept_lines());
        Ok(Report {
            verbs: state.verbs,
            path: state.path,
            kv: state.kv,
            outcome,
            logs,
        })
    }
}

/// Checks a report against the script's `[expect]`; the error is a
/// readable diff of every part that differs.
pub fn check(report: &Report, script: &Script) -> Result<(), String> {
    let want = &script.expect;
    let mut diff = String::new();
    let want_outcome = want.outcome.as_deref().unwrap_or("ok");
    let outcome_ok = match want_outcome {
        "error" => report.outcome.starts_with("error:"),
        "trap" => report.outcome.starts_with("trap:"),
        exact => report.outcome == exact,
    };
    if !outcome_ok {
        let _ = writeln!(
            diff,
            "outcome: expected {want_outcome}, got {}",
            report.outcome
        );
    }
    if let Some(verbs) = &want.verbs {
        list_diff(&mut diff, "verbs", verbs, &report.verbs);
    }
    if let Some(path) = &want.path {
        list_diff(&mut diff, "path", path, &report.path);
    }
    if let Some(kv) = &want.kv {
        for (k, v) in kv {
            match report.kv.get(k) {
                Some(got) if got == v => {}
                got => {
                    let _ = writeln!(diff, "kv {k:?}: expected {v:?}, got {got:?}");
                }
            }
        }
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(diff)
    }
}

/// Expected and actual side by side from the first difference.
fn list_diff(out: &mut String, what: &str, want: &[String], got: &[String]) {
    if want == got {
        return;
    }
    let first = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let _ = writeln!(out, "{what} differ from step {}:", first + 1);
    for i in first..want.len().max(got.len()) {
        let w = want.get(i).map_or("(nothing)", String::as_str);
        let g = got.get(i).map_or("(nothing)", String::as_str);
        let mark = if w == g { " " } else { "!" };
        let _ = writeln!(out, "  {mark} {:>3}. expected {w:<40} got {g}", i + 1);
    }
}

/// The CLI: runs each script against the plugin, prints what happened and
/// whether it was expected; fails if any script failed.
pub async fn run_cli(
    wasm: &std::path::Path,
    scripts: &[std::path::PathBuf],
    json: bool,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let harness = Harness::new(&bytes)?;
    let mut failed = 0;
    for path in scripts {
        // `-`: the script on stdin (the SDKs' test libraries pass scripts written in code).
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the script on stdin")?
        } else {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        };
        let script: Script =
            toml::from_str(&text).with_context(|| format!("script {}", path.display()))?;
        let started = std::time::Instant::now();
        let report = harness.run(&script).await?;
        let took = started.elapsed();
        let verdict = check(&report, &script);
        failed += verdict.is_err() as usize;
        if json {
            // One line per script, for the SDKs' test libraries.
            let line = serde_json::json!({
                "script": path.display().to_string(),
                "passed": verdict.is_ok(),
                "diff": verdict.as_ref().err(),
                "verbs": report.verbs,
                "path": report.path,
                "kv": report.kv,
                "outcome": report.outcome,
                "logs": report.logs,
                "ms": took.as_secs_f64() * 1e3,
            });
            println!("{line}");
            continue;
        }
        match verdict {
            Ok(()) => println!(
                "ok    {} ({} verbs, {:.1} ms): path {:?}",
                path.display(),
                report.verbs.len(),
                took.as_secs_f64() * 1e3,
                report.path
            ),
            Err(diff) => {
                println!("FAIL  {}\n{diff}  verbs were:", path.display());
                for v in &report.verbs {
                    println!("    {v}");
                }
                println!(
                    "  path was: {:?}\n  outcome: {}",
                    report.path, report.outcome
                );
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} scripts failed", scripts.len());
    }
    Ok(())
}
