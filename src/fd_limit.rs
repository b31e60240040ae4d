//! File descriptors: the process's open-file limit (RLIMIT_NOFILE), raised at start to what the
//! system allows, and the rule that keeps some for gslbd's own work. DNS TCP connections are
//! the one thing clients can make gslbd open without bound; their cap is lowered so that
//! [`RESERVE`] descriptors always remain for probes, gossip, the Kubernetes watches, the admin
//! endpoint and the listening sockets, and a flood of connections never makes a probe fail
//! for gslbd's own lack of descriptors (which would mark a healthy region down).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors never given to DNS TCP connections: the probes in flight (64 by default), the
/// admin endpoint's connections (64 at most), gossip, Kubernetes, listeners and files, with
/// room to spare.
pub const RESERVE: u64 = 256;

/// The open-file limit in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// What the process may open now.
    pub soft: u64,
    /// What it could raise `soft` to.
    pub hard: u64,
}

/// Why the limit could not be read or raised.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error("cannot read the open-file limit (RLIMIT_NOFILE)")]
    Read(#[source] nix::Error),
    #[error("cannot raise the open-file limit from {soft} to {hard}")]
    Raise {
        soft: u64,
        hard: u64,
        #[source]
        source: nix::Error,
    },
}

/// Raises the soft open-file limit to the hard one if it is lower (a distribution's 1024 by
/// default, when the hard limit is often 512 Ki); returns the limit in force.
pub fn raise() -> Result<FdLimit, FdLimitError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(FdLimitError::Read)?;
    if soft >= hard {
        return Ok(FdLimit { soft, hard });
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|source| FdLimitError::Raise {
        soft,
        hard,
        source,
    })?;
    Ok(FdLimit { soft: hard, hard })
}

/// The TCP connection cap: `wanted`, or fewer so that [`RESERVE`] descriptors remain of `soft`.
pub fn connection_cap(wanted: usize, soft: u64) -> usize {
    let room = usize::try_from(soft.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
    wanted.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        assert_eq!(connection_cap(1024, 1024), 768);
        assert_eq!(connection_cap(1024, 1024 * 1024), 1024);
        assert_eq!(connection_cap(1024, 300), 44);
        assert_eq!(
            connection_cap(1024, 100),
            0,
            "no room: no TCP rather than no probes"
        );
        assert_eq!(connection_cap(1024, u64::MAX), 1024, "RLIM_INFINITY");
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limit = raise().expect("the limit can be read and raised to the hard limit");
        assert_eq!(limit.soft, limit.hard);
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("readable");
        assert_eq!(FdLimit { soft, hard }, limit);
    }
}
