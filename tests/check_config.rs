//! `gslbd check-config`: every class of bad config is refused, naming the field and the reason.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::config::{ConfigFile, Gossip, Kubernetes, Probe, strs};

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

/// The base config changed by `change`, as TOML.
fn base_with(change: impl FnOnce(&mut ConfigFile)) -> String {
    let mut config = ConfigFile::base();
    change(&mut config);
    config.to_toml()
}

/// `config` as TOML with `key = value` added to the table at `path` (dot-separated, array
/// indexes as numbers, made when missing): a key gslbd does not know, which the typed mirror
/// has no field for.
fn with_unknown_key(
    config: &ConfigFile,
    path: &str,
    key: &str,
    value: impl Into<toml::Value>,
) -> String {
    let mut root = toml::Value::try_from(config).expect("the config mirror serializes");
    let mut table = &mut root;
    for segment in path.split('.') {
        table = match table {
            toml::Value::Array(items) => &mut items[segment.parse::<usize>().expect("an index")],
            toml::Value::Table(entries) => entries
                .entry(segment)
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            other => panic!("{path}: {segment} is in {other}, not in a table"),
        };
    }
    table
        .as_table_mut()
        .expect("path names a table")
        .insert(key.into(), value.into());
    toml::to_string(&root).expect("TOML serializes")
}

/// Public keys by region.
fn region_keys(keys: [(&str, &str); 3]) -> BTreeMap<String, String> {
    keys.iter()
        .map(|(region, key)| (region.to_string(), key.to_string()))
        .collect()
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
    let (ok, stderr) = check(&ConfigFile::base().to_toml());
    assert!(ok, "{stderr}");
}

#[test]
fn unknown_keys_are_named() {
    assert_refused(
        &with_unknown_key(&ConfigFile::base(), "zone", "tll", 5),
        &["zone", "unknown field `tll`"],
    );
    assert_refused(
        &with_unknown_key(&ConfigFile::base(), "services.3", "weight", 3),
        &["services[3]", "unknown field `weight`"],
    );
}

#[test]
fn bad_addresses_are_named() {
    assert_refused(
        &base_with(|c| {
            let web = c.service_mut("web.gslb.example.com");
            web.targets.insert("eu".into(), strs(&["192.0.2.300"]));
        }),
        &["services[1].targets.eu[0]", "invalid IP address"],
    );
    assert_refused(
        &base_with(|c| c.server.listen = strs(&["localhost:53"])),
        &["server.listen[0]"],
    );
    assert_refused(
        &base_with(|c| c.region_mut("us").glue = strs(&["not-an-ip"])),
        &["regions[1].glue[0]"],
    );
    assert_refused(
        &base_with(|c| {
            let v4only = c.service_mut("v4only.deep.gslb.example.com");
            v4only.targets.insert("eu".into(), strs(&["0.0.0.0"]));
        }),
        &[
            "services[4].targets.eu",
            "0.0.0.0 cannot be a service address",
        ],
    );
    assert_refused(
        &base_with(|c| {
            let networks = &mut c.geo.as_mut().expect("geo").networks;
            networks.remove("192.0.2.0/24");
            networks.insert("192.0.2.0/33".into(), "eu".into());
        }),
        &["geo.networks.\"192.0.2.0/33\"", "invalid CIDR"],
    );
}

#[test]
fn non_positive_weights_are_refused() {
    let web = "web.gslb.example.com";
    assert_refused(
        &base_with(|c| {
            c.service_mut(web).weights.insert("us".into(), 0);
        }),
        &[
            "services[1].weights.us",
            "weight must be between 1 and 1000000, got 0",
        ],
    );
    assert_refused(
        &base_with(|c| {
            c.service_mut(web).weights.insert("ap".into(), -5);
        }),
        &["services[1].weights.ap", "got -5"],
    );
    assert_refused(
        &base_with(|c| {
            c.service_mut(web).weights.remove("ap");
        }),
        &["services[1].weights", "missing weight for region ap"],
    );
}

