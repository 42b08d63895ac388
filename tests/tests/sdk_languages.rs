//! "Any WASM language", demonstrated: the sample plugins in C and Python are
//! built from source here with their toolchains (clang + wit-bindgen c,
//! componentize-py), checked with `hookline plugin check`, loaded by a node,
//! and called with SIPp; the key the caller pressed reaches each plugin.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hookline_tests::{
    build_c_plugin, build_py_plugin, hookline_bin, path_of, plugin_check, run_ok, sipp,
    workspace_root, TestNode,
};

fn check(wasm: &Path, name: &str) {
    let out = plugin_check(wasm, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("name:        {name}")), "{text}");
}

/// The C sample's test program and the Python sample's unittest, as their
/// authors run them.
fn sdk_test_libraries_pass(dir: &Path, c_wasm: &Path, py_wasm: &Path) {
    let root = workspace_root();
    let c_test = dir.join("test_scripts");
    run_ok(
        Command::new("cc")
            .args(["-Wall", "-Werror", "-o"])
            .arg(&c_test)
            .arg(root.join("plugins/hello-c/tests/test_scripts.c"))
            .arg("-I")
            .arg(root.join("plugin-sdk/c")),
    );
    let said = run_ok(
        Command::new(&c_test)
            .arg(c_wasm)
            .arg(root.join("plugins/hello-c/tests"))
            .env("HOOKLINE", hookline_bin("debug")),
    );
    assert!(said.contains("ok: hello-c scripts"), "{said}");
    let py = Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(root.join("plugins/hello-py/tests"))
        .env("HOOKLINE", hookline_bin("debug"))
        .env("HELLO_PY_WASM", py_wasm)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&py.stderr);
    assert!(py.status.success(), "{said}");
    assert!(
        said.contains("Ran 4 tests") && said.contains("\nOK"),
        "{said}"
    );
}

#[test]
fn plugins_written_in_c_and_python_answer_calls() {
    let dir = tempfile::tempdir().unwrap();
    let c_wasm = dir.path().join("hello-c.wasm");
    build_c_plugin(&c_wasm, &["plugins/hello-c/hello.c"]);
    let py_wasm = dir.path().join("hello-py.wasm");
    build_py_plugin(&py_wasm, "plugins/hello-py");
    check(&c_wasm, "hello-c");
    check(&py_wasm, "hello-py");
    // The C helpers (say, dial, hand-over, manifest needs) against scripted
    // calls: plugins/hello-c/tests/*.toml.
    hookline_tests::plugin_passes_its_scripts(&c_wasm, "plugins/hello-c/tests");
    // ... and from each language's own tests, through its SDK's test library
    // (plugin-sdk/c/hl_test.h, plugin-sdk/python/hookline_test.py).
    sdk_test_libraries_pass(dir.path(), &c_wasm, &py_wasm);

    let routes = format!(
        "[[plugins]]\nname = \"hello-c\"\npath = \"{}\"\ngrants = [\"hand-over:voicemail\"]\n\n[[plugins]]\nname = \"hello-py\"\npath = \"{}\"\n\n\
         [[routes]]\nnumber = \"lang-c\"\nplugin = \"hello-c\"\n\n[[routes]]\nnumber = \"lang-py\"\nplugin = \"hello-py\"\n\n\
         [[routes]]\nnumber = \"lang-py-crash\"\nplugin = \"hello-py\"\nconfig = {{ crash = true }}\n",
        c_wasm.display(),
        py_wasm.display()
    );
    let node = TestNode::with_routes(&routes).unwrap();
    for (number, lang, tag) in [("lang-c", "lang:c", "c"), ("lang-py", "lang:python", "py")] {
        // The caller presses 2 (SIP INFO) and waits for the plugin to hang up.
        sipp(
            &node,
            "uac_ivr_info.xml",
            number,
            &[("rtp_sink", "9".into())],
        )
        .unwrap();
        let call = node
            .wait_for_call(Duration::from_secs(15), |c| {
                c["callee"] == number && c["hangup_cause"].is_string()
            })
            .unwrap();
        let path = path_of(&call);
        assert_eq!(path[0], lang, "{call:#}");
        assert!(path.contains(&format!("{tag}:digit:2")), "{path:?}");
        assert_eq!(
            path.last().map(String::as_str),
            Some("prompt:support"),
            "{path:?}"
        );
        assert_eq!(call["hangup_cause"], "plugin-hangup", "{call:#}");
    }

    // A Python bug: the traceback's last line is the cause in the record, and
    // the traceback is in the node log under the call.
    let ua = hookline_tests::SipUa::new(node.sip).unwrap();
    ua.invite("py-crash", "lang-py-crash", 9).unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(15), |c| {
            c["id"] == "py-crash" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert!(
        path.iter()
            .any(|p| p.starts_with("plugin-trap:ZeroDivisionError: division by zero")),
        "{path:?}"
    );
    let log = node.logs();
    assert!(
        log.lines()
            .any(|l| l.contains("py-crash") && l.contains("stderr: Traceback")),
        "no traceback in the node log:\n{log}"
    );
}
