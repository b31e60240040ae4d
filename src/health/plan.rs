//! Which probes the model asks for: one per distinct (address, port, scheme, host, path),
//! however many services share it, for the local region's targets ([`plan`]) and, when regions
//! observe each other, the other regions' targets ([`observing`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tracing::warn;

use super::ProbeKey;
use crate::model::{Model, Observe, ProbeSettings, Service, Target};

/// The probes to run, with their settings.
pub type Plan = BTreeMap<ProbeKey, ProbeSettings>;

/// Every probe to run, with its settings. Services sharing a probe whose other settings differ
/// (interval, expected status, ...) get the first one's, in config order; `warn_conflicts`
/// logs each such case.
pub fn plan(model: &Model, warn_conflicts: bool) -> Plan {
    let mut probes: BTreeMap<ProbeKey, (ProbeSettings, &Service)> = BTreeMap::new();
    let Some(local) = model.local_region else {
        return BTreeMap::new();
    };
    for service in &model.services {
        for target in service.targets.iter().filter(|t| t.region == local) {
            for &addr in &target.addresses {
                let Some(key) = ProbeKey::for_target(service, addr) else {
                    continue;
                };
                match probes.get(&key) {
                    Some((settings, first)) if warn_conflicts && *settings != service.probe => {
                        warn!(
                            probe = %key,
                            kept = %first.name,
                            ignored = %service.name,
                            "services share a probe with different settings; the first one's apply"
                        )
                    }
                    Some(_) => {}
                    None => {
                        probes.insert(key, (service.probe.clone(), service));
                    }
                }
            }
        }
    }
    probes
        .into_iter()
        .map(|(key, (settings, _))| (key, settings))
        .collect()
}

/// The plan of a node starting on `model`: its own region's probes and, when it observes
/// (`observe`), the other regions' targets the config lists (reports add more later).
pub fn at_start(model: &Model, observe: Option<Observe>, warn_conflicts: bool) -> Plan {
    let mut probes = plan(model, warn_conflicts);
    if let Some(observe) = observe {
        observing(&mut probes, model, observe.interval, |_, target| {
            &target.addresses
        });
    }
    probes
}

/// Adds to `plan` the probes of the other regions' targets at `interval` (with the service's
/// other settings, as the owner probes them); `addresses` gives the addresses to observe of a
/// target (another region's report may have them, the config may not). A probe already in the
/// plan keeps its settings.
pub fn observing<'a>(
    plan: &mut Plan,
    model: &'a Model,
    interval: Duration,
    addresses: impl Fn(&'a Service, &'a Target) -> &'a [IpAddr],
) {
    let Some(local) = model.local_region else {
        return;
    };
    for service in &model.services {
        for target in service.targets.iter().filter(|t| t.region != local) {
            for &addr in addresses(service, target) {
                let Some(key) = ProbeKey::for_target(service, addr) else {
                    continue;
                };
                plan.entry(key).or_insert_with(|| ProbeSettings {
                    interval,
                    ..service.probe.clone()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn one_probe_per_distinct_target_local_region_only() {
        let config = fixtures::config(
            r#"
            [probe]
            kind = "tcp"
            port = 8080
            [[services]]
            name = "a.gslb.example.com"
            strategy = "round-robin"
            targets = { eu = ["127.0.0.2", "127.0.0.3"], us = ["127.0.1.2"] }
            [[services]]
            name = "b.gslb.example.com"
            strategy = "round-robin"
            targets = { eu = ["127.0.0.2"] }
            [[services]]
            name = "c.gslb.example.com"
            strategy = "round-robin"
            probe = { kind = "http", path = "/health" }
            targets = { eu = ["127.0.0.2"] }
            [[services]]
            name = "d.gslb.example.com"
            strategy = "round-robin"
            probe = { kind = "none" }
            targets = { eu = ["127.0.0.9"] }
        "#,
        );
        let plan = plan(&config.model, false);
        let keys: Vec<String> = plan.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            vec![
                "http://c.gslb.example.com/health via 127.0.0.2:8080",
                "tcp://127.0.0.2:8080",
                "tcp://127.0.0.3:8080",
            ]
        );
    }
}
