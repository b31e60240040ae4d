//! Health probes against real listeners on 127.x: verdict sequences from the checker, then
//! DNS answers over UDP following the verdicts.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backends::{self, Backend, Mode};
use common::config::{ConfigFile, Probe, Region, Service};
use common::*;
use gslbd::health::ProbeKey;
use gslbd::health::checker;
use gslbd::health::probe::NetProbes;
use gslbd::health::probe_key::Endpoint;
use gslbd::health::runtime::ProbeRuntime;
use gslbd::model::{Health, ProbeKind, ProbeSettings, TargetPolicy};
use gslbd::state::Event;
use gslbd::tasks::Tasks;
use hickory_proto::rr::RecordType;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;

/// A safety bound for waits; tests assert states reached, never how fast.
const PATIENCE: Duration = Duration::from_secs(15);

/// Fast probes of `kind` on `port`: every 150 ms, path /health, rise = fall = 2.
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

/// The probe of `addr` for service `host` (TCP probes have neither host nor path).
fn key(kind: ProbeKind, addr: SocketAddr, host: &str) -> ProbeKey {
    let (host, path) = match kind {
        ProbeKind::Tcp => (String::new(), String::new()),
        _ => (host.to_string(), "/health".to_string()),
    };
    ProbeKey {
        kind,
        endpoint: Endpoint::Addr(addr),
        host,
        path,
    }
}

/// Runs the checker on `probes` and yields verdicts as they come.
struct Watch {
    /// What is watched, named in every assertion message.
    name: &'static str,
    /// The checker's tasks.
    tasks: Tasks,
    events: mpsc::Receiver<Event>,
}

impl Watch {
    fn start(
        name: &'static str,
        probes: Vec<(ProbeKey, ProbeSettings)>,
        concurrency: usize,
    ) -> Self {
        let (tx, events) = mpsc::channel(64);
        let plan: BTreeMap<_, _> = probes.into_iter().collect();
        let metrics = Arc::new(gslbd::metrics::Metrics::new());
        let (_, plans) = tokio::sync::watch::channel(Arc::new(plan));
        let tasks = Tasks::new();
        let runtime = ProbeRuntime::start().expect("the probe runtime starts");
        checker::start(
            &tasks,
            plans,
            Arc::new(NetProbes),
            tx,
            concurrency,
            metrics,
            runtime,
        );
        Self {
            name,
            tasks,
            events,
        }
    }

    /// The next `n` verdicts, with their probe.
    async fn next(&mut self, n: usize) -> Vec<(ProbeKey, Health)> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(PATIENCE, self.events.recv()).await {
                Ok(Some(Event::Verdict { key, verdict, .. })) => out.push((key, verdict.health)),
                Ok(Some(_)) => {}
                _ => panic!("{}: only {} of {n} verdicts: {out:?}", self.name, out.len()),
            }
        }
        out
    }

    /// The next `n` verdicts' health.
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

    /// Stops the checker.
    async fn stop(self) {
        self.tasks.shutdown().await;
    }
}

// --- One target: a listener, the probe's settings, what happens and the verdicts ----------

/// What listens at a row's address.
enum Listener {
    /// An HTTP backend in this mode.
    Http(Mode),
    /// An HTTPS backend with this certificate, in this mode.
    Https(Arc<ServerConfig>, Mode),
    /// Resets every connection as soon as it is accepted.
    Resetting,
    /// Accepts connections and holds them.
    Accepting,
}

/// What a row does or expects next.
enum Step {
    /// The next verdicts are these, in order.
    Verdicts(&'static [Health]),
    /// The backend switches to this mode.
    Set(Mode),
    /// The listener goes away: connections are refused.
    Close,
    /// No verdict comes while the backend serves its first `requests` requests.
    Quiet { requests: u64 },
}

use Health::{Healthy, Unhealthy};
use Step::{Close, Quiet, Set, Verdicts};

/// One probe scenario: probes of service app.gslb.example.com at a listener on `ip`.
struct Row {
    /// Named in every assertion message.
    name: &'static str,
    ip: &'static str,
    listener: Listener,
    /// The probe's settings; the port is the listener's, picked when it binds.
    settings: ProbeSettings,
    steps: Vec<Step>,
}

/// A row's listener once the row ran, for checks of what it saw; stopped when dropped.
struct Served {
    addr: SocketAddr,
    backend: Option<Backend>,
    /// TLS server names (SNI) an HTTPS backend was sent.
    server_names: Option<Arc<Mutex<Vec<String>>>>,
    task: Option<JoinHandle<()>>,
}

impl Served {
    /// The HTTP(S) backend; panics for raw TCP listeners.
    fn backend(&self) -> &Backend {
        self.backend
            .as_ref()
            .expect("an HTTP(S) backend, still listening")
    }

