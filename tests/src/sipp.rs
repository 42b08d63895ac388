//! SIPp, the scripted SIP peer: callers from `tests/scenarios` and answering agents.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::*;

/// A SIPp UAS (a carrier, a phone) listening on `port`, handling one call of
/// `scenario` in the background; `wait_sipp` collects its result.
pub fn sipp_uas(scenario: &str, port: u16) -> Result<(Child, tempfile::TempDir)> {
    sipp_uas_with(scenario, port, &[])
}

/// `sipp_uas` with `-key name value` pairs for the scenario.
pub fn sipp_uas_with(
    scenario: &str,
    port: u16,
    keys: &[(&str, String)],
) -> Result<(Child, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let child = sipp_command(scenario, port, keys, &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running sipp (apt sip-tester)")?;
    Ok((child, dir))
}

/// The SIPp command line every test shares: one call, local ports, timeouts,
/// errors logged into `dir`, scenario keys.
fn sipp_command(
    scenario: &str,
    port: u16,
    keys: &[(&str, String)],
    dir: &tempfile::TempDir,
) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(workspace_root().join("tests/scenarios").join(scenario))
        .args(["-m", "1", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_media_port().to_string()])
        .args([
            "-timeout",
            "60s",
            "-timeout_error",
            "-max_recv_loops",
            "1000",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("errors.log"))
        .current_dir(dir.path());
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    cmd
}

/// Waits for a background SIPp; true if its call went through the scenario.
pub fn wait_sipp(mut child: Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Runs one SIPp scenario from `tests/scenarios` against the node.
pub fn sipp(
    node: &TestNode,
    scenario: &str,
    service: &str,
    keys: &[(&str, String)],
) -> Result<Output> {
    sipp_with_args(node, scenario, service, keys, &[])
}

/// `sipp` with extra command-line arguments (e.g. `-t t1` for TCP).
pub fn sipp_with_args(
    node: &TestNode,
    scenario: &str,
    service: &str,
    keys: &[(&str, String)],
    extra: &[&str],
) -> Result<Output> {
    let dir = tempfile::tempdir()?;
    let mut cmd = sipp_command(scenario, free_udp_port(), keys, &dir);
    cmd.args(extra)
        .arg(node.sip.to_string())
        .args(["-s", service, "-l", "1"]);
    let out = cmd
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .context("running sipp (apt sip-tester)")?;
    if !out.status.success() {
        let errors = std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
        bail!(
            "sipp {scenario} failed ({}):\n{errors}\n{}\nnode log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n"),
            node.logs()
        );
    }
    Ok(out)
}
