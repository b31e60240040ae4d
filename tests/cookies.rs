//! DNS cookies (RFC 7873, server cookies as RFC 9018 makes them) over real sockets: a client
//! cookie gets a server cookie back, a malformed option FORMERR; a resolver that sends back a
//! server cookie we made proves its address and is never rate-limited, on both UDP paths, by
//! any replica sharing the secret, and through a rotation; one we did not make is limited as if
//! it had none.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use base64::Engine;
use common::config::{ConfigFile, Cookies, Rrl};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

const LIMIT: u32 = 5;
const FLOOD: usize = 100;
const CLIENT_COOKIE: [u8; 8] = [0x24, 0x64, 0xC4, 0xAB, 0xCF, 0x10, 0xC9, 0x57];

/// A query for `qname` carrying `cookie` as its COOKIE option.
fn cookie_query(qname: &str, cookie: &[u8]) -> Message {
    let mut message = query(qname, RecordType::A);
    let edns = message.edns.as_mut().expect("edns");
    edns.options_mut().insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Cookie),
        cookie.to_vec(),
    ));
    message
}

/// The COOKIE option of a reply.
fn cookie_of(reply: &Message) -> Option<Vec<u8>> {
    match reply.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        _ => None,
    }
}

/// A secret as the config takes it.
fn secret(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 16])
}

/// The base config, rate-limited to `LIMIT` answers a second with nothing exempt and nothing
/// slipped, with cookie `secrets` (a secret of its own when empty).
fn limited(fast_path: bool, secrets: &[String]) -> ConfigFile {
    let mut config = ConfigFile::base();
    config.server.udp_fast_path = Some(fast_path);
    config.server.rrl = Some(Rrl {
        responses_per_second: Some(LIMIT),
        slip: Some(0),
        exempt: Some(Vec::new()),
        ..Rrl::default()
    });
    config.server.cookies = Some(Cookies {
        secrets: secrets.to_vec(),
        ..Cookies::default()
    });
    config
}

/// Full answers `server` gives `n` back-to-back copies of `message` from `source`.
fn answered(source: &str, server: SocketAddr, message: &Message, n: usize) -> usize {
    let socket = UdpSocket::bind((source, 0)).expect("bind a loopback source");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let packet = bytes(message);
    for _ in 0..n {
        socket.send_to(&packet, server).expect("send");
    }
    let mut full = 0;
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let reply = Message::from_vec(&buf[..len]).expect("a reply parses");
        full += usize::from(!addresses(&reply).is_empty());
    }
    full
}

