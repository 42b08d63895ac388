//! baresip, a real softphone: callers, registered agents, and what they heard.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::*;

/// A headless baresip user agent (apt baresip-core) driven over its ctrl_tcp socket.
pub struct Baresip {
    child: Child,
    ctrl: Ctrl,
    pub dir: tempfile::TempDir,
}

/// One ctrl_tcp connection held for baresip's life: commands go out on it,
/// and baresip reports its events (a call ringing, established, closed,
/// with the call's SIP Call-ID) on it. baresip 1.0 keeps a single control
/// connection, so commands cannot open their own.
struct Ctrl {
    stream: Mutex<TcpStream>,
    replies: Mutex<mpsc::Receiver<Value>>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Ctrl {
    /// Connects and proves the connection live with a command (`reginfo`)
    /// before any event is waited on: a connection baresip never serves
    /// (seen once in CI: not one event arrived while the log showed the call
    /// ringing) is dropped and made again instead of failing a test later.
    fn connect(addr: SocketAddr) -> Result<Ctrl> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = TcpStream::connect(addr)
                .context("baresip ctrl_tcp")
                .and_then(Ctrl::serve);
            match attempt {
                Ok(ctrl) if ctrl.command("reginfo", "", Duration::from_secs(2)).is_ok() => {
                    return Ok(ctrl)
                }
                Ok(_) if Instant::now() < deadline => {}
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(_) => bail!("baresip ctrl_tcp at {addr} answers no command"),
                Err(e) => return Err(e),
            }
        }
    }

    fn serve(stream: TcpStream) -> Result<Ctrl> {
        let (tx, replies) = mpsc::channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let mut reader = BufReader::new(stream.try_clone()?);
        std::thread::spawn(move || {
            // Netstrings: `<len>:<json>,` until baresip goes.
            while let Some(msg) = read_netstring(&mut reader) {
                let Ok(v) = serde_json::from_slice::<Value>(&msg) else {
                    continue;
                };
                if v["event"] == true {
                    seen.lock().unwrap().push(v);
                } else if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Ok(Ctrl {
            stream: Mutex::new(stream),
            replies: Mutex::new(replies),
            events,
        })
    }

    /// Sends a command (netstring-framed JSON) and returns the raw reply; an
    /// error when baresip does not answer within `timeout`.
    fn command(&self, command: &str, params: &str, timeout: Duration) -> Result<String> {
        let replies = self.replies.lock().unwrap();
        // A reply to an earlier command that timed out is not this one's.
        while replies.try_recv().is_ok() {}
        let json =
            serde_json::json!({ "command": command, "params": params, "token": "t" }).to_string();
        write!(self.stream.lock().unwrap(), "{}:{json},", json.len())?;
        let reply = replies
            .recv_timeout(timeout)
            .with_context(|| format!("baresip did not answer {command}"))?;
        Ok(reply.to_string())
    }
}

fn read_netstring(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = Vec::new();
    r.read_until(b':', &mut len).ok()?;
    let len: usize = std::str::from_utf8(len.strip_suffix(b":")?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut msg = vec![0u8; len + 1];
    r.read_exact(&mut msg).ok()?;
    msg.pop(); // the trailing comma
    Some(msg)
}

impl Baresip {
    /// Starts baresip with a silent microphone, recording what it hears and sends under `dir/rec`.
    pub fn start(dial: &str) -> Result<Baresip> {
        Self::start_with_mic(dial, &vec![0i16; 8000 * 60])
    }

    /// Starts baresip sending `mic` (8 kHz samples) as its microphone; the call ends when it does.
    pub fn start_with_mic(dial: &str, mic: &[i16]) -> Result<Baresip> {
        Self::spawn("<sip:bs@127.0.0.1>;regint=0", Some(dial), mic, None)
    }

    /// Dials `dial` offering only `codec` (`opus`, `G722`, `PCMU`, ...).
    pub fn dial_with_codec(dial: &str, mic: &[i16], codec: &str) -> Result<Baresip> {
        Self::spawn("<sip:bs@127.0.0.1>;regint=0", Some(dial), mic, Some(codec))
    }

    /// A customer behind a trunk: number `user` on SIP port `sip_port` (the
    /// trunk's address), dialling `dial` and answering whatever calls it back.
    pub fn customer(sip_port: u16, user: &str, dial: &str, mic: &[i16]) -> Result<Baresip> {
        Self::spawn_on(
            sip_port,
            &format!("<sip:{user}@127.0.0.1>;regint=0;answermode=auto"),
            Some(dial),
            mic,
            None,
        )
    }

    /// Dials from SIP port `sip_port` (e.g. a trunk's configured address),
    /// offering only `codec`.
    pub fn dial_from(sip_port: u16, dial: &str, mic: &[i16], codec: &str) -> Result<Baresip> {
        Self::spawn_on(
            sip_port,
            "<sip:carrier@127.0.0.1>;regint=0",
            Some(dial),
            mic,
            Some(codec),
        )
    }

    /// Starts baresip as an extension that registers with `account` (a baresip
    /// account line, e.g. `<sip:201@127.0.0.1:5060>;auth_pass=secret`).
    pub fn register(account: &str) -> Result<Baresip> {
        Self::spawn(account, None, &vec![0i16; 8000 * 60], None)
    }

    /// Uses `account` (credentials, maybe no registration) and dials `dial` at start.
    pub fn start_with_account(account: &str, dial: &str) -> Result<Baresip> {
        Self::spawn(account, Some(dial), &vec![0i16; 8000 * 60], None)
    }

    /// Registers with `account` and dials `dial` at start, `mic` as its microphone.
    pub fn register_and_dial(account: &str, dial: &str, mic: &[i16]) -> Result<Baresip> {
        Self::spawn(account, Some(dial), mic, None)
    }

    /// Registers as an extension with `mic` as its microphone.
    pub fn register_with_mic(account: &str, mic: &[i16]) -> Result<Baresip> {
        Self::spawn(account, None, mic, None)
    }

    /// `codec` limits what baresip offers and accepts (its `audio_codecs`);
    /// G.711 only when `None`.
    pub(crate) fn spawn(
        account: &str,
        dial: Option<&str>,
        mic: &[i16],
        codec: Option<&str>,
    ) -> Result<Baresip> {
        Self::spawn_on(free_udp_port(), account, dial, mic, codec)
    }

    fn spawn_on(
        sip_port: u16,
        account: &str,
        dial: Option<&str>,
        mic: &[i16],
        codec: Option<&str>,
    ) -> Result<Baresip> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("cfg"))?;
        std::fs::create_dir_all(d.join("rec"))?;
        // baresip's file source must match the codec's rate and channels.
        let (rate, channels) = match codec {
            Some("opus") => (48000, 2),
            Some("G722") => (16000, 1),
            _ => (8000, 1),
        };
        write_wav(
            &d.join("mic.wav"),
            rate,
            channels,
            &upsample(mic, rate / 8000),
        )?;
        let ctrl: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse()?;
        let config = format!(
            "poll_method poll\nsip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
             audio_player aubridge,nil\naudio_source aufile,{mic}\naudio_alert aubridge,nil\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule g722.so\nmodule opus.so\n\
             module aufile.so\nmodule aubridge.so\n\
             module sndfile.so\nmodule_app account.so\nmodule_app menu.so\nmodule ctrl_tcp.so\n\
             ctrl_tcp_listen {ctrl}\nsnd_path {rec}\n",
            sip = sip_port,
            mic = d.join("mic.wav").display(),
            rec = d.join("rec").display(),
        );
        std::fs::write(d.join("cfg/config"), config)?;
        let account = match codec {
            // baresip names codecs with their audio rate and channels.
            Some("opus") => format!("{account};audio_codecs=opus/48000/2"),
            Some("G722") => format!("{account};audio_codecs=G722/16000/1"),
            Some(c) => format!("{account};audio_codecs={c}"),
            None => format!("{account};audio_codecs=PCMU,PCMA"),
        };
        std::fs::write(d.join("cfg/accounts"), format!("{account}\n"))?;
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(d.join("cfg")).args(["-t", "60"]);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("baresip.log"))?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting baresip (apt baresip-core)")?;
        let mut phone = Baresip {
            ctrl: match Ctrl::connect(ctrl) {
                Ok(c) => c,
                Err(e) => {
                    let mut child = child;
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            },
            child,
            dir,
        };
        // Dialled once the control connection is up, so none of the call's
        // events is missed.
        if let Some(dial) = dial {
            let reply = phone.command("dial", dial)?;
            if !reply.contains("\"ok\":true") {
                let _ = phone.child.kill();
                bail!("baresip would not dial {dial}: {reply}\n{}", phone.log());
            }
        }
        Ok(phone)
    }

    /// Sends a ctrl_tcp command and returns the raw reply; an error when
    /// baresip does not answer within 5 s.
    pub fn command(&self, command: &str, params: &str) -> Result<String> {
        self.ctrl.command(command, params, Duration::from_secs(5))
    }

    /// The events baresip reported so far (`type`: `CALL_RINGING`,
    /// `CALL_ESTABLISHED`, `CALL_CLOSED`, `REGISTER_OK`...; `id`: the call's
    /// SIP Call-ID).
    pub fn events(&self) -> Vec<Value> {
        self.ctrl.events.lock().unwrap().clone()
    }

    /// Waits for an event of `kind`; its `id` (the call's SIP Call-ID, which
    /// is the node's call record id for a call this phone placed).
    pub fn wait_event(&self, kind: &str, timeout: Duration) -> Result<String> {
        self.wait_for_event(kind, timeout, |e| e["type"] == kind)
    }

    /// The Call-ID of this phone's call as soon as baresip reports anything
    /// about it (ringing, early media, answered).
    pub fn call_id(&self, timeout: Duration) -> String {
        self.wait_for_event("call event", timeout, |e| {
            e["class"] == "call" && e["id"].as_str().is_some_and(|id| !id.is_empty())
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `id` of the first event `wanted` accepts, polled until `timeout`;
    /// `what` names it in the error.
    fn wait_for_event(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().iter().find(|e| wanted(e)) {
                return Ok(e["id"].as_str().unwrap_or_default().to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "baresip reported no {what} in {timeout:?}; events: {:#?}\nlog:\n{}",
                    self.events(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Call-ID of this phone's call, once it was answered.
    pub fn answered_call_id(&self, timeout: Duration) -> String {
        self.wait_event("CALL_ESTABLISHED", timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Presses `key` (RFC 4733) 1.5 s after this phone's call was answered
    /// (the node's record of this very call says so), while its first
    /// prompt plays.
    pub fn press_when_answered(&self, node: &TestNode, key: &str) {
        let id = self.answered_call_id(Duration::from_secs(20));
        node.wait_for_call(Duration::from_secs(5), |c| {
            c["id"] == id.as_str() && c["answered_at"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\nbaresip log:\n{}", self.log()));
        std::thread::sleep(Duration::from_millis(1500));
        let reply = self.command("sndcode", key).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
    }

    /// The WAV of what baresip heard (sndfile's decode dump).
    pub fn heard(&self) -> Option<PathBuf> {
        self.heard_all().into_iter().next()
    }

    /// What baresip heard in each of its calls, oldest first.
    pub fn heard_all(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                    .collect()
            })
            .unwrap_or_default();
        // By when each was last written: one file per call, in call order.
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Asks baresip to quit and waits for it (so its WAV files are complete).
    pub fn quit(mut self) -> Result<Baresip> {
        let _ = self.command("quit", "");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(self);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(self)
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
