#![allow(clippy::print_stdout)] // a measuring tool: its output is the point
//! The answer side at scale: writes a config of N services × R regions (static health, no
//! probes, no gossip), then measures the release binary on it:
//! - `check-config`: wall time and peak RSS;
//! - `gslbd run`: cold start to the first answer (spawn to a NOERROR answer over UDP), RSS once
//!   started, the first snapshot's build time;
//! - one drain of one service (`gslbd drain r0 --service ...`): the rebuild time the state owner
//!   logs (`build_us`) and when the answer changed, seen by a client polling;
//! - one reload (SIGHUP, the same file): the full rebuild time and RSS after it, and the peak.
//!
//! Prints one row per size, the table of docs/performance.md ("Scale of the answer side").
//!
//!     cargo build --release && cargo run --release --example answer_scale -- 10000x10 100000x10
//!
//! Sizes default to 10000x10 100000x1 100000x3 100000x10. `GSLBD_BIN=PATH` measures another
//! binary (a build of an earlier commit, to compare in the same run). `--write FILE NxR` only
//! writes the config (to profile by hand: `heaptrack target/release/gslbd run --config FILE`).
//! Everything listens on loopback only; the answer data are loopback (127.100.0.0 and up) and
//! documentation (2001:db8::/32) addresses nothing connects to (no probes).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

