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

use gslbd::{admin_client, config};

/// mimalloc: it gives freed memory back to the system soon after (glibc's malloc keeps what a
/// config parse or a snapshot rebuild freed, so RSS grew with every reload), and holds less
/// per allocation. docs/performance.md ("Scale of the answer side") has the figures. The
/// `system-allocator` feature leaves it out, for heap profilers that follow malloc (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// The zone's delegation from its parent: print it, apply it (RFC 2136 + TSIG), or
    /// print it as an ExternalDNS DNSEndpoint.
    Delegation {
        #[command(subcommand)]
        action: DelegationAction,
    },
    /// Take this node's region, or one service of it, out of every region's answers (at run
    /// time: a restart undrains; for a lasting drain set `health` in the config).
    Drain(DrainArgs),
    /// Put back what `drain` took out.
    Undrain(DrainArgs),
    /// A running server's view: one line per service, a column per region, and where answers
    /// come from. Exits 0 when every service is answered from a healthy region, 1 otherwise.
    Status {
        /// The server's admin endpoint (`server.admin`): host:port or http://host:port.
        #[arg(long, default_value = "127.0.0.1:9153", value_parser = admin_client::parse_admin)]
        admin: SocketAddr,
        /// `json`: the server's /state as it is.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// What a client gets for a name from a running server, and why; `--down` asks what if
    /// regions were down.
    Explain {
        /// The name (fully qualified, or relative to the zone).
        name: String,
        /// The client's address (the answer may depend on it: geo, rotation).
        #[arg(long)]
        client: std::net::IpAddr,
        /// Regions to treat as down, comma-separated.
        #[arg(long, value_delimiter = ',')]
        down: Vec<String>,
        /// The record type.
        #[arg(long = "type", default_value = "A")]
        rtype: String,
        /// The server's admin endpoint (`server.admin`): host:port or http://host:port.
        #[arg(long, default_value = "127.0.0.1:9153", value_parser = admin_client::parse_admin)]
        admin: SocketAddr,
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print fresh gossip keys: a cluster key and one signing key pair per region named. With
    /// `--dnssec`, write a zone key pair in BIND's key-file format instead.
    Keygen {
        /// Regions to make signing keys for.
        #[arg(default_values_t = [String::from("eu"), String::from("us"), String::from("ap")])]
        regions: Vec<String>,
        /// Write a DNSSEC key pair for `--zone` (`K<zone>.+<alg>+<tag>.key` and `.private`)
        /// into `--dir`, and print its base name.
        #[arg(long)]
        dnssec: bool,
        /// The zone the DNSSEC key is for.
        #[arg(long, requires = "dnssec")]
        zone: Option<String>,
        /// 13 (ECDSA P-256 with SHA-256) or 15 (Ed25519).
        #[arg(long, default_value_t = 13, requires = "dnssec")]
        algorithm: u8,
        /// csk (signs everything), ksk (signs the DNSKEY set) or zsk (signs the rest).
        #[arg(long, value_enum, default_value_t = gslbd::dnssec::Role::Csk, requires = "dnssec")]
        role: gslbd::dnssec::Role,
        /// Where to write the key files.
        #[arg(long, default_value = ".", requires = "dnssec")]
        dir: PathBuf,
    },
}

/// How `status` and `explain` print.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// For people.
    Table,
    /// The server's JSON.
    Json,
}

#[derive(clap::Args)]
struct DrainArgs {
    /// The region: the one the gslbd at `--admin` serves (each region drains at its own).
    region: String,
    /// Only this service (fully qualified, or relative to the zone).
    #[arg(long)]
    service: Option<String>,
    /// The gslbd's admin endpoint (`server.admin`), which takes drains from loopback only.
    #[arg(long, default_value = "127.0.0.1:9153")]
    admin: SocketAddr,
}

#[derive(Subcommand)]
enum DelegationAction {
    /// Print the records the parent zone needs (NS set and glue) in zone-file format.
    Print {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Apply the delegation to the parent zone's primary server by RFC 2136 dynamic update
    /// signed with TSIG: only the differences are sent, nothing outside the delegation is
    /// touched.
    Apply {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The parent zone's primary server (accepting updates), HOST:PORT.
        #[arg(long)]
        server: String,
        /// TSIG key file: BIND (`tsig-keygen`), Knot (`keymgr -t`) or `hmac-sha256:name:secret`.
        #[arg(long)]
        tsig_key: PathBuf,
        /// The parent zone (default: the zone's name without its first label).
        #[arg(long)]
        parent_zone: Option<String>,
        /// Show the differences, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the delegation as an ExternalDNS DNSEndpoint object (JSON, for `kubectl apply -f -`).
    DnsEndpoint {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, default_value = "gslbd-delegation")]
        name: String,
        #[arg(long, default_value = "gslbd")]
        namespace: String,
    },
}

