//! The operator's page (`/ui` on the admin endpoint): server-rendered HTML of the served
//! snapshot, readable without JavaScript. A health matrix (service × region, each cell with its
//! reason and since when, and where answers come from now), the regions and where their health
//! comes from, the last transitions, an explain form, and drain buttons for this node's own
//! region. A small embedded script refreshes the live part every two seconds (`/ui/live`) and
//! sends the drains. Assets are constants of the binary; no build chain.

use std::fmt::Write;

use crate::explain::{self, Ask, Explanation};
use crate::model::{Health, Strategy};
use crate::region_health::Why;
use crate::snapshot::{RegionAnswer, RegionStatus, ServiceAnswer, Snapshot};

/// The stylesheet, served as `/ui/style.css`.
pub const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h1 small { font-weight: normal; color: #666; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td small { display: block; color: #555; max-width: 22em; }
td.healthy { background: #e3f6e3; } td.unhealthy { background: #fbe0e0; }
td.unknown, td.stale { background: #fff4d6; } td.drained { background: #e2ebfa; }
.answer { font-family: ui-monospace, monospace; }
form label { margin-right: 1em; } button { margin-right: .5em; }
#explained { background: #f7f7f7; border: 1px solid #ddd; padding: .6em; margin-top: .6em; }
#control-result { margin-left: 1em; color: #555; }
"#;

/// The script, served as `/ui/app.js`: live refresh and drain buttons.
pub const SCRIPT: &str = r#"
const token = document.querySelector('meta[name="gslbd-token"]').content;
async function refresh() {
  try {
    const reply = await fetch('/ui/live', { cache: 'no-store' });
    if (reply.ok) { document.getElementById('live').innerHTML = await reply.text(); }
  } catch (e) { /* the server restarts: try again next time */ }
}
setInterval(refresh, 2000);
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-control]');
  if (!button) { return; }
  const params = new URLSearchParams({ region: button.dataset.region });
  const reply = await fetch('/' + button.dataset.control + '?' + params, {
    method: 'POST',
    headers: { 'X-Gslbd-Control': '1', 'X-Gslbd-Token': token },
  });
  document.getElementById('control-result').textContent = (await reply.text()).trim();
  refresh();
});
"#;

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Unix time in ms as `HH:MM:SS UTC`.
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn health_word(health: Health) -> &'static str {
    match health {
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
        Health::Unknown => "unknown",
    }
}

/// A cell's state: its health, or what takes precedence over it in words.
fn cell_state(answer: &RegionAnswer) -> &'static str {
    match answer.why {
        Why::Drained => "drained",
        Why::Stale => "stale",
        _ => health_word(answer.health),
    }
}

fn available(answer: &RegionAnswer) -> bool {
    answer.health.is_available() && (answer.cname.is_some() || !answer.addresses.ips().is_empty())
}

/// The regions answers come from now (failover: the first available in order; the others:
/// every available one, by client).
fn answered_from(service: &ServiceAnswer) -> Vec<&RegionAnswer> {
    match &service.strategy() {
        Strategy::Failover { order } => order
            .iter()
            .filter_map(|&region| service.position(region))
            .map(|i| &service.regions[i])
            .find(|answer| available(answer))
            .into_iter()
            .collect(),
        _ => service.regions.iter().filter(|a| available(a)).collect(),
    }
}

