//! `gslbd status` and `gslbd explain` in the terminal: a running server's `/state` as a table
//! in the style of `kubectl get` (one line per service, a column per region, colours only on a
//! terminal), and its `/explain` in words. Pure: the command line fetches, this renders.

use std::fmt::Write;

use serde::Deserialize;

/// The parts of `/state` the table shows.
#[derive(Debug, Deserialize)]
pub struct State {
    pub zone: String,
    pub regions: Vec<RegionState>,
    pub services: Vec<ServiceState>,
}

#[derive(Debug, Deserialize)]
pub struct RegionState {
    pub name: String,
    /// "local", "static", or `{"remote": "fresh" | "suspect" | "stale"}`.
    pub status: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct ServiceState {
    pub name: String,
    pub strategy: String,
    #[serde(default)]
    pub order: Option<Vec<String>>,
    pub regions: Vec<TargetState>,
}

#[derive(Debug, Deserialize)]
pub struct TargetState {
    pub region: String,
    pub health: String,
    pub why: Why,
    pub answerable: Vec<String>,
    /// The host name answered (a CNAME), when the target is one.
    #[serde(default)]
    pub target_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Why {
    pub source: String,
}

impl TargetState {
    /// Whether answers may draw from it: as the answer path decides (healthy or unknown, with
    /// an address or a host name).
    fn available(&self) -> bool {
        matches!(self.health.as_str(), "healthy" | "unknown")
            && (!self.answerable.is_empty() || self.target_name.is_some())
    }

    /// The cell: its health, or what takes precedence over it in words.
    fn cell(&self) -> &str {
        match self.why.source.as_str() {
            "drained" => "drained",
            "stale" => "stale",
            _ => &self.health,
        }
    }
}

impl ServiceState {
    /// The regions answers come from now: for failover the first available in order, for the
    /// others every available one (round-robin, weighted, geo by client).
    fn answered_from(&self) -> Vec<&TargetState> {
        let available = self.regions.iter().filter(|t| t.available());
        match (&self.order, self.strategy.as_str()) {
            (Some(order), "failover") => order
                .iter()
                .find_map(|name| {
                    self.regions
                        .iter()
                        .find(|t| &t.region == name && t.available())
                })
                .into_iter()
                .collect(),
            _ => available.collect(),
        }
    }

    /// Whether the service is answered from a region known to be healthy.
    pub fn healthy_answer(&self) -> bool {
        self.answered_from().iter().any(|t| t.health == "healthy")
    }
}

impl State {
    /// Whether every service is answered from a region known to be healthy.
    pub fn all_healthy(&self) -> bool {
        self.services.iter().all(ServiceState::healthy_answer)
    }