/// Exit status when the configuration cannot be used (sysexits.h `EX_CONFIG`); any other
/// failure exits with 1, and a bad command line with 2 (clap).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    log_panics();
    let result = match cli.command {
        Command::CheckConfig { file } => return check_config(&file),
        Command::Keygen {
            dnssec: true,
            zone,
            algorithm,
            role,
            dir,
            ..
        } => keygen_dnssec(zone.as_deref(), algorithm, role, &dir),
        Command::Keygen { regions, .. } => keygen(&regions),
        Command::Delegation { action } => delegation(action).inspect_err(|error| {
            eprintln!("error: {error:#}");
        }),
        Command::Demo => demo().inspect_err(|error| tracing::error!("{error:#}")),
        Command::Drain(args) => return drain(&args, true),
        Command::Status { admin, output } => return status(admin, output),
        Command::Explain {
            name,
            client,
            down,
            rtype,
            admin,
            output,
        } => return explain(admin, &name, client, &down, &rtype, output),
        Command::Undrain(args) => return drain(&args, false),
        Command::Run { config, listen } => {
            run(config, listen).inspect_err(|error| tracing::error!("{error:#}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.chain().any(|e| e.is::<config::ConfigError>()) => {
            ExitCode::from(EXIT_CONFIG)
        }
        Err(_) => ExitCode::FAILURE,
    }
}

/// A panic is logged like everything else, naming its thread (`gslbd-udp`, a runtime worker),
/// before the default hook prints it; release builds then abort (exit status 134).
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), %info, "panic");
        default(info);
    }));
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

