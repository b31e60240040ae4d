//! Status host names (cloud load balancers that publish a name, not an address) resolved to
//! addresses, at most once per `resolve_interval` each. A failed lookup keeps the last
//! addresses, so a resolver hiccup does not empty a service.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::sources::Claim;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Host name → its last addresses and when they were looked up.
pub(super) type Cache = HashMap<String, (Vec<IpAddr>, Instant)>;

/// Resolves the status host names of `claims` that are due; keeps the last answer on failure.
/// Names no claim mentions any more leave the cache.
pub(super) async fn resolve(claims: &[Claim], cache: &mut Cache, every: Duration) {
    let now = Instant::now();
    let mut wanted: Vec<&String> = claims.iter().flat_map(|c| &c.hostnames).collect();
    wanted.sort();
    wanted.dedup();
    cache.retain(|name, _| wanted.contains(&name));
    for name in wanted {
        if cache
            .get(name)
            .is_some_and(|(_, at)| now.duration_since(*at) < every)
        {
            continue;
        }
        let lookup = tokio::net::lookup_host((name.as_str(), 0));
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(found)) => {
                let mut addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
                addresses.sort();
                addresses.dedup();
                debug!(%name, ?addresses, "load balancer host name resolved");
                cache.insert(name.clone(), (addresses, now));
            }
            result => {
                let error = match result {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".to_string(),
                };
                warn!(%name, %error, "cannot resolve a load balancer host name; keeping its last addresses");
                let last = cache.remove(name).map(|(a, _)| a).unwrap_or_default();
                cache.insert(name.clone(), (last, now));
            }
        }
    }
}

/// The cache's addresses by host name, as discovery takes them.
pub(super) fn addresses(cache: &Cache) -> HashMap<String, Vec<IpAddr>> {
    cache
        .iter()
        .map(|(name, (addresses, _))| (name.clone(), addresses.clone()))
        .collect()
}
