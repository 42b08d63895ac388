//! A new integrator's first hour, step by step as the SDK README tells it:
//! start a Rust plugin with `hookline plugin new` outside the repository,
//! build it with cargo, check it, run its test script, get a mistyped route config key named (at
//! check and at start), and call it on a node.

use std::process::Command;
use std::time::Duration;

use hookline_tests::{
    hookline_bin, path_of, plugin_check, plugin_test, run_ok, workspace_root, SipUa, TestNode,
};

#[test]
fn a_plugin_started_outside_the_repository_builds_checks_and_answers_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("biz-hours");
    let said = run_ok(
        Command::new(hookline_bin("debug"))
            .args(["plugin", "new", "biz-hours"])
            .arg(&project),
    );
    assert!(
        said.contains("cargo build --release --target wasm32-wasip2"),
        "{said}"
    );

    // Built where it is, as its own workspace (its own target directory in
    // the shared build cache, so CI reuses the compiled dependencies).
    let target = workspace_root().join("target/plugin-author");
    run_ok(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target),
    );
    let wasm = target.join("wasm32-wasip2/release/biz_hours.wasm");
    let check = plugin_check(&wasm, &[]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("name:        biz-hours"), "{text}");

    // Its own test script runs against it with no phone: the key, the dial.
    let test = plugin_test(&wasm, &[project.join("tests/agent.toml")]);
    let said = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{said}");
    assert!(said.starts_with("ok "), "{said}");

    // A mistyped config key is named, with the key meant: by `plugin check
    // --config`, and by the node at start.
    let plugin = format!(
        "[[plugins]]\nname = \"biz-hours\"\npath = \"{}\"\n\n",
        wasm.display()
    );
    let typo = dir.path().join("typo.toml");
    let root = workspace_root();
    std::fs::write(
        &typo,
        format!(
            "[prompts]\ncatalog = \"{root}/prompts/catalog.toml\"\nrecorded = \"{root}/prompts/recorded\"\n\n\
             {plugin}[[routes]]\nnumber = \"700\"\nplugin = \"biz-hours\"\n\
             config = {{ greting = \"Hello.\", agent = \"201\" }}\n",
            root = root.display()
        ),
    )
    .unwrap();
    let check = plugin_check(&wasm, &["--config".as_ref(), typo.as_os_str()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!check.status.success(), "{said}");
    assert!(
        said.contains("\"greting\": unknown key; did you mean \"greeting\"?"),
        "{said}"
    );
    let serve = Command::new(hookline_bin("debug"))
        .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&typo)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(said.contains("\"greting\": unknown key"), "{said}");

    // Routed and called: the menu's key 1 reaches the plugin's branch, and the
    // record names the plugin's version.
    let routes = format!(
        "{plugin}[[routes]]\nnumber = \"700\"\nplugin = \"biz-hours\"\n\
         config = {{ greeting = \"Thank you for calling.\", agent = \"299\" }}\n\n"
    );
    let node = TestNode::with_routes(&routes).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let tag = ua.call("author", "700", 9).unwrap();
    ua.request(
        "INFO",
        "author",
        &tag,
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=1\r\nDuration=100\r\n",
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["id"] == "author" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert!(path.iter().any(|s| s == "template:agent"), "{call:#}");
    assert_eq!(call["plugin"], "biz-hours", "{call:#}");
    assert_eq!(call["plugin_version"], "0.1.0", "{call:#}");
}
