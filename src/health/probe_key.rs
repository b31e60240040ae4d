//! What identifies a probe: one per distinct (kind, address and port, Host, path), however
//! many services share it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::model::{ProbeKind, Service};

/// What identifies a probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeKey {
    pub kind: ProbeKind,
    pub addr: SocketAddr,
    /// Host header and TLS name (empty for TCP).
    pub host: String,
    /// HTTP path (empty for TCP).
    pub path: String,
}

impl fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ProbeKind::Tcp | ProbeKind::None => write!(f, "tcp://{}", self.addr),
            ProbeKind::Http => write!(f, "http://{}{} via {}", self.host, self.path, self.addr),
            ProbeKind::Https => write!(f, "https://{}{} via {}", self.host, self.path, self.addr),
        }
    }
}

impl ProbeKey {
    /// The probe of `service`'s target address `addr`, if the service is probed.
    pub fn for_target(service: &Service, addr: IpAddr) -> Option<Self> {
        let settings = &service.probe;
        let addr = SocketAddr::new(addr, settings.port);
        match settings.kind {
            ProbeKind::None => None,
            ProbeKind::Tcp => Some(Self {
                kind: ProbeKind::Tcp,
                addr,
                host: String::new(),
                path: String::new(),
            }),
            kind @ (ProbeKind::Http | ProbeKind::Https) => Some(Self {
                kind,
                addr,
                host: settings
                    .host
                    .clone()
                    .unwrap_or_else(|| service.name.to_string().trim_end_matches('.').to_string()),
                path: settings.path.clone(),
            }),
        }
    }
}