const DNS: &str = "127.0.0.1:15371";
const ADMIN: &str = "127.0.0.1:19371";
const STRATEGIES: [&str; 4] = ["round-robin", "weighted", "failover", "geo"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--measure") => return measure_child(&args[1..]),
        Some("--write") if args.len() == 3 => {
            let (services, regions) = parse_size(&args[2]);
            return write_config(Path::new(&args[1]), services, regions);
        }
        _ => {}
    }
    let sizes: Vec<(usize, usize)> = if args.is_empty() {
        vec![(10_000, 10), (100_000, 1), (100_000, 3), (100_000, 10)]
    } else {
        args.iter().map(|a| parse_size(a)).collect()
    };
    let binary = release_binary();
    let dir = tempdir();
    println!(
        "| N × R | config | check-config | its peak RSS | cold start to first answer | RSS | first build | one drain: rebuild | seen by a client | full rebuild (SIGHUP) | RSS after it | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (services, regions) in sizes {
        let config = dir.join(format!("scale-{services}x{regions}.toml"));
        write_config(&config, services, regions);
        let size = std::fs::metadata(&config).map(|m| m.len()).unwrap_or(0);
        let (check_s, check_kb) = check_config(&binary, &config);
        let row = serve(&binary, &config);
        println!(
            "| {}k × {} | {:.1} MB | {:.2} s | {} MB | {:.2} s | {} MB | {} | {} | {} | {} | {} MB | {} MB |",
            services / 1000,
            regions,
            size as f64 / 1e6,
            check_s,
            check_kb / 1024,
            row.cold_start.as_secs_f64(),
            row.rss_kb / 1024,
            ms(row.first_build_us),
            ms(row.drain_build_us),
            row.drain_seen
                .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "—".into()),
            ms(row.reload_build_us),
            row.rss_after_reload_kb / 1024,
            row.peak_kb / 1024,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn ms(us: Option<u64>) -> String {
    us.map(|us| format!("{:.1} ms", us as f64 / 1e3))
        .unwrap_or_else(|| "—".into())
}

fn parse_size(text: &str) -> (usize, usize) {
    let (n, r) = text
        .split_once('x')
        .unwrap_or_else(|| panic!("size {text:?}: expected NxR, e.g. 100000x10"));
    let parse = |s: &str| {
        s.parse()
            .unwrap_or_else(|_| panic!("size {text:?}: {s:?} is no number"))
    };
    let (n, r) = (parse(n), parse(r));
    assert!((1..=64).contains(&r), "1 to 64 regions");
    (n, r)
}

/// The binary measured: `GSLBD_BIN` when set (another build, to compare in the same run),
/// else this checkout's release build.
fn release_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var_os("GSLBD_BIN")
        .map_or_else(|| root.join("target/release/gslbd"), PathBuf::from);
    assert!(
        binary.exists(),
        "build the release binary first: cargo build --release"
    );
    binary
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gslbd-answer-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// N services named s0..s{N-1}, strategies in turn, one IPv4 address per region (loopback,
/// 127.{100 + region}.x.y, and an IPv6 one from 2001:db8::/32 for every other service), R
/// regions r0..r{R-1}; r0 is this node's (drains apply to it).
fn write_config(path: &Path, services: usize, regions: usize) {
    let mut out = String::with_capacity(services * (80 + regions * 40));
    out.push_str(&format!(
        "local_region = \"r0\"\nprobe = {{ kind = \"none\" }}\n\n[server]\nlisten = [\"{DNS}\"]\nadmin = \"{ADMIN}\"\nudp_workers = 1\n\n\
         [zone]\nname = \"gslb.example.com\"\n\n[zone.soa]\nrname = \"hostmaster.example.com\"\n\n"
    ));
    for r in 0..regions {
        out.push_str(&format!(
            "[[regions]]\nname = \"r{r}\"\nnameserver = \"ns-r{r}.gslb.example.com\"\nglue = [\"127.0.{}.{}\"]\nlocation = [{}, {}]\n\n",
            r / 250,
            r % 250 + 1,
            (r as f64 * 13.0) % 120.0 - 60.0,
            (r as f64 * 37.0) % 340.0 - 170.0,
        ));
    }
    out.push_str("[geo]\ndefault_region = \"r0\"\n\n");
    for s in 0..services {
        let strategy = STRATEGIES[s % STRATEGIES.len()];
        out.push_str(&format!(
            "[[services]]\nname = \"s{s}.gslb.example.com\"\nstrategy = \"{strategy}\"\n"
        ));
        match strategy {
            "weighted" => {
                out.push_str("weights = { ");
                for r in 0..regions {
                    let sep = if r + 1 < regions { ", " } else { " }\n" };
                    out.push_str(&format!("r{r} = {}{sep}", 10 + (s + r) % 90));
                }
            }
            "failover" => {
                out.push_str("failover_order = [");
                for r in 0..regions {
                    let sep = if r + 1 < regions { ", " } else { "]\n" };
                    out.push_str(&format!("\"r{}\"{sep}", (s + r) % regions));
                }
            }
            _ => {}
        }
        out.push_str("targets = { ");
        for r in 0..regions {
            let sep = if r + 1 < regions { ", " } else { " }\n\n" };
            let v4 = format!("127.{}.{}.{}", 100 + r, (s / 250) % 256, s % 250 + 1);
            if s % 2 == 0 {
                out.push_str(&format!(
                    "r{r} = [\"{v4}\", \"2001:db8:{r:x}::{:x}\"]{sep}",
                    s % 65536
                ));
            } else {
                out.push_str(&format!("r{r} = [\"{v4}\"]{sep}"));
            }
        }
    }
    std::fs::write(path, out).expect("write config");
}

/// `--measure CMD...`: runs CMD, waits, prints `seconds max_rss_kb` (getrusage of the child).
fn measure_child(command: &[String]) {
    let started = Instant::now();
    let status = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .status()
        .expect("run");
    let elapsed = started.elapsed();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    assert!(status.success(), "{command:?} failed: {status}");
    println!("{} {}", elapsed.as_secs_f64(), usage.max_rss());
}

fn check_config(binary: &Path, config: &Path) -> (f64, u64) {
    let me = std::env::current_exe().expect("own path");
    let out = Command::new(me)
        .arg("--measure")
        .arg(binary)
        .arg("check-config")
        .arg(config)
        .output()
        .expect("measure check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let seconds = fields
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let kb = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (seconds, kb)
}

struct Row {
    cold_start: Duration,
    rss_kb: u64,
    first_build_us: Option<u64>,
    drain_build_us: Option<u64>,
    drain_seen: Option<Duration>,
    reload_build_us: Option<u64>,
    rss_after_reload_kb: u64,
    peak_kb: u64,
}

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The next log line containing `needle`, within `timeout`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

fn build_us(line: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("fields")?.get("build_us")?.as_u64()
}

fn serve(binary: &Path, config: &Path) -> Row {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["--log-json", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gslbd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let server = Server { child, lines };
    let first = Name::from_ascii("s0.gslb.example.com.").expect("name");
    let cold_start = loop {
        if answer(&first).is_some_and(|a| !a.is_empty()) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no answer in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let first_build_us = server
        .wait_for("first snapshot", Duration::from_secs(1))
        .as_deref()
        .and_then(build_us);
    std::thread::sleep(Duration::from_secs(2));
    let rss_kb = server.status_kb("VmRSS:");

    // One service drained: its r0 address leaves the answer (round-robin: every region's
    // addresses; with one region, all down answers all, so nothing changes).
    let drained = Name::from_ascii("s4.gslb.example.com.").expect("name");
    let before = answer(&drained).unwrap_or_default();
    let asked = Instant::now();
    let status = Command::new(binary)
        .args(["drain", "r0", "--service", "s4", "--admin", ADMIN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("gslbd drain");
    assert!(status.success(), "drain failed");
    let drain_build_us = server
        .wait_for("snapshot published", Duration::from_secs(30))
        .as_deref()
        .and_then(build_us);
    let drain_seen = loop {
        let now = answer(&drained).unwrap_or_default();
        if now != before {
            break Some(asked.elapsed());
        }
        if asked.elapsed() > Duration::from_secs(30) {
            break None;
        }
        // Polling leaves the server's two cores mostly to it.
        std::thread::sleep(Duration::from_millis(1));
    };

    // A full reload of the same file.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let reload_build_us = server
        .wait_for("snapshot published", Duration::from_secs(120))
        .as_deref()
        .and_then(build_us);
    server.wait_for("config reloaded", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let rss_after_reload_kb = server.status_kb("VmRSS:");
    let peak_kb = server.status_kb("VmHWM:");
    let _ = std::io::stdout().flush();
    Row {
        cold_start,
        rss_kb,
        first_build_us,
        drain_build_us,
        drain_seen,
        reload_build_us,
        rss_after_reload_kb,
        peak_kb,
    }
}

/// The A records answered for `name`, or `None` without an answer.
fn answer(name: &Name) -> Option<Vec<String>> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), RecordType::A));
    let server: SocketAddr = DNS.parse().ok()?;
    socket.send_to(&message.to_bytes().ok()?, server).ok()?;
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let reply = Message::from_vec(&buf[..len]).ok()?;
    if reply.metadata.response_code != ResponseCode::NoError {
        return None;
    }
    let mut addresses: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    addresses.sort();
    Some(addresses)
}
