//! `gslbd check-config`: every class of bad config is refused, naming the field and the reason.

mod common;

use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    std::fs::write(&path, text).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run gslbd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

fn assert_refused(text: &str, expected: &[&str]) {
    let (ok, stderr) = check(text);
    assert!(!ok, "config accepted, expected {expected:?}");
    for needle in expected {
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    }
}

fn base_with(from: &str, to: &str) -> String {
    assert!(
        common::BASE.contains(from),
        "test edits an existing line: {from}"
    );
    common::BASE.replacen(from, to, 1)
}

#[test]
fn example_and_test_configs_are_valid() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .expect("read example");
    let (ok, stderr) = check(&example);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ok (zone gslb.example.com., 3 regions, 4 services)"),
        "{stderr}"
    );
    let (ok, stderr) = check(common::BASE);
    assert!(ok, "{stderr}");
}

#[test]
fn unknown_keys_are_named() {
    assert_refused(
        &base_with("ttl = 30", "ttl = 30\ntll = 5"),
        &["zone", "unknown field `tll`"],
    );
    assert_refused(
        &base_with("strategy = \"geo\"", "strategy = \"geo\"\nweight = 3"),
        &["services[3]", "unknown field `weight`"],
    );
}

#[test]
fn bad_addresses_are_named() {
    assert_refused(
        &base_with("\"192.0.2.2\"", "\"192.0.2.300\""),
        &["services[1].targets.eu[0]", "invalid IP address"],
    );
    assert_refused(
        &base_with("\"127.0.0.1:0\"", "\"localhost:53\""),
        &["server.listen[0]"],
    );
    assert_refused(
        &base_with("glue = [\"127.0.20.1\"]", "glue = [\"not-an-ip\"]"),
        &["regions[1].glue[0]"],
    );
    assert_refused(
        &base_with("\"192.0.2.6\"", "\"0.0.0.0\""),
        &[
            "services[4].targets.eu",
            "0.0.0.0 cannot be a service address",
        ],
    );
    assert_refused(
        &base_with("\"192.0.2.0/24\" = \"eu\"", "\"192.0.2.0/33\" = \"eu\""),
        &["geo.networks.\"192.0.2.0/33\"", "invalid CIDR"],
    );
}

#[test]
fn non_positive_weights_are_refused() {
    assert_refused(
        &base_with("us = 30", "us = 0"),
        &[
            "services[1].weights.us",
            "weight must be between 1 and 1000000, got 0",
        ],
    );
    assert_refused(
        &base_with("ap = 20", "ap = -5"),
        &["services[1].weights.ap", "got -5"],
    );
    assert_refused(
        &base_with(", ap = 20 }", " }"),
        &["services[1].weights", "missing weight for region ap"],
    );
}

#[test]
fn failover_order_must_name_known_regions() {
    assert_refused(
        &base_with("[\"eu\", \"us\", \"ap\"]", "[\"eu\", \"mars\", \"ap\"]"),
        &["services[0].failover_order[1]", "unknown region mars"],
    );
    assert_refused(
        &base_with("[\"eu\", \"us\", \"ap\"]", "[\"eu\", \"eu\", \"ap\"]"),
        &["services[0].failover_order[1]", "listed twice"],
    );
    assert_refused(
        &base_with("failover_order = [\"eu\", \"us\", \"ap\"]\n", ""),
        &[
            "services[0].failover_order",
            "strategy failover needs an ordered list",
        ],
    );
}

#[test]
fn service_names_must_be_inside_the_zone() {
    assert_refused(
        &base_with("\"app.gslb.example.com\"", "\"app.example.org\""),
        &[
            "services[0].name",
            "app.example.org. is outside zone gslb.example.com.",
        ],
    );
    assert_refused(
        &base_with("\"app.gslb.example.com\"", "\"gslb.example.com\""),
        &["services[0].name", "zone apex"],
    );
    assert_refused(
        &base_with("\"app.gslb.example.com\"", "\"ns-us.gslb.example.com\""),
        &["services[0].name", "region nameserver name"],
    );
    assert_refused(
        &base_with("\"app.gslb.example.com\"", "\"bad name.gslb.example.com\""),
        &["services[0].name"],
    );
}

