//! A plugin's stdout and stderr. Each line goes to the node log with the call
//! and the plugin's name (stdout at info, stderr at warn); a line is cut at
//! 1 KiB. One lines-per-second budget per call covers these lines and the
//! `log` verb's (see [`PluginOutput::admit`]). The last
//! stderr lines are kept so a trap's cause in the call record can say what the
//! guest said as it died — a Rust panic's message, a Python traceback's last
//! line — instead of "unreachable instruction executed".

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::quotas::dropped_line;
use crate::rate::LogBudget;

/// Longest line written to the log; the rest of it is dropped.
const MAX_LINE: usize = 1024;
/// Stderr lines kept for a trap's cause.
const TAIL: usize = 4;
/// Lines runtimes print after the message that explains a crash.
const BOILERPLATE: [&str; 2] = [
    "note: run with `RUST_BACKTRACE",
    "Python function threw an unexpected exception",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// One call's plugin output; shared by its stdout, its stderr and the runner.
#[derive(Debug)]
pub struct PluginOutput {
    call: String,
    plugin: String,
    per_s: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The line being written on each stream (until its newline).
    partial: [Vec<u8>; 2],
    /// The line being written is past MAX_LINE: the rest is dropped.
    cut: [bool; 2],
    budget: LogBudget,
    tail: VecDeque<String>,
    /// Every line, for the test harness's report (none on a node).
    kept: Option<Vec<String>>,
}

/// Lines the harness keeps for its report.
const MAX_KEPT: usize = 1000;

impl PluginOutput {
    pub fn new(call: &str, plugin: &str, per_s: u32) -> Arc<PluginOutput> {
        Arc::new(PluginOutput {
            call: call.to_string(),
            plugin: plugin.to_string(),
            per_s,
            inner: Mutex::new(Inner {
                partial: [Vec::new(), Vec::new()],
                cut: [false, false],
                budget: LogBudget::new(Instant::now()),
                tail: VecDeque::new(),
                kept: None,
            }),
        })
    }

    /// Output that also keeps its lines (up to 1,000), for the test harness.
    pub fn keeping(call: &str, plugin: &str) -> Arc<PluginOutput> {
        let out = PluginOutput::new(call, plugin, u32::MAX);
        out.inner.lock().unwrap_or_else(|e| e.into_inner()).kept = Some(Vec::new());
        out
    }

    /// The lines kept (`stdout: …`, `stderr: …`), with what is unterminated.
    pub fn kept_lines(&self) -> Vec<String> {
        self.finish();
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.kept.clone().unwrap_or_default()
    }

    /// A trap as a call's cause: a panic, abort or uncaught exception ends in
    /// an `unreachable`, and then what the guest printed last says why.
    pub fn trap_cause(&self, trap: &wasmtime::Error) -> String {
        let root = trap.root_cause().to_string();
        let died =
            trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::UnreachableCodeReached);
        match self.last_words().filter(|_| died) {
            Some(words) => format!("{words} ({root})"),
            None => root,
        }
    }

    /// The guest's stdout and stderr, for its WASI context.
    pub fn streams(self: &Arc<Self>) -> (GuestStream, GuestStream) {
        let slot = OutputSlot::empty();
        slot.fill(self);
        slot.streams()
    }

    fn write(&self, stream: Stream, mut bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let i = stream as usize;
        while !bytes.is_empty() {
            let (chunk, rest, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(n) => (&bytes[..n], &bytes[n + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(inner.partial[i].len());
            if chunk.len() > room {
                inner.cut[i] = true;
            }
            let keep = chunk.len().min(room);
            inner.partial[i].extend_from_slice(&chunk[..keep]);
            if ended {
                let line = std::mem::take(&mut inner.partial[i]);
                let cut = std::mem::take(&mut inner.cut[i]);
                self.line(&mut inner, stream, &line, cut);
            }
            bytes = rest;
        }
    }

    /// Whether one more line may be written now (the `log` verb asks too);
    /// `Some(n)` first when `n` lines were dropped since the last one.
    pub fn admit(&self) -> (bool, Option<u64>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.budget.admit(Instant::now(), self.per_s)
    }

    /// What is left unterminated when the guest ends is a line too.
    pub fn finish(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let i = stream as usize;
            if !inner.partial[i].is_empty() {
                let line = std::mem::take(&mut inner.partial[i]);
                let cut = std::mem::take(&mut inner.cut[i]);
                self.line(&mut inner, stream, &line, cut);
            }
        }
        if inner.budget.dropped > 0 {
            let n = std::mem::take(&mut inner.budget.dropped);
            let (call, plugin) = (&self.call, &self.plugin);
            tracing::warn!(%call, %plugin, "{}", dropped_line(n, self.per_s));
        }
    }

    fn line(&self, inner: &mut Inner, stream: Stream, line: &[u8], cut: bool) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let text = if cut {
            format!("{text}…")
        } else {
            text.to_string()
        };
        if let Some(kept) = inner.kept.as_mut().filter(|k| k.len() < MAX_KEPT) {
            let name = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            kept.push(format!("{name}: {text}"));
        }
        if stream == Stream::Stderr && !text.trim().is_empty() {
            if inner.tail.len() == TAIL {
                inner.tail.pop_front();
            }
            inner.tail.push_back(text.clone());
        }
        let (admit, dropped) = inner.budget.admit(Instant::now(), self.per_s);
        if !admit {
            return;
        }
        let (call, plugin) = (&self.call, &self.plugin);
        if let Some(n) = dropped {
            tracing::warn!(%call, %plugin, "{}", dropped_line(n, self.per_s));
        }
        match stream {
            Stream::Stdout => tracing::info!(%call, %plugin, "stdout: {text}"),
            Stream::Stderr => tracing::warn!(%call, %plugin, "stderr: {text}"),
        }
    }

    /// What the guest last said on stderr that explains a crash: the last
    /// line, skipping what runtimes add after the real message (Rust's
    /// backtrace hint, componentize-py's "threw an unexpected exception").
    pub fn last_words(&self) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let partial = String::from_utf8_lossy(&inner.partial[Stream::Stderr as usize]).into_owned();
        inner
            .tail
            .iter()
            .cloned()
            .chain((!partial.trim().is_empty()).then_some(partial))
            .rev()
            .find(|l| {
                // A Rust panic's header: its message is on the lines after it.
                let panic_header = l.starts_with("thread '") && l.contains("panicked at");
                !panic_header && !BOILERPLATE.iter().any(|b| l.starts_with(b))
            })
            .map(|l| l.trim().to_string())
    }
}

