//! Publishing the delegation through ExternalDNS: server-side apply of the `DNSEndpoint` that
//! `external_dns` builds, retried with backoff until the API server takes it (ExternalDNS's
//! CRD or the RBAC for it may arrive after gslbd starts).

use std::future::Future;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Delegation;
use super::external_dns::dns_endpoint;

/// The field manager gslbd applies as; `force` takes the fields over from any other manager.
const FIELD_MANAGER: &str = "gslbd";
/// The first wait after a failed apply; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two applies.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Keeps the ExternalDNS `DNSEndpoint` `namespace/name` equal to `delegation` (server-side
/// apply, field manager `gslbd`): the returned future applies it, retrying with backoff until
/// the API server takes it or `stop` is cancelled. The caller spawns and tracks it.
pub fn publish(
    client: Client,
    delegation: &Delegation,
    (namespace, name): (String, String),
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let object = dns_endpoint(delegation, &name, &namespace);
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "externaldns.k8s.io",
        "v1alpha1",
        "DNSEndpoint",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    async move {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut wait = FIRST_RETRY;
        loop {
            match api.patch(&name, &params, &Patch::Apply(&object)).await {
                Ok(_) => {
                    info!(%namespace, %name, "ExternalDNS DNSEndpoint with the delegation applied");
                    return;
                }
                Err(error) => {
                    warn!(%namespace, %name, %error, retry_in = ?wait, "cannot apply the ExternalDNS DNSEndpoint (is ExternalDNS's CRD installed? RBAC?)")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            wait = next_retry(wait);
        }
    }
}

/// The wait after `wait`: doubled, at most [`MAX_RETRY`].
fn next_retry(wait: Duration) -> Duration {
    (wait * 2).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_one_second_doubling_to_a_minute() {
        let waits: Vec<u64> = std::iter::successors(Some(FIRST_RETRY), |w| Some(next_retry(*w)))
            .take(9)
            .map(|w| w.as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
