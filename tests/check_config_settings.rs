//! `gslbd check-config` on the settings tables: `[probe]`, `[gossip]` (keys inline or from
//! files) and `[kubernetes]`, each problem named with its field path.

mod common;

use common::check::{assert_refused, base_with, check, region_keys, with_unknown_key};
use common::config::{ConfigFile, Gossip, Kubernetes, Probe, strs};

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
