//! `gslbd check-config` run on a config text, and what the tests of refused configs share.

use std::collections::BTreeMap;
use std::process::Command;

use super::config::ConfigFile;

/// Runs `gslbd check-config` on `text`: (accepted, stderr).
pub fn check(text: &str) -> (bool, String) {
    check_as(text, None)
}

/// [`check`] as the pod `pod` of a StatefulSet would run it (`POD_NAME` set), or without
/// `POD_NAME` at all.
pub fn check_as(text: &str, pod: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gslbd.toml");
    std::fs::write(&path, text).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_gslbd"));
    command
        .arg("check-config")
        .arg(&path)
        .env_remove("POD_NAME");
    if let Some(pod) = pod {
        command.env("POD_NAME", pod);
    }
    let output = command.output().expect("run gslbd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

pub fn assert_refused(text: &str, expected: &[&str]) {
    let (ok, stderr) = check(text);
    assert!(!ok, "config accepted, expected {expected:?}");
    for needle in expected {
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    }
}

/// The base config changed by `change`, as TOML.
pub fn base_with(change: impl FnOnce(&mut ConfigFile)) -> String {
    let mut config = ConfigFile::base();
    change(&mut config);
    config.to_toml()
}

/// `config` as TOML with `key = value` added to the table at `path` (dot-separated, array
/// indexes as numbers, made when missing): a key gslbd does not know, which the typed mirror
/// has no field for.
pub fn with_unknown_key(
    config: &ConfigFile,
    path: &str,
    key: &str,
    value: impl Into<toml::Value>,
) -> String {
    let mut root = toml::Value::try_from(config).expect("the config mirror serializes");
    let mut table = &mut root;
    for segment in path.split('.') {
        table = match table {
            toml::Value::Array(items) => &mut items[segment.parse::<usize>().expect("an index")],
            toml::Value::Table(entries) => entries
                .entry(segment)
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            other => panic!("{path}: {segment} is in {other}, not in a table"),
        };
    }
    table
        .as_table_mut()
        .expect("path names a table")
        .insert(key.into(), value.into());
    toml::to_string(&root).expect("TOML serializes")
}

/// Public keys by region.
pub fn region_keys(keys: [(&str, &str); 3]) -> BTreeMap<String, String> {
    keys.iter()
        .map(|(region, key)| (region.to_string(), key.to_string()))
        .collect()
}
