//! A stand-in Kubernetes API server speaking the real list/watch protocol over HTTP with real
//! JSON objects, for a real `kube::Client` (the one gslbd builds from `kubernetes.api_server`):
//!
//! - list: `GET /apis/networking.k8s.io/v1/ingresses` → `IngressList` with
//!   `metadata.resourceVersion`;
//! - watch: `?watch=true&resourceVersion=N` → newline-delimited `ADDED`/`MODIFIED`/`DELETED`
//!   events after N, then live ones, and `BOOKMARK`s; an N older than the last compaction gets
//!   an `ERROR` event with a 410 `Status` (what a real API server sends for an expired version);
//! - `POST /apis/events.k8s.io/v1/namespaces/{ns}/events` records Events (and `PATCH` of them).
//!
//! Cluster-scoped paths only (gslbd watching every namespace). `set_down(true)` ends every
//! watch and closes the listening socket, like an unreachable API server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The kinds served: (collection path, apiVersion, kind).
pub const KINDS: [(&str, &str, &str); 5] = [
    (
        "/apis/networking.k8s.io/v1/ingresses",
        "networking.k8s.io/v1",
        "Ingress",
    ),
    ("/api/v1/services", "v1", "Service"),
    (
        "/apis/discovery.k8s.io/v1/endpointslices",
        "discovery.k8s.io/v1",
        "EndpointSlice",
    ),
    (
        "/apis/gateway.networking.k8s.io/v1/httproutes",
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
    ),
    (
        "/apis/gateway.networking.k8s.io/v1/gateways",
        "gateway.networking.k8s.io/v1",
        "Gateway",
    ),
];

#[derive(Default)]
struct Collection {
    objects: BTreeMap<(String, String), Value>,
    /// (resourceVersion, event type, object)
    log: Vec<(u64, &'static str, Value)>,
    /// Watches from a version below this get 410 Gone.
    compacted_before: u64,
}

#[derive(Default)]
struct Inner {
    version: u64,
    collections: HashMap<&'static str, Collection>,
    events: Vec<Value>,
    /// Objects written by server-side apply: (path with query, content type, body).
    applied: Vec<(String, String, Value)>,
    /// Requests seen, by path (lists and watches).
    requests: Vec<String>,
    /// Collections whose lists answer 503 for now (a slow or overloaded API server).
    held: Vec<&'static str>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<()>,
    /// Cancelled to end every open watch (compaction, outage).
    streams: Arc<Mutex<CancellationToken>>,
}

/// The running fake API server.
pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Shared,
    /// Stops the current HTTP server (an outage closes the listening socket).
    stop: Mutex<CancellationToken>,
}

fn kind_of(kind: &str) -> (&'static str, &'static str, &'static str) {
    *KINDS
        .iter()
        .find(|(_, _, k)| *k == kind)
        .unwrap_or_else(|| panic!("unknown kind {kind}"))
}

impl FakeApi {
    pub async fn start(ip: &str) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind fake API");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            inner: Arc::default(),
            changes: broadcast::channel(1024).0,
            streams: Arc::new(Mutex::new(CancellationToken::new())),
        };
        let stop = serve(listener, shared.clone());
        Self {
            addr,
            shared,
            stop: Mutex::new(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces `object` (its `kind`, `metadata.namespace` and `metadata.name`
    /// say where), as ADDED or MODIFIED.
    pub fn apply(&self, mut object: Value) {
        let kind = object["kind"].as_str().expect("kind").to_string();
        let (path, api_version, kind) = kind_of(&kind);
        object["apiVersion"] = json!(api_version);
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_string(),
        );
        let mut inner = self.shared.inner.lock().expect("lock");
        inner.version += 1;
        let version = inner.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object["metadata"]["namespace"] = json!(key.0);
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{kind}-{}-{}", key.0, key.1));
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        let collection = inner.collections.entry(path).or_default();
        let event = if collection.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        collection.objects.insert(key, object.clone());
        collection.log.push((version, event, object));
        drop(inner);
        let _ = self.shared.changes.send(());
    }

    /// Deletes an object, as DELETED.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let (path, ..) = kind_of(kind);
        let mut inner = self.shared.inner.lock().expect("lock");
        inner.version += 1;
        let version = inner.version;
        let collection = inner.collections.entry(path).or_default();
        if let Some(mut object) = collection
            .objects
            .remove(&(namespace.to_string(), name.to_string()))
        {
            object["metadata"]["resourceVersion"] = json!(version.to_string());
            collection.log.push((version, "DELETED", object));
        }
        drop(inner);
        let _ = self.shared.changes.send(());
    }

    /// Forgets the event history (as etcd compaction does) and ends every watch: watchers
    /// resuming from their last version get 410 Gone and must list again.
    pub fn compact(&self) {
        let mut inner = self.shared.inner.lock().expect("lock");
        let next = inner.version + 1;
        for collection in inner.collections.values_mut() {
            collection.compacted_before = next;
            collection.log.clear();
        }
        drop(inner);
        self.end_streams();
    }

    /// An unreachable API server (watches cut, the listening socket closed: connections are
    /// refused), or back on the same address.
    pub async fn set_down(&self, down: bool) {
        if down {
            self.end_streams();
            self.stop.lock().expect("lock").cancel();
            return;
        }
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(self.addr).await {
                *self.stop.lock().expect("lock") = serve(listener, self.shared.clone());
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }

    fn end_streams(&self) {
        let mut streams = self.shared.streams.lock().expect("lock");
        streams.cancel();
        *streams = CancellationToken::new();
    }

    /// While `held`, lists of `kind` answer 503 Service Unavailable (the watcher retries with
    /// backoff): a list that comes late.
    pub fn hold_lists(&self, kind: &str, held: bool) {
        let (path, ..) = kind_of(kind);
        let mut inner = self.shared.inner.lock().expect("lock");
        inner.held.retain(|p| *p != path);
        if held {
            inner.held.push(path);
        }
    }

    /// Events posted so far (events.k8s.io/v1 objects).
    pub fn events(&self) -> Vec<Value> {
        self.shared.inner.lock().expect("lock").events.clone()
    }

    /// Objects written by server-side apply: (path and query, content type, object).
    pub fn applied(&self) -> Vec<(String, String, Value)> {
        self.shared.inner.lock().expect("lock").applied.clone()
    }

    /// Requests seen so far ("LIST path" or "WATCH path from=N").
    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().expect("lock").requests.clone()
    }

    pub fn stop(&self) {
        self.end_streams();
        self.stop.lock().expect("lock").cancel();
    }
}