#[test]
fn failover_order_must_name_known_regions() {
    assert_refused(
        &base_with(|c| c.services[0].failover_order[1] = "mars".into()),
        &["services[0].failover_order[1]", "unknown region mars"],
    );
    assert_refused(
        &base_with(|c| c.services[0].failover_order[1] = "eu".into()),
        &["services[0].failover_order[1]", "listed twice"],
    );
    assert_refused(
        &base_with(|c| c.services[0].failover_order.clear()),
        &[
            "services[0].failover_order",
            "strategy failover needs an ordered list",
        ],
    );
}

#[test]
fn service_names_must_be_inside_the_zone() {
    let app_named = |name: &str| base_with(|c| c.services[0].name = name.into());
    assert_refused(
        &app_named("app.example.org"),
        &[
            "services[0].name",
            "app.example.org. is outside zone gslb.example.com.",
        ],
    );
    assert_refused(
        &app_named("gslb.example.com"),
        &["services[0].name", "zone apex"],
    );
    assert_refused(
        &app_named("ns-us.gslb.example.com"),
        &["services[0].name", "region nameserver name"],
    );
    assert_refused(
        &app_named("bad name.gslb.example.com"),
        &["services[0].name"],
    );
}

#[test]
fn duplicate_services_and_regions_are_refused() {
    assert_refused(
        &base_with(|c| c.services[1].name = "APP.gslb.example.com".into()),
        &[
            "services[1].name",
            "duplicate service app.gslb.example.com.",
        ],
    );
    assert_refused(
        &base_with(|c| c.regions[1].name = "eu".into()),
        &["regions[1].name", "duplicate region eu"],
    );
}

#[test]
fn strategy_parameters_must_match_the_strategy() {
    assert_refused(
        &base_with(|c| {
            c.services[2].weights.insert("eu".into(), 1);
        }),
        &["services[2].weights", "only valid with strategy weighted"],
    );
    assert_refused(
        &base_with(|c| c.services[3].strategy = "nearest".into()),
        &["services[3].strategy", "unknown variant `nearest`"],
    );
    assert_refused(
        &base_with(|c| c.geo = None),
        &["services[3].strategy", "strategy geo needs a [geo] table"],
    );
    assert_refused(
        &base_with(|c| {
            c.services[3]
                .targets
                .insert("moon".into(), strs(&["192.0.2.9"]));
        }),
        &["services[3].targets.moon", "unknown region moon"],
    );
}

#[test]
fn zone_and_region_problems_are_named() {
    assert_refused(
        &base_with(|c| c.zone.name = String::new()),
        &["zone.name", "empty name"],
    );
    assert_refused(
        &base_with(|c| c.regions[2].glue.clear()),
        &[
            "regions[2].glue",
            "inside the zone, so it needs glue addresses",
        ],
    );
    assert_refused(
        &base_with(|c| c.regions[2].location = Some([91.0, 0.0])),
        &["regions[2].location"],
    );
    assert_refused(
        &base_with(|c| c.regions[2].name = "Asia Pacific".into()),
        &["regions[2].name", "invalid region name"],
    );
    assert_refused(
        &base_with(|c| c.zone.ttl = Some(4294967295)),
        &["zone.ttl", "below 2^31"],
    );
}

#[test]
fn the_zone_needs_at_least_one_nameserver() {
    let text = base_with(|c| {
        for region in &mut c.regions {
            region.nameserver = None;
            region.glue.clear();
        }
    });
    assert_refused(&text, &["regions: at least one region needs a nameserver"]);
    assert_refused(
        &base_with(|c| c.regions[2].nameserver = None),
        &["regions[2].glue", "glue needs a nameserver"],
    );
}

#[test]
fn several_problems_are_listed_together() {
    let text = base_with(|c| {
        c.services[0].name = "app.example.org".into();
        c.services[1].weights.insert("us".into(), 0);
    });
    assert_refused(&text, &["services[0].name", "services[1].weights.us"]);
}

/// Literal text: these are about the file's syntax and shape, which the typed mirror cannot
/// get wrong.
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

