//! What changed between two served snapshots, as operators read it: a service's region changing
//! health (with the reason of its new state), and a remote region changing freshness. The
//! state owner keeps the last few hundred (`/events`, the `/ui` page).

use serde::Serialize;

use super::{RegionStatus, ServiceAnswer, Snapshot};
use crate::model::Health;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// When the snapshot with the change was published (Unix ms).
    pub at_ms: u64,
    pub region: String,
    /// The service, for a health change; `None` for a region's own state (its freshness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub from: String,
    pub to: String,
    /// Why, in words (the new state's reason).
    pub reason: String,
}

fn health(health: Health) -> String {
    serde_json::to_value(health)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn status(status: RegionStatus) -> String {
    match status {
        RegionStatus::Local => "local".to_string(),
        RegionStatus::Static => "static".to_string(),
        RegionStatus::Remote(freshness) => serde_json::to_value(freshness)
            .ok()
            .and_then(|v| v.as_str().map(|f| format!("remote, {f}")))
            .unwrap_or_default(),
    }
}

/// The changes from `previous` to `next`, published at `at_ms`: services and regions matched
/// by name (a reload may reorder them); those new or gone are not changes of state.
pub fn between(previous: &Snapshot, next: &Snapshot, at_ms: u64) -> Vec<Transition> {
    let mut changes = Vec::new();
    for (i, region) in next.regions.iter().enumerate() {
        let Some(before) = previous
            .regions
            .iter()
            .position(|r| r == region)
            .map(|j| previous.region_status[j])
        else {
            continue;
        };
        let after = next.region_status[i];
        if before != after {
            changes.push(Transition {
                at_ms,
                region: region.to_string(),
                service: None,
                from: status(before),
                to: status(after),
                reason: String::new(),
            });
        }
    }
    // Rebuilt for a few services: only those can have changed, at the same positions.
    let pairs: Vec<(&ServiceAnswer, &ServiceAnswer)> = match next.changed_since(previous) {
        Some(changed) => changed
            .into_iter()
            .map(|i| (&*previous.services[i], &*next.services[i]))
            .collect(),
        None => {
            let before: std::collections::HashMap<_, _> =
                previous.services.iter().map(|s| (s.name(), &**s)).collect();
            next.services
                .iter()
                .filter_map(|s| Some((*before.get(s.name())?, &**s)))
                .collect()
        }
    };
    for (old, service) in pairs {
        for answer in &service.regions {
            let region = &next.regions[answer.region.get()];
            let Some(was) = old
                .regions
                .iter()
                .find(|r| previous.regions.get(r.region.get()) == Some(region))
            else {
                continue;
            };
            if was.health != answer.health {
                changes.push(Transition {
                    at_ms,
                    region: region.to_string(),
                    service: Some(service.name().to_string()),
                    from: health(was.health),
                    to: health(answer.health),
                    reason: answer.why.to_string(),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn health_and_freshness_changes_are_listed_with_their_reason() {
        let config = fixtures::config(
            r#"
            [[services]]
            name = "app.gslb.example.com"
            strategy = "round-robin"
            targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"] }
            "#,
        );
        let before = Snapshot::from_model(&config.model, 1232);
        let mut after = before.clone();
        std::sync::Arc::make_mut(&mut after.services[0]).regions[1].health = Health::Unhealthy;
        after.region_status[1] = RegionStatus::Remote(crate::remote::Freshness::Stale);
        let changes = between(&before, &after, 7);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            (
                changes[0].region.as_str(),
                changes[0].from.as_str(),
                changes[0].to.as_str()
            ),
            ("us", "static", "remote, stale")
        );
        assert_eq!(changes[1].service.as_deref(), Some("app.gslb.example.com."));
        assert_eq!(
            (changes[1].from.as_str(), changes[1].to.as_str()),
            ("healthy", "unhealthy")
        );
        assert_eq!(changes[1].at_ms, 7);
        assert!(between(&after, &after, 8).is_empty());
    }
}