/// The server cookie `server` gives `source` (a first query with a client cookie alone).
fn server_cookie(source: &str, server: SocketAddr) -> Vec<u8> {
    let socket = UdpSocket::bind((source, 0)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket
        .send_to(
            &bytes(&cookie_query("app.gslb.example.com", &CLIENT_COOKIE)),
            server,
        )
        .expect("send");
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).expect("a reply");
    cookie_of(&Message::from_vec(&buf[..len]).expect("parses")).expect("a cookie")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cookie_gets_a_server_cookie_back_and_a_malformed_one_formerr() {
    let server = start().await;
    let ask = cookie_query("app.gslb.example.com", &CLIENT_COOKIE);
    for reply in [udp(server.addr, &ask), tcp(server.addr, &ask)] {
        assert_eq!(addresses(&reply), ["192.0.2.1"]);
        let cookie = cookie_of(&reply).expect("a cookie");
        assert_eq!(
            cookie.len(),
            24,
            "client cookie and a 16-byte server cookie"
        );
        assert_eq!(&cookie[..8], &CLIENT_COOKIE, "the client cookie echoed");
        assert_eq!(cookie[8], 1, "RFC 9018 version 1");
        let made = u32::from_be_bytes(cookie[12..16].try_into().expect("4 bytes"));
        let now = (gslbd::unix_ms() / 1000) as u32;
        assert!(made.abs_diff(now) <= 5, "its timestamp is now");
        // Sent back, it is taken; the answer carries a cookie again.
        let again = udp(server.addr, &cookie_query("app.gslb.example.com", &cookie));
        assert_eq!(addresses(&again), ["192.0.2.1"]);
        assert_eq!(cookie_of(&again).map(|c| c.len()), Some(24));
    }
    // Errors carry it too (REFUSED for a name outside the zone).
    let reply = udp(server.addr, &cookie_query("example.org", &CLIENT_COOKIE));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(cookie_of(&reply).is_some());
    // A query without one gets none.
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    assert_eq!(cookie_of(&reply), None);
    // RFC 7873 §5.2.2: a malformed option (5 bytes) is FORMERR.
    for reply in [
        udp(
            server.addr,
            &cookie_query("app.gslb.example.com", &[1, 2, 3, 4, 5]),
        ),
        tcp(
            server.addr,
            &cookie_query("app.gslb.example.com", &[1, 2, 3, 4, 5]),
        ),
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }
    server.app.shutdown().await;

    // Turned off: no cookie, and the option is ignored.
    let mut config = ConfigFile::base();
    config.server.cookies = Some(Cookies {
        enabled: Some(false),
        ..Cookies::default()
    });
    let server = start_config(&config).await;
    let reply = udp(
        server.addr,
        &cookie_query("app.gslb.example.com", &[1, 2, 3, 4, 5]),
    );
    assert_eq!(addresses(&reply), ["192.0.2.1"]);
    assert_eq!(cookie_of(&reply), None);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolver_that_returns_our_cookie_is_never_rate_limited() {
    for fast_path in [true, false] {
        let path = if fast_path { "fast path" } else { "hickory" };
        let server = start_config(&limited(fast_path, &[])).await;
        let cookie = server_cookie("127.0.0.2", server.addr);
        let with_cookie = cookie_query("app.gslb.example.com", &cookie);
        assert_eq!(
            answered("127.0.0.2", server.addr, &with_cookie, FLOOD),
            FLOOD,
            "{path}: a proven source is answered in full"
        );
        // The same cookie from another address, or a cookie we never made: limited.
        let full = answered("127.0.1.2", server.addr, &with_cookie, FLOOD);
        assert!((1..=2 * LIMIT as usize).contains(&full), "{path}: {full}");
        let mut forged = cookie.clone();
        forged[20] ^= 0xFF;
        let full = answered(
            "127.0.2.2",
            server.addr,
            &cookie_query("app.gslb.example.com", &forged),
            FLOOD,
        );
        assert!((1..=2 * LIMIT as usize).contains(&full), "{path}: {full}");
        server.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_the_secret_take_each_others_cookies_through_a_rotation() {
    let (old, new) = (secret(1), secret(2));
    let first = start_config(&limited(true, std::slice::from_ref(&old))).await;
    let replica = start_config(&limited(true, std::slice::from_ref(&old))).await;
    let rotated = start_config(&limited(true, &[new.clone(), old.clone()])).await;
    let rotated_done = start_config(&limited(true, std::slice::from_ref(&new))).await;
    let stranger = start_config(&limited(true, &[])).await;

    let cookie = server_cookie("127.0.0.4", first.addr);
    let ask = cookie_query("app.gslb.example.com", &cookie);
    assert_eq!(answered("127.0.0.4", replica.addr, &ask, FLOOD), FLOOD);
    assert_eq!(
        answered("127.0.0.4", rotated.addr, &ask, FLOOD),
        FLOOD,
        "the old secret still checks during the rotation"
    );
    for server in [&rotated_done, &stranger] {
        let full = answered("127.0.0.4", server.addr, &ask, FLOOD);
        assert!((1..=2 * LIMIT as usize).contains(&full), "{full}");
    }
    // The rotation makes cookies with the new secret: taken once the old one is gone.
    let cookie = server_cookie("127.0.0.5", rotated.addr);
    let ask = cookie_query("app.gslb.example.com", &cookie);
    assert_eq!(answered("127.0.0.5", rotated_done.addr, &ask, FLOOD), FLOOD);
    for server in [first, replica, rotated, rotated_done, stranger] {
        server.app.shutdown().await;
    }
}
