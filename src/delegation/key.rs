//! TSIG key files, in the formats the usual tools write: BIND's (`tsig-keygen`,
//! `key "name" { algorithm hmac-sha256; secret "..."; };`), Knot's (`keymgr -t`, YAML with
//! `id`, `algorithm`, `secret`) or a one-line `hmac-sha256:name:secret` (`kdig -y`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

/// A TSIG key.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key name (BIND: key \"name\" {{ ... }}; Knot: id: name; or algorithm:name:secret)")]
    NoName,
    #[error("bad key name {0:?}")]
    BadName(String),
    #[error("no secret")]
    NoSecret,
    #[error("the secret is not base64")]
    BadSecret,
    #[error("algorithm {0:?} is not supported: use hmac-sha256 (or hmac-sha384, hmac-sha512)")]
    Algorithm(String),
}

fn algorithm(text: &str) -> Result<TsigAlgorithm, KeyError> {
    match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(KeyError::Algorithm(other.to_string())),
    }
}

fn build(name: &str, algo: Option<&str>, secret: Option<&str>) -> Result<TsigKey, KeyError> {
    let name = Name::from_ascii(name.trim_end_matches('.'))
        .map_err(|_| KeyError::BadName(name.to_string()))?;
    let algorithm = algorithm(algo.unwrap_or("hmac-sha256"))?;
    let secret = STANDARD
        .decode(secret.ok_or(KeyError::NoSecret)?.trim())
        .map_err(|_| KeyError::BadSecret)?;
    if secret.is_empty() {
        return Err(KeyError::NoSecret);
    }
    Ok(TsigKey {
        name: name.to_lowercase(),
        algorithm,
        secret,
    })
}

/// Parses a key file's text.
pub fn parse(text: &str) -> Result<TsigKey, KeyError> {
    // A one-liner: [algorithm:]name:secret
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        .collect();
    if let [line] = lines.as_slice()
        && !line.contains(['{', ' ', '\t'])
    {
        let parts: Vec<&str> = line.split(':').collect();
        return match parts.as_slice() {
            [name, secret] => build(name, None, Some(secret)),
            [algo, name, secret] => build(name, Some(algo), Some(secret)),
            _ => Err(KeyError::NoName),
        };
    }
    // BIND or Knot: words, with the punctuation of both formats as separators.
    let words: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || matches!(c, '"' | ';' | '{' | '}')))
        .map(|w| w.trim_start_matches('-'))
        .filter(|w| !w.is_empty())
        .collect();
    let after = |keys: &[&str]| {
        words
            .windows(2)
            .find(|pair| keys.contains(&pair[0]))
            .map(|pair| pair[1])
    };
    let name = after(&["key", "id:"]).filter(|n| *n != "key:");
    let Some(name) = name else {
        return Err(KeyError::NoName);
    };
    build(
        name,
        after(&["algorithm", "algorithm:"]),
        after(&["secret", "secret:"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtMzItYnl0ZXMhISE=";

    #[test]
    fn bind_knot_and_one_line_keys() {
        let bind = format!(
            "key \"gslbd-update\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let knot = format!(
            "# hmac-sha256:gslbd-update:{SECRET}\nkey:\n  - id: gslbd-update\n    algorithm: hmac-sha256\n    secret: {SECRET}\n"
        );
        let line = format!("hmac-sha256:gslbd-update:{SECRET}\n");
        for text in [bind, knot, line] {
            let key = parse(&text).unwrap();
            assert_eq!(
                key.name,
                Name::from_ascii("gslbd-update").unwrap(),
                "{text}"
            );
            assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
            assert_eq!(key.secret, STANDARD.decode(SECRET).unwrap());
        }
    }

    #[test]
    fn bad_keys_say_why() {
        assert_eq!(
            parse(&format!("hmac-md5:k:{SECRET}")),
            Err(KeyError::Algorithm("hmac-md5".to_string()))
        );
        assert_eq!(parse("k:%%%%"), Err(KeyError::BadSecret));
        assert_eq!(
            parse("key \"k\" { algorithm hmac-sha256; };"),
            Err(KeyError::NoSecret)
        );
        assert_eq!(parse("algorithm hmac-sha256;"), Err(KeyError::NoName));
    }
}
