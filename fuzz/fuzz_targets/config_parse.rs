//! Any text through `config::parse`, as `gslbd run` and `check-config` read a file: no panic,
//! and a config that validates builds a snapshot (what the daemon does next). Inputs that name
//! key files (`gossip.keys_file`, `gossip.signing_key_file`) are skipped: validation would read
//! whatever path they name, and a fuzz target does no I/O (inline `keys`/`signing_key` are
//! fuzzed like any field).

#![no_main]

use gslbd::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if names_a_key_file(text) {
        return;
    }
    if let Ok(config) = gslbd::config::parse(text) {
        let _ = Snapshot::from_model(&config.model, config.server.max_udp_payload);
    }
});

/// Whether `[gossip]` names a key file; read as TOML so that quoted or escaped spellings of the
/// key count too (only when the text could spell one: parsing twice halves the speed).
fn names_a_key_file(text: &str) -> bool {
    if !text.contains("file") && !text.contains("\\u") && !text.contains("\\U") {
        return false;
    }
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    table
        .get("gossip")
        .and_then(toml::Value::as_table)
        .is_some_and(|gossip| gossip.keys().any(|key| key.ends_with("_file")))
}
