//! The admin endpoint: /healthz, /readyz after the first probe round, and /metrics whose
//! counters move with real DNS traffic and reloads.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::*;
use hickory_proto::rr::RecordType;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample whose line holds every `labels` fragment.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_follow_what_happens() {
    let backend = backends::http(
        backends::bind("127.0.46.2", 0).await,
        Mode::Slow(Duration::from_millis(300)),
    );
    let text = format!(
        "local_region = \"eu\"\n[probe]\nkind = \"none\"\n{}\n[[services]]\nname = \"probed.gslb.example.com\"\nstrategy = \"round-robin\"\nprobe = {{ kind = \"http\", port = {}, interval_ms = 1000, timeout_ms = 900 }}\ntargets = {{ eu = [\"127.0.46.2\"] }}\n",
        BASE.replace(
            "udp_workers = 2",
            "udp_workers = 2\nadmin = \"127.0.0.1:0\""
        ),
        backend.addr.port()
    );
    let server = start_text(&text).await;
    let admin = server.app.admin_addr().expect("admin enabled");

    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_string()));
    // The probe answers after 300 ms: not ready before its first result, ready after.
    let (status, body) = get(admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("waiting for the first result of 1 probes"),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for _ in 0..20 {
        udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    }
    for _ in 0..3 {
        udp(
            server.addr,
            &query("nope.gslb.example.com", RecordType::AAAA),
        );
        udp(server.addr, &query("example.org", RecordType::A));
        tcp(server.addr, &query("gslb.example.com", RecordType::SOA));
    }
    let mut response = query("app.gslb.example.com", RecordType::A);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    let _ = udp_raw_wait(server.addr, &bytes(&response), Duration::from_millis(200));

    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    let q = "gslbd_dns_queries_total";
    assert!(
        sample(
            &metrics,
            q,
            &["transport=\"udp\"", "qtype=\"A\"", "rcode=\"NOERROR\""]
        ) >= 20.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            q,
            &["transport=\"udp\"", "qtype=\"AAAA\"", "rcode=\"NXDOMAIN\""]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            q,
            &["transport=\"udp\"", "qtype=\"A\"", "rcode=\"REFUSED\""]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            q,
            &["transport=\"tcp\"", "qtype=\"SOA\"", "rcode=\"NOERROR\""]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            "gslbd_dns_dropped_total",
            &["reason=\"not_a_query\""]
        ),
        1.0
    );
    assert!(sample(&metrics, "gslbd_snapshot_builds_total", &[]) >= 1.0);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    std::fs::write(&path, &text).expect("write config");
    server.app.reload_from(&path).await.expect("valid");
    std::fs::write(&path, "[zone").expect("write config");
    assert!(server.app.reload_from(&path).await.is_err());
    let (_, metrics) = get(admin, "/metrics");
    assert_eq!(
        sample(&metrics, "gslbd_config_reloads_total", &["result=\"ok\""]),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "gslbd_config_reloads_total",
            &["result=\"error\""]
        ),
        1.0
    );
    assert!(
        sample(&metrics, "gslbd_snapshot_builds_total", &[]) >= 2.0,
        "the reload rebuilt"
    );
    server.app.shutdown().await;
}

#[test]
#[should_panic(expected = "only 127.0.0.0/8 and ::1 may be probed")]
fn the_test_guard_refuses_configs_that_would_probe_beyond_loopback() {
    // Parsed only: nothing starts, nothing is sent.
    let config = gslbd::config::parse(&format!("local_region = \"eu\"\n{BASE}")).expect("valid");
    assert_probes_stay_local(&config);
}
