//! Recording taps: a leg's received audio (and, for session recordings, what
//! it sends) gathered per 20 ms tick on the media thread and written to WAV by
//! one writer thread. The file's header is rewritten after every second of
//! audio, so a crash leaves a valid file missing at most that second.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use super::prompt::{FRAME, RATE};

/// Samples per channel buffered before a write (one second).
const CHUNK: usize = RATE as usize;
/// Frames of voice before silence detection arms (ignores clicks).
const VOICE_FRAMES: u32 = 5;

/// Identifies one recording in the writer.
pub type RecordingHandle = u64;

/// What the writer thread is asked to do.
pub enum WriterMsg {
    Open {
        handle: RecordingHandle,
        path: PathBuf,
        stereo: bool,
    },
    Data {
        handle: RecordingHandle,
        samples: Vec<i16>,
    },
    /// Finalise; the reply carries the samples per channel written.
    Close {
        handle: RecordingHandle,
        done: Option<tokio::sync::oneshot::Sender<Result<u64, String>>>,
    },
}

/// Starts the writer thread.
pub fn start_writer() -> Sender<WriterMsg> {
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::Builder::new()
        .name("recorder".into())
        .spawn(move || writer(rx))
        .expect("spawn recording writer");
    tx
}

struct Open {
    wav: hound::WavWriter<BufWriter<File>>,
    frames: u64,
    channels: u64,
    path: PathBuf,
}

fn writer(rx: Receiver<WriterMsg>) {
    let mut open: HashMap<RecordingHandle, Result<Open, String>> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Open {
                handle,
                path,
                stereo,
            } => {
                let spec = hound::WavSpec {
                    channels: if stereo { 2 } else { 1 },
                    sample_rate: RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let made = path
                    .parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .map_err(|e| e.to_string())
                    .and_then(|_| hound::WavWriter::create(&path, spec).map_err(|e| e.to_string()))
                    .map(|mut wav| {
                        let _ = wav.flush(); // a valid (empty) file from the start
                        Open {
                            wav,
                            frames: 0,
                            channels: spec.channels as u64,
                            path: path.clone(),
                        }
                    })
                    .map_err(|e| format!("{}: {e}", path.display()));
                if let Err(e) = &made {
                    tracing::error!("recording: {e}");
                }
                open.insert(handle, made);
            }
            WriterMsg::Data { handle, samples } => {
                if let Some(Ok(o)) = open.get_mut(&handle) {
                    if let Err(e) = write(o, &samples) {
                        // Said once; the rest of the recording is dropped and
                        // its close reports the failure.
                        let e = format!("{}: {e}", o.path.display());
                        tracing::error!("recording {e}");
                        open.insert(handle, Err(e));
                    }
                }
            }
            WriterMsg::Close { handle, done } => {
                let result = match open.remove(&handle) {
                    Some(Ok(o)) => {
                        let frames = o.frames;
                        // On disk before it is listed as done: a power cut
                        // after the caller's "goodbye" keeps the message.
                        o.wav
                            .finalize()
                            .map_err(|e| e.to_string())
                            .and_then(|_| {
                                File::open(&o.path)
                                    .and_then(|f| f.sync_all())
                                    .map_err(|e| e.to_string())
                            })
                            .map(|_| frames)
                    }
                    Some(Err(e)) => Err(e),
                    None => Err("no such recording".into()),
                };
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
        }
    }
}

fn write(o: &mut Open, samples: &[i16]) -> Result<(), hound::Error> {
    for s in samples {
        o.wav.write_sample(*s)?;
    }
    o.frames += samples.len() as u64 / o.channels;
    o.wav.flush()
}

