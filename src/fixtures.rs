//! Fixtures shared by unit tests: the three regions `eu`, `us` and `ap` of zone
//! `gslb.example.com`, as model values and as the head of a config file that tests complete
//! with their services.

use hickory_proto::rr::Name;

use crate::config::{self, Config};
use crate::model::{Region, RegionDef, RegionIndex};

pub const EU: RegionIndex = RegionIndex::new(0);
pub const US: RegionIndex = RegionIndex::new(1);
pub const AP: RegionIndex = RegionIndex::new(2);

/// Zone `gslb.example.com` with the local region `eu` (its nameserver inside the zone, with
/// IPv4 and IPv6 glue), `us` (its nameserver outside the zone) and `ap` (no nameserver), their
/// locations (Frankfurt, Virginia, Singapore) and a geo table with one documentation network
/// each: the head of a config file, without services.
pub const ZONE: &str = r#"
local_region = "eu"
zone = { name = "gslb.example.com" }
regions = [
    { name = "eu", nameserver = "ns-eu.gslb.example.com", glue = ["192.0.2.53", "2001:db8::53"], location = [50.1, 8.7] },
    { name = "us", nameserver = "ns.us.example.net", location = [39.0, -77.5] },
    { name = "ap", location = [1.35, 103.8] },
]
geo = { default_region = "us", networks = { "192.0.2.0/24" = "eu", "198.51.100.0/24" = "us", "203.0.113.0/24" = "ap" } }
"#;

/// [`ZONE`] followed by `tables` (services, `[probe]`, `[kubernetes]`, ...), validated.
pub fn config(tables: &str) -> Config {
    let text = format!("{ZONE}\n{tables}");
    match config::parse(&text) {
        Ok(config) => config,
        Err(error) => panic!("fixture config refused:\n{error}\n--- config:\n{text}"),
    }
}

/// The regions of [`ZONE`] as model values (without nameservers).
pub fn regions() -> Vec<RegionDef> {
    [
        ("eu", (50.1, 8.7)),
        ("us", (39.0, -77.5)),
        ("ap", (1.35, 103.8)),
    ]
    .into_iter()
    .map(|(name, location)| RegionDef {
        name: Region::new(name),
        nameserver: None,
        glue: Vec::new(),
        location: Some(location),
    })
    .collect()
}

/// A fully qualified name.
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a valid name")
}

/// `model` signed with the repository's test key (`config/dnssec/`, a CSK for
/// gslb.example.com; unit tests run in the crate's directory).
pub fn signed(mut model: crate::model::Model) -> crate::model::Model {
    let key = crate::dnssec::ZoneKey::read(
        std::path::Path::new("config/dnssec/Kgslb.example.com.+013+60818"),
        &model.zone.origin,
    )
    .expect("the test key reads");
    let signer = crate::dnssec::Signer::new(
        &model.zone.origin,
        vec![key],
        Vec::new(),
        crate::dnssec::Policy::default(),
    )
    .expect("a signer");
    model.zone.signer = Some(std::sync::Arc::new(signer));
    model
}
