//! A plugin that recurses without end — in Rust, C or Python — loses its
//! own call's logic (the call goes to the route's fallback), never the node:
//! the guest's stack limit (`plugin_stack_kib`) sits below the fiber it runs
//! on. A healthy IVR call at the same time hears its menu unbroken.

use std::time::Duration;

use hookline_tests::{
    build_c_plugin, build_py_plugin, heard_the_support_prompt, path_of, sipp, sipp_reached_support,
    workspace_root, NodeSpec, RtpSink, SipUa, TestNode,
};

#[test]
fn unbounded_recursion_in_rust_c_and_python_ends_only_its_own_call() {
    let dir = tempfile::tempdir().unwrap();
    let c_wasm = dir.path().join("recurse-c.wasm");
    let py_wasm = dir.path().join("recurse-py.wasm");
    build_c_plugin(&c_wasm, &["tests/plugins/recurse-c/recurse.c"]);
    build_py_plugin(&py_wasm, "tests/plugins/recurse-py");
    let rust_wasm = workspace_root().join("target/wasm32-wasip2/release/hookline_hostile.wasm");
    let fallback = "fallback = { plugin = \"ivr\", config = { greeting = [\"operator\"], fallback = { name = \"rescued\" } } }";
    let routes = format!(
        "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n\
         [[plugins]]\nname = \"recurse-c\"\npath = \"{}\"\n\n\
         [[plugins]]\nname = \"recurse-py\"\npath = \"{}\"\n\n\
         [[routes]]\nnumber = \"rec-rust\"\nplugin = \"hostile\"\nconfig = \"recurse\"\n{fallback}\n\n\
         [[routes]]\nnumber = \"rec-c\"\nplugin = \"recurse-c\"\n{fallback}\n\n\
         [[routes]]\nnumber = \"rec-py\"\nplugin = \"recurse-py\"\n{fallback}\n\n",
        rust_wasm.display(),
        c_wasm.display(),
        py_wasm.display()
    );
    let node = TestNode::start(NodeSpec {
        extra_routes: &routes,
        ..NodeSpec::default()
    })
    .unwrap();
    let pid = node.pid();

    let sink = RtpSink::bind().unwrap();
    let sink_port = sink.port.to_string();
    let numbers = ["rec-rust", "rec-c", "rec-py"];
    std::thread::scope(|s| {
        let healthy = s.spawn(|| {
            sipp(
                &node,
                "uac_ivr_dtmf.xml",
                "100",
                &[("rtp_sink", sink_port.clone())],
            )
        });
        let ua = SipUa::new(node.sip).unwrap();
        for n in numbers {
            ua.invite(&format!("call-{n}"), n, 9).unwrap();
        }
        for n in numbers {
            let id = format!("call-{n}");
            let ok = ua
                .expect(&id, "SIP/2.0 200", Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{n}: {e}\n{}", node.logs()));
            ua.request("ACK", &id, &hookline_tests::to_tag(&ok), 1, "", "")
                .unwrap();
        }
        healthy.join().unwrap().unwrap();
    });

    // The node lives: the same process answers.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the node died:\n{}",
        node.logs()
    );
    assert!(
        !node.logs().contains("overflowed its stack"),
        "{}",
        node.logs()
    );
    for n in numbers {
        let call = node
            .wait_for_call(Duration::from_secs(30), |c| {
                c["id"] == format!("call-{n}") && c["hangup_cause"].is_string()
            })
            .unwrap();
        let path = path_of(&call);
        println!("{n}: {path:?}");
        assert!(
            path.iter()
                .any(|p| p.starts_with("plugin-trap:") || p.starts_with("plugin-error:")),
            "{n}: {path:?}"
        );
        assert!(path.contains(&"fallback:ivr".to_string()), "{n}: {path:?}");
        assert!(
            path.contains(&"branch:rescued".to_string()),
            "{n}: {path:?}"
        );
    }
    // Rust and C overflow the WebAssembly stack: a trap, reported as such.
    for n in ["rec-rust", "rec-c"] {
        let call = node
            .wait_for_call(Duration::from_secs(5), |c| c["id"] == format!("call-{n}"))
            .unwrap();
        assert!(
            path_of(&call).iter().any(|p| p.starts_with("plugin-trap:")),
            "{n}: {call:#}"
        );
    }
    // The healthy caller went through its menu to the end and heard all of it.
    sipp_reached_support(&node);
    heard_the_support_prompt(&node, &sink.finish());
    // And a new call after all that is served as usual.
    sipp(
        &node,
        "uac_ivr_dtmf.xml",
        "100",
        &[("rtp_sink", "9".into())],
    )
    .unwrap();
}