/// Makes a WAV that a crash cut short whole again: its RIFF and data
/// sizes are set from what reached the disk (whole frames only; the writer
/// rewrites them every second, so at most that second was unaccounted).
/// Returns the frames per channel and the sample rate.
pub fn repair(path: &std::path::Path) -> std::io::Result<(u64, u32)> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; len.min(4096) as usize];
    f.read_exact(&mut head)?;
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a WAV file"));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (mut pos, mut fmt, mut data) = (12usize, None, None);
    while pos + 8 <= head.len() {
        let size = u32_at(&head, pos + 4) as usize;
        match &head[pos..pos + 4] {
            b"fmt " if pos + 8 + 16 <= head.len() => {
                // rate, block align (bytes per frame, all channels)
                fmt = Some((u32_at(&head, pos + 12), u16_at(&head, pos + 20)));
            }
            b"data" => {
                data = Some(pos + 8);
                break;
            }
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    let ((rate, align), start) = fmt.zip(data).ok_or_else(|| bad("no fmt or data chunk"))?;
    let align = u64::from(align.max(1));
    let start = start as u64;
    let bytes = len.saturating_sub(start) / align * align;
    f.set_len(start + bytes)?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&((start + bytes - 8) as u32).to_le_bytes())?;
    f.seek(SeekFrom::Start(start - 4))?;
    f.write_all(&(bytes as u32).to_le_bytes())?;
    f.sync_all()?;
    Ok((bytes / align, rate))
}

/// Where a tap's audio goes.
enum Sink {
    /// A WAV file, through the writer thread.
    File(Sender<WriterMsg>),
    /// A listener (speech recognition), in chunks of a few frames.
    Stream(tokio::sync::mpsc::UnboundedSender<Vec<i16>>),
}

/// Frames per chunk sent to a listener (100 ms: recognition keeps up with speech).
const STREAM_FRAMES: usize = 5;

/// A recording or listening tap on one leg (lives on the media thread).
pub struct Tap {
    pub handle: RecordingHandle,
    stereo: bool,
    sink: Sink,
    /// Chunk length that triggers a flush.
    flush_at: usize,
    /// Audio heard from the leg's peer and sent to it since the last tick.
    rx: Vec<i16>,
    tx: Vec<i16>,
    chunk: Vec<i16>,
    /// Stop after this many quiet frames once voice was heard.
    silence_frames: Option<u32>,
    voice_frames: u32,
    quiet_frames: u32,
    /// The silence event was raised.
    pub silence_reported: bool,
}

impl Tap {
    pub fn new(
        handle: RecordingHandle,
        stereo: bool,
        silence_ms: u32,
        writer: Sender<WriterMsg>,
    ) -> Tap {
        let channels = if stereo { 2 } else { 1 };
        Tap {
            handle,
            stereo,
            sink: Sink::File(writer),
            flush_at: CHUNK * channels - FRAME * 2,
            rx: Vec::with_capacity(2 * FRAME),
            tx: Vec::with_capacity(2 * FRAME),
            chunk: Vec::with_capacity(CHUNK * channels),
            silence_frames: (silence_ms > 0).then(|| (silence_ms / 20).max(1)),
            voice_frames: 0,
            quiet_frames: 0,
            silence_reported: false,
        }
    }

    /// A tap that hands the peer's audio to a listener as it arrives.
    pub fn stream(
        handle: RecordingHandle,
        listener: tokio::sync::mpsc::UnboundedSender<Vec<i16>>,
    ) -> Tap {
        Tap {
            handle,
            stereo: false,
            sink: Sink::Stream(listener),
            flush_at: STREAM_FRAMES * FRAME,
            rx: Vec::with_capacity(2 * FRAME),
            tx: Vec::new(),
            chunk: Vec::with_capacity(STREAM_FRAMES * FRAME),
            silence_frames: None,
            voice_frames: 0,
            quiet_frames: 0,
            silence_reported: false,
        }
    }

    /// Audio received from the peer.
    pub fn heard(&mut self, pcm: &[i16]) {
        if self.rx.len() < 4 * FRAME {
            self.rx.extend_from_slice(pcm);
        }
    }

    /// Audio sent to the peer (session recordings only keep it).
    pub fn sent(&mut self, pcm: &[i16]) {
        if self.stereo && self.tx.len() < 4 * FRAME {
            self.tx.extend_from_slice(pcm);
        }
    }

    pub fn is_stereo(&self) -> bool {
        self.stereo
    }

