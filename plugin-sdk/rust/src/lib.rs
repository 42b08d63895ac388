//! Rust SDK for Hookline call-logic plugins (`hookline:call@0.1`).
//!
//! A plugin implements [`Plugin`] (its manifest and one `handle_call` per call)
//! and registers it with [`export!`]:
//!
//! ```ignore
//! use hookline_sdk::{media, prompt, CallInfo, Manifest, Plugin};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn manifest() -> Manifest {
//!         hookline_sdk::manifest("hello", env!("CARGO_PKG_VERSION"))
//!     }
//!     fn handle_call(_info: CallInfo) -> Result<(), String> {
//!         media::play(&[prompt("welcome")], false).map_err(|e| e.to_string())?;
//!         Ok(())
//!     }
//! }
//! hookline_sdk::export!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` file
//! is the plugin. `hookline plugin check` prints what the node sees.

pub mod menu;
/// Running scripted calls against the plugin from `cargo test` (host only).
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[allow(clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "prepared-call-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hookline_sdk::bindings",
    });
}

pub use bindings::hookline::call::types::{CallError, CallInfo, ConfigField, Manifest};
pub use bindings::hookline::call::{data, media, routing};

/// The trait a plugin implements: `manifest` and one `handle_call` per call,
/// and optionally `prepare` (see [`prepare_config`]).
pub trait Plugin {
    /// What the plugin is and needs (read when the node loads it).
    fn manifest() -> Manifest;
    /// Runs one call, in an instance of its own.
    fn handle_call(info: CallInfo) -> Result<(), String>;
    /// Called by a 0.1.2+ node on an instance it makes ahead of a call, with
    /// the route config the call most likely brings; no call verb works
    /// here. The default does nothing. A plugin whose config takes a while
    /// to read parses it here with [`prepare_config`], and [`config`] then
    /// hands the parsed value to the call that brings the same config.
    fn prepare(config: String) {
        let _ = config;
    }
}

/// Registers a [`Plugin`] as the component's exports.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            struct HooklineExports;
            impl $crate::bindings::Guest for HooklineExports {
                fn manifest() -> $crate::Manifest {
                    <$plugin as $crate::Plugin>::manifest()
                }
                fn handle_call(info: $crate::CallInfo) -> Result<(), String> {
                    <$plugin as $crate::Plugin>::handle_call(info)
                }
                fn prepare(config: String) {
                    <$plugin as $crate::Plugin>::prepare(config)
                }
            }
    $crate::bindings::export!(HooklineExports with_types_in $crate::bindings);
        };
    };
}

use media::{PlayItem, SpeechText, Tone};

/// The host API version this SDK is built against.
pub const API_VERSION: &str = "0.1.2";

// `CallError` implements Display and Error through the generated bindings.

/// A manifest with no capabilities, 16 MiB of memory and 200 ms of CPU per
/// call; add `needs` and `config_schema` as the plugin requires.
pub fn manifest(name: &str, version: &str) -> Manifest {
    Manifest {
        name: name.into(),
        version: version.into(),
        api_version: API_VERSION.into(),
        needs: Vec::new(),
        memory_mib: 16,
        cpu_ms: 200,
        config_schema: Vec::new(),
    }
}

/// One config key for a manifest's schema. `kind`: string, number, bool, list, object, any.
pub fn field(name: &str, kind: &str, required: bool, description: &str) -> ConfigField {
    ConfigField {
        name: name.into(),
        kind: kind.into(),
        required,
        description: description.into(),
    }
}

/// A catalog prompt to play.
pub fn prompt(id: &str) -> PlayItem {
    PlayItem::Prompt(id.into())
}

/// Catalog prompts to play, from their ids.
pub fn prompts<S: AsRef<str>>(ids: &[S]) -> Vec<PlayItem> {
    ids.iter().map(|s| prompt(s.as_ref())).collect()
}

/// Text to speak in the call's language.
pub fn say(text: &str) -> PlayItem {
    PlayItem::Say(SpeechText {
        text: text.into(),
        language: None,
    })
}

/// Text to speak in a given language.
pub fn say_in(text: &str, language: &str) -> PlayItem {
    PlayItem::Say(SpeechText {
        text: text.into(),
        language: Some(language.into()),
    })
}

/// A tone of one or two frequencies.
pub fn tone(frequencies: &[u32], duration_ms: u32) -> PlayItem {
    PlayItem::Tone(Tone {
        frequencies: frequencies.to_vec(),
        duration_ms,
    })
}

/// Silence.
pub fn silence(ms: u32) -> PlayItem {
    PlayItem::Silence(ms)
}

