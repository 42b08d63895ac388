//! baresip, a real softphone: callers, registered agents, and what they heard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::*;

/// A headless baresip user agent (apt baresip-core) driven over its ctrl_tcp socket.
pub struct Baresip {
    child: Child,
    ctrl: SocketAddr,
    pub dir: tempfile::TempDir,
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
        if let Some(dial) = dial {
            cmd.args(["-e", &format!("/dial {dial}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("baresip.log"))?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting baresip (apt baresip-core)")?;
        Ok(Baresip { child, ctrl, dir })
    }

    /// Sends a ctrl_tcp command (netstring-framed JSON) and returns the raw reply.
    pub fn command(&self, command: &str, params: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect(self.ctrl) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(e).context("baresip ctrl_tcp"),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        write!(s, "{}:{json},", json.len())?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Presses `key` (RFC 4733) 1.5 s after `node` answered the call, while
    /// its first prompt plays.
    pub fn press_when_answered(&self, node: &TestNode, key: &str) {
        node.wait_for_call(Duration::from_secs(20), |c| c["answered_at"].is_string())
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
