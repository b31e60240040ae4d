//! What the admin endpoint tells people about the served snapshot: `/state` (every service,
//! every region, its health and why) and `/explain` (the answer one client would get, and why,
//! optionally as if some regions were down).
//!
//! `/explain` answers through the real answer path: it encodes a DNS query, answers it with
//! [`crate::dns::udp::answer_packet`] on the served snapshot and parses the reply, so what it
//! shows is what the server sends. A what-if question (`down=`) changes a copy of the one
//! service asked about, never the whole snapshot (a request costs one service, not the zone),
//! and answers with the strategy the answer path calls ([`crate::dns::select::select`]).

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use serde::Serialize;

use crate::dns::select::{self, Client};
use crate::dns::{time_bucket, udp};
use crate::model::{AllDownPolicy, Health, RegionIndex, Strategy};
use crate::region_health::Why;
use crate::remote::RunInfo;
use crate::snapshot::{KubernetesSync, Node, RegionAnswer, RegionStatus, ServiceAnswer, Snapshot};

/// `/state`: the whole view.
#[derive(Debug, Serialize)]
pub struct State {
    pub zone: String,
    pub serial: u32,
    /// With Kubernetes discovery: `listing` (not ready yet), `synced`, or `not_listed` (the
    /// API server was unreachable past the sync timeout: the config's services serve alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSync>,
    pub regions: Vec<RegionState>,
    pub services: Vec<ServiceState>,
}

#[derive(Debug, Serialize)]
pub struct RegionState {
    pub name: String,
    pub status: RegionStatus,
    /// Remote regions: the run speaking for each of their instances (a new epoch is a restart).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunInfo>,
}

#[derive(Debug, Serialize)]
pub struct ServiceState {
    pub name: String,
    pub strategy: &'static str,
    /// Failover order (failover strategy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
    /// Regions drawn per answer (weighted strategy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick: Option<usize>,
    pub all_down: AllDownPolicy,
    pub regions: Vec<TargetState>,
}

#[derive(Debug, Serialize)]
pub struct TargetState {
    pub region: String,
    pub health: Health,
    /// Why, machine-readable.
    pub why: Why,
    /// Why, in words.
    pub reason: String,
    /// Every address of the region for the service.
    pub addresses: Vec<IpAddr>,
    /// Those answered while the region is in (not found down).
    pub answerable: Vec<IpAddr>,
    /// The host name answered (a CNAME) when the target is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    pub weight: u32,
    /// When the region went down (its first failing probe, Unix ms), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since_ms: Option<u64>,
    /// When this server saw the region come back (Unix ms), while it is let in again slowly
    /// (slow start, failback delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_since_ms: Option<u64>,
}

/// The view of `snapshot` served at `/state`.
pub fn state(snapshot: &Snapshot) -> State {
    let serial = match &snapshot.zone.soa.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    };
    State {
        zone: snapshot.zone.origin.to_string(),
        serial,
        kubernetes: snapshot.readiness.kubernetes,
        regions: snapshot
            .regions
            .iter()
            .zip(&snapshot.region_status)
            .zip(&snapshot.region_runs)
            .map(|((name, status), runs)| RegionState {
                name: name.as_str().to_string(),
                status: *status,
                runs: runs.clone(),
            })
            .collect(),
        services: snapshot
            .services
            .iter()
            .map(|service| service_state(snapshot, service))
            .collect(),
    }
}

fn service_state(snapshot: &Snapshot, service: &ServiceAnswer) -> ServiceState {
    let region_name = |i: RegionIndex| snapshot.regions[i].as_str().to_string();
    ServiceState {
        name: service.name().to_string(),
        strategy: service.strategy().kind().as_str(),
        order: match &service.strategy() {
            Strategy::Failover { order } => Some(order.iter().map(|&i| region_name(i)).collect()),
            _ => None,
        },
        pick: match &service.strategy() {
            Strategy::Weighted { pick, .. } => Some(*pick),
            _ => None,
        },
        all_down: service.all_down(),
        regions: service
            .regions
            .iter()
            .map(|answer| TargetState {
                region: region_name(answer.region),
                health: answer.health,
                why: answer.why,
                reason: answer.why.to_string(),
                addresses: answer.all.ips().to_vec(),
                answerable: answer.addresses.ips().to_vec(),
                target_name: answer.cname.as_ref().map(|record| record.data.to_string()),
                weight: answer.weight,
                down_since_ms: answer.down_since_ms(),
                back_since_ms: answer.back_since_ms(),
            })
            .collect(),
    }
}

