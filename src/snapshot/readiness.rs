//! Whether this server is ready to take traffic, as its state owner sees it: the first result
//! of every probe of the first plan is in (so answers reflect probes, not start-up guesses,
//! its own region's and, when observing, the other regions' targets), with gossip every other
//! region heard from or `peer_suspect` passed since the start, and with Kubernetes discovery
//! the first discovery after every watch listed, or the `sync_timeout` passed without it. `/readyz` reads it from the served snapshot, `/state`
//! shows it.

use crate::label_enum::label_enum;

label_enum! {
    /// Where Kubernetes discovery stands, as readiness sees it; the names are what `/state`
    /// and the `state` label of `gslbd_kubernetes_sync_state` say.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum KubernetesSync {
        /// Not every core watch has listed yet, within `kubernetes.sync_timeout_secs`: not
        /// ready.
        Listing = "listing",
        /// The first discovery is in.
        Synced = "synced",
        /// The sync timeout passed without every watch listed (API server unreachable at
        /// start): ready, serving the config's services, while the watches keep retrying.
        NotListed = "not_listed",
    }
}

/// What the server still waits for before it is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Probes of the first plan without a first result yet.
    pub probes_pending: usize,
    /// With Kubernetes discovery: where it stands; `None` without it.
    pub kubernetes: Option<KubernetesSync>,
    /// Remote regions not heard from yet, within `peer_suspect` of the start (after it, none
    /// is awaited: a region down at our start is then decided by our own probes of it).
    pub regions_unheard: usize,
}

impl Readiness {
    /// What is still awaited, in words; `None` when ready.
    pub fn waiting_for(&self) -> Option<String> {
        if self.kubernetes == Some(KubernetesSync::Listing) {
            return Some("waiting for the first Kubernetes discovery".to_string());
        }
        match (self.probes_pending, self.regions_unheard) {
            (0, 0) => None,
            (pending, 0) => Some(format!("waiting for the first result of {pending} probes")),
            (0, regions) => Some(format!(
                "waiting for the first heartbeat of {regions} other regions"
            )),
            (pending, regions) => Some(format!(
                "waiting for the first result of {pending} probes and the first heartbeat of {regions} other regions"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_kubernetes_synced_or_given_up_and_every_first_probe_result_is_in() {
        let mut readiness = Readiness {
            probes_pending: 2,
            kubernetes: Some(KubernetesSync::Listing),
            regions_unheard: 0,
        };
        assert_eq!(
            readiness.waiting_for().as_deref(),
            Some("waiting for the first Kubernetes discovery")
        );
        for state in [KubernetesSync::Synced, KubernetesSync::NotListed] {
            readiness.kubernetes = Some(state);
            assert_eq!(
                readiness.waiting_for().as_deref(),
                Some("waiting for the first result of 2 probes"),
                "{state:?}"
            );
        }
        readiness.regions_unheard = 1;
        assert_eq!(
            readiness.waiting_for().as_deref(),
            Some(
                "waiting for the first result of 2 probes and the first heartbeat of 1 other regions"
            )
        );
        readiness.probes_pending = 0;
        assert_eq!(
            readiness.waiting_for().as_deref(),
            Some("waiting for the first heartbeat of 1 other regions")
        );
        readiness.regions_unheard = 0;
        assert_eq!(readiness.waiting_for(), None);
        assert_eq!(
            Readiness::default().waiting_for(),
            None,
            "nothing to wait for"
        );
    }
}
