//! Rust SDK for Hookline call-logic plugins.
//!
//! A plugin implements [`Plugin`] and registers it with [`export!`]:
//!
//! ```ignore
//! struct Hello;
//! impl hookline_sdk::Plugin for Hello {
//!     fn handle_call(info: hookline_sdk::CallInfo) -> Result<(), String> {
//!         hookline_sdk::media::play(&["welcome".into()], false).map_err(|e| e.to_string())?;
//!         Ok(())
//!     }
//! }
//! hookline_sdk::export!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` file is the plugin.

pub mod menu;

#[allow(clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "call-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hookline_sdk::bindings",
    });
}

pub use bindings::export;
pub use bindings::hookline::call::types::{CallError, CallInfo};
pub use bindings::hookline::call::{data, media, routing};
/// The trait a plugin implements: one `handle_call` per call.
pub use bindings::Guest as Plugin;

// `CallError` implements Display and Error through the generated bindings.

/// Logs at info level.
pub fn info(message: &str) {
    data::log(data::LogLevel::Info, message);
}

/// Logs at warning level.
pub fn warn(message: &str) {
    data::log(data::LogLevel::Warn, message);
}
