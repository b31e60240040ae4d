//! Test support for the section tests: a small valid file that each test extends with the keys or
//! tables under test, and an assertion on the problems validation reports. Building the text from
//! parts keeps every test to the lines it is about (no edits of a shared TOML string).

use super::{Config, ConfigError, Problem, parse};

/// A valid file: zone `gslb.example.com`, region `eu` (nameserver inside the zone, with glue)
/// and region `us` (nameserver outside it), no services and no optional tables.
pub(super) struct Fixture {
    top: Vec<String>,
    zone_name: String,
    zone: Vec<String>,
    tables: Vec<String>,
}

const REGIONS: &str = r#"
[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["192.0.2.53"]

[[regions]]
name = "us"
nameserver = "ns.us.example.net"
"#;

impl Fixture {
    pub(super) fn new() -> Self {
        Self {
            top: Vec::new(),
            zone_name: "gslb.example.com".into(),
            zone: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// Adds a top-level key, such as `local_region = "eu"`.
    pub(super) fn top(mut self, line: &str) -> Self {
        self.top.push(line.into());
        self
    }

    /// Replaces the zone's name.
    pub(super) fn zone_name(mut self, name: &str) -> Self {
        self.zone_name = name.into();
        self
    }

    /// Adds a key to `[zone]`, such as `ttl = 60`.
    pub(super) fn zone(mut self, line: &str) -> Self {
        self.zone.push(line.into());
        self
    }

    /// Adds a table, or an entry of `[[regions]]` or `[[services]]` after the two regions.
    pub(super) fn table(mut self, toml: &str) -> Self {
        self.tables.push(toml.into());
        self
    }

    /// The file with the table `[name]` holding `keys` (lines such as `ttl = 60`).
    pub(super) fn section(name: &str, keys: &str) -> Self {
        Self::new().table(&format!("[{name}]\n{keys}"))
    }

    /// The configuration text.
    pub(super) fn text(&self) -> String {
        format!(
            "{}\n[zone]\nname = {:?}\n{}\n{REGIONS}\n{}\n",
            self.top.join("\n"),
            self.zone_name,
            self.zone.join("\n"),
            self.tables.join("\n\n"),
        )
    }

    /// The validated configuration; fails the test with the problems if it is refused.
    pub(super) fn config(&self) -> Config {
        match parse(&self.text()) {
            Ok(config) => config,
            Err(error) => panic!("refused:\n{error}\n--- config:\n{}", self.text()),
        }
    }

    /// The problems validation reports; fails the test if the configuration is accepted.
    pub(super) fn problems(&self) -> Vec<Problem> {
        match parse(&self.text()) {
            Err(ConfigError::Invalid(problems)) => problems,
            Err(error) => panic!("expected problems, got {error}"),
            Ok(_) => panic!("accepted, expected problems:\n{}", self.text()),
        }
    }

    /// Asserts that validation reports a problem at `path` whose reason contains `reason`.
    pub(super) fn assert_refused(&self, path: &str, reason: &str) {
        assert_has(&self.problems(), path, reason);
    }
}

/// Asserts that `problems` has one at exactly `path` whose reason contains `reason`.
pub(super) fn assert_has(problems: &[Problem], path: &str, reason: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.path == path && p.reason.contains(reason)),
        "expected {path}: …{reason}… in {problems:#?}"
    );
}

/// Asserts that no problem concerns `path`.
pub(super) fn assert_none_at(problems: &[Problem], path: &str) {
    assert!(
        problems.iter().all(|p| p.path != path),
        "unexpected problem at {path} in {problems:#?}"
    );
}
