//! Which probes the model asks for: one per distinct (address, port, scheme, host, path),
//! however many services share it, for the local region's targets ([`plan`]) and, when regions
//! observe each other, the other regions' targets ([`observing`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use smallvec::SmallVec;
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
    each_key(
        model,
        Regions::Local,
        |_, t| &t.addresses,
        |_, service, key| match probes.get(&key) {
            Some((settings, first)) if warn_conflicts && *settings != *service.probe => {
                warn!(
                    probe = %key,
                    kept = %first.name,
                    ignored = %service.name,
                    "services share a probe with different settings; the first one's apply"
                )
            }
            Some(_) => {}
            None => {
                probes.insert(key, ((*service.probe).clone(), service));
            }
        },
    );
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
    each_key(model, Regions::Others, addresses, |_, service, key| {
        plan.entry(key).or_insert_with(|| ProbeSettings {
            interval,
            ..(*service.probe).clone()
        });
    });
}

/// Which services (positions in `model.services`) each probe's verdict concerns: those with a
/// target it probes, in the local region or, when observing, in another region (`observed`
/// gives those targets' addresses, as for [`observing`]).
pub fn users<'a>(
    model: &'a Model,
    observed: Option<&dyn Fn(&'a Service, &'a Target) -> &'a [IpAddr]>,
) -> HashMap<ProbeKey, SmallVec<[usize; 2]>> {
    let mut users: HashMap<ProbeKey, SmallVec<[usize; 2]>> = HashMap::new();
    let mut add = |index: usize, _: &Service, key: ProbeKey| {
        let services = users.entry(key).or_default();
        if !services.contains(&index) {
            services.push(index);
        }
    };
    each_key(model, Regions::Local, |_, t| &t.addresses, &mut add);
    if let Some(observed) = observed {
        each_key(model, Regions::Others, observed, &mut add);
    }
    users
}

/// Whose targets [`each_key`] goes through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Regions {
    /// This node's region's.
    Local,
    /// The other regions'.
    Others,
}

/// Visits the probe of every address of `model`'s targets in `regions` (with `addresses`
/// giving a target's), and of the local targets that are host names, with the service and its
/// position; none without a local region.
fn each_key<'a>(
    model: &'a Model,
    regions: Regions,
    addresses: impl Fn(&'a Service, &'a Target) -> &'a [IpAddr],
    mut visit: impl FnMut(usize, &'a Service, ProbeKey),
) {
    let Some(local) = model.local_region else {
        return;
    };
    for (index, service) in model.services.iter().enumerate() {
        let targets = service
            .targets
            .iter()
            .filter(|t| (t.region == local) == (regions == Regions::Local));
        for target in targets {
            for &addr in addresses(service, target) {
                if let Some(key) = ProbeKey::for_target(service, addr) {
                    visit(index, service, key);
                }
            }
            // A host name is probed by its region only: observers leave it to its owner.
            let name = target.name.as_deref().filter(|_| regions == Regions::Local);
            if let Some(key) = name.and_then(|name| ProbeKey::for_name(service, name)) {
                visit(index, service, key);
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
