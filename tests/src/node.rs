//! Runs a real `hookline` node process for a test and reads back what it did.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::*;

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

/// A step run on a node's data directory before it starts.
pub type PrepareData<'a> = dyn Fn(&std::path::Path) -> Result<()> + 'a;

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
    /// Runs on the (still empty) data directory before the node starts,
    /// e.g. to put it on a small file system.
    pub prepare_data: Option<&'a PrepareData<'a>>,
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
            prepare_data: None,
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
        if let Some(prepare) = spec.prepare_data {
            let dir = data.path().join("data");
            std::fs::create_dir_all(&dir)?;
            prepare(&dir)?;
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

    /// A call's outbound legs (who rang), in the order they started. Fails
    /// the test when the API does not answer (no answer is not "no legs").
    pub fn legs_of(&self, record: &Value) -> Vec<Value> {
        let calls = self
            .calls()
            .unwrap_or_else(|e| panic!("reading the legs of {}: {e}", record["id"]));
        let mut legs: Vec<Value> = calls
            .into_iter()
            .filter(|c| c["parent"] == record["id"])
            .collect();
        legs.sort_by(|a, b| {
            at(a, "started_at")
                .cmp(at(b, "started_at"))
                .then(a["callee"].as_str().cmp(&b["callee"].as_str()))
        });
        legs
    }

    /// The legs of a call that has ended, once every one of them has ended
    /// too (a leg's record closes just after its caller's).
    pub fn ended_legs_of(&self, record: &Value) -> Vec<Value> {
        let mut legs = Vec::new();
        let all_ended = wait_until(Duration::from_secs(10), || {
            legs = self.legs_of(record);
            legs.iter().all(|l| l["hangup_cause"].is_string())
        });
        assert!(all_ended, "a leg never ended: {legs:#?}");
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
