//! The README's five-minute tour, run as written: every `sh` block of the
//! tour and its `plugin check` command, against a node started from the
//! sample config. Only the addresses change (the node listens on the kit's
//! ports, not 5060/8080, so tests can run side by side) and `~` is a fresh
//! home (a fresh baresip), so the docs cannot drift from what works.

use std::process::Command;
use std::time::Duration;

use hookline_tests::{workspace_root, NodeSpec, TestNode};

/// The tour's text.
fn tour() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let from = readme.find("## Five-minute tour").expect("a tour section");
    let to = readme[from + 3..]
        .find("\n## ")
        .map_or(readme.len(), |i| from + 3 + i);
    readme[from..to].to_string()
}

/// Runs a shell snippet from the workspace root with the node's addresses
/// and a fresh home; returns (status ok, stdout+stderr).
fn run(snippet: &str, node: &TestNode, home: &std::path::Path, timeout_s: u32) -> (bool, String) {
    let script = snippet
        .replace("127.0.0.1:5060", &node.sip.to_string())
        .replace("127.0.0.1:8080", &node.http.to_string());
    let out = Command::new("timeout")
        .arg(timeout_s.to_string())
        .args(["sh", "-c", &script])
        .current_dir(workspace_root())
        .env("HOME", home)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_command_of_the_readme_tour_works_as_written() {
    let text = tour();
    let blocks: Vec<String> = text
        .split("```sh\n")
        .skip(1)
        .map(|b| {
            b.split("```")
                .next()
                .unwrap()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert_eq!(blocks.len(), 3, "the tour's sh blocks changed: {blocks:#?}");
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let home = tempfile::tempdir().unwrap();

    // baresip from a fresh home: the account line lets it place the call
    // (it stays in the call until the timeout ends it).
    let baresip = blocks.iter().find(|b| b.contains("baresip -e")).unwrap();
    let _ = run(baresip, &node, home.path(), 8);
    node.wait_for_call(Duration::from_secs(15), |c| c["caller"] == "tour")
        .unwrap_or_else(|e| panic!("baresip as written placed no call: {e}"));

    // SIPp presses 2 by itself and exits 0 when its call went as scripted.
    let sipp = blocks.iter().find(|b| b.contains("sipp ")).unwrap();
    let (ok, said) = run(sipp, &node, home.path(), 60);
    assert!(ok, "{sipp}\n{said}");

    // The record, read as the tour says, shows the support branch.
    let curl = blocks.iter().find(|b| b.contains("curl ")).unwrap();
    node.wait_for_call(Duration::from_secs(15), |c| {
        c["caller"] == "sipp" && c["hangup_cause"].is_string()
    })
    .unwrap();
    let (ok, said) = run(curl, &node, home.path(), 20);
    assert!(ok, "{curl}\n{said}");
    for step in [
        "\"branch:support\"",
        "\"prompt:support\"",
        "\"plugin-hangup\"",
    ] {
        assert!(
            said.contains(step),
            "{step} not in what the tour's curl printed:\n{said}"
        );
    }

    // The plugin check in step 4.
    let check = text
        .split('`')
        .find(|s| s.starts_with("target/release/hookline plugin check"))
        .expect("the tour's plugin check command");
    let (ok, said) = run(check, &node, home.path(), 60);
    assert!(ok, "{check}\n{said}");
    assert!(said.contains("ok: hookline:call"), "{said}");
}
