//! Which probes the model asks for: one per distinct (address, port, scheme, host, path),
//! however many services share it, for the local region's targets only.

use std::collections::BTreeMap;

use tracing::warn;

use super::ProbeKey;
use crate::model::{Model, ProbeSettings, Service};

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
