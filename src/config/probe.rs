//! `[probe]` and each service's `probe` table: how a region's targets are checked. The
//! top-level table gives the defaults, a service's table overrides them field by field, and the
//! merged settings are validated with the path of the table they came from.

use std::time::Duration;

use serde::Deserialize;

use super::names::parse_name;
use super::problems::Problems;
use crate::model::{ProbeKind, ProbeSettings, TargetPolicy};

/// Probe settings: the top-level `[probe]` gives defaults, `[services.probe]` overrides them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) kind: Option<ProbeKind>,
    port: Option<u16>,
    path: Option<String>,
    host: Option<String>,
    expect_status: Option<Vec<String>>,
    body_contains: Option<String>,
    ca_file: Option<String>,
    insecure_skip_verify: Option<bool>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
    target_policy: Option<TargetPolicy>,
    /// Top level only: probes in flight at once.
    pub(super) max_concurrency: Option<usize>,
}

/// Defaults: a probe a second, a verdict after two agreeing results (so one lost packet or one
/// slow answer changes nothing, and a dead target leaves answers ~2-3 s after it died), and a
/// timeout below the interval so probes of one target never overlap.
const DEFAULT_PROBE_INTERVAL_MS: u64 = 1000;
const DEFAULT_PROBE_TIMEOUT_MS: u64 = 800;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 2;
const DEFAULT_PROBE_CONCURRENCY: usize = 64;

impl RawProbe {
    /// Probes in flight at once, from the top-level table.
    pub(super) fn concurrency(&self, problems: &mut Problems) -> usize {
        let probe_concurrency = self.max_concurrency.unwrap_or(DEFAULT_PROBE_CONCURRENCY);
        if !(1..=10_000).contains(&probe_concurrency) {
            problems.add("probe.max_concurrency", "must be between 1 and 10000");
        }
        probe_concurrency.clamp(1, 10_000)
    }

    /// This table's values where set, else `defaults`'.
    pub(super) fn or(&self, defaults: &RawProbe) -> RawProbe {
        RawProbe {
            kind: self.kind.or(defaults.kind),
            port: self.port.or(defaults.port),
            path: self.path.clone().or_else(|| defaults.path.clone()),
            host: self.host.clone().or_else(|| defaults.host.clone()),
            expect_status: self
                .expect_status
                .clone()
                .or_else(|| defaults.expect_status.clone()),
            body_contains: self
                .body_contains
                .clone()
                .or_else(|| defaults.body_contains.clone()),
            ca_file: self.ca_file.clone().or_else(|| defaults.ca_file.clone()),
            insecure_skip_verify: self.insecure_skip_verify.or(defaults.insecure_skip_verify),
            interval_ms: self.interval_ms.or(defaults.interval_ms),
            timeout_ms: self.timeout_ms.or(defaults.timeout_ms),
            rise: self.rise.or(defaults.rise),
            fall: self.fall.or(defaults.fall),
            target_policy: self.target_policy.or(defaults.target_policy),
            max_concurrency: None,
        }
    }

    /// HTTP-only fields set in this very table while the probe is TCP.
    pub(super) fn check_http_fields(
        &self,
        kind: Option<ProbeKind>,
        path: &str,
        problems: &mut Problems,
    ) {
        if kind == Some(ProbeKind::Tcp)
            && (self.body_contains.is_some() || self.expect_status.is_some())
        {
            problems.add(
                path,
                "body_contains and expect_status need an HTTP(S) probe",
            );
        }
    }

