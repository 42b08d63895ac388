//! A new integrator's first hour, step by step as the SDK README tells it:
//! start a Rust plugin with `hookline plugin new` outside the repository,
//! build it with cargo, check it, run its test script, get a mistyped route config key named (at
//! check and at start), and call it on a node; then deploy it with its
//! route over the API instead, with no config file touched and no restart.

use std::process::Command;
use std::time::Duration;

use hookline_tests::{
    hookline_bin, http_get, http_request, path_of, plugin_check, plugin_test, run_ok,
    workspace_root, NodeSpec, SipUa, TestNode,
};

/// `hookline plugin new biz-hours` in `dir`, built as the README says;
/// returns the project and its component.
fn new_plugin_built(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let project = dir.join("biz-hours");
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
    (project, target.join("wasm32-wasip2/release/biz_hours.wasm"))
}

#[test]
fn a_plugin_started_outside_the_repository_builds_checks_and_answers_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let (project, wasm) = new_plugin_built(dir.path());
    let check = plugin_check(&wasm, &[]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("name:        biz-hours"), "{text}");

    // Its own test script runs against it with no phone: the key, the dial.
    let test = plugin_test(&wasm, &[project.join("tests/agent.toml")]);
    let said = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{said}");
    assert!(said.starts_with("ok "), "{said}");

    // The same scripts from the project's own `cargo test`, through the SDK's
    // test library (it builds the component and runs `hookline plugin test`).
    let cargo_test = |project: &std::path::Path| {
        Command::new("cargo")
            .args(["test", "--quiet"])
            .current_dir(project)
            .env(
                "CARGO_TARGET_DIR",
                workspace_root().join("target/plugin-author"),
            )
            .env("HOOKLINE", hookline_bin("debug"))
            .output()
            .unwrap()
    };
    let out = cargo_test(&project);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("test result: ok. 2 passed"), "{said}");
    // A wrong expectation fails `cargo test`, naming the script and the step.
    let wrong = std::fs::read_to_string(project.join("tests/agent.toml"))
        .unwrap()
        .replace("\"dial extension:201\"", "\"dial extension:202\"");
    std::fs::write(project.join("tests/wrong.toml"), wrong).unwrap();
    let out = cargo_test(&project);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("wrong.toml"), "{said}");
    assert!(said.contains("dial extension:202"), "{said}");
    std::fs::remove_file(project.join("tests/wrong.toml")).unwrap();

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

/// Presses 1 on a call to `number` and returns its record once it ended.
fn call_and_press_1(
    node: &TestNode,
    id: &str,
    number: &str,
    ends_itself: bool,
) -> serde_json::Value {
    let ua = SipUa::new(node.sip).unwrap();
    let tag = ua.call(id, number, 9).unwrap();
    ua.request(
        "INFO",
        id,
        &tag,
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=1\r\nDuration=100\r\n",
    )
    .unwrap();
    let ended = |c: &serde_json::Value| c["id"] == id && c["hangup_cause"].is_string();
    if ends_itself {
        // The template hangs up once its dial fails. A BYE after a fixed
        // wait raced its greeting's synthesis on a loaded machine (the key,
        // typed ahead, is taken once the prompts are ready).
        return node.wait_for_call(Duration::from_secs(30), ended).unwrap();
    }
    // The sample IVR (the catch-all) does not end by itself: hang up.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = ua.request("BYE", id, &tag, 3, "", "");
    node.wait_for_call(Duration::from_secs(30), ended).unwrap()
}