/// An `/explain` question.
#[derive(Clone, Debug)]
pub struct Question {
    pub name: Name,
    pub rtype: RecordType,
    pub client: IpAddr,
    /// Regions to treat as unhealthy for every service (what-if).
    pub down: Vec<String>,
}

/// An `/explain` question as asked (query string, the `/ui` form): every part optional, checked
/// by [`question`].
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Ask {
    /// The name asked (relative names are taken as inside the zone).
    pub name: Option<String>,
    /// The client's address (the source, or the ECS address a resolver would send).
    pub client: Option<String>,
    /// A or AAAA (default A).
    #[serde(rename = "type")]
    pub rtype: Option<String>,
    /// Comma-separated regions to treat as down.
    pub down: Option<String>,
}

/// The question `params` asks of `snapshot`'s zone, or why it is not one.
pub fn question(snapshot: &Snapshot, params: Ask) -> Result<Question, String> {
    let text = params
        .name
        .ok_or("missing name= (e.g. name=app.gslb.example.com)")?;
    let origin = Name::from(snapshot.zone.origin.clone());
    let bad = |e: hickory_proto::ProtoError| format!("bad name {text:?}: {e}");
    let name = if text.ends_with('.') {
        Name::from_utf8(&text).map_err(bad)?
    } else {
        // A full name written without its trailing dot is meant as is; anything else is
        // taken as relative to the zone.
        let full = Name::from_utf8(format!("{text}.")).map_err(bad)?;
        if origin.zone_of(&full) {
            full
        } else {
            Name::from_utf8(&text)
                .map_err(bad)?
                .append_domain(&origin)
                .map_err(bad)?
        }
    };
    let client_text = params
        .client
        .ok_or("missing client= (the address the answer is for, e.g. client=198.51.100.7)")?;
    let client = client_text
        .parse()
        .map_err(|_| format!("bad client address {client_text:?}"))?;
    let rtype = match params
        .rtype
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("A") => RecordType::A,
        Some("AAAA") => RecordType::AAAA,
        Some(other) => return Err(format!("type must be A or AAAA, not {other:?}")),
    };
    let down = params
        .down
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Question {
        name,
        rtype,
        client,
        down,
    })
}

/// Why a question cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown region {0:?} in down= (regions: {1})")]
    UnknownRegion(String, String),
    #[error("down= names {asked} regions; the zone has {regions}")]
    TooManyDown { asked: usize, regions: usize },
    #[error("cannot build the query: {0}")]
    Query(String),
}

/// The `/explain` answer.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub client: IpAddr,
    /// Regions treated as down for this answer (what-if), if any.
    pub what_if_down: Vec<String>,
    pub rcode: String,
    /// The answer records' data, in answer order.
    pub answer: Vec<String>,
    /// Their TTL, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// How the answer was decided, in words.
    pub decision: String,
    /// The service's regions as this answer saw them (service names only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
}

/// Explains what `question.client` gets for `question.name` from `snapshot`.
pub fn explain(snapshot: &Snapshot, question: &Question) -> Result<Explanation, ExplainError> {
    // Each region at most once: anything longer is not a question about this zone.
    if question.down.len() > snapshot.regions.len() {
        return Err(ExplainError::TooManyDown {
            asked: question.down.len(),
            regions: snapshot.regions.len(),
        });
    }
    let mut down = Vec::new();
    for name in &question.down {
        let index = snapshot.region_index(name).ok_or_else(|| {
            let known: Vec<&str> = snapshot.regions.iter().map(|r| r.as_str()).collect();
            ExplainError::UnknownRegion(name.clone(), known.join(", "))
        })?;
        down.push(index);
    }

    let lower = LowerName::new(&question.name);
    let node = snapshot.node(&lower);
    // Only service answers depend on region health: elsewhere a what-if changes nothing.
    let what_if = match node {
        Some(Node::Service(index)) if !down.is_empty() => {
            Some(mark_down(snapshot.service(*index), &down))
        }
        _ => None,
    };
    let reply = match &what_if {
        Some(service) if matches!(question.rtype, RecordType::A | RecordType::AAAA) => {
            what_if_reply(snapshot, service, question)
        }
        _ => served_reply(snapshot, question)?,
    };

    let (decision, service) = match node {
        _ if !snapshot.is_in_zone(&lower) => ("not in the zone: refused".to_string(), None),
        None => ("no such name in the zone (NXDOMAIN)".to_string(), None),
        Some(Node::Apex) => ("the zone apex: SOA and NS only".to_string(), None),
        Some(Node::Host(_)) => ("a nameserver of the zone: its fixed glue".to_string(), None),
        Some(Node::EmptyNonTerminal) => (
            "a name with names below it and no records (NODATA)".to_string(),
            None,
        ),
        Some(Node::Service(index)) => {
            let service = what_if.as_ref().unwrap_or(snapshot.service(*index));
            (
                decide(snapshot, service, question),
                Some(service_state(snapshot, service)),
            )
        }
    };
    Ok(Explanation {
        name: question.name.to_string(),
        rtype: question.rtype.to_string(),
        client: question.client,
        what_if_down: question.down.clone(),
        rcode: rcode_name(reply.rcode),
        answer: reply.answer,
        ttl: reply.ttl,
        decision,
        service,
    })
}

