//! The `gslbd` command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

use gslbd::app::App;
use gslbd::config;

#[derive(Parser)]
#[command(name = "gslbd", version, about = "Global DNS load balancer")]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the zone described by a config file (SIGHUP re-reads it, SIGTERM stops).
    Run {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Listen on these addresses instead of the config's `server.listen` (repeatable).
        #[arg(long)]
        listen: Vec<SocketAddr>,
    },
    /// Validate a config file; exits non-zero listing every problem with its field path.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Three regions (eu, us, ap) on loopback in one process, gossiping, with local backends
    /// to fail and restore from the keyboard.
    Demo,
    /// Print fresh gossip keys: a cluster key and one signing key pair per region named.
    Keygen {
        /// Regions to make signing keys for.
        #[arg(default_values_t = [String::from("eu"), String::from("us"), String::from("ap")])]
        regions: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Keygen { regions } => keygen(&regions),
        Command::Demo => match demo() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, listen } => match run(config, listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_logging(json: bool) {
    // hickory-server logs every query at info: keep it to warnings.
    let filter = EnvFilter::try_from_env("GSLBD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn,hickory_proto=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(config) => {
            eprintln!(
                "{}: ok (zone {}, {} regions, {} services)",
                file.display(),
                config.model.zone.origin,
                config.model.regions.len(),
                config.model.services.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: invalid", file.display());
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints TOML to paste into each region's config (stdout is the point of this command).
#[allow(clippy::print_stdout)]
fn keygen(regions: &[String]) -> ExitCode {
    let mut cluster_key = None;
    let mut lines = Vec::new();
    let mut publics = Vec::new();
    for region in regions {
        match gslbd::gossip::keys::generate() {
            Ok((cluster, seed, public)) => {
                cluster_key.get_or_insert(cluster);
                lines.push(format!(
                    "# region {region}: in {region}'s config only\nsigning_key = \"{seed}\""
                ));
                publics.push(format!("{region} = \"{public}\""));
            }
            Err(error) => {
                eprintln!("cannot generate keys: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("# [gossip] keys. Every region's config: the same keys and region_keys.");
    println!("keys = [\"{}\"]", cluster_key.unwrap_or_default());
    for line in lines {
        println!("{line}");
    }
    println!("[gossip.region_keys]");
    for line in publics {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn demo() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gslbd")
        .build()
        .context("cannot start the async runtime")?
        .block_on(gslbd::demo::run())
}

fn run(path: PathBuf, listen: Vec<SocketAddr>) -> anyhow::Result<()> {
    let mut config =
        config::load(&path).with_context(|| format!("cannot start with {}", path.display()))?;
    if !listen.is_empty() {
        config.server.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gslbd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        info!(
            config = %path.display(),
            zone = %config.model.zone.origin,
            services = config.model.services.len(),
            "starting"
        );
        let app = App::start(config, Some(path)).await?;
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    info!("SIGHUP: reloading config");
                    // A refused config is logged by reload and changes nothing.
                    let _ = app.reload().await;
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        info!("shutting down");
        app.shutdown().await;
        Ok(())
    })
}
