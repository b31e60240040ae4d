//! A probe's verdict as the state owner holds it: the latest health of every probed target.

use std::collections::HashMap;

use super::ProbeKey;
use crate::model::Health;

/// A probe's latest verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    /// When the run of results that led to it began (Unix ms): the first failing probe of an
    /// `Unhealthy` verdict, the first passing one of a `Healthy` one.
    pub since_ms: u64,
}

/// The latest verdict of every probe.
pub type Verdicts = HashMap<ProbeKey, Verdict>;
