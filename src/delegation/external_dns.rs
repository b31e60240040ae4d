//! The delegation as an ExternalDNS `DNSEndpoint` (externaldns.k8s.io/v1alpha1), so that an
//! ExternalDNS already running in the cluster publishes NS, glue and a signed zone's DS to whatever provider it
//! drives (Route 53, Cloudflare, Google Cloud DNS, ...).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Delegation, Entry};

/// The `DNSEndpoint` object for `delegation`, named `name` in `namespace`.
pub fn dns_endpoint(delegation: &Delegation, name: &str, namespace: &str) -> Value {
    // ExternalDNS wants one endpoint per (name, type) with every target.
    let mut endpoints: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    for entry in &delegation.records {
        let owner = entry.owner().to_string().trim_end_matches('.').to_string();
        let (kind, target) = match entry {
            Entry::Ns { target, .. } => {
                ("NS", target.to_string().trim_end_matches('.').to_string())
            }
            Entry::Glue { address, .. } if address.is_ipv4() => ("A", address.to_string()),
            Entry::Glue { address, .. } => ("AAAA", address.to_string()),
            // "<key tag> <algorithm> <digest type> <digest>", as in a zone file; whether it
            // reaches the parent depends on the provider ExternalDNS drives.
            Entry::Ds { .. } => ("DS", entry.record(delegation.ttl).data.to_string()),
        };
        endpoints.entry((owner, kind)).or_default().push(target);
    }
    let endpoints: Vec<Value> = endpoints
        .into_iter()
        .map(|((dns_name, record_type), targets)| {
            json!({
                "dnsName": dns_name,
                "recordType": record_type,
                "recordTTL": delegation.ttl,
                "targets": targets,
            })
        })
        .collect();
    json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "gslbd"},
        },
        "spec": {"endpoints": endpoints},
    })
}