    /// Whether the table sets nothing (a service then shares the top-level settings).
    pub(super) fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.port.is_none()
            && self.path.is_none()
            && self.host.is_none()
            && self.expect_status.is_none()
            && self.body_contains.is_none()
            && self.ca_file.is_none()
            && self.insecure_skip_verify.is_none()
            && self.interval_ms.is_none()
            && self.timeout_ms.is_none()
            && self.rise.is_none()
            && self.fall.is_none()
            && self.target_policy.is_none()
            && self.max_concurrency.is_none()
    }

    /// Validates settings (a service's merged with the defaults); `path` names the table.
    pub(super) fn validate(&self, path: &str, problems: &mut Problems) -> ProbeSettings {
        let kind = self.kind.unwrap_or_default();
        let port = self.port.unwrap_or(match kind {
            ProbeKind::Https => 443,
            _ => 80,
        });
        if port == 0 {
            problems.add(format!("{path}.port"), "must be between 1 and 65535");
        }
        let http_path = self.path.clone().unwrap_or_else(|| "/".into());
        if !http_path.starts_with('/')
            || http_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            problems.add(
                format!("{path}.path"),
                format!("{http_path:?} must start with '/' and hold no spaces"),
            );
        }
        let host = self.host.as_ref().and_then(|host| match parse_name(host) {
            Ok(_) => Some(host.trim_end_matches('.').to_ascii_lowercase()),
            Err(reason) => {
                problems.add(format!("{path}.host"), reason);
                None
            }
        });
        let mut expect_status = Vec::new();
        for (i, text) in self
            .expect_status
            .clone()
            .unwrap_or_else(|| vec!["200-399".into()])
            .iter()
            .enumerate()
        {
            match parse_status_range(text) {
                Some(range) => expect_status.push(range),
                None => problems.add(
                    format!("{path}.expect_status[{i}]"),
                    format!(
                        "{text:?} is not a status code or range within 100-599 (e.g. \"200-399\")"
                    ),
                ),
            }
        }
        let interval_ms = self.interval_ms.unwrap_or(DEFAULT_PROBE_INTERVAL_MS);
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_PROBE_TIMEOUT_MS);
        if !(50..=3_600_000).contains(&interval_ms) {
            problems.add(
                format!("{path}.interval_ms"),
                "must be between 50 and 3600000",
            );
        }
        if timeout_ms == 0 || timeout_ms >= interval_ms {
            problems.add(
                format!("{path}.timeout_ms"),
                format!("must be positive and below interval_ms ({interval_ms})"),
            );
        }
        let rise = self.rise.unwrap_or(DEFAULT_RISE);
        let fall = self.fall.unwrap_or(DEFAULT_FALL);
        for (field, value) in [("rise", rise), ("fall", fall)] {
            if !(1..=100).contains(&value) {
                problems.add(format!("{path}.{field}"), "must be between 1 and 100");
            }
        }
        let insecure_skip_verify = self.insecure_skip_verify.unwrap_or(false);
        let ca_file = self.ca_file.as_ref().map(std::path::PathBuf::from);
        if kind != ProbeKind::Https && (ca_file.is_some() || insecure_skip_verify) {
            let field = if ca_file.is_some() {
                "ca_file"
            } else {
                "insecure_skip_verify"
            };
            problems.add(
                format!("{path}.{field}"),
                "only valid with kind = \"https\"",
            );
        }
        if let Some(file) = &ca_file {
            if insecure_skip_verify {
                problems.add(
                    format!("{path}.ca_file"),
                    "give either ca_file or insecure_skip_verify, not both",
                );
            }
            if let Err(error) = std::fs::metadata(file) {
                problems.add(
                    format!("{path}.ca_file"),
                    format!("cannot read {}: {error}", file.display()),
                );
            }
        }
        ProbeSettings {
            kind,
            port,
            path: http_path,
            host,
            expect_status,
            body_contains: self.body_contains.clone(),
            ca_file,
            insecure_skip_verify,
            interval: Duration::from_millis(interval_ms.max(1)),
            timeout: Duration::from_millis(timeout_ms.max(1)),
            rise: rise.clamp(1, 100),
            fall: fall.clamp(1, 100),
            target_policy: self.target_policy.unwrap_or_default(),
        }
    }
}

