//! Health probes against real listeners on 127.x: verdict sequences from the checker, then
//! DNS answers over UDP following the verdicts.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::*;
use gslbd::health::ProbeKey;
use gslbd::health::checker::Checker;
use gslbd::health::probe::NetProbes;
use gslbd::model::{Health, ProbeKind, ProbeSettings, TargetPolicy};
use gslbd::state::Event;
use hickory_proto::rr::RecordType;
use tokio::sync::mpsc;

/// A safety bound for waits; tests assert states reached, never how fast.
const PATIENCE: Duration = Duration::from_secs(15);

fn settings(kind: ProbeKind, port: u16) -> ProbeSettings {
    ProbeSettings {
        kind,
        port,
        path: "/health".into(),
        host: None,
        expect_status: vec![(200, 399)],
        body_contains: None,
        ca_file: None,
        insecure_skip_verify: false,
        interval: Duration::from_millis(150),
        timeout: Duration::from_millis(120),
        rise: 2,
        fall: 2,
        target_policy: TargetPolicy::Any,
    }
}

fn key(kind: ProbeKind, addr: SocketAddr, host: &str) -> ProbeKey {
    let (host, path) = match kind {
        ProbeKind::Tcp => (String::new(), String::new()),
        _ => (host.to_string(), "/health".to_string()),
    };
    ProbeKey {
        kind,
        addr,
        host,
        path,
    }
}

/// Runs the checker on `probes` and yields verdicts as they come.
struct Watch {
    checker: Checker,
    events: mpsc::Receiver<Event>,
}

impl Watch {
    fn start(probes: Vec<(ProbeKey, ProbeSettings)>, concurrency: usize) -> Self {
        let (tx, events) = mpsc::channel(64);
        let plan: BTreeMap<_, _> = probes.into_iter().collect();
        let metrics = Arc::new(gslbd::metrics::Metrics::new());
        let (_, plans) = tokio::sync::watch::channel(Arc::new(plan));
        let checker = Checker::start(plans, Arc::new(NetProbes), tx, concurrency, metrics);
        Self { checker, events }
    }

    /// The next `n` verdicts, with their probe.
    async fn next(&mut self, n: usize) -> Vec<(ProbeKey, Health)> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(PATIENCE, self.events.recv()).await {
                Ok(Some(Event::Verdict { key, verdict, .. })) => out.push((key, verdict.health)),
                Ok(Some(_)) => {}
                _ => panic!("only {} of {n} verdicts: {out:?}", out.len()),
            }
        }
        out
    }

    async fn healths(&mut self, n: usize) -> Vec<Health> {
        self.next(n).await.into_iter().map(|(_, h)| h).collect()
    }

    /// Verdicts that arrived so far, without waiting.
    fn pending(&mut self) -> Vec<Health> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            if let Event::Verdict { verdict, .. } = event {
                out.push(verdict.health);
            }
        }
        out
    }

    async fn stop(self) {
        self.checker.shutdown().await;
    }
}

