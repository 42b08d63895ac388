//! A node built in-process from a small config (no prompts to render, the
//! hostile test plugin loaded), for tests of the library without a network.

use std::path::PathBuf;
use std::sync::Arc;

use hookline::call::Node;
use hookline::node::{build, ServeOptions};

/// Browser agent 301's token in the test config.
#[allow(dead_code)] // not every test binary logs a browser in
pub const BROWSER_TOKEN: &str = "test-token-of-browser-agent-301";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A node with the hostile plugin and tight budgets, its data in `dir`.
pub async fn node(dir: &std::path::Path) -> Arc<Node> {
    let wasm = root().join("target/wasm32-wasip2/release/hookline_hostile.wasm");
    assert!(
        wasm.exists(),
        "{} missing: scripts/setup.sh builds the test plugins",
        wasm.display()
    );
    let config = format!(
        "[node]\nmax_calls = 20\nplugin_cpu_ms = 200\nplugin_memory_mib = 16\nmax_call_s = 30\n\n\
         [[extensions]]\nuser = \"201\"\npassword = \"one\"\n\n\
         [prompts]\nlanguage = \"en\"\nlanguages = []\n\n\
         [webrtc]\nagents = [{{ user = \"301\", token = \"{BROWSER_TOKEN}\" }}]\n\n\
         [[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n\
         [[routes]]\nnumber = \"*\"\nplugin = \"hostile\"\nconfig = \"ping:0\"\n",
        wasm.display()
    );
    std::fs::write(dir.join("hookline.toml"), config).unwrap();
    // No prompts: nothing to render at start.
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::write(dir.join("prompts/catalog.toml"), "").unwrap();
    build(&ServeOptions {
        sip: "127.0.0.1:0".parse().unwrap(),
        rtp_ports: (47000, 47100),
        http: "127.0.0.1:0".parse().unwrap(),
        data: dir.join("data"),
        config: dir.join("hookline.toml"),
        insecure_api: false,
    })
    .await
    .unwrap()
}
