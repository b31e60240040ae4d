//! The admin endpoint: /healthz, /readyz after the first probe round, and /metrics whose
//! counters move with real DNS traffic and reloads.

mod common;

use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::config::{ConfigFile, Probe, Service};
use common::*;
use hickory_proto::rr::RecordType;

/// The base config seen from region eu, whose services keep their static health (no
/// probes), with the admin listener on and `service` probed on its own terms.
fn with_probed_service(service: Service) -> ConfigFile {
    let mut config = ConfigFile::base().seen_from("eu");
    config.probe = Probe::none();
    config.server.admin = Some("127.0.0.1:0".into());
    config.services.push(service);
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_follow_what_happens() {
    let backend = backends::http(
        backends::bind("127.0.46.2", 0).await,
        Mode::Slow(Duration::from_millis(300)),
    );
    let config = with_probed_service(
        Service::round_robin("probed.gslb.example.com")
            .probe(Probe::http(backend.addr.port(), 1000, 900))
            .target("eu", &["127.0.46.2"]),
    );
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin enabled");

    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    // The probe answers after 300 ms: not ready before its first result, ready after.
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("waiting for the first result of 1 probes"),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while http_get(admin, "/readyz").0 != 200 {
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

    let (status, metrics) = http_get(admin, "/metrics");
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
    std::fs::write(&path, config.to_toml()).expect("write config");
    server.app.reload_from(&path).await.expect("valid");
    std::fs::write(&path, "[zone").expect("write config");
    assert!(server.app.reload_from(&path).await.is_err());
    let (_, metrics) = http_get(admin, "/metrics");
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
#[should_panic(expected = "only 127.0.0.0/8, ::1 and localhost may be probed")]
fn the_test_guard_refuses_configs_that_would_probe_beyond_loopback() {
    // Parsed only: nothing starts, nothing is sent.
    assert_probes_stay_local(&ConfigFile::base().seen_from("eu").parse());
}

/// /state, /explain and the per-service metrics, while the local region of a failover service
/// fails its probe.
#[tokio::test(flavor = "multi_thread")]
async fn state_explain_and_failover_metrics_follow_a_failing_region() {
    let backend = backends::http(
        backends::bind("127.0.46.3", 0).await,
        Mode::Status(200, "ok"),
    );
    let mut config = with_probed_service(
        Service::failover("svc.gslb.example.com", &["eu", "us"])
            .probe(Probe::http(backend.addr.port(), 200, 150).rise_fall(1, 2))
            .target("eu", &["127.0.46.3"])
            .target("us", &["198.51.100.9"]),
    );
    config.server.per_service_metrics = Some(true);
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin enabled");
    let svc = "svc.gslb.example.com";
    let eu = vec!["127.0.46.3".to_string()];
    let us = vec!["198.51.100.9".to_string()];
    wait_for_answer(server.addr, svc, Duration::from_secs(10), |a| a == eu).await;

    // Unknown answers too; wait for the probe's verdict.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(admin, "/state").1.contains("\"healthy\":1") {
        assert!(Instant::now() < deadline, "no verdict");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // /state: every service and region, with health and why.
    let (status, body) = http_get(admin, "/state");
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(state["zone"], "gslb.example.com.");
    assert_eq!(state["regions"][0]["status"], "local");
    assert_eq!(state["regions"][1]["status"], "static");
    let service = |state: &serde_json::Value| {
        state["services"]
            .as_array()
            .expect("services")
            .iter()
            .find(|s| s["name"] == "svc.gslb.example.com.")
            .cloned()
            .expect("svc in /state")
    };
    let svc_state = service(&state);
    assert_eq!(svc_state["strategy"], "failover");
    assert_eq!(svc_state["order"], serde_json::json!(["eu", "us"]));
    assert_eq!(svc_state["regions"][0]["health"], "healthy");
    assert_eq!(svc_state["regions"][0]["why"]["source"], "probes");
    assert_eq!(svc_state["regions"][0]["why"]["healthy"], 1);
    assert_eq!(svc_state["regions"][1]["why"]["source"], "no_gossip");

    // /explain gives what a real query gets, and why.
    let explain = |path: &str| {
        let (status, body) = http_get(admin, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
    };
    let now = explain("/explain?name=svc&client=198.51.100.7");
    assert_eq!(now["name"], "svc.gslb.example.com.");
    assert_eq!(now["rcode"], "NOERROR");
    assert_eq!(now["answer"], serde_json::json!(eu));
    assert_eq!(now["ttl"], 30);
    let decision = now["decision"].as_str().expect("decision");
    assert!(decision.contains("first available is eu"), "{decision}");
    // What if eu were down: us, with the reason; the served answer does not change.
    let what_if = explain("/explain?name=svc.gslb.example.com&client=198.51.100.7&down=eu");
    assert_eq!(what_if["answer"], serde_json::json!(us));
    assert_eq!(what_if["what_if_down"], serde_json::json!(["eu"]));
    assert_eq!(what_if["service"]["regions"][0]["why"]["source"], "what_if");
    let decision = what_if["decision"].as_str().expect("decision");
    assert!(decision.contains("first available is us"), "{decision}");
    assert_eq!(sorted_answer(server.addr, svc), eu);
    // Geo placement is explained with the client's nearest-first order.
    let geo = explain("/explain?name=geo.gslb.example.com.&client=203.0.113.5");
    assert_eq!(geo["answer"], serde_json::json!(["203.0.113.5"]));
    let decision = geo["decision"].as_str().expect("decision");
    assert!(decision.contains("nearest to ap"), "{decision}");
    // Names that are not services get the rcode a query gets.
    assert_eq!(
        explain("/explain?name=nope&client=192.0.2.1")["rcode"],
        "NXDOMAIN"
    );
    assert_eq!(
        explain("/explain?name=example.org.&client=192.0.2.1")["rcode"],
        "REFUSED"
    );
    // Bad questions are refused, saying why.
    for (path, why) in [
        ("/explain?client=192.0.2.1", "missing name="),
        ("/explain?name=svc", "missing client="),
        ("/explain?name=svc&client=nobody", "bad client address"),
        (
            "/explain?name=svc&client=192.0.2.1&type=MX",
            "type must be A or AAAA",
        ),
        (
            "/explain?name=svc&client=192.0.2.1&down=mars",
            "unknown region \"mars\"",
        ),
    ] {
        let (status, body) = http_get(admin, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
    }

    // Answers by strategy, and per service (switched on above).
    for _ in 0..10 {
        udp(server.addr, &query(svc, RecordType::A));
    }
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        sample(
            &metrics,
            "gslbd_dns_answers_total",
            &["strategy=\"failover\"", "result=\"healthy\""]
        ) >= 10.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "gslbd_dns_service_answers_total",
            &["service=\"svc.gslb.example.com\"", "result=\"healthy\""]
        ) >= 10.0,
        "{metrics}"
    );
    let svc_eu = ["service=\"svc.gslb.example.com\"", "region=\"eu\""];
    assert_eq!(
        sample(&metrics, "gslbd_service_region_health", &svc_eu),
        1.0
    );
    assert_eq!(
        sample(&metrics, "gslbd_service_region_healthy_targets", &svc_eu),
        1.0
    );
    assert_eq!(
        sample(&metrics, "gslbd_failover_seconds_count", &["region=\"eu\""]),
        0.0
    );
    let eu_services = |metrics: &str, health: &str| {
        let health = format!("health=\"{health}\"");
        sample(
            metrics,
            "gslbd_region_services",
            &["region=\"eu\"", health.as_str()],
        )
    };
    let all = sample(&metrics, "gslbd_region_services", &["region=\"eu\""]);
    assert_eq!(eu_services(&metrics, "healthy"), all, "{metrics}");
    assert_eq!(sample(&metrics, "gslbd_services_unavailable", &[]), 0.0);

    // eu's backend fails: answers move to us, and the metrics and /state say so.
    backend.set(Mode::Status(500, "down"));
    wait_for_answer(server.addr, svc, Duration::from_secs(10), |a| a == us).await;
    let (_, metrics) = http_get(admin, "/metrics");
    assert_eq!(
        sample(&metrics, "gslbd_service_region_health", &svc_eu),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "gslbd_service_region_healthy_targets", &svc_eu),
        0.0
    );
    assert_eq!(
        sample(&metrics, "gslbd_service_region_targets", &svc_eu),
        1.0
    );
    assert_eq!(
        sample(&metrics, "gslbd_failover_seconds_count", &["region=\"eu\""]),
        1.0,
        "one failover of eu: {metrics}"
    );
    assert!(sample(&metrics, "gslbd_failover_seconds_sum", &["region=\"eu\""]) > 0.0);
    assert_eq!(eu_services(&metrics, "unhealthy"), 1.0, "{metrics}");
    assert_eq!(eu_services(&metrics, "healthy"), all - 1.0);
    let state: serde_json::Value =
        serde_json::from_str(&http_get(admin, "/state").1).expect("JSON");
    let eu_state = &service(&state)["regions"][0];
    assert_eq!(eu_state["health"], "unhealthy");
    assert_eq!(eu_state["why"]["unhealthy"], 1);
    assert_eq!(eu_state["answerable"], serde_json::json!([]));
    let since = eu_state["down_since_ms"].as_u64().expect("down since");
    assert!(since <= gslbd::unix_ms(), "{since}");
    server.app.shutdown().await;
}

/// Above `server.service_metrics_limit` services the per (service, region) series are left
/// out; the per-region totals remain and follow health.
#[tokio::test(flavor = "multi_thread")]
async fn large_zones_export_per_region_totals_only() {
    let mut config = ConfigFile::base().seen_from("eu");
    config.probe = Probe::none();
    config.server.admin = Some("127.0.0.1:0".into());
    let services = config.services.len();
    assert!(services >= 2, "the base config has several services");
    config.server.service_metrics_limit = Some(services - 1);
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin enabled");
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        !metrics.contains("gslbd_service_region_"),
        "no per (service, region) series: {metrics}"
    );
    let total = sample(&metrics, "gslbd_region_services", &[]);
    let per_region: usize = config.services.iter().map(|s| s.targets.len()).sum();
    assert_eq!(total, per_region as f64, "{metrics}");
    assert!(sample(&metrics, "gslbd_region_services", &["health=\"healthy\""]) > 0.0);

    // At the limit, they are there.
    let mut small = config.clone();
    small.server.service_metrics_limit = Some(services);
    let server = start_config(&small).await;
    let admin = server.app.admin_addr().expect("admin enabled");
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        sample(&metrics, "gslbd_service_region_targets", &[]) > 0.0,
        "{metrics}"
    );
}
