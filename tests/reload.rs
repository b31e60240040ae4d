//! Reload: SIGHUP to the real binary swaps in a good config and refuses a bad one, which
//! leaves the previous snapshot serving.

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_gslbd"))
            .args(["run", "--config"])
            .arg(config)
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
