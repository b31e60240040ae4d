//! `[server.cookies]`: DNS cookies (RFC 7873, server cookies as RFC 9018 makes them), on by
//! default. The secret makes and checks server cookies; replicas of a region that share one
//! (`secrets`, or `secrets_file`, e.g. a mounted Secret) accept each other's cookies. Without
//! one, each process makes its own at start.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::default_true;
use super::problems::Problems;

/// Bytes of a cookie secret (SipHash-2-4's key).
pub const SECRET_LEN: usize = 16;

/// Whether and how cookies are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CookieSettings {
    /// No COOKIE option is ever sent; one received is ignored.
    Off,
    /// A secret of this process's own, made at start.
    OwnSecret,
    /// These secrets: the first makes cookies, every one is accepted (rotation).
    Secrets(Vec<[u8; SECRET_LEN]>),
}

/// `[server.cookies]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCookies {
    #[serde(default = "default_true")]
    enabled: bool,
    /// Base64 of 16 bytes each; the first makes cookies.
    #[serde(default)]
    secrets: Vec<String>,
    /// A file with the secrets, one per line.
    secrets_file: Option<PathBuf>,
}

impl Default for RawCookies {
    fn default() -> Self {
        Self {
            enabled: true,
            secrets: Vec::new(),
            secrets_file: None,
        }
    }
}

impl RawCookies {
    pub(super) fn validate(&self, problems: &mut Problems) -> CookieSettings {
        if !self.enabled {
            return CookieSettings::Off;
        }
        let text;
        let (field, lines): (&str, Vec<&str>) = match &self.secrets_file {
            Some(_) if !self.secrets.is_empty() => {
                problems.add("server.cookies", "give secrets or secrets_file, not both");
                return CookieSettings::Off;
            }
            Some(path) => {
                text = match std::fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(error) => {
                        let reason = format!("cannot read {}: {error}", path.display());
                        problems.add("server.cookies.secrets_file", reason);
                        return CookieSettings::Off;
                    }
                };
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                if lines.is_empty() {
                    problems.add("server.cookies.secrets_file", "no secret in the file");
                }
                ("server.cookies.secrets_file", lines)
            }
            None => (
                "server.cookies.secrets",
                self.secrets.iter().map(String::as_str).collect(),
            ),
        };
        if lines.is_empty() {
            return CookieSettings::OwnSecret;
        }
        let mut secrets = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            match BASE64.decode(line).ok().and_then(|b| b.try_into().ok()) {
                Some(secret) => secrets.push(secret),
                None => problems.add(
                    format!("{field}[{i}]"),
                    format!("expected base64 of {SECRET_LEN} bytes"),
                ),
            }
        }
        CookieSettings::Secrets(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    fn cookies(keys: &str) -> Fixture {
        Fixture::new().table(&format!("[server.cookies]\n{keys}"))
    }

    #[test]
    fn cookies_are_on_with_a_secret_of_their_own_unless_given_or_turned_off() {
        let config = Fixture::new().config();
        assert_eq!(config.server.cookies, CookieSettings::OwnSecret);
        let config = cookies("enabled = false").config();
        assert_eq!(config.server.cookies, CookieSettings::Off);
        let secret = BASE64.encode([7u8; SECRET_LEN]);
        let config = cookies(&format!("secrets = [\"{secret}\"]")).config();
        assert_eq!(
            config.server.cookies,
            CookieSettings::Secrets(vec![[7u8; SECRET_LEN]])
        );
        cookies(r#"secrets = ["c2hvcnQ="]"#)
            .assert_refused("server.cookies.secrets[0]", "expected base64 of 16 bytes");
    }
}
