//! SIPp, the scripted SIP peer: callers from `tests/scenarios` and answering agents.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::*;

/// A SIPp UAS (a carrier, a phone) listening on `port`, handling one call of
/// `scenario` in the background; `SippUas::finish` collects its result.
pub fn sipp_uas(scenario: &str, port: u16) -> Result<SippUas> {
    sipp_uas_with(scenario, port, &[])
}

/// `sipp_uas` with `-key name value` pairs for the scenario.
pub fn sipp_uas_with(scenario: &str, port: u16, keys: &[(&str, String)]) -> Result<SippUas> {
    let dir = tempfile::tempdir()?;
    let child = sipp_command(scenario, port, keys, &dir)
        // Every message it saw, so a failure shows the dialogue.
        .args(["-trace_msg", "-message_file"])
        .arg(dir.path().join("messages.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running sipp (apt sip-tester)")?;
    Ok(SippUas { child, dir })
}

/// A background SIPp handling one call.
pub struct SippUas {
    child: Child,
    dir: tempfile::TempDir,
}

impl SippUas {
    /// Waits up to `timeout` for the call to go through the scenario; the
    /// error carries SIPp's exit status, its error log and the messages it saw.
    pub fn finish(mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status.is_some_and(|s| s.success()) {
            return Ok(());
        }
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        bail!(
            "SIPp {}\nerrors:\n{}\nmessages:\n{}",
            status.map_or(format!("still running after {timeout:?}"), |s| s
                .to_string()),
            read("errors.log"),
            read("messages.log")
        )
    }
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
