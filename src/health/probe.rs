//! One probe of one target: an HTTP(S) GET with the service's Host header (and TLS name) sent
//! to the target address, or a TCP connect. Redirects are never followed: a probe only ever
//! talks to the configured address. A target that is a host name is resolved (the system's
//! resolver) at every probe, and the probe goes to what it resolves to: a name that does not
//! resolve fails the probe.

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use tokio::net::TcpStream;

use super::ProbeKey;
use super::probe_key::Endpoint;
use crate::label_enum::label_enum;
use crate::model::{ProbeKind, ProbeSettings};

/// How much of a body is searched for `body_contains`.
const BODY_LIMIT: usize = 64 * 1024;

/// Why a probe failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("status {0} is not accepted")]
    Status(u16),
    #[error("body does not contain {0:?}")]
    Body(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("cannot set up the probe: {0}")]
    Setup(String),
}

label_enum! {
    /// How a probe ended; the names are metric label values. Past `Success`, one per
    /// [`ProbeError`] variant ([`ProbeError::outcome`]).
    pub enum ProbeOutcome {
        /// The target answered as expected.
        Success = "success",
        Connect = "connect", Timeout = "timeout", Status = "status", Body = "body",
        Request = "request", Setup = "setup",
    }
}

impl ProbeError {
    /// The outcome this failure counts as.
    pub fn outcome(&self) -> ProbeOutcome {
        match self {
            ProbeError::Connect(_) => ProbeOutcome::Connect,
            ProbeError::Timeout(_) => ProbeOutcome::Timeout,
            ProbeError::Status(_) => ProbeOutcome::Status,
            ProbeError::Body(_) => ProbeOutcome::Body,
            ProbeError::Request(_) => ProbeOutcome::Request,
            ProbeError::Setup(_) => ProbeOutcome::Setup,
        }
    }
}

/// A probe, ready to run again and again.
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    async fn check(&self) -> Result<(), ProbeError>;
}

/// Makes probes: real network ones, or test doubles.
pub trait ProbeFactory: Send + Sync {
    fn build(&self, key: &ProbeKey, settings: &ProbeSettings)
    -> Result<Box<dyn Probe>, ProbeError>;
}

/// Probes over the network with reqwest (HTTP/HTTPS) and tokio (TCP).
#[derive(Clone, Copy, Debug, Default)]
pub struct NetProbes;

impl ProbeFactory for NetProbes {
    fn build(
        &self,
        key: &ProbeKey,
        settings: &ProbeSettings,
    ) -> Result<Box<dyn Probe>, ProbeError> {
        match key.kind {
            ProbeKind::Http | ProbeKind::Https => Ok(Box::new(HttpProbe::new(key, settings)?)),
            ProbeKind::Tcp | ProbeKind::None => Ok(Box::new(TcpProbe {
                endpoint: key.endpoint.clone(),
                timeout: settings.timeout,
            })),
        }
    }
}

/// rustls needs one process-wide crypto provider; gslbd uses ring throughout.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider was installed first, which is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

struct HttpProbe {
    client: reqwest::Client,
    url: String,
    settings: ProbeSettings,
}

impl HttpProbe {
    fn new(key: &ProbeKey, settings: &ProbeSettings) -> Result<Self, ProbeError> {
        install_crypto_provider();
        let scheme = if key.kind == ProbeKind::Https {
            "https"
        } else {
            "http"
        };
        let mut builder = reqwest::Client::builder();
        // The name resolves to the target only: Host header and SNI carry the service's name
        // while the connection goes where we say.
        builder = match &key.endpoint {
            Endpoint::Addr(addr) => builder.resolve(&key.host, *addr),
            Endpoint::Name(target, _) => builder.dns_resolver(Via(Arc::from(target.as_str()))),
        };
        let mut builder = builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A fresh connection per probe: connection set-up is part of what is checked.
            .pool_max_idle_per_host(0)
            .user_agent(concat!(
                "gslbd/",
                env!("CARGO_PKG_VERSION"),
                " health-check"
            ))
            .tls_danger_accept_invalid_certs(settings.insecure_skip_verify);
        if let Some(file) = &settings.ca_file {
            let pem = std::fs::read(file)
                .map_err(|e| ProbeError::Setup(format!("cannot read {}: {e}", file.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ProbeError::Setup(format!("bad CA bundle {}: {e}", file.display())))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ProbeError::Setup(innermost(&e)))?;
        Ok(Self {
            client,
            url: format!(
                "{scheme}://{}:{}{}",
                key.host,
                key.endpoint.port(),
                key.path
            ),
            settings: settings.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Probe for HttpProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| classify(&e, self.settings.timeout))?;
        let status = response.status().as_u16();
        if !self
            .settings
            .expect_status
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&status))
        {
            return Err(ProbeError::Status(status));
        }
        let Some(needle) = &self.settings.body_contains else {
            return Ok(());
        };
        let mut body = Vec::new();
        while body.len() < BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(classify(&e, self.settings.timeout)),
            }
        }
        let needle = needle.as_bytes();
        if body.windows(needle.len().max(1)).any(|w| w == needle) {
            Ok(())
        } else {
            Err(ProbeError::Body(
                String::from_utf8_lossy(needle).into_owned(),
            ))
        }
    }
}

fn classify(error: &reqwest::Error, timeout: Duration) -> ProbeError {
    if error.is_timeout() {
        ProbeError::Timeout(timeout)
    } else if error.is_connect() {
        ProbeError::Connect(innermost(error))
    } else {
        ProbeError::Request(innermost(error))
    }
}

/// The deepest cause: reqwest's own message names the URL, the cause says what went wrong.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Resolves every name an HTTP probe asks for to a target's host name's addresses.
struct Via(Arc<str>);

impl reqwest::dns::Resolve for Via {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = self.0.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((&*target, 0)).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(found.collect::<Vec<SocketAddr>>().into_iter());
            Ok(addrs)
        })
    }
}

struct TcpProbe {
    endpoint: Endpoint,
    timeout: Duration,
}

#[async_trait::async_trait]
impl Probe for TcpProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        let connect = async {
            match &self.endpoint {
                Endpoint::Addr(addr) => TcpStream::connect(addr).await,
                Endpoint::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
            }
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(e)) => Err(ProbeError::Connect(e.to_string())),
            Err(_) => Err(ProbeError::Timeout(self.timeout)),
        }
    }
}
