//! Response rate limiting over real sockets: a flood of UDP queries from one source gets at
//! most the limit in full answers, every second limited answer truncated and the rest dropped,
//! while another network is answered in full, TCP is never limited, and the host's loopback is
//! exempt by default. Both UDP paths (gslbd's fast path and hickory-server's).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::config::{ConfigFile, Rrl};
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const LIMIT: u32 = 5;
const FLOOD: usize = 300;

/// The base config with rate limiting at `LIMIT` answers a second, nothing exempt, and the
/// admin endpoint on.
fn limited(fast_path: bool) -> ConfigFile {
    let mut config = ConfigFile::base();
    config.server.udp_fast_path = Some(fast_path);
    config.server.admin = Some("127.0.0.1:0".into());
    config.server.rrl = Some(Rrl {
        responses_per_second: Some(LIMIT),
        exempt: Some(Vec::new()),
        ..Rrl::default()
    });
    config
}

/// What a source got back for a burst of queries.
#[derive(Debug, Default)]
struct Replies {
    /// With an answer.
    full: usize,
    /// TC set, no records (slipped).
    truncated: usize,
}

/// Sends `n` A queries for `qname` from `source` to `server` back to back, then collects what
/// comes back.
fn burst(source: &str, server: SocketAddr, qname: &str, n: usize) -> Replies {
    let socket = UdpSocket::bind((source, 0)).expect("bind a loopback source");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let packet = bytes(&query(qname, RecordType::A));
    for _ in 0..n {
        socket.send_to(&packet, server).expect("send");
    }
    let mut replies = Replies::default();
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let reply = Message::from_vec(&buf[..len]).expect("a reply parses");
        if reply.metadata.truncation {
            assert!(reply.answers.is_empty(), "a slipped reply has no records");
            assert_eq!(reply.queries.len(), 1, "it carries the question");
            replies.truncated += 1;
        } else {
            assert_eq!(addresses(&reply), ["192.0.2.1"], "{reply:?}");
            replies.full += 1;
        }
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_network_is_limited_and_others_are_answered_in_full() {
    for fast_path in [true, false] {
        let server = start_config(&limited(fast_path)).await;
        let path = if fast_path { "fast path" } else { "hickory" };

        let flood = burst("127.0.0.2", server.addr, "app.gslb.example.com", FLOOD);
        // The burst may straddle a second: at most two seconds' worth of full answers.
        assert!(
            (1..=2 * LIMIT as usize).contains(&flood.full),
            "{path}: {flood:?}"
        );
        let limited = FLOOD - flood.full;
        assert!(
            flood.truncated > 0 && flood.truncated <= limited / 2 + 1,
            "{path}: about every second limited answer slips: {flood:?}"
        );
        assert!(
            flood.full + flood.truncated < FLOOD,
            "{path}: the rest is dropped: {flood:?}"
        );

        // Another network, within the limit: every answer in full.
        let other = burst(
            "127.0.1.3",
            server.addr,
            "app.gslb.example.com",
            LIMIT as usize,
        );
        assert_eq!((other.full, other.truncated), (LIMIT as usize, 0), "{path}");

        // TCP is never limited (it cannot be spoofed).
        for _ in 0..20 {
            let reply = tcp(server.addr, &query("app.gslb.example.com", RecordType::A));
            assert_eq!(addresses(&reply), ["192.0.2.1"], "{path}: tcp");
        }

        let admin = server.app.admin_addr().expect("admin");
        let metrics = http_get(admin, "/metrics").1;
        let counted = |action: &str| {
            sample(
                &metrics,
                "gslbd_dns_rate_limited_total",
                &["class=\"normal\"", &format!("action=\"{action}\"")],
            ) as usize
        };
        assert_eq!(counted("slipped"), flood.truncated, "{path}");
        assert_eq!(
            counted("dropped"),
            FLOOD - flood.full - flood.truncated,
            "{path}"
        );
        server.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nxdomain_and_errors_have_their_own_limits() {
    let mut config = limited(true);
    let rrl = config.server.rrl.as_mut().expect("set above");
    rrl.nxdomains_per_second = Some(2);
    rrl.errors_per_second = Some(1);
    rrl.slip = Some(0);
    let server = start_config(&config).await;
    let socket = UdpSocket::bind("127.0.0.4:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let ask = |qname: &str| {
        socket
            .send_to(&bytes(&query(qname, RecordType::A)), server.addr)
            .expect("send");
        let mut buf = [0u8; 1500];
        socket.recv_from(&mut buf).ok().map(|(len, _)| {
            Message::from_vec(&buf[..len])
                .expect("parses")
                .metadata
                .response_code
                .to_string()
        })
    };
    // Random names: NXDOMAIN shares one bucket, limit 2, no slip.
    let nx: Vec<Option<String>> = (0..4)
        .map(|i| ask(&format!("nope{i}.gslb.example.com")))
        .collect();
    assert_eq!(nx.iter().flatten().count(), 2, "{nx:?}");
    // Out of zone: REFUSED, limit 1 — counted apart from NXDOMAIN and answers.
    let refused: Vec<Option<String>> = (0..3).map(|_| ask("example.org")).collect();
    assert_eq!(refused.iter().flatten().count(), 1, "{refused:?}");
    assert!(
        ask("app.gslb.example.com").is_some(),
        "answers have their own bucket"
    );
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_loopback_is_exempt_by_default() {
    let server = start().await;
    let flood = burst("127.0.0.1", server.addr, "app.gslb.example.com", 100);
    assert_eq!((flood.full, flood.truncated), (100, 0));
    server.app.shutdown().await;
}