/// The call's config: the route's (or, for a handed-over call, the plugin's)
/// JSON, with the hand-over arguments overriding its top-level keys. When
/// [`prepare_config`] parsed this very config into a `T` ahead of the call,
/// that value is returned without parsing again.
pub fn config<T: serde::de::DeserializeOwned + 'static>(info: &CallInfo) -> Result<T, String> {
    let bad = |e: serde_json::Error| format!("bad config: {e}");
    let Some(args) = &info.arguments else {
        if let Some(ready) = prepared::take::<T>(&info.config) {
            return Ok(ready);
        }
        // Straight into `T`, as almost every call is: going through a
        // `serde_json::Value` tree first allocated every key and string
        // twice; without it the sample IVR's instantiate + first entry went
        // from 20.5-23.1 to 16.9-17.1 µs (plugin_instantiate).
        return serde_json::from_str(&info.config).map_err(bad);
    };
    let mut config: serde_json::Value = serde_json::from_str(&info.config).map_err(bad)?;
    let args: serde_json::Value =
        serde_json::from_str(args).map_err(|e| format!("bad arguments: {e}"))?;
    if let (Some(c), Some(a)) = (config.as_object_mut(), args.as_object()) {
        c.extend(a.clone());
    }
    serde_json::from_value(config).map_err(bad)
}

/// Parses `config` into a `T` ahead of the call, from [`Plugin::prepare`]:
/// the call's [`config::<T>`](config) gets it if its config is the same
/// text. A config that does not parse is left for the call to report.
///
/// Why: parsing the sample IVR's route config was 83 % of its first entry
/// (perf of `plugin_instantiate`), paid while the caller waits.
pub fn prepare_config<T: serde::de::DeserializeOwned + 'static>(config: String) {
    if let Ok(value) = serde_json::from_str::<T>(&config) {
        prepared::keep(config, value);
    }
}

/// The value [`prepare_config`] parsed, until a call's [`config`] takes it.
///
/// Its type is erased by hand, as a raw pointer beside its `TypeId`, not as
/// a `Box<dyn Any>`: a trait object's vtable makes its functions (the
/// value's drop, `type_id`) callable indirectly, which adds them to the
/// instance's function table, and that moved entries a call uses onto a
/// second table page that wasmtime then fills in for every call (the
/// sample IVR's instance: 28.0 -> 32.0 KiB of plugin memory per call in
/// `ivr_load`). A value no call takes is left behind, not dropped (its
/// drop, kept as a function pointer, would go in the table too): the
/// instance serves one call, and its memory is reset after it.
mod prepared {
    use std::any::TypeId;
    use std::cell::RefCell;

    struct Ready {
        config: String,
        ty: TypeId,
        /// A `Box<T>` for the `T` of `ty`, from `Box::into_raw`.
        value: *mut (),
    }

    thread_local! {
        static READY: RefCell<Option<Ready>> = const { RefCell::new(None) };
    }

    pub(super) fn keep<T: 'static>(config: String, value: T) {
        let ready = Ready {
            config,
            ty: TypeId::of::<T>(),
            value: Box::into_raw(Box::new(value)) as *mut (),
        };
        READY.with(|r| *r.borrow_mut() = Some(ready));
    }

    /// Whether two texts are the same, compared eight bytes at a time.
    ///
    /// Why not `==`: on strings it calls the C library's `memcmp`, which
    /// wasi-libc compares one byte at a time. For the sample IVR's route
    /// config that was 10,700 instructions, a quarter of all those a call's
    /// start executed, host side included (callgrind of `plugin_instantiate`).
    pub(super) fn same_text(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        // `chunks_exact`, not `as_chunks`: plugin authors' toolchains may
        // be older than Rust 1.88.
        let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8]));
        let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ta, tb) = (wa.remainder(), wb.remainder());
        wa.zip(wb).all(|(x, y)| word(x) == word(y)) && ta == tb
    }

    /// The value parsed from exactly `config` as a `T`, once.
    pub(super) fn take<T: 'static>(config: &str) -> Option<T> {
        let ready = READY.with(|r| r.borrow_mut().take())?;
        if ready.ty != TypeId::of::<T>() || !same_text(&ready.config, config) {
            return None;
        }
        // SAFETY: `value` is the `Box<T>` `keep` made for this very `T` (the
        // type ids match), and `ready` is gone once it is taken, so it is
        // taken once.
        Some(*unsafe { Box::from_raw(ready.value as *mut T) })
    }
}

