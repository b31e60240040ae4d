//! Whether this server is ready to take traffic, as its state owner sees it: the first result
//! of every probe of the first plan is in (so answers reflect probes, not start-up guesses),
//! and with Kubernetes discovery the first discovery after every watch listed. `/readyz`
//! reads it from the served snapshot.

/// What the server still waits for before it is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Probes of the first plan without a first result yet.
    pub probes_pending: usize,
    /// With Kubernetes discovery: whether the first discovery is in; `None` without it.
    pub kubernetes_synced: Option<bool>,
}

impl Readiness {
    /// What is still awaited, in words; `None` when ready.
    pub fn waiting_for(&self) -> Option<String> {
        if self.kubernetes_synced == Some(false) {
            return Some("waiting for the first Kubernetes discovery".to_string());
        }
        match self.probes_pending {
            0 => None,
            pending => Some(format!("waiting for the first result of {pending} probes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_kubernetes_synced_and_every_first_probe_result_is_in() {
        let mut readiness = Readiness {
            probes_pending: 2,
            kubernetes_synced: Some(false),
        };
        assert_eq!(
            readiness.waiting_for().as_deref(),
            Some("waiting for the first Kubernetes discovery")
        );
        readiness.kubernetes_synced = Some(true);
        assert_eq!(
            readiness.waiting_for().as_deref(),
            Some("waiting for the first result of 2 probes")
        );
        readiness.probes_pending = 0;
        assert_eq!(readiness.waiting_for(), None);
        assert_eq!(
            Readiness::default().waiting_for(),
            None,
            "nothing to wait for"
        );
    }
}
