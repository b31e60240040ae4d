//! Domain names as written in the file (zone, nameservers, services, probe hosts): one parser,
//! so every section accepts and normalises names the same way.

use hickory_proto::rr::Name;

/// Parses a domain name given in config; returns it lowercase and fully qualified.
pub(super) fn parse_name(text: &str) -> Result<Name, String> {
    parse(text, false)
}

/// Parses a service's name as [`parse_name`] does, but lets a `*` label through, so that the
/// ownership rule (`crate::ownership`) refuses a wildcard service with its own reason.
pub(super) fn parse_service_name(text: &str) -> Result<Name, String> {
    parse(text, true)
}

fn parse(text: &str, star_labels: bool) -> Result<Name, String> {
    if text.is_empty() {
        return Err("empty name".into());
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("invalid name {text:?}: {e}"))?;
    if name.iter().any(|l| l.is_empty()) {
        return Err(format!("invalid name {text:?}: empty label"));
    }
    let is_allowed = |label: &[u8]| {
        (star_labels && label == b"*")
            || label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.iter().all(is_allowed) {
        return Err(format!(
            "invalid name {text:?}: only letters, digits, '-' and '_' are allowed in labels"
        ));
    }
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Name;

    use super::super::fixture::Fixture;

    #[test]
    fn names_are_kept_lowercase_and_fully_qualified() {
        let config = Fixture::new().zone_name("GSLB.Example.COM").config();
        let expected = Name::from_ascii("gslb.example.com.").expect("test name");
        assert_eq!(config.model.zone.origin, expected);
        assert!(config.model.zone.origin.is_fqdn());
    }

    #[test]
    fn empty_and_malformed_names_are_refused_with_the_text() {
        Fixture::new()
            .zone_name("")
            .assert_refused("zone.name", "empty name");
        Fixture::new()
            .zone_name("gslb..example.com")
            .assert_refused("zone.name", r#"invalid name "gslb..example.com""#);
    }

    #[test]
    fn labels_hold_only_letters_digits_hyphens_and_underscores() {
        Fixture::new().zone_name("*.example.com").assert_refused(
            "zone.name",
            "only letters, digits, '-' and '_' are allowed in labels",
        );
        let config = Fixture::new().zone_name("gslb_1.example.com").config();
        assert_eq!(config.model.zone.origin.to_string(), "gslb_1.example.com.");
    }
}