    /// Moves one frame into the file; true when the caller fell silent.
    pub fn tick(&mut self) -> bool {
        let mut frame = [0i16; FRAME];
        let n = self.rx.len().min(FRAME);
        frame[..n].copy_from_slice(&self.rx[..n]);
        self.rx.drain(..n);
        if self.stereo {
            let m = self.tx.len().min(FRAME);
            for (i, s) in frame.iter().enumerate() {
                self.chunk.push(*s);
                self.chunk.push(if i < m { self.tx[i] } else { 0 });
            }
            self.tx.drain(..m);
        } else {
            self.chunk.extend_from_slice(&frame);
        }
        if self.chunk.len() >= self.flush_at {
            self.flush();
        }
        // Only taps that end on silence look at the level.
        let Some(limit) = self.silence_frames.filter(|_| !self.silence_reported) else {
            return false;
        };
        if super::is_voiced(&frame) {
            self.voice_frames += 1;
            self.quiet_frames = 0;
        } else {
            self.quiet_frames += 1;
        }
        let fell_silent = self.voice_frames >= VOICE_FRAMES && self.quiet_frames >= limit;
        self.silence_reported = fell_silent;
        fell_silent
    }

    fn flush(&mut self) {
        if !self.chunk.is_empty() {
            let cap = self.chunk.capacity();
            let samples = std::mem::replace(&mut self.chunk, Vec::with_capacity(cap));
            let _ = match &self.sink {
                Sink::File(w) => w
                    .send(WriterMsg::Data {
                        handle: self.handle,
                        samples,
                    })
                    .is_ok(),
                Sink::Stream(l) => l.send(samples).is_ok(),
            };
        }
    }

    /// Writes what is left and closes the file.
    pub fn close(mut self, done: Option<tokio::sync::oneshot::Sender<Result<u64, String>>>) {
        // Audio still buffered from this tick goes in too.
        if !self.rx.is_empty() || !self.tx.is_empty() {
            self.tick();
        }
        self.flush();
        match &self.sink {
            Sink::File(w) => {
                let _ = w.send(WriterMsg::Close {
                    handle: self.handle,
                    done,
                });
            }
            Sink::Stream(_) => {
                if let Some(done) = done {
                    let _ = done.send(Ok(0));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_writes_a_valid_wav_and_reports_silence_after_voice() {
        let dir = std::env::temp_dir().join(format!("hl-rec-{}", std::process::id()));
        let path = dir.join("t.wav");
        let w = start_writer();
        w.send(WriterMsg::Open {
            handle: 1,
            path: path.clone(),
            stereo: false,
        })
        .unwrap();
        let mut tap = Tap::new(1, false, 200, w.clone());
        let voice = crate::media::tone::tone(&[440], 20);
        let mut silent_at = None;
        for i in 0..100 {
            if i < 50 {
                tap.heard(&voice);
            }
            if tap.tick() && silent_at.is_none() {
                silent_at = Some(i);
            }
        }
        // 10 quiet frames after the voice ends at frame 49.
        assert_eq!(silent_at, Some(59));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tap.close(Some(tx));
        let frames = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(frames, 100 * FRAME as u64);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 100 * FRAME as u32);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_wav_cut_short_by_a_crash_is_repaired_to_what_reached_the_disk() {
        let dir = std::env::temp_dir().join(format!("hl-repair-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..RATE {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap(); // the header says one second …
                               // … and a crash left half a second more on disk, unaccounted, its
                               // last sample torn in half.
        let mut more: Vec<u8> = (0..RATE / 2)
            .flat_map(|i| (i as i16).to_le_bytes())
            .collect();
        more.push(7);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&more).unwrap();
        drop(f);
        let (frames, rate) = repair(&path).unwrap();
        assert_eq!(rate, RATE);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration() as u64, frames);
        assert_eq!(frames, (RATE + RATE / 2) as u64);
        let samples: Vec<i16> = r.into_samples().map(|s| s.unwrap()).collect();
        assert_eq!(samples[..100], (0..100).collect::<Vec<i16>>()[..]);
        // Not a WAV: an error, not a panic.
        std::fs::write(dir.join("junk.wav"), b"junk").unwrap();
        assert!(repair(&dir.join("junk.wav")).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
