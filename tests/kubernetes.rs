//! Kubernetes discovery through a real `kube::Client` against a stand-in API server that speaks
//! the list/watch protocol (tests/common/kube_api.rs): the DNS answers gslbd gives over UDP as
//! Ingresses, EndpointSlices and annotations change; bad annotations and conflicts skipped and
//! reported (Events, metrics); watches that expire (410) or an API server that goes away.

mod common;

use std::time::{Duration, Instant};

use common::backends::Mode;
use common::kube_cluster::{NOERROR, PATIENCE, ingress, slice, start};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_ingresses_endpoints_and_annotations() {
    let app = "app.gslb.example.com";
    let cluster = start(
        ["127.0.70.1", "127.0.70.2"],
        vec![
            ingress(
                "web",
                &[app, "www.example.org"],
                &[
                    ("gslbd.io/strategy", "round-robin"),
                    ("gslbd.io/all-down", "empty"),
                ],
                &["127.0.70.1"],
                "web",
            ),
            slice("web", true),
        ],
    )
    .await;
    cluster.until(app, (NOERROR, &["127.0.70.1"])).await;
    let deadline = Instant::now() + PATIENCE;
    while http_get(cluster.admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ingress controller gets a second address: both are answered (after their probe).
    cluster.api.apply(ingress(
        "web",
        &[app],
        &[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/all-down", "empty"),
        ],
        &["127.0.70.1", "127.0.70.2"],
        "web",
    ));
    cluster
        .until(app, (NOERROR, &["127.0.70.1", "127.0.70.2"]))
        .await;

    // The backend Service loses its ready endpoints: the region is down (no answer), though
    // the ingress probe still passes; and back.
    cluster.api.apply(slice("web", false));
    cluster.until(app, (NOERROR, &[])).await;
    let (_, body) = http_get(cluster.admin, "/explain?name=app&client=192.0.2.1");
    assert!(
        body.contains("0 of 1 backend Services have ready endpoints"),
        "{body}"
    );
    cluster.api.apply(slice("web", true));
    cluster
        .until(app, (NOERROR, &["127.0.70.1", "127.0.70.2"]))
        .await;

    // One address's ingress stops answering: the probe takes it out.
    cluster.backends[1].set(Mode::Status(503, "down"));
    cluster.until(app, (NOERROR, &["127.0.70.1"])).await;

    // Annotations change: TTL (k8gb's alias), then the strategy.
    cluster.api.apply(ingress(
        "web",
        &[app],
        &[
            ("k8gb.io/strategy", "failover"),
            ("k8gb.io/primary-geotag", "eu"),
            ("k8gb.io/dns-ttl-seconds", "7"),
        ],
        &["127.0.70.1", "127.0.70.2"],
        "web",
    ));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, got, ttl) = cluster.answer(app, RecordType::A);
        if ttl == Some(7) {
            assert_eq!(got, ["127.0.70.1"]);
            break;
        }
        assert!(Instant::now() < deadline, "TTL still {ttl:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (_, state) = http_get(cluster.admin, "/state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    let service = state["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == "app.gslb.example.com.")
        .expect("app in /state")
        .clone();
    assert_eq!(service["strategy"], "failover");
    assert_eq!(service["order"], json!(["eu", "us"]));

    // Hosts outside the zone are not served; the Ingress gone, the name goes.
    assert_eq!(
        cluster.answer("www.example.org", RecordType::A).0,
        ResponseCode::Refused
    );
    cluster.api.delete("Ingress", "shop", "web");
    cluster.until(app, (ResponseCode::NXDomain, &[])).await;

    let metrics = cluster.metrics();
    assert!(
        sample(
            &metrics,
            "gslbd_kubernetes_watch_events_total",
            &["kind=\"Ingress\"", "event=\"apply\""]
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "gslbd_kubernetes_watch_events_total",
            &["kind=\"Ingress\"", "event=\"delete\""]
        ) >= 1.0
    );
    assert_eq!(sample(&metrics, "gslbd_kubernetes_services", &[]), 0.0);
    let events = cluster.api.events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Balanced" && e["regarding"]["name"] == "web"),
        "{events:?}"
    );
    cluster.stop().await;
}

/// One Ingress per class of bad annotation, beside a good one: each is skipped with a Warning
/// Event naming the annotation, a log line and a metric; the good one keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn each_class_of_bad_annotation_skips_only_its_object_and_says_why() {
    let good = ingress(
        "good",
        &["good.gslb.example.com"],
        &[("gslbd.io/strategy", "round-robin")],
        &["127.0.71.1"],
        "web",
    );
    // (object name, annotations, key at fault)
    type Bad<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let bad: &[Bad<'_>] = &[
        (
            "strategy",
            &[("gslbd.io/strategy", "random")],
            "gslbd.io/strategy",
        ),
        (
            "region",
            &[
                ("gslbd.io/strategy", "failover"),
                ("gslbd.io/primary-region", "mars"),
            ],
            "gslbd.io/primary-region",
        ),
        (
            "order",
            &[("gslbd.io/strategy", "failover")],
            "gslbd.io/failover-order",
        ),
        (
            "weights",
            &[
                ("gslbd.io/strategy", "weighted"),
                ("gslbd.io/weights", "eu=lots"),
            ],
            "gslbd.io/weights",
        ),
        (
            "ttl",
            &[
                ("gslbd.io/strategy", "geo"),
                ("k8gb.io/dns-ttl-seconds", "-1"),
            ],
            "k8gb.io/dns-ttl-seconds",
        ),
        (
            "address",
            &[
                ("gslbd.io/strategy", "geo"),
                ("k8gb.io/exposed-ip-addresses", "10.0.0.999"),
            ],
            "k8gb.io/exposed-ip-addresses",
        ),
        (
            "probe",
            &[
                ("gslbd.io/strategy", "geo"),
                ("gslbd.io/probe-scheme", "ftp"),
            ],
            "gslbd.io/probe-scheme",
        ),
        (
            "policy",
            &[
                ("gslbd.io/strategy", "geo"),
                ("gslbd.io/health-policy", "most"),
            ],
            "gslbd.io/health-policy",
        ),
    ];
    let mut objects = vec![good, slice("web", true)];
    for (name, annotations, _) in bad {
        objects.push(ingress(
            name,
            &[&format!("{name}.gslb.example.com")],
            annotations,
            &["127.0.71.1"],
            "web",
        ));
    }
    // Outside the zone entirely.
    objects.push(ingress(
        "elsewhere",
        &["shop.example.org"],
        &[("gslbd.io/strategy", "geo")],
        &["127.0.71.1"],
        "web",
    ));
    let cluster = start(["127.0.71.1"], objects).await;
    cluster
        .until("good.gslb.example.com", (NOERROR, &["127.0.71.1"]))
        .await;
    for (name, _, key) in bad {
        let host = format!("{name}.gslb.example.com");
        assert_eq!(
            cluster.answer(&host, RecordType::A).0,
            ResponseCode::NXDomain,
            "{host}"
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = cluster.api.events();
            let found = events.iter().find(|e| e["regarding"]["name"] == *name);
            if let Some(event) = found {
                assert_eq!(event["type"], "Warning", "{event}");
                assert_eq!(event["reason"], "BadAnnotation", "{event}");
                let note = event["note"].as_str().expect("note");
                assert!(note.contains(key), "{name}: {note}");
                assert_eq!(event["regarding"]["kind"], "Ingress");
                assert_eq!(event["regarding"]["namespace"], "shop");
                break;
            }
            assert!(Instant::now() < deadline, "no Event for {name}: {events:?}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let metrics = cluster.metrics();
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_objects_skipped",
            &["kind=\"Ingress\"", "reason=\"BadAnnotation\""]
        ),
        bad.len() as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_objects_skipped",
            &["reason=\"NoHostInZone\""]
        ),
        1.0
    );
    assert_eq!(sample(&metrics, "gslbd_kubernetes_services", &[]), 1.0);

    // Fixing an object's annotation brings its host in.
    cluster.api.apply(ingress(
        "ttl",
        &["ttl.gslb.example.com"],
        &[
            ("gslbd.io/strategy", "geo"),
            ("k8gb.io/dns-ttl-seconds", "60"),
        ],
        &["127.0.71.1"],
        "web",
    ));
    cluster
        .until("ttl.gslb.example.com", (NOERROR, &["127.0.71.1"]))
        .await;
    cluster.stop().await;
}

