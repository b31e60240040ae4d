//! Which names a service may claim in the zone: one rule for every entrance, so that no
//! source can take a name the zone itself answers. The config's `[[services]]`, hosts
//! discovered in Kubernetes and services in other regions' gossiped reports all pass through
//! [`may_claim`] before they reach the model.
//!
//! The zone owns its apex (SOA and NS) and its in-zone nameserver names (their A/AAAA records
//! are the glue the parent zone delegates to): a service there would replace those records in
//! the snapshot and take the zone over. Names outside the zone are not ours to answer, and
//! wildcards (RFC 4592) are not supported: a `*` label would be served as a literal name,
//! which is never what its author meant. Pure.

use hickory_proto::rr::Name;

use crate::label_enum::label_enum;
use crate::model::RegionDef;

label_enum! {
    /// Why a service cannot claim a name; the names are metric label values.
    #[derive(PartialOrd, Ord)]
    pub enum Refusal {
        /// Not inside the zone.
        OutsideZone = "outside_zone",
        /// The zone apex: it holds SOA and NS.
        Apex = "apex",
        /// A region's nameserver name inside the zone: it holds the glue.
        Nameserver = "nameserver",
        /// A name with a `*` label.
        Wildcard = "wildcard",
    }
}

impl Refusal {
    /// Why, in words, as the end of a sentence naming the name ("… cannot be a service: it is
    /// the zone apex, …"); `zone` is the zone's name.
    pub fn why(self, zone: &Name) -> String {
        match self {
            Refusal::OutsideZone => format!("it is outside the zone {zone}"),
            Refusal::Apex => "it is the zone apex, which holds SOA and NS".to_string(),
            Refusal::Nameserver => {
                "it is a nameserver name of the zone, answered with its glue".to_string()
            }
            Refusal::Wildcard => {
                "it is a wildcard name (a '*' label); wildcards are not supported".to_string()
            }
        }
    }
}

/// Whether a service may claim `name` in the zone `zone` whose regions are `regions`. Names
/// compare case-insensitively and whether or not they end in a dot, so that no spelling of
/// the apex or a nameserver slips through.
pub fn may_claim(name: &Name, zone: &Name, regions: &[RegionDef]) -> Result<(), Refusal> {
    if !zone.zone_of(name) {
        return Err(Refusal::OutsideZone);
    }
    if name.eq_ignore_root(zone) {
        return Err(Refusal::Apex);
    }
    // Nameservers outside the zone were refused above with every other outside name.
    if regions
        .iter()
        .filter_map(|region| region.nameserver.as_ref())
        .any(|nameserver| name.eq_ignore_root(nameserver))
    {
        return Err(Refusal::Nameserver);
    }
    if name.iter().any(|label| label == b"*") {
        return Err(Refusal::Wildcard);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// Against the fixture's zone `gslb.example.com`: eu's nameserver `ns-eu.gslb.example.com`
    /// is inside it, us's `ns.us.example.net` outside, ap has none.
    fn check(text: &str) -> Result<(), Refusal> {
        let model = fixtures::config("").model;
        let name = Name::from_ascii(text).expect("a test name");
        may_claim(&name, &model.zone.origin, &model.regions)
    }

    #[test]
    fn names_strictly_inside_the_zone_may_be_claimed() {
        for name in [
            "app.gslb.example.com.",
            "deep.app.gslb.example.com.",
            "x.ns-eu.gslb.example.com.",
            "ns-zz.gslb.example.com.",
        ] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn the_apex_nameservers_outside_names_and_wildcards_may_not() {
        let cases = [
            ("gslb.example.com.", Refusal::Apex),
            ("GSLB.Example.com", Refusal::Apex),
            ("ns-eu.gslb.example.com.", Refusal::Nameserver),
            ("NS-EU.gslb.example.com", Refusal::Nameserver),
            ("ns.us.example.net.", Refusal::OutsideZone),
            ("example.com.", Refusal::OutsideZone),
            ("app.example.org.", Refusal::OutsideZone),
            ("agslb.example.com.", Refusal::OutsideZone),
            ("*.gslb.example.com.", Refusal::Wildcard),
            ("a.*.gslb.example.com.", Refusal::Wildcard),
            ("*.example.org.", Refusal::OutsideZone),
        ];
        for (name, refusal) in cases {
            assert_eq!(check(name), Err(refusal), "{name}");
        }
    }

    #[test]
    fn labels_are_counted_with_metric_names() {
        let labels: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["outside_zone", "apex", "nameserver", "wildcard"]);
    }
}