async fn single(kind: ProbeKind, addr: SocketAddr, settings: ProbeSettings) -> Watch {
    Watch::start(vec![(key(kind, addr, "app.gslb.example.com"), settings)], 8)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_200_is_healthy_and_sends_the_service_host_header() {
    let backend = backends::http(
        backends::bind("127.0.40.1", 0).await,
        Mode::Status(200, "ok"),
    );
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    watch.stop().await;
    assert!(
        backend
            .hosts()
            .iter()
            .all(|h| h == &format!("app.gslb.example.com:{}", backend.addr.port())),
        "{:?}",
        backend.hosts()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_500_is_unhealthy() {
    let backend = backends::http(
        backends::bind("127.0.40.2", 0).await,
        Mode::Status(500, "no"),
    );
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_backend_times_out_unhealthy() {
    let backend = backends::http(backends::bind("127.0.40.3", 0).await, Mode::Hang);
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_connection_is_unhealthy() {
    let listener = backends::bind("127.0.40.4", 0).await;
    let addr = listener.local_addr().expect("bound");
    let _server = backends::resetting(listener);
    let mut watch = single(
        ProbeKind::Http,
        addr,
        settings(ProbeKind::Http, addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_connect_probe_follows_the_listener() {
    let listener = backends::bind("127.0.40.5", 0).await;
    let addr = listener.local_addr().expect("bound");
    let server = backends::accepting(listener);
    let mut watch = single(ProbeKind::Tcp, addr, settings(ProbeKind::Tcp, addr.port())).await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    server.abort();
    // Connections are refused once the listener is gone.
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_goes_unhealthy_then_recovers() {
    let backend = backends::http(
        backends::bind("127.0.40.6", 0).await,
        Mode::Slow(Duration::from_millis(500)),
    );
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    backend.set(Mode::Status(200, "ok"));
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flapping_changes_verdict_only_after_rise_or_fall_in_a_row() {
    // 3 up, 3 down, ... with rise = fall = 2.
    let backend = backends::http(
        backends::bind("127.0.40.7", 0).await,
        Mode::Flap { up: 3, down: 3 },
    );
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(
        watch.healths(4).await,
        vec![
            Health::Healthy,
            Health::Unhealthy,
            Health::Healthy,
            Health::Unhealthy
        ]
    );
    watch.stop().await;

    // One failure in five never flips a healthy target with fall = 2.
    let backend = backends::http(
        backends::bind("127.0.40.8", 0).await,
        Mode::Flap { up: 5, down: 1 },
    );
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, backend.addr.port()),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    let deadline = Instant::now() + PATIENCE;
    while backend.requests() < 14 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(backend.requests() >= 14);
    assert_eq!(watch.pending(), vec![]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_codes_and_body_are_checked_and_redirects_not_followed() {
    let other = backends::http(
        backends::bind("127.0.40.10", 0).await,
        Mode::Status(200, "ok"),
    );
    let target = format!("http://127.0.40.10:{}/", other.addr.port());
    let location: &'static str = Box::leak(target.into_boxed_str());
    let backend = backends::http(
        backends::bind("127.0.40.9", 0).await,
        Mode::Redirect(location),
    );
    let port = backend.addr.port();

    // 302 is within the default 200-399: healthy, and the redirect target never sees a probe.
    let mut watch = single(
        ProbeKind::Http,
        backend.addr,
        settings(ProbeKind::Http, port),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    watch.stop().await;
    assert_eq!(other.requests(), 0);

    // Only 200 accepted: the 302 is a failure.
    let mut only_200 = settings(ProbeKind::Http, port);
    only_200.expect_status = vec![(200, 200)];
    let mut watch = single(ProbeKind::Http, backend.addr, only_200).await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;

    // Body check.
    backend.set(Mode::Status(200, "status: ready"));
    let mut wants_ready = settings(ProbeKind::Http, port);
    wants_ready.body_contains = Some("ready".into());
    let mut watch = single(ProbeKind::Http, backend.addr, wants_ready.clone()).await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    backend.set(Mode::Status(200, "status: starting"));
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_checks_the_certificate_for_the_service_name() {
    let (pem, tls) = backends::self_signed("app.gslb.example.com");
    let (backend, server_names) = backends::https(
        backends::bind("127.0.40.11", 0).await,
        tls,
        Mode::Status(200, "ok"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("write ca");
    let port = backend.addr.port();

    let mut trusted = settings(ProbeKind::Https, port);
    trusted.ca_file = Some(ca.clone());
    let mut watch = single(ProbeKind::Https, backend.addr, trusted).await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    watch.stop().await;
    assert!(
        server_names
            .lock()
            .expect("names")
            .iter()
            .all(|n| n == "app.gslb.example.com")
    );
    assert!(!server_names.lock().expect("names").is_empty(), "SNI sent");

    // Not trusted: unhealthy.
    let mut watch = single(
        ProbeKind::Https,
        backend.addr,
        settings(ProbeKind::Https, port),
    )
    .await;
    assert_eq!(watch.healths(1).await, vec![Health::Unhealthy]);
    watch.stop().await;

    // Verification off: healthy.
    let mut insecure = settings(ProbeKind::Https, port);
    insecure.insecure_skip_verify = true;
    let mut watch = single(ProbeKind::Https, backend.addr, insecure).await;
    assert_eq!(watch.healths(1).await, vec![Health::Healthy]);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_target_does_not_hold_up_the_others() {
    let hang = backends::http(backends::bind("127.0.40.12", 0).await, Mode::Hang);
    let port = hang.addr.port();
    let ok = backends::http(
        backends::bind("127.0.40.13", port).await,
        Mode::Status(200, "ok"),
    );
    let bad = backends::http(
        backends::bind("127.0.40.14", port).await,
        Mode::Status(503, "no"),
    );
    let probes = [&hang, &ok, &bad]
        .iter()
        .map(|b| {
            (
                key(ProbeKind::Http, b.addr, "app.gslb.example.com"),
                settings(ProbeKind::Http, port),
            )
        })
        .collect();
    // One probe in flight at a time, on purpose.
    let mut watch = Watch::start(probes, 1);
    let mut got: Vec<(SocketAddr, Health)> = watch
        .next(3)
        .await
        .into_iter()
        .map(|(k, h)| (k.addr, h))
        .collect();
    got.sort_by_key(|(addr, _)| *addr);
    let mut want = vec![
        (hang.addr, Health::Unhealthy),
        (ok.addr, Health::Healthy),
        (bad.addr, Health::Unhealthy),
    ];
    want.sort_by_key(|(addr, _)| *addr);
    assert_eq!(got, want);
    watch.stop().await;
}

// --- DNS answers follow the probes -------------------------------------------------------

/// A config where region eu is local and probed over HTTP on `port`, with `services` added.
fn probed_config(port: u16, services: &str) -> String {
    format!(
        r#"
local_region = "eu"

[server]
listen = ["127.0.0.1:0"]
udp_workers = 1

[probe]
kind = "http"
port = {port}
path = "/health"
interval_ms = 150
timeout_ms = 120

[zone]
name = "gslb.example.com"

[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["127.0.10.1"]

[[regions]]
name = "us"
nameserver = "ns-us.gslb.example.com"
glue = ["127.0.20.1"]

[[regions]]
name = "ap"

{services}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_moves_to_the_next_region_when_the_local_backend_fails_and_back() {
    let backend = backends::http(
        backends::bind("127.0.41.2", 0).await,
        Mode::Status(200, "ok"),
    );
    let services = r#"
[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us", "ap"]
targets = { eu = ["127.0.41.2"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }
"#;
    let server = start_text(&probed_config(backend.addr.port(), services)).await;
    wait_for_answer(server.addr, "app.gslb.example.com", PATIENCE, |a| {
        a == ["127.0.41.2"]
    })
    .await;
    backend.set(Mode::Status(500, "broken"));
    wait_for_answer(server.addr, "app.gslb.example.com", PATIENCE, |a| {
        a == ["198.51.100.1"]
    })
    .await;
    backend.set(Mode::Status(200, "ok"));
    wait_for_answer(server.addr, "app.gslb.example.com", PATIENCE, |a| {
        a == ["127.0.41.2"]
    })
    .await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_drops_the_failing_address_only() {
    let good = backends::http(
        backends::bind("127.0.42.2", 0).await,
        Mode::Status(200, "ok"),
    );
    let port = good.addr.port();
    let bad = backends::http(
        backends::bind("127.0.42.3", port).await,
        Mode::Status(200, "ok"),
    );
    let services = r#"
[[services]]
name = "api.gslb.example.com"
strategy = "round-robin"
targets = { eu = ["127.0.42.2", "127.0.42.3"], us = ["198.51.100.3"] }
"#;
    let server = start_text(&probed_config(port, services)).await;
    wait_for_answer(server.addr, "api.gslb.example.com", PATIENCE, |a| {
        a.len() == 3
    })
    .await;
    bad.stop();
    let got = wait_for_answer(server.addr, "api.gslb.example.com", PATIENCE, |a| {
        a.len() == 2
    })
    .await;
    assert_eq!(got, vec!["127.0.42.2", "198.51.100.3"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_stops_picking_the_failing_region() {
    let backend = backends::http(
        backends::bind("127.0.43.2", 0).await,
        Mode::Status(200, "ok"),
    );
    let services = r#"
[[services]]
name = "web.gslb.example.com"
strategy = "weighted"
weights = { eu = 80, us = 20 }
targets = { eu = ["127.0.43.2"], us = ["198.51.100.2"] }
"#;
    let server = start_text(&probed_config(backend.addr.port(), services)).await;
    backend.set(Mode::Status(503, "down"));
    // Wait until the verdict shows in answers, then no client gets eu any more.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all_us = (0..50u32).all(|i| {
            let subnet = format!("10.0.{i}.0");
            addresses(&udp(
                server.addr,
                &ecs_query("web.gslb.example.com", RecordType::A, &subnet, 24),
            )) == ["198.51.100.2"]
        });
        if all_us {
            break;
        }
        assert!(Instant::now() < deadline, "eu still picked");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for i in 0..300u32 {
        let subnet = format!("10.1.{}.{}", i / 256, i % 256);
        let reply = udp(
            server.addr,
            &ecs_query("web.gslb.example.com", RecordType::A, &subnet, 32),
        );
        assert_eq!(addresses(&reply), vec!["198.51.100.2"]);
    }
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_answers_every_address_when_all_regions_are_down() {
    let backend = backends::http(
        backends::bind("127.0.44.2", 0).await,
        Mode::Status(200, "ok"),
    );
    let services = r#"
[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us", "ap"]
health = { us = "unhealthy", ap = "unhealthy" }
targets = { eu = ["127.0.44.2"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }
"#;
    let server = start_text(&probed_config(backend.addr.port(), services)).await;
    wait_for_answer(server.addr, "app.gslb.example.com", PATIENCE, |a| {
        a == ["127.0.44.2"]
    })
    .await;
    backend.stop();
    let got = wait_for_answer(server.addr, "app.gslb.example.com", PATIENCE, |a| {
        a.len() == 3
    })
    .await;
    assert_eq!(got, vec!["127.0.44.2", "198.51.100.1", "203.0.113.1"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_without_a_verdict_yet_still_answer() {
    // No cold-start window: before any probe has decided, the local region answers.
    let backend = backends::http(backends::bind("127.0.45.2", 0).await, Mode::Hang);
    let services = r#"
[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us"]
targets = { eu = ["127.0.45.2"], us = ["198.51.100.1"] }
"#;
    let mut text = probed_config(backend.addr.port(), services);
    text = text.replace(
        "interval_ms = 150\ntimeout_ms = 120",
        "interval_ms = 60000\ntimeout_ms = 50000",
    );
    let server = start_text(&text).await;
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    assert_eq!(addresses(&reply), vec!["127.0.45.2"]);
    server.app.shutdown().await;
}
