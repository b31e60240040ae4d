//! Tells users what gslbd decided, where they look: a Kubernetes Event on each object when its
//! outcome changes (`Balanced`, or the reason it was skipped), and a `HostRefused` Warning when
//! hosts it names may not be balanced. Events only: gslbd never writes fields of objects other
//! controllers own.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Reporter};
use tracing::warn;

use super::discover::{HOST_REFUSED, Outcome, RefusedHost};

pub struct Recorder {
    inner: kube::runtime::events::Recorder,
}

impl Recorder {
    pub fn new(client: Client) -> Self {
        let reporter = Reporter {
            controller: "gslbd".to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            inner: kube::runtime::events::Recorder::new(client, reporter),
        }
    }

    /// Publishes `outcome` on the object.
    pub async fn publish(&self, reference: &ObjectReference, outcome: &Outcome) {
        let event = match outcome {
            Outcome::Balanced { hosts } => Event {
                type_: EventType::Normal,
                reason: "Balanced".to_string(),
                note: Some(format!("gslbd balances {}", hosts.join(", "))),
                action: "Discover".to_string(),
                secondary: None,
            },
            Outcome::Skipped { reason, message } => Event {
                type_: EventType::Warning,
                reason: (*reason).to_string(),
                note: Some(format!("skipped by gslbd: {message}")),
                action: "Discover".to_string(),
                secondary: None,
            },
        };
        self.send(reference, event).await;
    }

    /// Publishes a Warning naming the object's `refused` hosts and why (its other hosts are
    /// balanced, or it was skipped for another reason).
    pub async fn publish_refused(&self, reference: &ObjectReference, refused: &[RefusedHost]) {
        let hosts: Vec<&str> = refused.iter().map(|r| r.message.as_str()).collect();
        let event = Event {
            type_: EventType::Warning,
            reason: HOST_REFUSED.to_string(),
            note: Some(format!("not balanced by gslbd: {}", hosts.join("; "))),
            action: "Discover".to_string(),
            secondary: None,
        };
        self.send(reference, event).await;
    }

    /// Failures are logged, never fatal.
    async fn send(&self, reference: &ObjectReference, event: Event) {
        if let Err(error) = self.inner.publish(&event, reference).await {
            warn!(%error, "cannot publish a Kubernetes Event (RBAC: create on events.k8s.io events?)");
        }
    }
}
