//! `gslbd delegation apply` as the command line gives it: the parent zone's primary server
//! (HOST:PORT), a TSIG key file and the parent zone's name, checked and resolved into a
//! [`Parent`] that then plans and sends the update (`update`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::Delegation;
use super::key::{self, KeyError, TsigKey};
use super::update::{self, Changes, UpdateError};

/// Why the delegation cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("bad --parent-zone {text:?}")]
    ParentZone {
        text: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    #[error("{parent} is not a parent of {zone}")]
    NotParent { parent: Name, zone: Name },
    #[error("cannot read {}", path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad TSIG key file {}", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("bad --server {server:?} (HOST:PORT)")]
    Server {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error(transparent)]
    Update(#[from] UpdateError),
}

/// The parent zone's primary server, ready to take updates of one delegation.
#[derive(Debug)]
pub struct Parent<'d> {
    pub delegation: &'d Delegation,
    /// The parent zone (lowercase, fully qualified).
    pub zone: Name,
    pub server: SocketAddr,
    key: TsigKey,
}

impl<'d> Parent<'d> {
    /// Checks `parent_zone` (default: the zone's name without its first label), reads the key
    /// file and resolves `server`.
    pub async fn resolve(
        delegation: &'d Delegation,
        server: &str,
        tsig_key: &Path,
        parent_zone: Option<&str>,
    ) -> Result<Self, ApplyError> {
        let zone = match parent_zone {
            Some(text) => {
                let mut name =
                    Name::from_ascii(text)
                        .map(|n| n.to_lowercase())
                        .map_err(|source| ApplyError::ParentZone {
                            text: text.to_string(),
                            source,
                        })?;
                name.set_fqdn(true);
                name
            }
            None => delegation.default_parent(),
        };
        if !zone.zone_of(&delegation.zone) || zone == delegation.zone {
            return Err(ApplyError::NotParent {
                parent: zone,
                zone: delegation.zone.clone(),
            });
        }
        let text = std::fs::read_to_string(tsig_key).map_err(|source| ApplyError::ReadKey {
            path: tsig_key.to_path_buf(),
            source,
        })?;
        let key = key::parse(&text).map_err(|source| ApplyError::BadKey {
            path: tsig_key.to_path_buf(),
            source,
        })?;
        let server_addr = tokio::net::lookup_host(server)
            .await
            .map_err(|source| ApplyError::Server {
                server: server.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| ApplyError::NoAddress(server.to_string()))?;
        Ok(Self {
            delegation,
            zone,
            server: server_addr,
            key,
        })
    }

    /// What the server serves that differs from the delegation.
    pub async fn plan(&self) -> Result<Changes, ApplyError> {
        Ok(update::plan(self.server, self.delegation).await?)
    }

    /// Sends `changes` in one signed update and checks that they took.
    pub async fn apply(&self, changes: &Changes) -> Result<(), ApplyError> {
        Ok(update::apply(self.server, &self.zone, self.delegation, changes, &self.key).await?)
    }
}