/// Two Ingresses claim one host: the same settings share it; different settings, the older
/// object wins whatever the order they arrive in, and the other is told why.
#[tokio::test(flavor = "multi_thread")]
async fn two_objects_claiming_one_host_resolve_deterministically() {
    let host = "shared.gslb.example.com";
    let with_time = |mut object: Value, created: &str| {
        object["metadata"]["creationTimestamp"] = json!(created);
        object
    };
    // The newer one is listed first.
    let newer = with_time(
        ingress(
            "newer",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "11")],
            &["127.0.72.2"],
            "web",
        ),
        "2026-03-01T00:00:00Z",
    );
    let older = with_time(
        ingress(
            "older",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "22")],
            &["127.0.72.1"],
            "web",
        ),
        "2026-02-01T00:00:00Z",
    );
    let cluster = start(
        ["127.0.72.1", "127.0.72.2"],
        vec![newer, older.clone(), slice("web", true)],
    )
    .await;
    cluster.until(host, (NOERROR, &["127.0.72.1"])).await;
    assert_eq!(cluster.answer(host, RecordType::A).2, Some(22));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = cluster.api.events();
        if let Some(event) = events
            .iter()
            .find(|e| e["regarding"]["name"] == "newer" && e["reason"] == "HostConflict")
        {
            let note = event["note"].as_str().expect("note");
            assert!(note.contains("Ingress shop/older"), "{note}");
            break;
        }
        assert!(Instant::now() < deadline, "no conflict Event: {events:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        sample(
            &cluster.metrics(),
            "gslbd_kubernetes_objects_skipped",
            &["reason=\"HostConflict\""]
        ),
        1.0
    );
    // The newer one takes the same settings: both addresses serve the host.
    cluster.api.apply(with_time(
        ingress(
            "newer",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "22")],
            &["127.0.72.2"],
            "web",
        ),
        "2026-03-01T00:00:00Z",
    ));
    cluster
        .until(host, (NOERROR, &["127.0.72.1", "127.0.72.2"]))
        .await;
    cluster.stop().await;
}

