//! What can go wrong in a call's verbs, in call control's own terms. The
//! plugin host turns it into the WIT `call-error` a plugin sees (see
//! `call/host_api.rs`); nothing below the host knows the WIT type.

/// Why a verb did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller hung up; every later verb says so too.
    #[error("the caller hung up")]
    HungUp,
    /// This node cannot do it here (no recognizer for the language, say).
    #[error("not available on this node")]
    Unavailable,
    /// The plugin's grants do not cover it.
    #[error("not allowed")]
    NotAllowed,
    /// An argument was wrong (unknown prompt, no such queue, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The node failed to do it; the text says why.
    #[error("{0}")]
    Failed(String),
}

/// A node-side failure.
pub fn failed(e: impl std::fmt::Display) -> Error {
    Error::Failed(e.to_string())
}

/// Runs blocking work (SQLite, files, a synthesizer) off the async threads.
pub async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Error> {
    tokio::task::spawn_blocking(f).await.map_err(failed)
}