/// Serves the API on `listener` until the returned token is cancelled.
fn serve(listener: tokio::net::TcpListener, shared: Shared) -> CancellationToken {
    let router = Router::new().fallback(handle).with_state(shared);
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    stop
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query: HashMap<String, String> = request.uri().query().map(url_pairs).unwrap_or_default();
    let method = request.method().clone();
    if path.starts_with("/apis/externaldns.k8s.io/v1alpha1/namespaces/") && method == Method::PATCH
    {
        let target = request.uri().to_string();
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let mut value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut inner = shared.inner.lock().expect("lock");
        inner.version += 1;
        inner.applied.push((target, content_type, value.clone()));
        value["metadata"]["resourceVersion"] = json!(inner.version.to_string());
        return json_response(StatusCode::OK, &value);
    }
    if path.starts_with("/apis/events.k8s.io/v1/namespaces/") {
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if method == Method::POST || method == Method::PATCH {
            shared
                .inner
                .lock()
                .expect("lock")
                .events
                .push(value.clone());
            let code = if method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            return json_response(code, &value);
        }
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &status(405, "MethodNotAllowed", "no"),
        );
    }
    let Some((collection_path, api_version, kind)) =
        KINDS.iter().find(|(p, ..)| *p == path).copied()
    else {
        return json_response(
            StatusCode::NOT_FOUND,
            &status(404, "NotFound", &format!("no resource at {path}")),
        );
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if !watch {
        let mut inner = shared.inner.lock().expect("lock");
        inner.requests.push(format!("LIST {path}"));
        if inner.held.contains(&collection_path) {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &status(503, "ServiceUnavailable", "the list is held"),
            );
        }
        let version = inner.version;
        let items: Vec<Value> = inner
            .collections
            .get(collection_path)
            .map(|c| c.objects.values().cloned().collect())
            .unwrap_or_default();
        return json_response(
            StatusCode::OK,
            &json!({
                "apiVersion": api_version,
                "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": version.to_string()},
                "items": items,
            }),
        );
    }

    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let changes = shared.changes.subscribe();
    let ended = shared.streams.lock().expect("lock").clone();
    let pending: VecDeque<String> = VecDeque::new();
    {
        let mut inner = shared.inner.lock().expect("lock");
        inner.requests.push(format!("WATCH {path} from={from}"));
        let collection = inner.collections.entry(collection_path).or_default();
        if from < collection.compacted_before {
            let line = json!({"type": "ERROR", "object": status(410, "Expired", &format!("too old resource version: {from}"))});
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from(format!("{line}\n")))
                .expect("response");
        }
    }
    let watch = Watch {
        shared,
        seen: from,
        api_version,
        kind,
        collection_path,
        changes,
        ended,
        queue: pending,
    };
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        let line = watch.next_line().await?;
        Some((Ok::<Bytes, Infallible>(Bytes::from(line)), watch))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// One open watch.
struct Watch {
    shared: Shared,
    seen: u64,
    api_version: &'static str,
    kind: &'static str,
    collection_path: &'static str,
    changes: broadcast::Receiver<()>,
    ended: CancellationToken,
    queue: VecDeque<String>,
}

impl Watch {
    /// The next event line; `None` when the watch ends.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.queue.pop_front() {
                return Some(line);
            }
            {
                let inner = self.shared.inner.lock().expect("lock");
                if let Some(collection) = inner.collections.get(self.collection_path) {
                    for (version, event, object) in &collection.log {
                        if *version > self.seen {
                            self.queue.push_back(format!(
                                "{}\n",
                                json!({"type": event, "object": object})
                            ));
                            self.seen = *version;
                        }
                    }
                }
            }
            if !self.queue.is_empty() {
                continue;
            }
            tokio::select! {
                _ = self.changes.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    // A bookmark at the last version sent: a safe place to resume from.
                    let bookmark = json!({"type": "BOOKMARK", "object": {
                        "apiVersion": self.api_version, "kind": self.kind,
                        "metadata": {"resourceVersion": self.seen.to_string()}
                    }});
                    self.queue.push_back(format!("{bookmark}\n"));
                }
                _ = self.ended.cancelled() => return None,
            }
        }
    }
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}
