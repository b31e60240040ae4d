//! The daemon's life: SIGHUP to the real binary swaps in a good config and refuses a bad one,
//! which leaves the previous snapshot serving; `App::run` reloads when asked and stops when
//! told; the exit status tells a bad config (78) from a runtime failure (1).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::config::{ConfigFile, Service};
use common::*;
use hickory_proto::rr::RecordType;

struct Daemon {
    child: Child,
    addr: SocketAddr,
    logs: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &std::path::Path) -> Self {
        Self::start_with(config, &[])
    }

    /// `gslbd run --config CONFIG ARGS...`.
    fn start_with(config: &std::path::Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gslbd"))
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("GSLBD_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gslbd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            logs,
        };
        let line = daemon.wait_for_log("dns listening");
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("addr="))
            .expect("listening line names the address");
        daemon.addr = addr.parse().expect("address parses");
        daemon
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?}");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn stop(mut self) {
        self.signal("TERM");
        let status = self.child.wait().expect("wait for gslbd");
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }
}

fn app_answer(addr: SocketAddr) -> Vec<String> {
    addresses(&udp(addr, &query("app.gslb.example.com", RecordType::A)))
}

#[test]
fn sighup_applies_a_good_config_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    let mut config = ConfigFile::base();
    std::fs::write(&path, config.to_toml()).expect("write config");
    let mut daemon = Daemon::start(&path);
    assert_eq!(app_answer(daemon.addr), vec!["192.0.2.1"]);

    // Good: eu marked down, failover moves to us.
    let app = config.service_mut("app.gslb.example.com");
    app.health.insert("eu".into(), "unhealthy".into());
    std::fs::write(&path, config.to_toml()).expect("write config");
    daemon.signal("HUP");
    daemon.wait_for_log("config reloaded");
    assert_eq!(app_answer(daemon.addr), vec!["198.51.100.1"]);

    // Bad: refused with a log line naming the problem; the previous answers keep serving.
    let web = config.service_mut("web.gslb.example.com");
    web.weights.insert("us".into(), -1);
    std::fs::write(&path, config.to_toml()).expect("write config");
    daemon.signal("HUP");
    let line = daemon.wait_for_log("config reload refused");
    assert!(line.contains("services[1].weights.us"), "{line}");
    assert_eq!(app_answer(daemon.addr), vec!["198.51.100.1"]);

    // Unreadable: same.
    std::fs::write(&path, "[zone").expect("write config");
    daemon.signal("HUP");
    daemon.wait_for_log("config reload refused");
    assert_eq!(app_answer(daemon.addr), vec!["198.51.100.1"]);

    daemon.stop();
}

#[test]
fn sighup_keeps_the_command_line_s_listen_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    // The file names another address: --listen replaces it at start and at every reload, so
    // a reload does not see a [server] change.
    let mut config = ConfigFile::base();
    config.server.listen = vec!["127.0.0.1:1".into()];
    std::fs::write(&path, config.to_toml()).expect("write config");
    let mut daemon = Daemon::start_with(&path, &["--listen", "127.0.0.1:0"]);
    let app = config.service_mut("app.gslb.example.com");
    app.health.insert("eu".into(), "unhealthy".into());
    std::fs::write(&path, config.to_toml()).expect("write config");
    daemon.signal("HUP");
    daemon.wait_for_log("config reloaded");
    assert_eq!(app_answer(daemon.addr), vec!["198.51.100.1"]);

    // A [server] change in the file is refused whole, naming it.
    config.server.udp_workers = Some(1);
    std::fs::write(&path, config.to_toml()).expect("write config");
    daemon.signal("HUP");
    let line = daemon.wait_for_log("config reload refused");
    assert!(line.contains("[server] changed"), "{line}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_and_removes_services_in_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    let server = start().await;
    let mut config = ConfigFile::base();
    config
        .services
        .push(Service::round_robin("new.gslb.example.com").target("us", &["198.51.100.77"]));
    std::fs::write(&path, config.to_toml()).expect("write config");
    server.app.reload_from(&path).await.expect("valid config");
    let reply = udp(server.addr, &query("new.gslb.example.com", RecordType::A));
    assert_eq!(addresses(&reply), vec!["198.51.100.77"]);

    let mut without_web = ConfigFile::base();
    without_web.service_mut("web.gslb.example.com").name = "web2.gslb.example.com".into();
    std::fs::write(&path, without_web.to_toml()).expect("write config");
    server.app.reload_from(&path).await.expect("valid config");
    let reply = udp(server.addr, &query("web.gslb.example.com", RecordType::A));
    assert_eq!(
        reply.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );

    std::fs::write(&path, "not toml = [").expect("write config");
    let error = server.app.reload_from(&path).await.expect_err("refused");
    assert!(error.to_string().contains("TOML parse error"), "{error}");
    let reply = udp(server.addr, &query("web2.gslb.example.com", RecordType::A));
    // The refused file changed nothing: web2 (weighted, one address) still answers.
    assert_eq!(
        reply.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    assert_eq!(addresses(&reply).len(), 1);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_reloads_when_asked_and_stops_when_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    let mut config = ConfigFile::base();
    std::fs::write(&path, config.to_toml()).expect("write config");
    let app = gslbd::app::App::start(config.parse(), Some(path.clone()))
        .await
        .expect("server starts");
    let addr = app.dns_addrs()[0];
    let (reload, reload_requests) = tokio::sync::mpsc::channel(1);
    let (stop, stop_requested) = tokio::sync::oneshot::channel::<()>();
    let reloads = futures::stream::unfold(reload_requests, |mut requests| async move {
        requests.recv().await.map(|()| ((), requests))
    });
    let shutdown = async move {
        let _ = stop_requested.await;
    };
    let running = tokio::spawn(app.run(shutdown, reloads));
    assert_eq!(app_answer(addr), vec!["192.0.2.1"]);

    let app_service = config.service_mut("app.gslb.example.com");
    app_service.health.insert("eu".into(), "unhealthy".into());
    std::fs::write(&path, config.to_toml()).expect("write config");
    reload.send(()).await.expect("run takes reloads");
    wait_for_answer(
        addr,
        "app.gslb.example.com",
        Duration::from_secs(10),
        |got| got == ["198.51.100.1"],
    )
    .await;

    stop.send(()).expect("run is waiting");
    running
        .await
        .expect("run ends once told to stop")
        .expect("no task failed");
    let query = bytes(&query("app.gslb.example.com", RecordType::A));
    assert_eq!(
        udp_raw_wait(addr, &query, Duration::from_millis(500)),
        None,
        "nothing answers once stopped"
    );
}

#[test]
fn exit_status_tells_a_bad_config_from_a_runtime_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[zone").expect("write config");
    let exit_code = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_gslbd"))
            .args(args)
            .stderr(Stdio::null())
            .status()
            .expect("run gslbd")
            .code()
    };
    assert_eq!(
        exit_code(&["check-config".as_ref(), bad.as_ref()]),
        Some(78)
    );
    assert_eq!(
        exit_code(&["run".as_ref(), "--config".as_ref(), bad.as_ref()]),
        Some(78)
    );

    // A valid config whose DNS address is taken: the failure is at run time.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, ConfigFile::base().to_toml()).expect("write config");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let listen = taken.local_addr().expect("bound").to_string();
    assert_eq!(
        exit_code(&[
            "run".as_ref(),
            "--config".as_ref(),
            good.as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
        ]),
        Some(1)
    );
}