/// Where a guest's stdout and stderr go, filled in when its call is known:
/// an instance made before its call (a spare) has streams that write to the
/// output of whichever call takes it.
#[derive(Debug, Default)]
pub struct OutputSlot(std::sync::OnceLock<Arc<PluginOutput>>);

impl OutputSlot {
    pub fn empty() -> Arc<OutputSlot> {
        Arc::new(OutputSlot::default())
    }

    /// Gives the slot its call's output (once: an instance serves one call).
    pub fn fill(&self, out: &Arc<PluginOutput>) {
        let _ = self.0.set(out.clone());
    }

    /// The guest's stdout and stderr, for its WASI context.
    pub fn streams(self: &Arc<Self>) -> (GuestStream, GuestStream) {
        (
            GuestStream {
                out: self.clone(),
                stream: Stream::Stdout,
            },
            GuestStream {
                out: self.clone(),
                stream: Stream::Stderr,
            },
        )
    }
}

/// A guest's stdout or stderr.
pub struct GuestStream {
    out: Arc<OutputSlot>,
    stream: Stream,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        // The guest runs only once its call has filled the slot; a stream
        // taken before then (none is) would write nowhere.
        Box::new(Writer {
            out: self.out.0.get().cloned(),
            stream: self.stream,
        })
    }
}

struct Writer {
    out: Option<Arc<PluginOutput>>,
    stream: Stream,
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Taken whole at once: the log and its quota bound what it costs.
        if let Some(out) = &self.out {
            out.write(self.stream, buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spare instance's streams are made before its call is known; what
    /// the guest writes goes to the call that took it.
    #[test]
    fn a_spare_instances_streams_write_to_the_call_that_takes_it() {
        use tokio::io::AsyncWriteExt;
        let slot = OutputSlot::empty();
        let (_stdout, stderr) = slot.streams();
        let out = PluginOutput::keeping("c2", "p");
        slot.fill(&out);
        // A second call cannot take the slot over.
        slot.fill(&PluginOutput::keeping("c3", "p"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = std::pin::Pin::from(stderr.async_stream());
            w.write_all(b"said on a spare\n").await.unwrap();
        });
        assert_eq!(
            out.kept_lines(),
            vec!["stderr: said on a spare".to_string()]
        );
        assert_eq!(out.last_words().as_deref(), Some("said on a spare"));
    }

    #[test]
    fn lines_are_split_cut_and_a_panic_message_is_found() {
        let out = PluginOutput::new("c1", "p", 1000);
        out.write(Stream::Stdout, b"hello ");
        out.write(Stream::Stdout, b"world\nsecond");
        out.write(
            Stream::Stderr,
            b"thread '<unnamed>' panicked at src/lib.rs:49:23:\nno caller id\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(out.last_words().as_deref(), Some("no caller id"));
        // A Python traceback: its last line.
        out.write(
            Stream::Stderr,
            b"Traceback (most recent call last):\n  File \"app.py\", line 3\nZeroDivisionError: division by zero\n\
              thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
              Python function threw an unexpected exception\n\
              note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            out.last_words().as_deref(),
            Some("ZeroDivisionError: division by zero")
        );
        // A line with no end is taken as it is; a huge one is cut.
        out.write(Stream::Stderr, &[b'x'; 5000]);
        let words = out.last_words().unwrap();
        assert!(words.len() <= MAX_LINE, "{}", words.len());
        out.finish();
        let inner = out.inner.lock().unwrap();
        assert!(inner.tail.back().unwrap().ends_with('…'));
        assert!(inner.partial.iter().all(|p| p.is_empty()));
    }
}