    /// Stops listening: new connections are refused.
    fn close(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.stop();
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.close();
    }
}

impl Row {
    /// A row with [`settings`] of `kind`.
    fn new(
        name: &'static str,
        ip: &'static str,
        kind: ProbeKind,
        listener: Listener,
        steps: Vec<Step>,
    ) -> Self {
        Self {
            name,
            ip,
            listener,
            settings: settings(kind, 0),
            steps,
        }
    }

    /// With `change` made to the probe's settings.
    fn with(mut self, change: impl FnOnce(&mut ProbeSettings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Starts the listener and the checker, takes the steps, stops the checker.
    async fn run(self) -> Served {
        let listener = backends::bind(self.ip, 0).await;
        let addr = listener.local_addr().expect("bound");
        let mut served = Served {
            addr,
            backend: None,
            server_names: None,
            task: None,
        };
        match self.listener {
            Listener::Http(mode) => served.backend = Some(backends::http(listener, mode)),
            Listener::Https(tls, mode) => {
                let (backend, names) = backends::https(listener, tls, mode);
                served.backend = Some(backend);
                served.server_names = Some(names);
            }
            Listener::Resetting => served.task = Some(backends::resetting(listener)),
            Listener::Accepting => served.task = Some(backends::accepting(listener)),
        }
        let settings = ProbeSettings {
            port: addr.port(),
            ..self.settings
        };
        let key = key(settings.kind, addr, "app.gslb.example.com");
        let mut watch = Watch::start(self.name, vec![(key, settings)], 8);
        let name = self.name;
        for step in self.steps {
            match step {
                Verdicts(want) => assert_eq!(watch.healths(want.len()).await, want, "{name}"),
                Set(mode) => served.backend().set(mode),
                Close => served.close(),
                Quiet { requests } => {
                    let backend = served.backend();
                    let deadline = Instant::now() + PATIENCE;
                    while backend.requests() < requests && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    assert!(backend.requests() >= requests, "{name}");
                    assert_eq!(watch.pending(), vec![], "{name}");
                }
            }
        }
        watch.stop().await;
        served
    }
}

/// A `#[tokio::test]` per row of `test: ip, probe kind, listener, [steps];`, the row named
/// for the test.
macro_rules! probe_tests {
    ($($test:ident: $ip:literal, $kind:ident, $listener:expr, [$($step:expr),* $(,)?];)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $test() {
            let steps = vec![$($step),*];
            Row::new(stringify!($test), $ip, ProbeKind::$kind, $listener, steps).run().await;
        }
    )*};
}

probe_tests! {
    http_500_is_unhealthy:
        "127.0.40.2", Http, Listener::Http(Mode::Status(500, "no")), [Verdicts(&[Unhealthy])];
    a_hanging_backend_times_out_unhealthy:
        "127.0.40.3", Http, Listener::Http(Mode::Hang), [Verdicts(&[Unhealthy])];
    a_reset_connection_is_unhealthy:
        "127.0.40.4", Http, Listener::Resetting, [Verdicts(&[Unhealthy])];
    // Connections are refused once the listener is gone.
    tcp_connect_probe_follows_the_listener:
        "127.0.40.5", Tcp, Listener::Accepting,
        [Verdicts(&[Healthy]), Close, Verdicts(&[Unhealthy])];
    a_slow_backend_goes_unhealthy_then_recovers:
        "127.0.40.6", Http, Listener::Http(Mode::Slow(Duration::from_millis(500))),
        [Verdicts(&[Unhealthy]), Set(Mode::Status(200, "ok")), Verdicts(&[Healthy])];
}

#[tokio::test(flavor = "multi_thread")]
async fn flapping_changes_verdict_only_after_rise_or_fall_in_a_row() {
    // rise = fall = 2 throughout.
    let flap = |up, down| Listener::Http(Mode::Flap { up, down });
    let (up_down, one_in_five) = (
        vec![Verdicts(&[Healthy, Unhealthy, Healthy, Unhealthy])],
        vec![Verdicts(&[Healthy]), Quiet { requests: 14 }],
    );
    for row in [
        Row::new(
            "3 up, 3 down",
            "127.0.40.7",
            ProbeKind::Http,
            flap(3, 3),
            up_down,
        ),
        // One failure in five never flips a healthy target with fall = 2.
        Row::new(
            "5 up, 1 down",
            "127.0.40.8",
            ProbeKind::Http,
            flap(5, 1),
            one_in_five,
        ),
    ] {
        row.run().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_200_is_healthy_and_sends_the_service_host_header() {
    let served = Row::new(
        "http 200",
        "127.0.40.1",
        ProbeKind::Http,
        Listener::Http(Mode::Status(200, "ok")),
        vec![Verdicts(&[Healthy])],
    )
    .run()
    .await;
    let hosts = served.backend().hosts();
    let service_host = format!("app.gslb.example.com:{}", served.addr.port());
    assert!(hosts.iter().all(|h| h == &service_host), "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_codes_and_body_are_checked_and_redirects_not_followed() {
    let other = backends::http(
        backends::bind("127.0.40.10", 0).await,
        Mode::Status(200, "ok"),
    );
    let target = format!("http://127.0.40.10:{}/", other.addr.port());
    let location: &'static str = Box::leak(target.into_boxed_str());
    let (ip, http) = ("127.0.40.9", ProbeKind::Http);
    let redirect = || Listener::Http(Mode::Redirect(location));
    let ready = Listener::Http(Mode::Status(200, "status: ready"));
    let starting = Set(Mode::Status(200, "status: starting"));
    for row in [
        // 302 is within the default 200-399: healthy.
        Row::new("302", ip, http, redirect(), vec![Verdicts(&[Healthy])]),
        Row::new(
            "302, only 200",
            ip,
            http,
            redirect(),
            vec![Verdicts(&[Unhealthy])],
        )
        .with(|s| s.expect_status = vec![(200, 200)]),
        Row::new(
            "body",
            ip,
            http,
            ready,
            vec![Verdicts(&[Healthy]), starting, Verdicts(&[Unhealthy])],
        )
        .with(|s| s.body_contains = Some("ready".into())),
    ] {
        row.run().await;
    }
    // The redirect target never saw a probe.
    assert_eq!(other.requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_checks_the_certificate_for_the_service_name() {
    let (pem, tls) = backends::self_signed("app.gslb.example.com");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("write ca");
    let (ip, https) = ("127.0.40.11", ProbeKind::Https);
    let listener = || Listener::Https(tls.clone(), Mode::Status(200, "ok"));

    let trusted = Row::new("trusted", ip, https, listener(), vec![Verdicts(&[Healthy])])
        .with(|s| s.ca_file = Some(ca.clone()))
        .run()
        .await;
    let server_names = trusted.server_names.as_ref().expect("an HTTPS backend");
    let names = server_names.lock().expect("names").clone();
    assert!(names.iter().all(|n| n == "app.gslb.example.com"));
    assert!(!names.is_empty(), "SNI sent");

    for row in [
        Row::new(
            "not trusted",
            ip,
            https,
            listener(),
            vec![Verdicts(&[Unhealthy])],
        ),
        Row::new(
            "verification off",
            ip,
            https,
            listener(),
            vec![Verdicts(&[Healthy])],
        )
        .with(|s| s.insecure_skip_verify = true),
    ] {
        row.run().await;
    }
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
    let mut watch = Watch::start("three targets, one probe at a time", probes, 1);
    let mut got: Vec<(SocketAddr, Health)> = watch
        .next(3)
        .await
        .into_iter()
        .map(|(k, h)| match k.endpoint {
            Endpoint::Addr(addr) => (addr, h),
            Endpoint::Name(..) => panic!("an address was probed: {k}"),
        })
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

/// Region eu of eu, us and ap is local and probed over HTTP on `port`; `service` is served.
fn probed_config(port: u16, service: Service) -> ConfigFile {
    let mut config = ConfigFile::minimal(&["eu", "us"]).seen_from("eu");
    config.regions.push(Region::new("ap"));
    config.probe = Probe {
        path: Some("/health".into()),
        ..Probe::http(port, 150, 120)
    };
    config.services.push(service);
    config
}

/// An HTTP 200 backend on `ip`, and gslbd serving `service` with [`probed_config`] on the
/// backend's port.
async fn start_probed(ip: &str, service: Service) -> (Backend, TestServer) {
    let backend = backends::http(backends::bind(ip, 0).await, Mode::Status(200, "ok"));
    let server = start_config(&probed_config(backend.addr.port(), service)).await;
    (backend, server)
}

/// app.gslb.example.com failing over eu, us, ap: eu's target at `eu` (probed), the others'
/// in documentation ranges (static).
fn app_failover(eu: &str) -> Service {
    Service::failover("app.gslb.example.com", &["eu", "us", "ap"])
        .target("eu", &[eu])
        .target("us", &["198.51.100.1"])
        .target("ap", &["203.0.113.1"])
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_moves_to_the_next_region_when_the_local_backend_fails_and_back() {
    let (backend, server) = start_probed("127.0.41.2", app_failover("127.0.41.2")).await;
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
    let [good, bad] =
        backends::http_on_one_port(["127.0.42.2", "127.0.42.3"], Mode::Status(200, "ok")).await;
    let port = good.addr.port();
    let service = Service::round_robin("api.gslb.example.com")
        .target("eu", &["127.0.42.2", "127.0.42.3"])
        .target("us", &["198.51.100.3"]);
    let server = start_config(&probed_config(port, service)).await;
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
    let service = Service::weighted("web.gslb.example.com", &[("eu", 80), ("us", 20)])
        .target("eu", &["127.0.43.2"])
        .target("us", &["198.51.100.2"]);
    let (backend, server) = start_probed("127.0.43.2", service).await;
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
    let service = app_failover("127.0.44.2")
        .health("us", "unhealthy")
        .health("ap", "unhealthy");
    let (backend, server) = start_probed("127.0.44.2", service).await;
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
    let service = Service::failover("app.gslb.example.com", &["eu", "us"])
        .target("eu", &["127.0.45.2"])
        .target("us", &["198.51.100.1"]);
    let mut config = probed_config(backend.addr.port(), service);
    config.probe.interval_ms = Some(60000);
    config.probe.timeout_ms = Some(50000);
    let server = start_config(&config).await;
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    assert_eq!(addresses(&reply), vec!["127.0.45.2"]);
    server.app.shutdown().await;
}

// --- The probes' own thread --------------------------------------------------------------

/// One thread of a running process, from `/proc/PID/task/TID`.
#[derive(Debug)]
struct Thread {
    name: String,
    nice: i32,
    /// Time it ran on a CPU (`schedstat`).
    ran_ns: u64,
}

fn threads(pid: u32) -> Vec<Thread> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process runs");
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            // Fields after the name's ")": the state is field 3, the nice value field 19.
            let after_name = &stat[stat.rfind(')')? + 1..];
            let nice = after_name.split_whitespace().nth(16)?.parse().ok()?;
            let ran_ns = schedstat.split_whitespace().next()?.parse().ok()?;
            Some(Thread {
                name: name.trim().to_owned(),
                nice,
                ran_ns,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_gslbd_probes_on_its_own_thread_at_a_lower_priority() {
    let backend = backends::http(
        backends::bind("127.0.47.2", 0).await,
        Mode::Status(200, "ok"),
    );
    let config = probed_config(backend.addr.port(), app_failover("127.0.47.2"));
    assert_probes_stay_local(&config.parse());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["run", "--config"])
        .arg(&path)
        .env("GSLBD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start gslbd");
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + PATIENCE;
    while backend.requests() < 3 {
        assert!(Instant::now() < deadline, "gslbd never probed the backend");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.0.id();
    let threads = threads(pid);
    let daemon = threads
        .iter()
        .find(|t| t.name == "gslbd")
        .expect("the runtime's threads are named gslbd");
    let probes: Vec<&Thread> = threads
        .iter()
        .filter(|t| t.name == "gslbd-probes")
        .collect();
    assert!(!probes.is_empty(), "a probe thread in {threads:?}");
    for thread in &probes {
        assert_eq!(
            thread.nice,
            (daemon.nice + gslbd::health::runtime::NICE_STEP).min(19),
            "{threads:?}"
        );
    }
    assert!(
        probes.iter().any(|t| t.ran_ns > 0),
        "the probes ran there: {threads:?}"
    );
    for thread in threads.iter().filter(|t| t.name.starts_with("gslbd-udp")) {
        assert_eq!(
            thread.nice, daemon.nice,
            "answers keep the daemon's priority"
        );
    }
    assert!(
        threads.iter().any(|t| t.name.starts_with("gslbd-udp")),
        "{threads:?}"
    );
    child.kill();
}

/// The child, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}