/// What a reply says, as `/explain` shows it.
struct Reply {
    rcode: ResponseCode,
    /// The answer records' data, in answer order.
    answer: Vec<String>,
    ttl: Option<u32>,
}

/// The reply the server sends now: a query through the real answer path.
fn served_reply(snapshot: &Snapshot, question: &Question) -> Result<Reply, ExplainError> {
    let mut query = Message::new(0, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(question.name.clone(), question.rtype));
    let bytes = query
        .to_vec()
        .map_err(|error| ExplainError::Query(error.to_string()))?;
    let mut reply = Vec::new();
    let src = SocketAddr::new(question.client, 53);
    let answered = udp::answer_packet(
        snapshot,
        &bytes,
        src,
        time_bucket(snapshot.time_bucket_ms),
        &mut reply,
    );
    let reply = answered
        .then(|| Message::from_vec(&reply).ok())
        .flatten()
        .ok_or_else(|| ExplainError::Query("no reply".to_string()))?;
    Ok(Reply {
        rcode: reply.metadata.response_code,
        answer: reply.answers.iter().map(|r| r.data.to_string()).collect(),
        ttl: reply.answers.first().map(|r| r.ttl),
    })
}

/// The reply to an A or AAAA question about `service` (a what-if copy): the answer path's
/// strategy for a client known by its address (no ECS), in the current time bucket.
fn what_if_reply(snapshot: &Snapshot, service: &ServiceAnswer, question: &Question) -> Reply {
    let selection = select::select(
        service,
        question.rtype,
        &Client::from_source(question.client),
        &select::At::of(snapshot, time_bucket(snapshot.time_bucket_ms)),
        &snapshot.geo,
    );
    let cname = selection
        .cname
        .and_then(|position| service.regions[position].cname.as_ref());
    let answer: Vec<String> = match cname {
        Some(record) => vec![record.data.to_string()],
        None => selection.addresses.iter().map(|a| a.to_string()).collect(),
    };
    Reply {
        // A service's name always exists: its answer is data or NODATA.
        rcode: ResponseCode::NoError,
        ttl: (!answer.is_empty()).then_some(service.ttl()),
        answer,
    }
}

/// A copy of `service` with `down` regions unhealthy.
fn mark_down(service: &ServiceAnswer, down: &[RegionIndex]) -> ServiceAnswer {
    let mut copy = service.clone();
    for answer in &mut copy.regions {
        if down.contains(&answer.region) {
            answer.health = Health::Unhealthy;
            answer.why = Why::WhatIf;
        }
    }
    copy
}