#[test]
fn a_plugin_and_its_route_added_over_the_api_answer_calls_and_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_, wasm) = new_plugin_built(dir.path());
    let mut node = TestNode::start(NodeSpec {
        node_section: Some("api_token = \"s3cret\""),
        ..NodeSpec::default()
    })
    .unwrap();
    let api = |method: &str, path: &str, body: &[u8]| {
        http_request(node.http, method, path, Some("s3cret"), body).unwrap()
    };
    let route = br#"{ "number": "700", "plugin": "biz-hours",
        "config": { "greeting": "Thank you for calling.", "agent": "299" } }"#;

    let before_catch_all = String::from_utf8_lossy(route).replacen('{', "{ \"before\": \"*\",", 1);
    // Each refusal names what is wrong.
    let (code, said) = api("PUT", "/api/routes/biz", route);
    assert_eq!(code, 422, "{said}");
    assert!(said.contains("no plugin named \"biz-hours\""), "{said}");
    let (code, said) = api(
        "PUT",
        "/api/plugins/biz-hours/settings",
        br#"{"grants": ["kv"], "grnats": []}"#,
    );
    assert_eq!(code, 422, "{said}");
    assert!(said.contains("unknown field `grnats`"), "{said}");
    let (code, said) = api(
        "PUT",
        "/api/plugins/biz-hours/settings",
        br#"{"grants": ["kv"]}"#,
    );
    assert_eq!(code, 204, "{said}");
    let (code, said) = api("PUT", "/api/routes/biz", before_catch_all.as_bytes());
    assert_eq!(code, 422, "{said}");
    assert!(
        said.contains("no component deployed: PUT /api/plugins/biz-hours"),
        "{said}"
    );
    let (code, said) = api(
        "PUT",
        "/api/plugins/biz-hours",
        &std::fs::read(&wasm).unwrap(),
    );
    assert_eq!(code, 200, "{said}");
    let typo = br#"{ "number": "700", "plugin": "biz-hours", "before": "*",
        "config": { "greting": "Hello.", "agent": "299" } }"#;
    let (code, said) = api("PUT", "/api/routes/biz", typo);
    assert_eq!(code, 422, "{said}");
    assert!(
        said.contains("\"greting\": unknown key; did you mean \"greeting\"?"),
        "{said}"
    );
    // Behind the sample config's catch-all it would never be reached.
    let (code, said) = api("PUT", "/api/routes/biz", route);
    assert_eq!(code, 422, "{said}");
    assert!(
        said.contains("route \"*\" (number \"*\") takes its calls first"),
        "{said}"
    );
    let before_catch_all = String::from_utf8_lossy(route).replacen('{', "{ \"before\": \"*\",", 1);
    let (code, said) = api("PUT", "/api/routes/biz", before_catch_all.as_bytes());
    assert_eq!(code, 201, "{said}");

    // Called: the plugin's branch, its name and version in the record.
    let call = call_and_press_1(&node, "api-route", "700", true);
    assert!(
        path_of(&call).iter().any(|s| s == "template:agent"),
        "{call:#}"
    );
    assert_eq!(call["plugin"], "biz-hours", "{call:#}");
    let (_, routes) = http_get(node.http, "/api/routes", Some("s3cret")).unwrap();
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
    let ids: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let at = ids.iter().position(|i| *i == "biz").unwrap();
    assert_eq!(ids[at + 1], "*", "{ids:?}");

    // Killed and started again: the plugin, its grants and its route are kept.
    node.crash_and_restart().unwrap();
    let call = call_and_press_1(&node, "after-restart", "700", true);
    assert_eq!(call["plugin"], "biz-hours", "{call:#}");
    assert!(node.logs().contains("kept from the API"), "{}", node.logs());
    let (_, plugins) = http_get(node.http, "/api/plugins", Some("s3cret")).unwrap();
    assert!(plugins.contains("\"name\":\"biz-hours\""), "{plugins}");
    assert!(plugins.contains("\"needs\":[]"), "{plugins}");

    // Removed: the plugin only once no route uses it; the number falls to
    // the catch-all; nothing of it comes back after a restart.
    let api = |method: &str, path: &str| {
        http_request(node.http, method, path, Some("s3cret"), b"").unwrap()
    };
    let (code, said) = api("DELETE", "/api/plugins/biz-hours");
    assert_eq!(code, 409, "{said}");
    assert!(said.contains("in use by route \"biz\""), "{said}");
    assert_eq!(api("DELETE", "/api/routes/biz").0, 204);
    assert_eq!(api("DELETE", "/api/routes/biz").0, 404);
    assert_eq!(api("DELETE", "/api/plugins/biz-hours").0, 204);
    node.crash_and_restart().unwrap();
    let call = call_and_press_1(&node, "after-removal", "700", false);
    assert_eq!(call["plugin"], "ivr", "{call:#}");
    let (_, plugins) = http_get(node.http, "/api/plugins", Some("s3cret")).unwrap();
    assert!(!plugins.contains("biz-hours"), "{plugins}");
}