/// `gslbd drain` / `gslbd undrain`: 0 once the change serves, 1 otherwise, saying why.
fn drain(args: &DrainArgs, drained: bool) -> ExitCode {
    match gslbd::admin_client::drain(args.admin, &args.region, args.service.as_deref(), drained) {
        Ok(answer) => {
            eprintln!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // a command whose output is the point
fn status(admin: SocketAddr, output: Output) -> ExitCode {
    let body = match admin_client::get(admin, "/state") {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let state: gslbd::status::State = match serde_json::from_str(&body) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {admin}/state is not gslbd's: {error}");
            return ExitCode::FAILURE;
        }
    };
    if output == Output::Json {
        println!("{body}");
    } else {
        print!("{}", state.table(std::io::stdout().is_terminal()));
    }
    if state.all_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[allow(clippy::print_stdout)] // a command whose output is the point
fn explain(
    admin: SocketAddr,
    name: &str,
    client: std::net::IpAddr,
    down: &[String],
    rtype: &str,
    output: Output,
) -> ExitCode {
    let plain = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b))
    };
    if !plain(name) || !plain(rtype) || !down.iter().all(|d| plain(d)) {
        eprintln!("error: names, types and regions are letters, digits, '-', '_' and '.'");
        return ExitCode::from(2);
    }
    let mut query = format!("/explain?name={name}&client={client}&type={rtype}");
    if !down.is_empty() {
        query.push_str(&format!("&down={}", down.join(",")));
    }
    let body = match admin_client::get(admin, &query) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if output == Output::Json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<gslbd::status::Explanation>(&body) {
        Ok(explanation) => {
            print!("{}", explanation.text());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {admin}/explain is not gslbd's: {error}");
            ExitCode::FAILURE
        }
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
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints TOML to paste into each region's config (stdout is the point of this command).
#[allow(clippy::print_stdout)]
fn keygen(regions: &[String]) -> anyhow::Result<()> {
    let mut cluster_key = None;
    let mut lines = Vec::new();
    let mut publics = Vec::new();
    for region in regions {
        let (cluster, seed, public) = gslbd::gossip::keys::generate()
            .inspect_err(|error| eprintln!("cannot generate keys: {error}"))?;
        cluster_key.get_or_insert(cluster);
        lines.push(format!(
            "# region {region}: in {region}'s config only\nsigning_key = \"{seed}\""
        ));
        publics.push(format!("{region} = \"{public}\""));
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
    Ok(())
}

/// Writes a DNSSEC key pair and prints its base name (stdout is the point of this command).
#[allow(clippy::print_stdout)]
fn keygen_dnssec(
    zone: Option<&str>,
    algorithm: u8,
    role: gslbd::dnssec::Role,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    use hickory_proto::dnssec::Algorithm;
    let zone = zone.context("--dnssec needs --zone")?;
    let origin = hickory_proto::rr::Name::from_ascii(zone)
        .map(|name| {
            let mut name = name.to_lowercase();
            name.set_fqdn(true);
            name
        })
        .with_context(|| format!("--zone {zone}"))?;
    let algorithm = match algorithm {
        13 => Algorithm::ECDSAP256SHA256,
        15 => Algorithm::ED25519,
        other => anyhow::bail!("--algorithm {other}: 13 (ECDSAP256SHA256) or 15 (ED25519)"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let generated = gslbd::dnssec::key::generate(&origin, algorithm, role, now)?;
    let base = dir.join(&generated.base_name);
    let write = |extension: &str, text: &str, mode: u32| -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = base.with_file_name(format!("{}.{extension}", generated.base_name));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write("key", &generated.key_file, 0o644)?;
    write("private", &generated.private_file, 0o600)?;
    println!("{}", base.display());
    Ok(())
}

/// `gslbd delegation ...`: results on stdout, errors on stderr.
#[allow(clippy::print_stdout)]
fn delegation(action: DelegationAction) -> anyhow::Result<()> {
    use gslbd::delegation::apply::Parent;
    use gslbd::delegation::{Delegation, external_dns};
    let load = |path: &PathBuf| {
        config::load(path)
            .map(|config| Delegation::of(&config.model))
            .with_context(|| format!("cannot read {}", path.display()))
    };
    match action {
        DelegationAction::Print { config } => {
            let delegation = load(&config)?;
            print!("{}", delegation.zone_file(&delegation.default_parent()));
        }
        DelegationAction::DnsEndpoint {
            config,
            name,
            namespace,
        } => {
            let object = external_dns::dns_endpoint(&load(&config)?, &name, &namespace);
            println!("{}", serde_json::to_string_pretty(&object)?);
        }
        DelegationAction::Apply {
            config,
            server,
            tsig_key,
            parent_zone,
            dry_run,
        } => {
            let delegation = load(&config)?;
            runtime(false)?.block_on(async {
                let parent =
                    Parent::resolve(&delegation, &server, &tsig_key, parent_zone.as_deref())
                        .await?;
                let changes = parent.plan().await?;
                for entry in &changes.delete {
                    println!("delete\t{}", entry.record(delegation.ttl));
                }
                for entry in &changes.add {
                    println!("add\t{}", entry.record(delegation.ttl));
                }
                if changes.is_empty() {
                    println!(
                        "{} is up to date on {server}: nothing sent",
                        delegation.zone
                    );
                } else if dry_run {
                    println!("dry run: nothing sent");
                } else {
                    parent.apply(&changes).await?;
                    println!(
                        "{} delegated in {} on {server}: {} added, {} deleted",
                        delegation.zone,
                        parent.zone,
                        changes.add.len(),
                        changes.delete.len()
                    );
                }
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}

/// The async runtime: one thread for one-shot commands, the default pool for the daemon.
fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .thread_name("gslbd")
        .build()
        .context("cannot start the async runtime")
}

fn demo() -> anyhow::Result<()> {
    Ok(runtime(true)?.block_on(gslbd::demo::run())?)
}

fn run(path: PathBuf, listen: Vec<SocketAddr>) -> anyhow::Result<()> {
    let config =
        config::load(&path).with_context(|| format!("cannot start with {}", path.display()))?;
    let overrides = gslbd::app::Overrides { listen };
    runtime(true)?.block_on(async move {
        let hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        info!(
            config = %path.display(),
            zone = %config.model.zone.origin,
            services = config.model.services.len(),
            "starting"
        );
        let reloads = futures::stream::unfold(hangup, |mut hangup| async move {
            hangup.recv().await?;
            info!("SIGHUP: reloading config");
            Some(((), hangup))
        });
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        gslbd::app::run(config, Some(path), overrides, shutdown, reloads).await?;
        Ok(())
    })
}
