//! `hookline plugin test`: sample plugins tested against scripted calls with
//! no SIP — their scripts pass, a wrong expectation fails with a diff that
//! names the step, and a runaway plugin ends as a trap instead of hanging.

use std::time::{Duration, Instant};

use hookline_tests::{plugin_passes_its_scripts, plugin_test, plugin_wasm, workspace_root};

#[test]
fn the_sample_plugins_pass_their_scripts() {
    plugin_passes_its_scripts(&plugin_wasm("hookline-ivr"), "plugins/ivr/tests");
    plugin_passes_its_scripts(&plugin_wasm("hookline-survey"), "plugins/survey/tests");
}

/// The script in the SDK README runs as written.
#[test]
fn the_readme_example_passes() {
    let readme = std::fs::read_to_string(workspace_root().join("plugin-sdk/README.md")).unwrap();
    let from = readme
        .find("## Testing a plugin without a phone")
        .expect("the README's testing section");
    let block = readme[from..]
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block in the testing section");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("readme.toml");
    std::fs::write(&script, block).unwrap();
    let out = plugin_test(&plugin_wasm("hookline-ivr"), &[&script]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wrong_expectation_fails_naming_the_step_and_a_runaway_plugin_traps() {
    let dir = tempfile::tempdir().unwrap();
    // Key 2 is support; the script claims sales.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        r#"
[call.config]
menu = ["main_menu"]
fallback = { name = "operator", prompts = ["operator"] }
options = [
  { digit = "1", name = "sales", prompts = ["sales"] },
  { digit = "2", name = "support", prompts = ["support"] },
]

[[caller]]
keys = "2"

[expect]
path = ["prompt:main_menu", "digits:2", "branch:sales", "prompt:sales"]
"#,
    )
    .unwrap();
    let out = plugin_test(&plugin_wasm("hookline-ivr"), &[&wrong]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("path differ from step 3"), "{said}");
    assert!(said.contains("expected branch:sales"), "{said}");
    assert!(said.contains("got branch:support"), "{said}");

    // A plugin that loops forever: out of fuel, a trap, in seconds.
    let looping = dir.path().join("loop.toml");
    std::fs::write(
        &looping,
        "[call]\nconfig = \"loop\"\n\n[expect]\noutcome = \"trap\"\nverbs = [\"answer\"]\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = plugin_test(&plugin_wasm("hookline-hostile"), &[&looping]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}
