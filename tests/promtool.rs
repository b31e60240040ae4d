//! The monitoring kit against Prometheus' own tool: a live scrape of a gossiping server that
//! went through a failover passes `promtool check metrics`; the alert rules pass `promtool
//! check rules` and their unit tests; every dashboard expression parses (as a recording rule)
//! and every metric the dashboard and alerts name is one gslbd exports.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::backends::Mode;
use common::cluster::*;
use common::config::{ConfigFile, Kubernetes, Probe};
use common::kube_api::FakeApi;
use common::*;
use hickory_proto::rr::RecordType;

const NEEDS: &str = "needs promtool (Debian prometheus): run by .ci/run";

fn promtool(args: &[&str], stdin: Option<&str>, dir: &Path) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Metric names in a text exposition (`# TYPE` lines and sample names).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if !line.starts_with('#') => line.split(['{', ' ']).next(),
            None => None,
        })
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// `gslbd_*` names an expression mentions.
fn named(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("gslbd_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(expr.len(), |e| start + e);
        if boundary && !expr[start..end].contains(':') {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts.
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
        .replace("${service}", ".*")
        .replace("$service", ".*")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs promtool (Debian prometheus): run by .ci/run"]
async fn live_scrape_rules_and_dashboard_pass_promtool() {
    let _ = NEEDS;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cluster = Cluster::start_with(68, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
        config.server.per_service_metrics = Some(true);
    })
    .await;
    let eu = vec![cluster.addr(0)];
    let us = vec![cluster.addr(1)];
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, "app.gslb.example.com", PATIENCE, |a| {
            a == eu
        })
        .await;
    }
    // A failover, so that every family has samples.
    cluster.backends[0].set(Mode::Status(503, "down"));
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, "app.gslb.example.com", PATIENCE, |a| {
            a == us
        })
        .await;
    }
    let node = cluster.node(1);
    for _ in 0..5 {
        udp(node.dns, &query("app.gslb.example.com", RecordType::A));
        udp(node.dns, &query("api.gslb.example.com", RecordType::AAAA));
        tcp(node.dns, &query("nope.gslb.example.com", RecordType::A));
        udp(node.dns, &query("example.org", RecordType::A));
    }
    let gossip = node.app.gossip().expect("gossip").local_addr;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.send_to(b"not gossip", gossip).expect("send");
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[zone").expect("write");
    assert!(node.app.reload_from(&bad).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A server discovering from Kubernetes (a stand-in API server), with one good and one
    // badly annotated Ingress, and one claiming a nameserver's name.
    let api = FakeApi::start("127.0.0.1").await;
    for (name, strategy) in [("good", "geo"), ("bad", "random")] {
        api.apply(serde_json::json!({
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop",
                         "annotations": {"gslbd.io/strategy": strategy}},
            "spec": {"rules": [{"host": format!("{name}.gslb.example.com")}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.68.9"}]}},
        }));
    }
    api.apply(serde_json::json!({
        "kind": "Ingress",
        "metadata": {"name": "hijack", "namespace": "shop",
                     "annotations": {"gslbd.io/strategy": "geo"}},
        "spec": {"rules": [{"host": "ns-us.gslb.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.68.10"}]}},
    }));
    // Signed with the repository's test key, so that the DNSSEC series are exported too.
    let mut config = ConfigFile::base().seen_from("eu");
    config.server.udp_workers = Some(1);
    config.server.admin = Some("127.0.0.1:0".into());
    config.probe = Probe::none();
    config.zone.dnssec = Some(common::config::Dnssec {
        keys: vec![
            root.join("config/dnssec/Kgslb.example.com.+013+60818")
                .display()
                .to_string(),
        ],
        ..Default::default()
    });
    config.kubernetes = Some(Kubernetes {
        api_server: Some(api.url()),
        ..Kubernetes::default()
    });
    let kube_node = start_config(&config).await;
    wait_for_answer(kube_node.addr, "good.gslb.example.com", PATIENCE, |a| {
        a == ["127.0.68.9"]
    })
    .await;
    let mut signed = query("good.gslb.example.com", RecordType::A);
    signed.edns.as_mut().expect("edns").set_dnssec_ok(true);
    udp(kube_node.addr, &signed);

    let mut exported = BTreeSet::new();
    for admin in [node.app.admin_addr(), kube_node.app.admin_addr()] {
        let (_, scrape) = http_get(admin.expect("admin"), "/metrics");
        let (ok, lint) = promtool(&["check", "metrics"], Some(&scrape), root);
        assert!(ok, "promtool check metrics:\n{lint}\n{scrape}");
        exported.extend(self::exported(&scrape));
    }
    for skipped in [
        "gslbd_kubernetes_objects_skipped",
        "gslbd_kubernetes_hosts_refused",
        "gslbd_dnssec_signatures_total",
        "gslbd_dnssec_key",
    ] {
        assert!(exported.contains(skipped), "{skipped}: {exported:?}");
    }

    // Alert rules: syntax, and their unit tests.
    let rules_dir = root.join("deploy/prometheus");
    let (ok, out) = promtool(&["check", "rules", "gslbd-alerts.yaml"], None, &rules_dir);
    assert!(ok, "{out}");
    let (ok, out) = promtool(
        &["test", "rules", "gslbd-alerts.test.yaml"],
        None,
        &rules_dir,
    );
    assert!(ok, "{out}");
    let rules = std::fs::read_to_string(rules_dir.join("gslbd-alerts.yaml")).expect("rules");
    let mut names: Vec<(String, String)> = named(&rules)
        .into_iter()
        .map(|n| ("alert rules".to_string(), n))
        .collect();

    // Dashboard: every target expression parses, as a recording rule.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/gslbd-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut recording = String::from("groups:\n  - name: gslbd-dashboard\n    rules:\n");
    let mut count = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            count += 1;
            recording.push_str(&format!(
                "      - record: gslbd_dashboard:panel_{}_{}\n        expr: {}\n",
                panel["id"],
                target["refId"].as_str().unwrap_or("A"),
                serde_json::to_string(&without_grafana_variables(expr)).expect("quoted")
            ));
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            names.extend(named(expr).into_iter().map(|n| (title.clone(), n)));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            names.extend(
                named(query)
                    .into_iter()
                    .map(|n| ("variables".to_string(), n)),
            );
        }
    }
    assert!(count >= 20, "the dashboard has its panels: {count}");
    let path = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&path, &recording).expect("write");
    let (ok, out) = promtool(
        &["check", "rules", path.to_str().expect("utf-8")],
        None,
        root,
    );
    assert!(ok, "dashboard expressions:\n{out}\n{recording}");

    let unknown: Vec<&(String, String)> = names
        .iter()
        .filter(|(_, name)| !exported.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "named but not exported: {unknown:?}\nexported: {exported:?}"
    );
    kube_node.app.shutdown().await;
    api.stop();
    cluster.shutdown().await;
}