/// "200", or "200-399".
fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let code = text.trim().parse().ok()?;
            (code, code)
        }
    };
    ((100..=599).contains(&low) && (100..=599).contains(&high) && low <= high)
        .then_some((low, high))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{Fixture, assert_has, assert_none_at};
    use crate::model::{ProbeKind, ProbeSettings, TargetPolicy};

    /// The fixture with a top-level `[probe]` of `keys`.
    fn top(keys: &str) -> Fixture {
        Fixture::new().table(&format!("[probe]\n{keys}"))
    }

    /// The fixture with a service (`services[0]`) whose own probe table is `{ keys }`, under
    /// the top-level `[probe]` given by `defaults`.
    fn service(defaults: &str, keys: &str) -> Fixture {
        top(defaults).table(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"round-robin\"\n\
             targets = {{ eu = [\"192.0.2.1\"] }}\nprobe = {{ {keys} }}"
        ))
    }

    fn probe_of_service(fixture: Fixture) -> ProbeSettings {
        (*fixture.config().model.services[0].probe).clone()
    }

    #[test]
    fn defaults_probe_http_every_second_with_two_agreeing_results() {
        let config = Fixture::new()
            .table("[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"round-robin\"\ntargets = { eu = [\"192.0.2.1\"] }")
            .config();
        let probe = &config.model.services[0].probe;
        assert_eq!(
            (probe.kind, probe.port, probe.path.as_str()),
            (ProbeKind::Http, 80, "/")
        );
        assert_eq!(probe.expect_status, vec![(200, 399)]);
        assert_eq!(probe.interval, Duration::from_millis(1000));
        assert_eq!(probe.timeout, Duration::from_millis(800));
        assert_eq!((probe.rise, probe.fall), (2, 2));
        assert_eq!(probe.target_policy, TargetPolicy::Any);
        assert_eq!(
            (probe.host.as_deref(), probe.ca_file.as_deref()),
            (None, None)
        );
        assert_eq!(config.model.probe_concurrency, 64);
    }

    #[test]
    fn a_service_probe_overrides_the_top_level_field_by_field() {
        let probe = probe_of_service(service(
            "kind = \"https\"\npath = \"/healthz\"\nhost = \"Status.Example.com.\"",
            "rise = 3",
        ));
        assert_eq!(probe.kind, ProbeKind::Https);
        assert_eq!(probe.port, 443, "https probes default to port 443");
        assert_eq!(probe.path, "/healthz");
        assert_eq!(probe.host.as_deref(), Some("status.example.com"));
        assert_eq!((probe.rise, probe.fall), (3, 2));
    }

    #[test]
    fn the_timeout_is_positive_and_below_the_interval() {
        top("interval_ms = 1000\ntimeout_ms = 1000").assert_refused(
            "probe.timeout_ms",
            "must be positive and below interval_ms (1000)",
        );
        service("", "timeout_ms = 0")
            .assert_refused("services[0].probe.timeout_ms", "below interval_ms (1000)");
        top("interval_ms = 49").assert_refused("probe.interval_ms", "between 50 and 3600000");
    }

    #[test]
    fn tcp_probes_cannot_check_status_or_body() {
        service("", "kind = \"tcp\", body_contains = \"ok\"").assert_refused(
            "services[0].probe",
            "body_contains and expect_status need an HTTP(S) probe",
        );
        service("kind = \"tcp\"", "expect_status = [\"200\"]")
            .assert_refused("services[0].probe", "need an HTTP(S) probe");
        top("kind = \"tcp\"\nbody_contains = \"ok\"")
            .assert_refused("probe", "need an HTTP(S) probe");
    }

    #[test]
    fn tls_settings_need_an_https_probe() {
        top("ca_file = \"/nonexistent/ca.pem\"")
            .assert_refused("probe.ca_file", "only valid with kind = \"https\"");
        top("insecure_skip_verify = true").assert_refused(
            "probe.insecure_skip_verify",
            "only valid with kind = \"https\"",
        );
        let problems =
            top("kind = \"https\"\nca_file = \"/nonexistent/ca.pem\"\ninsecure_skip_verify = true")
                .problems();
        assert_has(&problems, "probe.ca_file", "not both");
        assert_has(
            &problems,
            "probe.ca_file",
            "cannot read /nonexistent/ca.pem",
        );
    }

    #[test]
    fn expect_status_takes_codes_and_ranges_within_100_to_599() {
        let problems =
            top(r#"expect_status = ["204", "200-299", "600", "399-200", "ok"]"#).problems();
        assert_none_at(&problems, "probe.expect_status[0]");
        assert_none_at(&problems, "probe.expect_status[1]");
        for i in 2..=4 {
            assert_has(
                &problems,
                &format!("probe.expect_status[{i}]"),
                "is not a status code or range within 100-599",
            );
        }
        let probe = probe_of_service(service("", r#"expect_status = ["204", "300 - 302"]"#));
        assert_eq!(probe.expect_status, vec![(204, 204), (300, 302)]);
    }

    #[test]
    fn port_path_rise_and_fall_are_checked_with_the_table_path() {
        let problems =
            service("", "port = 0, path = \"health z\", rise = 0, fall = 101").problems();
        assert_has(&problems, "services[0].probe.port", "between 1 and 65535");
        assert_has(
            &problems,
            "services[0].probe.path",
            "\"health z\" must start with '/' and hold no spaces",
        );
        assert_has(&problems, "services[0].probe.rise", "between 1 and 100");
        assert_has(&problems, "services[0].probe.fall", "between 1 and 100");
    }

    #[test]
    fn max_concurrency_is_set_in_the_top_level_table_only() {
        service("", "max_concurrency = 5").assert_refused(
            "services[0].probe.max_concurrency",
            "only valid in the top-level [probe] table",
        );
        top("max_concurrency = 0")
            .assert_refused("probe.max_concurrency", "must be between 1 and 10000");
        let config = top("max_concurrency = 10000").config();
        assert_eq!(config.model.probe_concurrency, 10_000);
    }
}
