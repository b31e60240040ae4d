//! Health of this region's targets: which probes to run (`plan`, keyed by `probe_key`),
//! running them (`probe`), rise/fall thresholds (`rise_fall`), the scheduler that feeds
//! verdicts to the state owner (`checker`), and the verdicts it holds (`verdict`).

pub mod checker;
pub mod plan;
pub mod probe;
pub mod probe_key;
pub mod rise_fall;
pub mod runtime;
pub mod verdict;

pub use plan::Plan;
pub use probe_key::ProbeKey;
pub use verdict::{Verdict, Verdicts};
