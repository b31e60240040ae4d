//! `gslbd check-config`: every class of bad config is refused, naming the field and the reason.

mod common;

use std::process::Command;

use common::check::{assert_refused, base_with, check, check_as, with_unknown_key};
use common::config::{ConfigFile, strs};

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
            web.targets
                .insert("eu".into(), strs(&["192.0.2.300"]).into());
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
            v4only
                .targets
                .insert("eu".into(), strs(&["0.0.0.0"]).into());
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
fn service_names_must_not_be_outside_the_zone_its_apex_a_nameserver_or_a_wildcard() {
    let app_named = |name: &str| base_with(|c| c.services[0].name = name.into());
    assert_refused(
        &app_named("app.example.org"),
        &[
            "services[0].name",
            "app.example.org. cannot be a service: it is outside the zone gslb.example.com.",
        ],
    );
    assert_refused(
        &app_named("gslb.example.com"),
        &["services[0].name", "it is the zone apex"],
    );
    assert_refused(
        &app_named("ns-us.gslb.example.com"),
        &["services[0].name", "it is a nameserver name of the zone"],
    );
    assert_refused(
        &app_named("*.gslb.example.com"),
        &["services[0].name", "it is a wildcard name"],
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
                .insert("moon".into(), strs(&["192.0.2.9"]).into());
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

/// Each region's config in deploy/overlays, with real keys in place of its placeholders and
/// its key files (a mounted Secret in the cluster) in a temporary directory, as each of the
/// StatefulSet's two pods reads it (`POD_NAME` picks its gossip address); a third pod would
/// have none.
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
        for pod in ["gslbd-0", "gslbd-1"] {
            let (ok, stderr) = check_as(&text, Some(pod));
            assert!(ok, "{path} as {pod}: {stderr}");
        }
        let (ok, stderr) = check_as(&text, Some("gslbd-2"));
        assert!(
            !ok && stderr.contains("no address for instance"),
            "{stderr}"
        );
    }
}
