//! What identifies a probe: one per distinct (kind, address or host name and port, Host,
//! path), however many services share it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::Name;

use crate::model::{ProbeKind, Service};

/// Where a probe connects: an address, or a target's host name, resolved at each probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Addr(SocketAddr),
    /// A host name (without its final dot) and port.
    Name(String, u16),
}

impl Endpoint {
    /// The port it connects to.
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Addr(addr) => addr.port(),
            Endpoint::Name(_, port) => *port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            Endpoint::Name(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

/// What identifies a probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeKey {
    pub kind: ProbeKind,
    pub endpoint: Endpoint,
    /// Host header and TLS name (empty for TCP).
    pub host: String,
    /// HTTP path (empty for TCP).
    pub path: String,
}

impl fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ProbeKind::Tcp | ProbeKind::None => write!(f, "tcp://{}", self.endpoint),
            ProbeKind::Http => write!(f, "http://{}{} via {}", self.host, self.path, self.endpoint),
            ProbeKind::Https => write!(
                f,
                "https://{}{} via {}",
                self.host, self.path, self.endpoint
            ),
        }
    }
}

impl ProbeKey {
    /// The probe of `service`'s target address `addr`, if the service is probed.
    pub fn for_target(service: &Service, addr: IpAddr) -> Option<Self> {
        Self::of(
            service,
            Endpoint::Addr(SocketAddr::new(addr, service.probe.port)),
        )
    }

    /// The probe of `service`'s target that is the host name `name`, if the service is probed.
    pub fn for_name(service: &Service, name: &Name) -> Option<Self> {
        let text = name.to_string();
        let host = text.trim_end_matches('.').to_string();
        Self::of(service, Endpoint::Name(host, service.probe.port))
    }

    fn of(service: &Service, endpoint: Endpoint) -> Option<Self> {
        let settings = &service.probe;
        match settings.kind {
            ProbeKind::None => None,
            ProbeKind::Tcp => Some(Self {
                kind: ProbeKind::Tcp,
                endpoint,
                host: String::new(),
                path: String::new(),
            }),
            kind @ (ProbeKind::Http | ProbeKind::Https) => Some(Self {
                kind,
                endpoint,
                host: settings
                    .host
                    .clone()
                    .unwrap_or_else(|| service.name.to_string().trim_end_matches('.').to_string()),
                path: settings.path.clone(),
            }),
        }
    }
}