/// What `handle_call` returns for a call's logic: a hang-up is the normal end
/// of a call, not an error; any other error is reported to the node.
pub fn finish(outcome: Result<(), CallError>) -> Result<(), String> {
    match outcome {
        Ok(()) | Err(CallError::HungUp) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Logs at info level.
pub fn info(message: &str) {
    data::log(data::LogLevel::Info, message);
}

/// Logs at warning level.
pub fn warn(message: &str) {
    data::log(data::LogLevel::Warn, message);
}

/// An HTTP GET; the body as text.
pub fn http_get(url: &str, timeout_ms: u32) -> Result<(u16, String), CallError> {
    let r = data::http_fetch(&data::HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        timeout_ms,
    })?;
    Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// An HTTP POST of a JSON body; the response status.
pub fn http_post_json(url: &str, json: &str, timeout_ms: u32) -> Result<u16, CallError> {
    let r = data::http_fetch(&data::HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(json.as_bytes().to_vec()),
        timeout_ms,
    })?;
    Ok(r.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Conf {
        greeting: Vec<String>,
        #[serde(default)]
        attempts: u32,
    }

    fn info(config: &str, arguments: Option<&str>) -> CallInfo {
        CallInfo {
            call_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            caller_name: None,
            domain: "d".into(),
            config: config.into(),
            arguments: arguments.map(Into::into),
        }
    }

    #[test]
    fn a_config_is_read_alone_or_under_the_hand_over_arguments() {
        let plain = r#"{"greeting": ["hello"], "attempts": 2}"#;
        let want = |g: &str, attempts| Conf {
            greeting: vec![g.into()],
            attempts,
        };
        assert_eq!(config::<Conf>(&info(plain, None)), Ok(want("hello", 2)));
        // Arguments override the config's top-level keys, and only those.
        let args = r#"{"greeting": ["bye"]}"#;
        assert_eq!(config::<Conf>(&info(plain, Some(args))), Ok(want("bye", 2)));
        // Both paths say what was wrong.
        let e = config::<Conf>(&info(r#"{"attempts": 2}"#, None)).unwrap_err();
        assert!(
            e.starts_with("bad config:") && e.contains("greeting"),
            "{e}"
        );
        let e = config::<Conf>(&info(plain, Some("[1"))).unwrap_err();
        assert!(e.starts_with("bad arguments:"), "{e}");
    }

    #[test]
    fn a_prepared_config_serves_one_call_with_the_same_config_text_and_type() {
        let plain = r#"{"greeting": ["hello"], "attempts": 2}"#;
        let parsed = Conf {
            greeting: vec!["hello".into()],
            attempts: 2,
        };
        // A value told apart from a fresh parse, to see which one a call gets.
        let marked = || Conf {
            greeting: vec!["prepared".into()],
            attempts: 9,
        };
        prepared::keep(plain.to_string(), marked());
        assert_eq!(config::<Conf>(&info(plain, None)), Ok(marked()));
        // Taken once: the next read parses.
        assert_eq!(config::<Conf>(&info(plain, None)), Ok(parsed));
        // Another config's text, another type or hand-over arguments: parsed.
        prepared::keep(plain.to_string(), marked());
        let other = r#"{"greeting": ["hi"]}"#;
        assert_eq!(config::<Conf>(&info(other, None)).unwrap().greeting, ["hi"]);
        prepared::keep(plain.to_string(), 7u32);
        assert_eq!(config::<Conf>(&info(plain, None)).unwrap().attempts, 2);
        prepared::keep(plain.to_string(), marked());
        let args = r#"{"attempts": 3}"#;
        assert_eq!(
            config::<Conf>(&info(plain, Some(args))).unwrap().attempts,
            3
        );
        // What `prepare_config` parses is what the call gets; a config that
        // does not parse leaves nothing (the call reports it).
        prepare_config::<Conf>(plain.to_string());
        assert_eq!(prepared::take::<Conf>(plain).unwrap().attempts, 2);
        prepare_config::<Conf>("{".to_string());
        assert!(prepared::take::<Conf>("{").is_none());
    }

    #[test]
    fn texts_are_the_same_only_when_every_byte_is() {
        let text = r#"{"greeting": ["hello"], "attempts": 2, "menu": ["m"]}"#;
        assert!(prepared::same_text(text, text));
        assert!(prepared::same_text("", ""));
        // A difference in a whole word, in the tail past the last word, in
        // the very first and the very last byte, and in length.
        for at in [0, 3, 8, 15, text.len() - 3, text.len() - 1] {
            let mut other = text.as_bytes().to_vec();
            other[at] ^= 1;
            let other = String::from_utf8(other).unwrap();
            assert!(!prepared::same_text(text, &other), "a change at byte {at}");
        }
        assert!(!prepared::same_text(text, &text[..text.len() - 1]));
        assert!(!prepared::same_text("abcdefgh", "abcdefghi"));
    }
}