fn region_source(status: RegionStatus) -> String {
    match status {
        RegionStatus::Local => "local (this server's probes)".to_string(),
        RegionStatus::Static => "static (gossip off)".to_string(),
        RegionStatus::Remote(freshness) => format!(
            "remote, {}",
            serde_json::to_value(freshness)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
    }
}

/// The part of the page that refreshes itself: matrix, regions, transitions.
pub fn live(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<h2>Services</h2><table id=\"matrix\"><thead><tr><th>Service</th><th>Strategy</th>"
    );
    for region in &snapshot.regions {
        let _ = write!(out, "<th>{}</th>", esc(region.as_str()));
    }
    out.push_str("<th>Answered from now</th></tr></thead><tbody>");
    for service in &snapshot.services {
        let name = service.name().to_string();
        let _ = write!(
            out,
            "<tr data-service=\"{}\"><td>{}</td><td>{}</td>",
            esc(&name),
            esc(name.trim_end_matches('.')),
            service.strategy().kind().as_str()
        );
        for (i, region) in snapshot.regions.iter().enumerate() {
            let Some(answer) = service.regions.iter().find(|a| a.region.get() == i) else {
                out.push_str("<td>-</td>");
                continue;
            };
            let state = cell_state(answer);
            let mut since = String::new();
            if let Some(ms) = answer
                .down_since_ms()
                .filter(|_| answer.health == Health::Unhealthy)
            {
                since = format!(", down since {}", clock(ms));
            }
            if let Some(ms) = answer.back_since_ms() {
                since = format!(", back since {}", clock(ms));
            }
            let _ = write!(
                out,
                "<td class=\"{state}\" data-region=\"{}\">{state}<small>{}{}</small></td>",
                esc(region.as_str()),
                esc(&answer.why.to_string()),
                esc(&since)
            );
        }
        let from: Vec<String> = answered_from(service)
            .iter()
            .map(|answer| {
                let ips: Vec<String> = match &answer.cname {
                    Some(record) => vec![format!("CNAME {}", record.data)],
                    None => answer
                        .addresses
                        .ips()
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect(),
                };
                format!(
                    "{} <span class=\"answer\">{}</span>",
                    esc(snapshot.regions[answer.region.get()].as_str()),
                    esc(&ips.join(" "))
                )
            })
            .collect();
        let from = if from.is_empty() {
            format!(
                "none: all down ({})",
                esc(&format!("{:?}", service.all_down()))
            )
        } else {
            from.join("<br>")
        };
        let _ = write!(out, "<td class=\"from\">{from}</td></tr>");
    }
    out.push_str("</tbody></table>");

    out.push_str(
        "<h2>Regions</h2><table id=\"regions\"><thead><tr><th>Region</th><th>Health from</th><th>Last heard</th><th>Gossip instances (run, latest sequence)</th><th>Observers see down</th><th>Control</th></tr></thead><tbody>",
    );
    for (i, region) in snapshot.regions.iter().enumerate() {
        let status = snapshot.region_status[i];
        let runs: Vec<String> = snapshot.region_runs[i]
            .iter()
            .map(|run| {
                format!(
                    "{} ({}, {}{})",
                    esc(&run.instance),
                    esc(&run.epoch),
                    run.seq,
                    if run.heard { "" } else { ", not heard yet" }
                )
            })
            .collect();
        let control = if status == RegionStatus::Local {
            format!(
                "<button data-control=\"drain\" data-region=\"{r}\">Drain {r}</button><button data-control=\"undrain\" data-region=\"{r}\">Undrain {r}</button>",
                r = esc(region.as_str())
            )
        } else {
            String::new()
        };
        let heard = match (status, snapshot.region_heard_ms[i]) {
            (RegionStatus::Local, _) => "this server".to_string(),
            (_, Some(ms)) => clock(ms),
            (RegionStatus::Remote(_), None) => "never".to_string(),
            (_, None) => "-".to_string(),
        };
        // Services whose target in this region the other regions' probes see down.
        let seen_down: Vec<String> = snapshot
            .services
            .iter()
            .filter(|service| {
                service.regions.iter().any(|a| {
                    let observed_down = match a.why {
                        Why::ObservedDown { .. } => true,
                        Why::Observed { failing, .. } => failing > 0,
                        _ => false,
                    };
                    a.region.get() == i && observed_down
                })
            })
            .map(|service| esc(service.name().to_string().trim_end_matches('.')))
            .collect();
        let seen_down = if seen_down.is_empty() {
            "none".to_string()
        } else {
            seen_down.join("<br>")
        };
        let _ = write!(
            out,
            "<tr data-region=\"{}\"><td>{}</td><td>{}</td><td>{heard}</td><td>{}</td><td>{seen_down}</td><td>{control}</td></tr>",
            esc(region.as_str()),
            esc(region.as_str()),
            esc(&region_source(status)),
            runs.join("<br>")
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Last transitions</h2><table id=\"transitions\"><thead><tr><th>When</th><th>Region</th><th>Service</th><th>From</th><th>To</th><th>Why</th></tr></thead><tbody>");
    for change in snapshot.transitions.iter().rev().take(50) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(change.at_ms),
            esc(&change.region),
            esc(change.service.as_deref().unwrap_or("(the region)")),
            esc(&change.from),
            esc(&change.to),
            esc(&change.reason)
        );
    }
    if snapshot.transitions.is_empty() {
        out.push_str("<tr><td colspan=\"6\">none since this server started</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The whole page; `token` goes to the script for its drain requests.
pub fn page(snapshot: &Snapshot, token: &str, form: &Ask) -> String {
    let local = snapshot
        .region_status
        .iter()
        .position(|s| *s == RegionStatus::Local)
        .map(|i| format!(" · region {}", esc(snapshot.regions[i].as_str())))
        .unwrap_or_default();
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gslbd · {zone}</title><meta name=\"gslbd-token\" content=\"{token}\"><link rel=\"stylesheet\" href=\"/ui/style.css\"><script src=\"/ui/app.js\" defer></script></head><body><h1>gslbd <small>zone {zone}{local}</small><span id=\"control-result\"></span></h1><section id=\"live\">{live}</section>",
        zone = esc(&snapshot.zone.origin.to_string()),
        token = esc(token),
        live = live(snapshot),
    );
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let _ = write!(
        out,
        "<h2>Explain</h2><form id=\"explain\" method=\"get\" action=\"/ui\"><label>Name <input name=\"name\" value=\"{}\" placeholder=\"app\"></label><label>Client <input name=\"client\" value=\"{}\" placeholder=\"198.51.100.7\"></label><label>What if down <input name=\"down\" value=\"{}\" placeholder=\"eu,us\"></label><button type=\"submit\">Explain</button></form>",
        value(&form.name),
        value(&form.client),
        value(&form.down)
    );
    if let Some(result) = explained(snapshot, form) {
        let _ = write!(out, "<div id=\"explained\">{result}</div>");
    }
    out.push_str("</body></html>");
    out
}

/// The explain form's result, when it asked something.
fn explained(snapshot: &Snapshot, form: &Ask) -> Option<String> {
    form.name.as_deref().filter(|n| !n.trim().is_empty())?;
    let question = match explain::question(snapshot, form.clone()) {
        Ok(question) => question,
        Err(error) => return Some(format!("<p class=\"error\">{}</p>", esc(&error))),
    };
    Some(match explain::explain(snapshot, &question) {
        Ok(explanation) => explanation_html(&explanation),
        Err(error) => format!("<p class=\"error\">{}</p>", esc(&error.to_string())),
    })
}

fn explanation_html(explanation: &Explanation) -> String {
    let answer = if explanation.answer.is_empty() {
        "(no records)".to_string()
    } else {
        explanation.answer.join(" ")
    };
    let mut out = format!(
        "<p>{} {} for client {}{}</p><p>Answer: <span class=\"answer\" id=\"explained-answer\">{}</span> ({})</p><p>Decision: {}</p>",
        esc(&explanation.name),
        esc(&explanation.rtype),
        explanation.client,
        if explanation.what_if_down.is_empty() {
            String::new()
        } else {
            format!(
                ", what if {} were down",
                esc(&explanation.what_if_down.join(", "))
            )
        },
        esc(&answer),
        esc(&explanation.rcode),
        esc(&explanation.decision)
    );
    if let Some(service) = &explanation.service {
        out.push_str("<ul>");
        for target in &service.regions {
            let _ = write!(
                out,
                "<li>{}: {} ({})</li>",
                esc(&target.region),
                health_word(target.health),
                esc(&target.reason)
            );
        }
        out.push_str("</ul>");
    }
    out
}