#[test]
fn probe_settings_are_validated_with_their_path() {
    let (ok, stderr) = check(&base_with(|c| {
        c.local_region = Some("eu".into());
        c.probe = Probe {
            kind: Some("http".into()),
            path: Some("/healthz".into()),
            expect_status: Some(strs(&["200-299", "404"])),
            ..Probe::default()
        };
        c.services[0].probe = Probe {
            kind: Some("tcp".into()),
            port: Some(8443),
            ..Probe::default()
        };
    }));
    assert!(ok, "{stderr}");
    // The top-level [probe] table, then the first service's (app, failover).
    let top = |probe: Probe| base_with(|c| c.probe = probe);
    let app = |probe: Probe| base_with(|c| c.services[0].probe = probe);
    assert_refused(
        &top(Probe {
            interval_ms: Some(1000),
            timeout_ms: Some(1000),
            ..Probe::default()
        }),
        &["probe.timeout_ms", "below interval_ms (1000)"],
    );
    assert_refused(
        &app(Probe {
            path: Some("health".into()),
            ..Probe::default()
        }),
        &["services[0].probe.path", "must start with '/'"],
    );
    assert_refused(
        &top(Probe {
            expect_status: Some(strs(&["600"])),
            ..Probe::default()
        }),
        &["probe.expect_status[0]", "not a status code or range"],
    );
    assert_refused(
        &app(Probe {
            kind: Some("http".into()),
            ca_file: Some("/etc/hostname".into()),
            ..Probe::default()
        }),
        &[
            "services[0].probe.ca_file",
            "only valid with kind = \"https\"",
        ],
    );
    assert_refused(
        &app(Probe {
            kind: Some("https".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Probe::default()
        }),
        &[
            "services[0].probe.ca_file",
            "cannot read /nonexistent/ca.pem",
        ],
    );
    assert_refused(
        &app(Probe {
            rise: Some(0),
            ..Probe::default()
        }),
        &["services[0].probe.rise", "between 1 and 100"],
    );
    assert_refused(
        &app(Probe {
            kind: Some("ftp".into()),
            ..Probe::default()
        }),
        &["services[0].probe.kind", "unknown variant `ftp`"],
    );
    assert_refused(
        &with_unknown_key(&ConfigFile::base(), "services.0.probe", "intervall_ms", 5),
        &["services[0].probe", "unknown field `intervall_ms`"],
    );
    assert_refused(
        &app(Probe {
            max_concurrency: Some(5),
            ..Probe::default()
        }),
        &[
            "services[0].probe.max_concurrency",
            "only valid in the top-level [probe] table",
        ],
    );
    assert_refused(
        &top(Probe {
            max_concurrency: Some(0),
            ..Probe::default()
        }),
        &["probe.max_concurrency"],
    );
    assert_refused(
        &ConfigFile::base().seen_from("mars").to_toml(),
        &["local_region: unknown region mars"],
    );
    assert_refused(
        &app(Probe {
            kind: Some("tcp".into()),
            body_contains: Some("ok".into()),
            ..Probe::default()
        }),
        &[
            "services[0].probe",
            "body_contains and expect_status need an HTTP(S) probe",
        ],
    );
}

#[test]
fn gossip_settings_are_validated_with_their_path() {
    let (cluster, eu_seed, eu_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, us_public) = gslbd::gossip::keys::generate().expect("keys");
    let (_, _, ap_public) = gslbd::gossip::keys::generate().expect("keys");
    let good = Gossip {
        listen: "127.0.0.1:7946".into(),
        seeds: strs(&["gslbd-us.example.net:7946"]),
        keys: vec![cluster],
        signing_key: Some(eu_seed),
        region_keys: region_keys([("eu", &eu_public), ("us", &us_public), ("ap", &ap_public)]),
        ..Gossip::default()
    };
    let from = |local: Option<&str>, gossip: Gossip| ConfigFile {
        local_region: local.map(String::from),
        gossip: Some(gossip),
        ..ConfigFile::base()
    };
    let (ok, stderr) = check(&from(Some("eu"), good.clone()).to_toml());
    assert!(ok, "{stderr}");
    assert_refused(
        &from(None, good.clone()).to_toml(),
        &["gossip: gossip needs local_region"],
    );
    assert_refused(
        &from(Some("us"), good.clone()).to_toml(),
        &["gossip.signing_key", "does not match gossip.region_keys.us"],
    );
    let short_key = Gossip {
        keys: strs(&["c2hvcnQ="]),
        ..good.clone()
    };
    assert_refused(
        &from(Some("eu"), short_key).to_toml(),
        &["gossip.keys", "expected 32 bytes, got 5"],
    );
    let mut without_ap = good.clone();
    without_ap.region_keys.remove("ap");
    assert_refused(
        &from(Some("eu"), without_ap).to_toml(),
        &["gossip.region_keys", "missing public key of region ap"],
    );
    let no_port = Gossip {
        seeds: strs(&["no-port"]),
        ..good.clone()
    };
    assert_refused(
        &from(Some("eu"), no_port).to_toml(),
        &["gossip.seeds[0]", "is not host:port"],
    );
    let suspect_late = Gossip {
        peer_suspect_ms: Some(20000),
        ..good.clone()
    };
    assert_refused(
        &from(Some("eu"), suspect_late).to_toml(),
        &["gossip.peer_timeout_ms"],
    );
    assert_refused(
        &with_unknown_key(&from(Some("eu"), good), "gossip", "secret", 1),
        &["gossip", "unknown field `secret`"],
    );
}

#[test]
fn kubernetes_settings_are_validated_with_their_path() {
    let from = |local: Option<&str>, kubernetes: Kubernetes| ConfigFile {
        local_region: local.map(String::from),
        kubernetes: Some(kubernetes),
        ..ConfigFile::base()
    };
    let (ok, stderr) = check(
        &from(
            Some("eu"),
            Kubernetes {
                api_server: Some("http://127.0.0.1:8001".into()),
                namespaces: strs(&["shop"]),
                gateway_api: Some(false),
                ..Kubernetes::default()
            },
        )
        .to_toml(),
    );
    assert!(ok, "{stderr}");
    assert_refused(
        &from(None, Kubernetes::default()).to_toml(),
        &["kubernetes: needs local_region"],
    );
    assert_refused(
        &from(
            Some("eu"),
            Kubernetes {
                api_server: Some("127.0.0.1:8001".into()),
                ..Kubernetes::default()
            },
        )
        .to_toml(),
        &["kubernetes.api_server", "is not an http:// or https:// URL"],
    );
    assert_refused(
        &from(
            Some("eu"),
            Kubernetes {
                resolve_interval_secs: Some(0),
                ..Kubernetes::default()
            },
        )
        .to_toml(),
        &["kubernetes.resolve_interval_secs", "must be positive"],
    );
    assert_refused(
        &from(
            Some("eu"),
            Kubernetes {
                ingresses: Some(false),
                load_balancer_services: Some(false),
                gateway_api: Some(false),
                ..Kubernetes::default()
            },
        )
        .to_toml(),
        &["kubernetes: every source is off"],
    );
    assert_refused(
        &with_unknown_key(
            &from(Some("eu"), Kubernetes::default()),
            "kubernetes",
            "namespace",
            "shop",
        ),
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
    let good = Gossip {
        listen: "127.0.0.1:7946".into(),
        keys_file: Some(keys.display().to_string()),
        signing_key_file: Some(signing.display().to_string()),
        region_keys: region_keys([("eu", &eu_public), ("us", &us_public), ("ap", &ap_public)]),
        ..Gossip::default()
    };
    let from_eu = |gossip: Gossip| ConfigFile {
        gossip: Some(gossip),
        ..ConfigFile::base().seen_from("eu")
    };
    let (ok, stderr) = check(&from_eu(good.clone()).to_toml());
    assert!(ok, "{stderr}");
    let both = Gossip {
        signing_key: Some(eu_seed),
        ..good.clone()
    };
    assert_refused(
        &from_eu(both).to_toml(),
        &["gossip.signing_key_file", "not both"],
    );
    let missing = Gossip {
        keys_file: Some("/nonexistent/keys".into()),
        ..good
    };
    assert_refused(
        &from_eu(missing).to_toml(),
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
