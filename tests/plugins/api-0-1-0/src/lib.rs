//! Built against the frozen 0.1.0 WIT (`plugin-sdk/wit-0.1.0`), not the SDK:
//! a plugin from the first release. The versioning test runs it on the
//! current node, which implements a later 0.1.x.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../plugin-sdk/wit-0.1.0",
        world: "call-plugin",
    });
}

use bindings::hookline::call::media::{self, PlayItem};
use bindings::hookline::call::types::{CallInfo, Manifest};
use bindings::hookline::call::{data, routing};
use bindings::{export, Guest};

struct Old;

impl Guest for Old {
    fn manifest() -> Manifest {
        Manifest {
            name: "api-0-1-0".into(),
            version: "0.1.0".into(),
            api_version: "0.1.0".into(),
            needs: vec![],
            memory_mib: 8,
            cpu_ms: 100,
            config_schema: vec![],
        }
    }

    fn handle_call(_info: CallInfo) -> Result<(), String> {
        data::mark("api:0.1.0");
        media::play(&[PlayItem::Prompt("support".into())], false).map_err(|e| e.to_string())?;
        routing::hangup().map_err(|e| e.to_string())
    }
}

export!(Old with_types_in bindings);
