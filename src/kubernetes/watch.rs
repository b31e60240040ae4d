//! The watches: one kube-runtime watcher per kind and watched namespace, feeding a reflector
//! store. The watch tasks only keep the stores current, count events and errors, and wake the
//! controller; what the objects mean is the index's business (`index.rs`).
//!
//! A store keeps its content while the API server is unreachable (the watcher retries with
//! backoff), and a watch that expired (410 Gone) relists and replaces the store atomically.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::label_enum::label_enum;
use crate::metrics::Metrics;
use crate::tasks::{OnEnd, Tasks};

label_enum! {
    /// What a watch stream said; the names are metric label values.
    pub enum WatchEvent {
        /// An object was added or changed.
        Apply = "apply",
        /// An object was deleted.
        Delete = "delete",
        /// A (re)list started: the store is replaced when it is done.
        Init = "init",
        /// An object of the list in progress.
        InitApply = "init_apply",
        /// The list is complete and the store replaced.
        InitDone = "init_done",
    }
}

impl WatchEvent {
    /// The event of `event`.
    fn of<K>(event: &watcher::Event<K>) -> Self {
        match event {
            watcher::Event::Apply(_) => WatchEvent::Apply,
            watcher::Event::Delete(_) => WatchEvent::Delete,
            watcher::Event::Init => WatchEvent::Init,
            watcher::Event::InitApply(_) => WatchEvent::InitApply,
            watcher::Event::InitDone => WatchEvent::InitDone,
        }
    }

    /// Whether the stores changed in a way discovery should see: objects applied or deleted
    /// between lists, or a list done (the objects of a list in progress are not there yet).
    fn changes_stores(self) -> bool {
        matches!(
            self,
            WatchEvent::Apply | WatchEvent::Delete | WatchEvent::InitDone
        )
    }
}

/// Stores of one kind, one per watched namespace (or one for all).
pub(super) struct Stores<K: Resource<DynamicType = D> + 'static, D: Clone + Eq + Hash + 'static> {
    stores: Vec<Store<K>>,
}

impl<K, D> Stores<K, D>
where
    K: Resource<DynamicType = D> + Clone + 'static,
    D: Clone + Eq + Hash + 'static,
{
    /// Every object the stores hold now.
    pub(super) fn all(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|s| s.state()).collect()
    }

    /// Whether every store has completed its first list.
    pub(super) fn listed(&self) -> bool {
        self.stores.iter().all(|s| {
            futures::FutureExt::now_or_never(s.wait_until_ready()).is_some_and(|r| r.is_ok())
        })
    }
}

/// Shared by the watch tasks and the controller.
#[derive(Clone)]
pub(super) struct WatchContext {
    /// Woken on every change that may alter the discovered services.
    pub(super) changed: Arc<Notify>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stop: CancellationToken,
}

/// Starts one reflector per namespace for `apis`.
pub(super) fn watch<K>(
    apis: Vec<Api<K>>,
    kind: &'static str,
    dyntype: K::DynamicType,
    context: &WatchContext,
    tasks: &Tasks,
) -> Stores<K, K::DynamicType>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync + 'static,
{
    context.metrics.kubernetes.watch_started(kind);
    let mut stores = Vec::new();
    for api in apis {
        let writer = reflector::store::Writer::new(dyntype.clone());
        stores.push(writer.as_reader());
        let context = context.clone();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        // A store no longer kept current serves stale objects: /healthz says so.
        tasks.supervise(format!("kubernetes watch {kind}"), OnEnd::FailHealth, async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    _ = context.stop.cancelled() => return,
                };
                let Some(event) = next else { return };
                match event {
                    Ok(event) => {
                        if failing {
                            info!(kind, "Kubernetes watch resumed");
                            failing = false;
                        }
                        let event = WatchEvent::of(&event);
                        context.metrics.kubernetes.watch_event(kind, event);
                        if event.changes_stores() {
                            context.changed.notify_one();
                        }
                    }
                    Err(error) => {
                        context.metrics.kubernetes.watch_error(kind);
                        if !failing {
                            warn!(kind, %error, "Kubernetes watch failing; serving the last known objects and retrying");
                            failing = true;
                        } else {
                            debug!(kind, %error, "Kubernetes watch still failing");
                        }
                    }
                }
            }
        });
    }
    Stores { stores }
}

/// One API per watched namespace (`Some`), or one for all namespaces (`None`).
pub(super) fn typed_apis<K>(client: &Client, scopes: &[Option<String>]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    scopes
        .iter()
        .map(|scope| match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        })
        .collect()
}

/// As [`typed_apis`] for a Gateway API kind (gateway.networking.k8s.io/v1), read as dynamic
/// objects (k8s-openapi has no Gateway API types), with the resource to watch it by.
pub(super) fn gateway_api_apis(
    client: &Client,
    scopes: &[Option<String>],
    kind: &str,
) -> (Vec<Api<DynamicObject>>, ApiResource) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        kind,
    ));
    let apis = scopes
        .iter()
        .map(|scope| match scope {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        })
        .collect();
    (apis, resource)
}
