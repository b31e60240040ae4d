//! DNS cookies (RFC 7873), server cookies made as RFC 9018 §4 says: a version (1), three
//! reserved bytes, the time (Unix seconds) and SipHash-2-4 of the client cookie, those eight
//! bytes and the client's address under the server secret. A resolver that sends back a server
//! cookie we made, less than an hour old, proves its address is its own: its answers are never
//! rate-limited (`rrl`), which keeps real resolvers answered while spoofed floods are limited.
//! Cookies are never required: a query without one, or with one we did not make, is answered
//! as any other (with a fresh cookie when it sent one); a malformed option gets FORMERR (RFC 7873
//! §5.2.2).

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::config::{COOKIE_SECRET_LEN, CookieSettings};

/// The client cookie's length (RFC 7873 §4.1).
const CLIENT: usize = 8;
/// The server cookie we make (RFC 9018 §4).
const SERVER: usize = 16;
/// A server cookie is 8 to 32 bytes (RFC 7873 §4.2).
const SERVER_MIN: usize = 8;
const SERVER_MAX: usize = 32;
/// RFC 9018 §4.3: a cookie older than an hour, or from more than five minutes ahead, is not
/// valid.
const MAX_AGE_S: u32 = 3600;
const MAX_AHEAD_S: u32 = 300;

/// The secrets server cookies are made and checked with: the first makes them, every one
/// checks them (a rotation lists the new one first and the old one after it).
#[derive(Clone, PartialEq, Eq)]
pub struct Cookies {
    secrets: Vec<[u8; COOKIE_SECRET_LEN]>,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cookies({} secrets)", self.secrets.len())
    }
}

/// The COOKIE option of a query, answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The option's data for the response: the client cookie and a fresh server cookie.
    pub option: [u8; CLIENT + SERVER],
    /// The query carried a server cookie we made, fresh: its source address is proven.
    pub verified: bool,
}

/// A COOKIE option of a length RFC 7873 §4 does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl Cookies {
    /// The secrets `settings` give, or one made now (`OwnSecret`); `None` when off.
    pub fn from_settings(settings: &CookieSettings) -> Option<Self> {
        match settings {
            CookieSettings::Off => None,
            CookieSettings::Secrets(secrets) => Some(Self {
                secrets: secrets.clone(),
            }),
            CookieSettings::OwnSecret => {
                let mut secret = [0u8; COOKIE_SECRET_LEN];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                    .ok()?;
                Some(Self {
                    secrets: vec![secret],
                })
            }
        }
    }

    /// The answer to a query's COOKIE option `data` from `client` at `now` (Unix seconds).
    pub fn answer(&self, data: &[u8], client: IpAddr, now: u32) -> Result<Answered, Malformed> {
        let valid_length = data.len() == CLIENT
            || (CLIENT + SERVER_MIN..=CLIENT + SERVER_MAX).contains(&data.len());
        let (Some(first), true) = (self.secrets.first(), valid_length) else {
            return Err(Malformed);
        };
        let (client_cookie, server_cookie) = data.split_at(CLIENT);
        let client_cookie: [u8; CLIENT] = client_cookie.try_into().map_err(|_| Malformed)?;
        let verified = server_cookie.len() == SERVER
            && self
                .secrets
                .iter()
                .any(|secret| valid(secret, &client_cookie, server_cookie, client, now));
        let mut option = [0u8; CLIENT + SERVER];
        option[..CLIENT].copy_from_slice(&client_cookie);
        option[CLIENT..].copy_from_slice(&server_cookie_of(first, &client_cookie, now, client));
        Ok(Answered { option, verified })
    }
}