/// The strategy's decision for `service`, in words (mirrors `dns::select`).
fn decide(snapshot: &Snapshot, service: &ServiceAnswer, question: &Question) -> String {
    let name = |i: RegionIndex| snapshot.regions[i].as_str();
    let rtype = match question.rtype {
        RecordType::AAAA => RecordType::AAAA,
        _ => RecordType::A,
    };
    let usable = |r: &RegionAnswer| {
        r.health.is_available() && (r.cname.is_some() || !r.addresses.of(rtype).is_empty())
    };
    let describe = |r: &RegionAnswer| {
        let state = if usable(r) {
            "available"
        } else if r.health.is_available() {
            "no addresses of this type"
        } else {
            "unhealthy"
        };
        format!("{} {state} ({})", name(r.region), r.why)
    };
    let regions: Vec<String> = service.regions.iter().map(describe).collect();
    let available: Vec<&RegionAnswer> = service.regions.iter().filter(|r| usable(r)).collect();
    let strategy = service.strategy().kind();
    if available.is_empty() {
        let policy = match service.all_down() {
            AllDownPolicy::FailOpen => "fail-open: every known address",
            _ => "fail-closed: no address (NODATA)",
        };
        return format!(
            "{strategy}: no region available [{}]; {policy}",
            regions.join("; ")
        );
    }
    let listed = |rs: &[&RegionAnswer]| {
        rs.iter()
            .map(|r| name(r.region))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first_in = |order: &[RegionIndex]| {
        order
            .iter()
            .find(|&&i| available.iter().any(|r| r.region == i))
            .map_or("none", |&i| name(i))
    };
    let choice = match &service.strategy() {
        Strategy::RoundRobin => format!(
            "every available region's addresses ({}), rotated per client network and time bucket",
            listed(&available)
        ),
        Strategy::Weighted { pick, .. } => {
            let weights: Vec<String> = available
                .iter()
                .map(|r| format!("{}={}", name(r.region), r.weight))
                .collect();
            format!(
                "{pick} region(s) drawn by weight among {} for this client network and time bucket",
                weights.join(", ")
            )
        }
        Strategy::Failover { order } => {
            let order_names: Vec<&str> = order.iter().map(|&i| name(i)).collect();
            format!(
                "order {}: first available is {}",
                order_names.join(" > "),
                first_in(order)
            )
        }
        Strategy::Geo => {
            let placement = snapshot.geo.place(question.client);
            let order_names: Vec<&str> = placement.order.iter().map(|&i| name(i)).collect();
            format!(
                "client {} is nearest to {}: first available is {}",
                question.client,
                order_names.join(" > "),
                first_in(placement.order)
            )
        }
    };
    format!("{strategy}: {choice} [{}]", regions.join("; "))
}

/// The response code as `dig` writes it.
fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::NXDomain => "NXDOMAIN".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// Failover eu > us > ap, and round-robin over the three; `health` as written in the file.
    fn snapshot(health: &str) -> Snapshot {
        let services = format!(
            r#"services = [
                {{ name = "app.gslb.example.com", strategy = "failover", failover_order = ["eu", "us", "ap"],
                  targets = {{ eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }}{health} }},
                {{ name = "rr.gslb.example.com", strategy = "round-robin",
                  targets = {{ eu = ["192.0.2.2"], us = ["198.51.100.2"], ap = ["203.0.113.2"] }}{health} }},
            ]"#
        );
        Snapshot::from_model(&fixtures::config(&services).model, 1232)
    }

    fn question(name: &str, down: &[&str]) -> Question {
        Question {
            name: fixtures::name(name),
            rtype: RecordType::A,
            client: "198.51.100.7".parse().expect("an address"),
            down: down.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_what_if_answers_as_the_server_would_with_those_regions_down() {
        let served = snapshot("");
        let really_down = snapshot(r#", health = { eu = "unhealthy", us = "unhealthy" }"#);
        for name in ["app.gslb.example.com.", "rr.gslb.example.com."] {
            let what_if = explain(&served, &question(name, &["eu", "us"])).expect("explained");
            let real = explain(&really_down, &question(name, &[])).expect("explained");
            assert_eq!(what_if.answer, real.answer, "{name}");
            assert_eq!(
                (what_if.rcode.as_str(), what_if.ttl),
                (real.rcode.as_str(), real.ttl)
            );
            assert_eq!(what_if.answer.len(), 1, "ap only: {:?}", what_if.answer);
        }
        let now = explain(&served, &question("app.gslb.example.com.", &[])).expect("explained");
        assert_eq!(
            now.answer,
            ["192.0.2.1"],
            "the served snapshot is unchanged"
        );
    }

    #[test]
    fn a_what_if_on_a_name_that_is_no_service_changes_nothing() {
        let served = snapshot("");
        let what_if = explain(&served, &question("nope.gslb.example.com.", &["eu"])).expect("ok");
        assert_eq!(what_if.rcode, "NXDOMAIN");
        assert_eq!(what_if.what_if_down, ["eu"]);
    }

    #[test]
    fn down_may_name_each_region_once_at_most() {
        let served = snapshot("");
        let all = ["eu", "us", "ap"];
        assert!(explain(&served, &question("app.gslb.example.com.", &all)).is_ok());
        let error = explain(&served, &question("app.gslb.example.com.", &["eu"; 4]))
            .expect_err("more than the zone's regions");
        assert_eq!(error.to_string(), "down= names 4 regions; the zone has 3");
    }
}
