//! `hookline`: the media node binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hookline::node::{self, ServeOptions};

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Hookline media node: SIP/RTP with WebAssembly call logic"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a media node.
    Serve {
        /// SIP listen address (UDP).
        #[arg(long, default_value = "0.0.0.0:5060")]
        sip: SocketAddr,
        /// RTP port range, A-B.
        #[arg(long, default_value = "20000-29999", value_parser = node::parse_port_range)]
        rtp_ports: (u16, u16),
        /// HTTP API listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Data directory: SQLite database, prompt cache, recordings.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Routes and plugins.
        #[arg(long, default_value = "hookline.toml")]
        config: PathBuf,
        /// Allow an API beyond loopback with no node.api_token (reads open
        /// to whoever reaches it; changes still need the generated token).
        #[arg(long)]
        insecure_api: bool,
    },
    /// Prompt catalog tools.
    Prompts {
        #[command(subcommand)]
        command: PromptsCmd,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCmd,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Validate a component against the host API and print its manifest.
    /// With --config and --name, also check it against that plugin's grants
    /// and routes. Exits non-zero when the node would refuse it.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// A node config to check grants and route configs against.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin's name in that config (default: the manifest's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a plugin against scripted calls (no SIP, no media) and check the
    /// verbs it issued, its call-record path and its kv; see plugin-sdk/README.md.
    Test {
        /// The component (.wasm).
        file: PathBuf,
        /// Test scripts (.toml); `-` reads one from stdin.
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
        /// One JSON line per script (what it did, passed, the diff), for test libraries.
        #[arg(long)]
        json: bool,
    },
    /// Start a Rust plugin project from the template: it builds where it is
    /// put (its own workspace, the SDK by absolute path).
    New {
        /// The plugin's name (lowercase, digits, '-').
        name: String,
        /// Where (default: ./NAME); must be empty or absent.
        dir: Option<PathBuf>,
        /// The Rust SDK (default: this checkout's plugin-sdk/rust).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PromptsCmd {
    /// Render the catalog's prompts into the data directory's cache.
    Build {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long, default_value = "hookline.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        // Colours only for a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match Cli::parse().command {
        Cmd::Serve {
            sip,
            rtp_ports,
            http,
            data,
            config,
            insecure_api,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(node::serve(ServeOptions {
                sip,
                rtp_ports,
                http,
                data,
                config,
                insecure_api,
            }))
        }
        Cmd::Plugin {
            command: PluginCmd::Check { file, config, name },
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(hookline::plugin::check::run::<
                hookline::call::session::CallSession,
            >(&file, config.as_deref(), name.as_deref()))
        }
        Cmd::Plugin {
            command:
                PluginCmd::Test {
                    file,
                    scripts,
                    json,
                },
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(hookline::plugin::harness::run_cli(&file, &scripts, json))
        }
        Cmd::Plugin {
            command: PluginCmd::New { name, dir, sdk },
        } => {
            let dir = hookline::plugin::new::run(&name, dir.as_deref(), sdk.as_deref())?;
            let file = name.replace('-', "_");
            println!(
                "{name}: created in {d}\n\
                 build:  cd {d} && cargo build --release --target wasm32-wasip2\n\
                 check:  hookline plugin check {d}/target/wasm32-wasip2/release/{file}.wasm\n\
                 test:   hookline plugin test {d}/target/wasm32-wasip2/release/{file}.wasm {d}/tests/*.toml\n\
                         (or: cd {d} && cargo test, with hookline on the PATH or HOOKLINE set)\n\
                 route:  see {d}/route.toml",
                d = dir.display()
            );
            Ok(())
        }
        Cmd::Prompts {
            command: PromptsCmd::Build { data, config },
        } => {
            let config = hookline::config::Config::load(&config)?;
            let catalog = node::load_catalog(&config)?;
            let voices = node::load_voices(&config);
            let mut langs = vec![config.prompts.language.clone()];
            langs.extend(config.prompts.languages.iter().cloned());
            langs.dedup();
            for lang in &langs {
                let set = node::prepare_language(&config, &catalog, &data, lang, &voices)?;
                println!("{} prompts ({lang}) ready in {}", set.len(), data.display());
            }
            Ok(())
        }
    }
}
