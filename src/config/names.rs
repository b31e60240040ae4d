//! Domain names as written in the file (zone, nameservers, services, probe hosts): one parser,
//! so every section accepts and normalises names the same way.

use hickory_proto::rr::Name;

/// Parses a domain name given in config; returns it lowercase and fully qualified.
pub(super) fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() {
        return Err("empty name".into());
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("invalid name {text:?}: {e}"))?;
    if name.iter().any(|l| l.is_empty()) {
        return Err(format!("invalid name {text:?}: empty label"));
    }
    if name.iter().any(|l| {
        !l.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(format!(
            "invalid name {text:?}: only letters, digits, '-' and '_' are allowed in labels"
        ));
    }
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}
