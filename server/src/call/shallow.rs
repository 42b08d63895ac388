//! Keeping the plugin's fiber stack shallow.
//!
//! A verb runs on the plugin's fiber stack, and every page the deepest
//! poll touches there stays resident for the rest of the call (thousands
//! of calls each keep theirs). A poll function's frame holds room for every
//! future it builds, so awaiting a large future inline makes the frame of
//! every later poll of that verb as large, all the way down to the wait.
//! [`in_box`] builds the future in a frame of its own that is gone by the
//! first poll: the caller keeps a pointer.

use std::future::Future;
use std::pin::Pin;

/// The future `make` builds, on the heap, built out of the caller's frame.
#[inline(never)]
pub(crate) fn in_box<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::pin(make())
}
