//! Health of this region's targets: which probes to run (`plan`), running them (`probe`),
//! rise/fall thresholds (`verdict`), and the scheduler that feeds verdicts to the state owner
//! (`checker`).

pub mod checker;
pub mod plan;
pub mod probe;
pub mod verdict;

pub use plan::{ProbeKey, Verdict, Verdicts};