#[test]
fn duplicate_services_and_regions_are_refused() {
    assert_refused(
        &base_with("\"web.gslb.example.com\"", "\"APP.gslb.example.com\""),
        &[
            "services[1].name",
            "duplicate service app.gslb.example.com.",
        ],
    );
    assert_refused(
        &base_with("name = \"us\"", "name = \"eu\""),
        &["regions[1].name", "duplicate region eu"],
    );
}

#[test]
fn strategy_parameters_must_match_the_strategy() {
    assert_refused(
        &base_with(
            "strategy = \"round-robin\"",
            "strategy = \"round-robin\"\nweights = { eu = 1 }",
        ),
        &["services[2].weights", "only valid with strategy weighted"],
    );
    assert_refused(
        &base_with("strategy = \"geo\"", "strategy = \"nearest\""),
        &["services[3].strategy", "unknown variant `nearest`"],
    );
    let no_geo_table = common::BASE
        .replace("[geo]", "[unused]")
        .replace("[unused]\n", "");
    let no_geo_table = no_geo_table
        .lines()
        .filter(|l| !l.starts_with("default_region") && !l.starts_with("networks"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_refused(
        &no_geo_table,
        &["services[3].strategy", "strategy geo needs a [geo] table"],
    );
    assert_refused(
        &base_with(
            "targets = { eu = [\"192.0.2.5\"]",
            "targets = { moon = [\"192.0.2.9\"], eu = [\"192.0.2.5\"]",
        ),
        &["services[3].targets.moon", "unknown region moon"],
    );
}

#[test]
fn zone_and_region_problems_are_named() {
    assert_refused(
        &base_with("name = \"gslb.example.com\"", "name = \"\""),
        &["zone.name", "empty name"],
    );
    assert_refused(
        &base_with("glue = [\"127.0.30.1\"]", "glue = []"),
        &[
            "regions[2].glue",
            "inside the zone, so it needs glue addresses",
        ],
    );
    assert_refused(
        &base_with("location = [1.35, 103.8]", "location = [91, 0]"),
        &["regions[2].location"],
    );
    assert_refused(
        &base_with("name = \"ap\"", "name = \"Asia Pacific\""),
        &["regions[2].name", "invalid region name"],
    );
    assert_refused(
        &base_with("ttl = 30", "ttl = 4294967295"),
        &["zone.ttl", "below 2^31"],
    );
}

#[test]
fn the_zone_needs_at_least_one_nameserver() {
    let text: String = common::BASE
        .lines()
        .filter(|l| !l.starts_with("nameserver") && !l.starts_with("glue"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_refused(&text, &["regions: at least one region needs a nameserver"]);
    assert_refused(
        &base_with("nameserver = \"ns-ap.gslb.example.com\"\n", ""),
        &["regions[2].glue", "glue needs a nameserver"],
    );
}

#[test]
fn several_problems_are_listed_together() {
    let text =
        base_with("us = 30", "us = 0").replace("\"app.gslb.example.com\"", "\"app.example.org\"");
    assert_refused(&text, &["services[0].name", "services[1].weights.us"]);
}

#[test]
fn syntax_errors_and_missing_files_are_reported() {
    assert_refused("[zone\nname = 1", &["TOML parse error"]);
    assert_refused("[server]\n", &["missing field `zone`"]);
    let output = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["check-config", "/nonexistent/gslbd.toml"])
        .output()
        .expect("run gslbd");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/gslbd.toml")
    );
}

fn with_probe(top: &str, service_probe: &str) -> String {
    let text = format!("{top}\n{}", common::BASE);
    if service_probe.is_empty() {
        text
    } else {
        text.replacen(
            "strategy = \"failover\"",
            &format!("strategy = \"failover\"\nprobe = {{ {service_probe} }}"),
            1,
        )
    }
}

#[test]
fn probe_settings_are_validated_with_their_path() {
    let (ok, stderr) = check(&with_probe(
        "local_region = \"eu\"\n[probe]\nkind = \"http\"\npath = \"/healthz\"\nexpect_status = [\"200-299\", \"404\"]",
        "kind = \"tcp\", port = 8443",
    ));
    assert!(ok, "{stderr}");
    assert_refused(
        &with_probe("[probe]\ninterval_ms = 1000\ntimeout_ms = 1000", ""),
        &["probe.timeout_ms", "below interval_ms (1000)"],
    );
    assert_refused(
        &with_probe("", "path = \"health\""),
        &["services[0].probe.path", "must start with '/'"],
    );
    assert_refused(
        &with_probe("[probe]\nexpect_status = [\"600\"]", ""),
        &["probe.expect_status[0]", "not a status code or range"],
    );
    assert_refused(
        &with_probe("", "kind = \"http\", ca_file = \"/etc/hostname\""),
        &[
            "services[0].probe.ca_file",
            "only valid with kind = \"https\"",
        ],
    );
    assert_refused(
        &with_probe("", "kind = \"https\", ca_file = \"/nonexistent/ca.pem\""),
        &[
            "services[0].probe.ca_file",
            "cannot read /nonexistent/ca.pem",
        ],
    );
    assert_refused(
        &with_probe("", "rise = 0"),
        &["services[0].probe.rise", "between 1 and 100"],
    );
    assert_refused(
        &with_probe("", "kind = \"ftp\""),
        &["services[0].probe.kind", "unknown variant `ftp`"],
    );
    assert_refused(
        &with_probe("", "intervall_ms = 5"),
        &["services[0].probe", "unknown field `intervall_ms`"],
    );
    assert_refused(
        &with_probe("", "max_concurrency = 5"),
        &[
            "services[0].probe.max_concurrency",
            "only valid in the top-level [probe] table",
        ],
    );
    assert_refused(
        &with_probe("[probe]\nmax_concurrency = 0", ""),
        &["probe.max_concurrency"],
    );
    assert_refused(
        &with_probe("local_region = \"mars\"", ""),
        &["local_region: unknown region mars"],
    );
    assert_refused(
        &with_probe("", "kind = \"tcp\", body_contains = \"ok\""),
        &[
            "services[0].probe",
            "body_contains and expect_status need an HTTP(S) probe",
        ],
    );
}

fn with_gossip(local: &str, gossip: &str) -> String {
    format!("{local}\n{}\n[gossip]\n{gossip}\n", common::BASE)
}

#[test]
fn gossip_settings_are_validated_with_their_path() {
    let (cluster, eu_seed, eu_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, us_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, ap_public) = gslbd::gossip::keys::generate().expect("keys");
    let good = format!(
        "listen = \"127.0.0.1:7946\"\nseeds = [\"gslbd-us.example.net:7946\"]\nkeys = [\"{cluster}\"]\nsigning_key = \"{eu_seed}\"\nregion_keys = {{ eu = \"{eu_public}\", us = \"{us_public}\", ap = \"{ap_public}\" }}"
    );
    let (ok, stderr) = check(&with_gossip("local_region = \"eu\"", &good));
    assert!(ok, "{stderr}");
    assert_refused(
        &with_gossip("", &good),
        &["gossip: gossip needs local_region"],
    );
    assert_refused(
        &with_gossip("local_region = \"us\"", &good),
        &["gossip.signing_key", "does not match gossip.region_keys.us"],
    );
    assert_refused(
        &with_gossip("local_region = \"eu\"", &good.replace(&cluster, "c2hvcnQ=")),
        &["gossip.keys", "expected 32 bytes, got 5"],
    );
    assert_refused(
        &with_gossip(
            "local_region = \"eu\"",
            &good.replace(&format!(", ap = \"{ap_public}\""), ""),
        ),
        &["gossip.region_keys", "missing public key of region ap"],
    );
    assert_refused(
        &with_gossip(
            "local_region = \"eu\"",
            &good.replace("gslbd-us.example.net:7946", "no-port"),
        ),
        &["gossip.seeds[0]", "is not host:port"],
    );
    assert_refused(
        &with_gossip(
            "local_region = \"eu\"",
            &format!("{good}\npeer_suspect_ms = 20000"),
        ),
        &["gossip.peer_timeout_ms"],
    );
    assert_refused(
        &with_gossip("local_region = \"eu\"", &format!("{good}\nsecret = 1")),
        &["gossip", "unknown field `secret`"],
    );
}

#[test]
fn kubernetes_settings_are_validated_with_their_path() {
    let with =
        |local: &str, table: &str| format!("{local}\n{}\n[kubernetes]\n{table}\n", common::BASE);
    let (ok, stderr) = check(&with(
        "local_region = \"eu\"",
        "api_server = \"http://127.0.0.1:8001\"\nnamespaces = [\"shop\"]\ngateway_api = false",
    ));
    assert!(ok, "{stderr}");
    assert_refused(&with("", ""), &["kubernetes: needs local_region"]);
    assert_refused(
        &with("local_region = \"eu\"", "api_server = \"127.0.0.1:8001\""),
        &["kubernetes.api_server", "is not an http:// or https:// URL"],
    );
    assert_refused(
        &with("local_region = \"eu\"", "resolve_interval_secs = 0"),
        &["kubernetes.resolve_interval_secs", "must be positive"],
    );
    assert_refused(
        &with(
            "local_region = \"eu\"",
            "ingresses = false\nload_balancer_services = false\ngateway_api = false",
        ),
        &["kubernetes: every source is off"],
    );
    assert_refused(
        &with("local_region = \"eu\"", "namespace = \"shop\""),
        &["kubernetes", "unknown field `namespace`"],
    );
}

/// The README's two-cluster example config, with real keys in place of its placeholders.
#[test]
fn the_readme_kubernetes_example_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let section = readme
        .split("### A complete two-cluster example")
        .nth(1)
        .expect("the example section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    let (cluster, eu_seed, eu_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, us_public) = gslbd::gossip::keys::generate().expect("keys");
    let text = example
        .replace("<cluster key>", &cluster)
        .replace("<eu's signing key>", &eu_seed)
        .replace("<eu public key>", &eu_public)
        .replace("<us public key>", &us_public);
    let (ok, stderr) = check(&text);
    assert!(ok, "{stderr}\n{text}");
}

#[test]
fn gossip_keys_can_come_from_files() {
    let (cluster, eu_seed, eu_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, us_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, ap_public) = gslbd::gossip::keys::generate().expect("keys");
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# current key first\n{cluster}\n")).expect("write");
    let signing = dir.path().join("signing");
    std::fs::write(&signing, format!("{eu_seed}\n")).expect("write");
    let regions = format!(
        "region_keys = {{ eu = \"{eu_public}\", us = \"{us_public}\", ap = \"{ap_public}\" }}"
    );
    let good = format!(
        "listen = \"127.0.0.1:7946\"\nkeys_file = \"{}\"\nsigning_key_file = \"{}\"\n{regions}",
        keys.display(),
        signing.display()
    );
    let (ok, stderr) = check(&with_gossip("local_region = \"eu\"", &good));
    assert!(ok, "{stderr}");
    assert_refused(
        &with_gossip(
            "local_region = \"eu\"",
            &format!("{good}\nsigning_key = \"{eu_seed}\""),
        ),
        &["gossip.signing_key_file", "not both"],
    );
    assert_refused(
        &with_gossip(
            "local_region = \"eu\"",
            &good.replace(&keys.display().to_string(), "/nonexistent/keys"),
        ),
        &["gossip.keys_file", "cannot read /nonexistent/keys"],
    );
}

/// Each region's config in deploy/overlays, with real keys in place of its placeholders and
/// its key files (a mounted Secret in the cluster) in a temporary directory.
#[test]
fn the_deploy_overlay_configs_are_valid() {
    let regions = ["eu", "us", "ap"];
    let keys: Vec<(String, String, String)> = regions
        .iter()
        .map(|_| gslbd::gossip::keys::generate().expect("keys"))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster_keys = dir.path().join("cluster-keys");
    std::fs::write(&cluster_keys, format!("{}\n", keys[0].0)).expect("write");
    for (i, region) in regions.iter().enumerate() {
        let path = format!(
            "{}/deploy/overlays/{region}/gslbd.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut text = std::fs::read_to_string(&path).expect("overlay config");
        let signing = dir.path().join(format!("signing-{region}"));
        std::fs::write(&signing, &keys[i].1).expect("write");
        for (j, other) in regions.iter().enumerate() {
            text = text.replace(&format!("<{other} public key>"), &keys[j].2);
        }
        text = text
            .replace(
                "/etc/gslbd-keys/cluster-keys",
                &cluster_keys.display().to_string(),
            )
            .replace(
                "/etc/gslbd-keys/signing-key",
                &signing.display().to_string(),
            );
        let (ok, stderr) = check(&text);
        assert!(ok, "{path}: {stderr}");
    }
}