    /// The table; `colour` wraps cells in ANSI colours (a terminal).
    pub fn table(&self, colour: bool) -> String {
        let mut out = String::new();
        let region_source = |r: &RegionState| match &r.status {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o
                .get("remote")
                .and_then(|v| v.as_str())
                .map(|f| format!("remote, {f}"))
                .unwrap_or_else(|| "remote".to_string()),
            other => other.to_string(),
        };
        let _ = writeln!(out, "ZONE {}", self.zone);
        let width = self
            .regions
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(out, "{:width$}  SOURCE", "REGION");
        for region in &self.regions {
            let _ = writeln!(out, "{:width$}  {}", region.name, region_source(region));
        }
        out.push('\n');

        let mut header: Vec<String> = vec!["SERVICE".into(), "STRATEGY".into()];
        header.extend(self.regions.iter().map(|r| r.name.to_uppercase()));
        header.push("ANSWERED FROM".into());
        let rows: Vec<Vec<(String, Option<&str>)>> = self
            .services
            .iter()
            .map(|service| {
                let mut row = vec![
                    (service.name.trim_end_matches('.').to_string(), None),
                    (service.strategy.clone(), None),
                ];
                for region in &self.regions {
                    let cell = service
                        .regions
                        .iter()
                        .find(|t| t.region == region.name)
                        .map_or(("-", None), |t| (t.cell(), Some(t.cell())));
                    row.push((cell.0.to_string(), cell.1));
                }
                let from: Vec<&str> = service
                    .answered_from()
                    .iter()
                    .map(|t| t.region.as_str())
                    .collect();
                let answered = if from.is_empty() {
                    "none (all down)".to_string()
                } else {
                    from.join(",")
                };
                let mark = if service.healthy_answer() {
                    None
                } else {
                    Some("unhealthy")
                };
                row.push((answered, mark));
                row
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|row| row[c].0.len())
                    .chain([header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<(String, Option<&str>)>| {
            let last = cells.len() - 1;
            let mut text = String::new();
            for (c, (cell, state)) in cells.into_iter().enumerate() {
                let padded = if c == last {
                    cell.clone()
                } else {
                    format!("{cell:<w$}  ", w = widths[c])
                };
                match state.and_then(|s| paint(s, colour)) {
                    Some(code) => {
                        let _ = write!(text, "\x1b[{code}m{padded}\x1b[0m");
                    }
                    None => text.push_str(&padded),
                }
            }
            text.trim_end().to_string()
        };
        let _ = writeln!(
            out,
            "{}",
            line(header.into_iter().map(|h| (h, None)).collect())
        );
        for row in rows {
            let _ = writeln!(out, "{}", line(row));
        }
        out
    }
}

/// The ANSI colour of a cell's state, on a terminal.
fn paint(state: &str, colour: bool) -> Option<&'static str> {
    if !colour {
        return None;
    }
    match state {
        "healthy" => Some("32"),
        "unhealthy" => Some("31"),
        "unknown" | "stale" => Some("33"),
        "drained" => Some("34"),
        _ => None,
    }
}

/// The parts of `/explain` printed in words.
#[derive(Debug, Deserialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub client: String,
    #[serde(default)]
    pub what_if_down: Vec<String>,
    pub rcode: String,
    pub answer: Vec<String>,
    #[serde(default)]
    pub ttl: Option<u32>,
    pub decision: String,
    #[serde(default)]
    pub service: Option<ExplainedService>,
}

#[derive(Debug, Deserialize)]
pub struct ExplainedService {
    pub regions: Vec<ExplainedTarget>,
}

#[derive(Debug, Deserialize)]
pub struct ExplainedTarget {
    pub region: String,
    pub health: String,
    pub reason: String,
}

impl Explanation {
    /// The explanation in words.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{} {} for client {}",
            self.name, self.rtype, self.client
        );
        if !self.what_if_down.is_empty() {
            let _ = write!(out, ", what if {} were down", self.what_if_down.join(", "));
        }
        out.push('\n');
        let answer = if self.answer.is_empty() {
            "(no records)".to_string()
        } else {
            self.answer.join(" ")
        };
        let ttl = self.ttl.map(|t| format!(", TTL {t}")).unwrap_or_default();
        let _ = writeln!(out, "answer:   {answer} ({}{ttl})", self.rcode);
        let _ = writeln!(out, "decision: {}", self.decision);
        if let Some(service) = &self.service {
            let width = service
                .regions
                .iter()
                .map(|t| t.region.len())
                .max()
                .unwrap_or(2);
            for target in &service.regions {
                let _ = writeln!(
                    out,
                    "  {:width$}  {:9}  {}",
                    target.region, target.health, target.reason
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{
        "zone": "gslb.example.com.", "serial": 1,
        "regions": [
            {"name": "eu", "status": "local"},
            {"name": "us", "status": {"remote": "fresh"}},
            {"name": "ap", "status": {"remote": "stale"}}
        ],
        "services": [
            {"name": "app.gslb.example.com.", "strategy": "failover", "order": ["eu", "us", "ap"],
             "all_down": "fail-open", "regions": [
                {"region": "eu", "health": "unhealthy", "why": {"source": "probes"}, "reason": "", "addresses": ["192.0.2.1"], "answerable": [], "weight": 1},
                {"region": "us", "health": "healthy", "why": {"source": "reported"}, "reason": "", "addresses": ["198.51.100.1"], "answerable": ["198.51.100.1"], "weight": 1},
                {"region": "ap", "health": "unhealthy", "why": {"source": "stale"}, "reason": "", "addresses": ["203.0.113.1"], "answerable": ["203.0.113.1"], "weight": 1}
            ]},
            {"name": "api.gslb.example.com.", "strategy": "round-robin",
             "all_down": "fail-open", "regions": [
                {"region": "eu", "health": "unknown", "why": {"source": "probes"}, "reason": "", "addresses": ["192.0.2.2"], "answerable": ["192.0.2.2"], "weight": 1},
                {"region": "us", "health": "unhealthy", "why": {"source": "drained"}, "reason": "", "addresses": ["198.51.100.2"], "answerable": ["198.51.100.2"], "weight": 1}
            ]}
        ]
    }"#;

    #[test]
    fn the_table_has_a_line_per_service_a_column_per_region_and_what_answers() {
        let state: State = serde_json::from_str(STATE).expect("/state parses");
        let table = state.table(false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ZONE gslb.example.com.");
        assert_eq!(lines[2], "eu      local");
        assert_eq!(lines[3], "us      remote, fresh");
        assert_eq!(lines[4], "ap      remote, stale");
        assert_eq!(
            lines[6],
            "SERVICE               STRATEGY     EU         US       AP     ANSWERED FROM"
        );
        assert_eq!(
            lines[7],
            "app.gslb.example.com  failover     unhealthy  healthy  stale  us"
        );
        assert_eq!(
            lines[8],
            "api.gslb.example.com  round-robin  unknown    drained  -      eu"
        );
        assert!(!table.contains('\x1b'), "no colour off a terminal");
        assert!(state.services[0].healthy_answer());
        assert!(
            !state.services[1].healthy_answer(),
            "only an unknown region answers"
        );
        assert!(!state.all_healthy());
        assert!(state.table(true).contains("\x1b[32mhealthy"));
    }
}