/// Whether `server_cookie` is one `secret` made for `client_cookie` and `client`, not too old.
fn valid(
    secret: &[u8; COOKIE_SECRET_LEN],
    client_cookie: &[u8; CLIENT],
    server_cookie: &[u8],
    client: IpAddr,
    now: u32,
) -> bool {
    let Ok(cookie) = <[u8; SERVER]>::try_from(server_cookie) else {
        return false;
    };
    let made = u32::from_be_bytes([cookie[4], cookie[5], cookie[6], cookie[7]]);
    let fresh = if made <= now {
        now - made <= MAX_AGE_S
    } else {
        made - now <= MAX_AHEAD_S
    };
    fresh && cookie[0] == 1 && server_cookie_of(secret, client_cookie, made, client) == cookie
}

/// RFC 9018 §4.4: Version | Reserved | Timestamp | SipHash-2-4(Client Cookie | Version |
/// Reserved | Timestamp | Client-IP, Server Secret).
fn server_cookie_of(
    secret: &[u8; COOKIE_SECRET_LEN],
    client_cookie: &[u8; CLIENT],
    timestamp: u32,
    client: IpAddr,
) -> [u8; SERVER] {
    let mut cookie = [0u8; SERVER];
    cookie[0] = 1;
    cookie[4..8].copy_from_slice(&timestamp.to_be_bytes());
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(client_cookie);
    hasher.write(&cookie[..8]);
    match client {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => hasher.write(&v6.octets()),
    }
    cookie[8..].copy_from_slice(&hasher.finish().to_le_bytes());
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(secrets: &[[u8; COOKIE_SECRET_LEN]]) -> Cookies {
        Cookies::from_settings(&CookieSettings::Secrets(secrets.to_vec())).expect("on")
    }

    const CLIENT_COOKIE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const NOW: u32 = 1_800_000_000;

    #[test]
    fn a_cookie_we_made_for_this_client_verifies_until_it_is_an_hour_old() {
        let server = cookies(&[[9; 16]]);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let first = server
            .answer(&CLIENT_COOKIE, client, NOW)
            .expect("well formed");
        assert!(!first.verified, "no server cookie yet");
        assert_eq!(&first.option[..8], &CLIENT_COOKIE);
        assert_eq!(first.option[8], 1, "version 1");
        for (later, verified) in [(0, true), (3600, true), (3601, false)] {
            let again = server
                .answer(&first.option, client, NOW + later)
                .expect("ok");
            assert_eq!(again.verified, verified, "{later} s later");
        }
        // From five minutes ahead at most (another replica's clock).
        assert!(
            server
                .answer(&first.option, client, NOW - 300)
                .unwrap()
                .verified
        );
        assert!(
            !server
                .answer(&first.option, client, NOW - 301)
                .unwrap()
                .verified
        );
        // Another address, another client cookie, a changed byte: not ours.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!server.answer(&first.option, other, NOW).unwrap().verified);
        let mut changed = first.option;
        changed[0] ^= 1;
        assert!(!server.answer(&changed, client, NOW).unwrap().verified);
        changed = first.option;
        changed[20] ^= 1;
        assert!(!server.answer(&changed, client, NOW).unwrap().verified);
    }

    #[test]
    fn a_rotation_accepts_the_old_secret_and_makes_cookies_with_the_new() {
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        let old = cookies(&[[1; 16]]);
        let issued = old.answer(&CLIENT_COOKIE, client, NOW).unwrap().option;
        let rotated = cookies(&[[2; 16], [1; 16]]);
        let answered = rotated.answer(&issued, client, NOW).unwrap();
        assert!(answered.verified, "the old secret still checks");
        let new = cookies(&[[2; 16]]);
        assert!(new.answer(&answered.option, client, NOW).unwrap().verified);
        assert!(!new.answer(&issued, client, NOW).unwrap().verified);
    }

    #[test]
    fn lengths_rfc_7873_does_not_allow_are_malformed() {
        let server = cookies(&[[9; 16]]);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for len in [0, 7, 9, 15, 41] {
            assert_eq!(
                server.answer(&vec![0; len], client, NOW),
                Err(Malformed),
                "{len}"
            );
        }
        for len in [8, 16, 24, 40] {
            assert!(server.answer(&vec![0; len], client, NOW).is_ok(), "{len}");
        }
    }
}