/// The API server goes away: the last known services keep answering and the watches retry;
/// it comes back after its history was compacted (410 Gone): the watches list again, and the
/// changes made meanwhile are applied without losing or duplicating services.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_server_and_expired_watches_lose_nothing() {
    let a = "a.gslb.example.com";
    let b = "b.gslb.example.com";
    let annotations = [("gslbd.io/strategy", "round-robin")];
    let cluster = start(
        ["127.0.73.1", "127.0.73.2"],
        vec![
            ingress("a", &[a], &annotations, &["127.0.73.1"], "web"),
            ingress("b", &[b], &annotations, &["127.0.73.2"], "web"),
            slice("web", true),
        ],
    )
    .await;
    cluster.until(a, (NOERROR, &["127.0.73.1"])).await;
    cluster.until(b, (NOERROR, &["127.0.73.2"])).await;

    cluster.api.set_down(true).await;
    let deadline = Instant::now() + PATIENCE;
    while sample(
        &cluster.metrics(),
        "gslbd_kubernetes_watch_errors_total",
        &[],
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "no watch error counted: {:?}",
            cluster.api.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still answering from the last known state.
    for _ in 0..5 {
        assert_eq!(cluster.answer(a, RecordType::A).1, ["127.0.73.1"]);
        assert_eq!(cluster.answer(b, RecordType::A).1, ["127.0.73.2"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Meanwhile: b is deleted, c is created, a moves; the history is compacted.
    cluster.api.delete("Ingress", "shop", "b");
    cluster.api.apply(ingress(
        "c",
        &["c.gslb.example.com"],
        &annotations,
        &["127.0.73.2"],
        "web",
    ));
    cluster
        .api
        .apply(ingress("a", &[a], &annotations, &["127.0.73.2"], "web"));
    cluster.api.compact();
    let lists_before = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.starts_with("LIST /apis/networking.k8s.io/v1/ingresses"))
        .count();
    cluster.api.set_down(false).await;

    cluster.until(a, (NOERROR, &["127.0.73.2"])).await;
    cluster.until(b, (ResponseCode::NXDomain, &[])).await;
    cluster
        .until("c.gslb.example.com", (NOERROR, &["127.0.73.2"]))
        .await;
    let lists_after = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.starts_with("LIST /apis/networking.k8s.io/v1/ingresses"))
        .count();
    assert!(lists_after > lists_before, "the watch listed again");
    // Exactly the two live services, once each.
    let (_, state) = http_get(cluster.admin, "/state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    let mut names: Vec<&str> = state["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["a.gslb.example.com.", "c.gslb.example.com."]);
    cluster.stop().await;
}

/// Waits for a Warning Event with `reason` on the object named `object`; returns its note.
async fn warning(cluster: &common::kube_cluster::Cluster, object: &str, reason: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = cluster.api.events();
        if let Some(event) = events
            .iter()
            .find(|e| e["regarding"]["name"] == object && e["reason"] == reason)
        {
            assert_eq!(event["type"], "Warning", "{event}");
            return event["note"].as_str().expect("note").to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} Event on {object}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Objects naming the zone's own names (a nameserver name, the apex, a wildcard) cannot take
/// them over: those hosts are refused with a Warning Event, a log line and a metric, the
/// zone keeps answering its SOA, NS and glue, and the objects' other hosts are balanced.
#[tokio::test(flavor = "multi_thread")]
async fn hosts_the_zone_owns_are_refused_and_keep_their_records() {
    let round_robin = [("gslbd.io/strategy", "round-robin")];
    let hijack = ingress(
        "hijack",
        &[
            "ns-us.gslb.example.com",
            "gslb.example.com",
            "*.gslb.example.com",
            "shop.gslb.example.com",
        ],
        &round_robin,
        &["127.0.78.1"],
        "web",
    );
    let apex_only = ingress(
        "apex-only",
        &["GSLB.example.com."],
        &round_robin,
        &["127.0.78.1"],
        "web",
    );
    let gateway = json!({
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "shop"},
        "spec": {"gatewayClassName": "example", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        "status": {"addresses": [{"type": "IPAddress", "value": "127.0.78.1"}]},
    });
    let route = json!({
        "kind": "HTTPRoute",
        "metadata": {"name": "route", "namespace": "shop",
                     "annotations": {"gslbd.io/strategy": "round-robin"}},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "hostnames": ["ns-eu.gslb.example.com", "route.gslb.example.com"],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
        },
    });
    let cluster = start(
        ["127.0.78.1"],
        vec![hijack, apex_only, gateway, route, slice("web", true)],
    )
    .await;
    cluster
        .until("shop.gslb.example.com", (NOERROR, &["127.0.78.1"]))
        .await;
    cluster
        .until("route.gslb.example.com", (NOERROR, &["127.0.78.1"]))
        .await;

    // The Events say which host and why; the object balanced for others says so too.
    let note = warning(&cluster, "hijack", "HostRefused").await;
    for said in [
        "ns-us.gslb.example.com cannot be balanced: it is a nameserver name of the zone",
        "gslb.example.com cannot be balanced: it is the zone apex",
        "*.gslb.example.com cannot be balanced: it is a wildcard name",
    ] {
        assert!(note.contains(said), "{said} in {note}");
    }
    let note = warning(&cluster, "route", "HostRefused").await;
    assert!(note.contains("ns-eu.gslb.example.com"), "{note}");
    let note = warning(&cluster, "apex-only", "HostRefused").await;
    assert!(
        note.contains("no host it names may be balanced: GSLB.example.com cannot be balanced: it is the zone apex"),
        "{note}"
    );
    let events = cluster.api.events();
    assert!(
        events
            .iter()
            .any(|e| e["regarding"]["name"] == "hijack" && e["reason"] == "Balanced"),
        "{events:?}"
    );

    // The zone's own records, over UDP: glue, SOA, NS with its glue; no wildcard answers.
    let dns = cluster.server.addr;
    assert_eq!(
        cluster.answer("ns-us.gslb.example.com", RecordType::A).1,
        ["127.0.20.1"]
    );
    assert_eq!(
        cluster.answer("ns-eu.gslb.example.com", RecordType::A).1,
        ["127.0.10.1"]
    );
    let (rcode, soa, _) = records(dns, "gslb.example.com", RecordType::SOA);
    assert_eq!(rcode, NOERROR);
    assert_eq!(soa.len(), 1, "{soa:?}");
    assert!(soa[0].starts_with("ns-eu.gslb.example.com. "), "{soa:?}");
    let (rcode, ns, glue) = records(dns, "gslb.example.com", RecordType::NS);
    assert_eq!(rcode, NOERROR);
    assert_eq!(ns, ["ns-eu.gslb.example.com.", "ns-us.gslb.example.com."]);
    assert_eq!(
        glue,
        [
            "ns-eu.gslb.example.com. 127.0.10.1",
            "ns-us.gslb.example.com. 127.0.20.1"
        ]
    );
    assert_eq!(
        cluster.answer("gslb.example.com", RecordType::A).1,
        Vec::<String>::new(),
        "the apex has no address"
    );
    for name in ["*.gslb.example.com", "anything.gslb.example.com"] {
        assert_eq!(
            cluster.answer(name, RecordType::A).0,
            ResponseCode::NXDomain,
            "{name}"
        );
    }

    let metrics = cluster.metrics();
    // hijack's three and apex-only's apex; the route's nameserver under its own kind.
    for (reason, hosts) in [("nameserver", 1.0), ("apex", 2.0), ("wildcard", 1.0)] {
        assert_eq!(
            sample(
                &metrics,
                "gslbd_kubernetes_hosts_refused",
                &["kind=\"Ingress\"", &format!("reason=\"{reason}\"")]
            ),
            hosts,
            "{reason}: {metrics}"
        );
    }
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_hosts_refused",
            &["kind=\"HTTPRoute\"", "reason=\"nameserver\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_objects_skipped",
            &["reason=\"HostRefused\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "gslbd_kubernetes_services", &[]), 2.0);
    cluster.stop().await;
}
