//! DNS over TCP and its limits, over real loopback sockets: connections per client network and
//! in total, the per-message and idle timeouts, the query limit, RFC 7766 framing and
//! pipelining, and UDP and new clients answered while a flood holds connections.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::config::{ConfigFile, Tcp};
use common::tcp::{ask, closed_within, connect_from, framed, read_framed};
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const PATIENCE: Duration = Duration::from_secs(10);

/// The base config with `[server.tcp]` as `set` writes it.
async fn start_with(set: impl FnOnce(&mut Tcp)) -> TestServer {
    let mut tcp = Tcp::default();
    set(&mut tcp);
    let mut config = ConfigFile::base();
    config.server.tcp = Some(tcp);
    start_config(&config).await
}

fn app_query() -> Message {
    query("app.gslb.example.com", RecordType::A)
}

fn answered(stream: &mut TcpStream) -> bool {
    ask(stream, &app_query()).is_some_and(|reply| addresses(&reply) == ["192.0.2.1"])
}

fn metric(server: &TestServer, name: &str, labels: &[&str]) -> f64 {
    sample(&server.app.metrics().encode(), name, labels)
}

/// Waits until `metric` reaches `want`; tests assert the state reached, not how fast.
async fn wait_for_metric(server: &TestServer, name: &str, labels: &[&str], want: f64) {
    let deadline = Instant::now() + PATIENCE;
    while metric(server, name, labels) != want {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {}, not {want}",
            metric(server, name, labels)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects from `source` until a connection is answered (a closed one gives its place back
/// once the server has seen it close).
async fn eventually_answered(source: &str, server: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = connect_from(source, server);
        if answered(&mut stream) {
            return stream;
        }
        assert!(Instant::now() < deadline, "{source} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection from each of `sources`, every one answered.
fn hold(server: &TestServer, sources: &[&str]) -> Vec<TcpStream> {
    sources
        .iter()
        .map(|source| {
            let mut stream = connect_from(source, server.addr);
            assert!(answered(&mut stream), "{source} is let in");
            stream
        })
        .collect()
}

/// A connection from `source` is reset at once, counted as refused for `reason`.
async fn assert_reset(server: &TestServer, source: &str, reason: &str) {
    let mut stream = connect_from(source, server.addr);
    let mut byte = [0u8; 1];
    assert_eq!(
        stream.read(&mut byte).map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset),
        "{source}: reset at once"
    );
    let label = format!("reason=\"{reason}\"");
    wait_for_metric(server, "gslbd_dns_tcp_refused_total", &[&label], 1.0).await;
}

/// `stream` is closed by the server, counted as closed for `reason`.
async fn assert_cut(server: &TestServer, stream: &mut TcpStream, reason: &str) {
    assert!(closed_within(stream, PATIENCE), "closed by the server");
    let label = format!("reason=\"{reason}\"");
    wait_for_metric(server, "gslbd_dns_tcp_closed_total", &[&label], 1.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_per_network_cap_are_reset_while_other_networks_are_answered() {
    let server = start_with(|tcp| tcp.max_connections_per_network = Some(3)).await;
    let mut held = hold(&server, &["127.0.61.1", "127.0.61.2", "127.0.61.3"]);
    assert_reset(&server, "127.0.61.4", "per_network").await;
    hold(&server, &["127.0.62.1"]);
    // A connection that ends gives its place back.
    drop(held.pop());
    eventually_answered("127.0.61.5", server.addr).await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_total_cap_are_reset_whatever_their_network() {
    let server = start_with(|tcp| {
        tcp.max_connections = Some(3);
        tcp.max_connections_per_network = Some(3);
    })
    .await;
    let mut held = hold(&server, &["127.0.71.1", "127.0.72.1", "127.0.73.1"]);
    assert_eq!(metric(&server, "gslbd_dns_tcp_connections", &[]), 3.0);
    assert_eq!(metric(&server, "gslbd_dns_tcp_connections_max", &[]), 3.0);
    assert_reset(&server, "127.0.79.1", "total").await;
    drop(held.pop());
    eventually_answered("127.0.79.1", server.addr).await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_announced_long_and_sent_short_is_cut_after_the_message_timeout() {
    let server = start_with(|tcp| tcp.message_timeout_ms = Some(300)).await;
    let mut slow = connect_from("127.0.63.1", server.addr);
    // 65535 bytes announced, 100 sent, the rest never.
    slow.write_all(&[0xff, 0xff]).expect("length");
    slow.write_all(&[0u8; 100]).expect("a few bytes");
    assert_cut(&server, &mut slow, "read_timeout").await;
    let mut next = connect_from("127.0.63.1", server.addr);
    assert!(answered(&mut next), "the server keeps answering");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = start_with(|tcp| tcp.idle_timeout_secs = Some(1)).await;
    let mut idle = connect_from("127.0.64.1", server.addr);
    assert!(answered(&mut idle));
    assert_cut(&server, &mut idle, "idle").await;
    assert_eq!(metric(&server, "gslbd_dns_tcp_connections", &[]), 0.0);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_queries_are_answered_in_order_and_framing_may_split_anywhere() {
    let server = start().await;
    let mut stream = connect_from("127.0.65.1", server.addr);
    let questions = [
        ("app.gslb.example.com", RecordType::A),
        ("gslb.example.com", RecordType::SOA),
        ("nope.gslb.example.com", RecordType::A),
        ("geo.gslb.example.com", RecordType::AAAA),
        ("example.org", RecordType::A),
    ];
    let mut burst = Vec::new();
    for (id, (qname, rtype)) in questions.iter().enumerate() {
        let mut message = query(qname, *rtype);
        message.metadata.id = 100 + id as u16;
        burst.extend(framed(&bytes(&message)));
    }
    stream.write_all(&burst).expect("one write, five queries");
    for (id, (qname, rtype)) in questions.iter().enumerate() {
        let reply =
            Message::from_vec(&read_framed(&mut stream).expect("an answer")).expect("parses");
        assert_eq!(reply.metadata.id, 100 + id as u16, "in the order asked");
        assert_eq!(reply.queries[0].name().to_ascii(), format!("{qname}."));
        assert_eq!(reply.queries[0].query_type(), *rtype);
    }

    // One query a byte at a time, the length prefix split too.
    let frame = framed(&bytes(&app_query()));
    for byte in &frame {
        stream.write_all(&[*byte]).expect("one byte");
        stream.flush().expect("flush");
    }
    let reply = Message::from_vec(&read_framed(&mut stream).expect("an answer")).expect("parses");
    assert_eq!(addresses(&reply), ["192.0.2.1"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_closed_after_its_query_limit() {
    let server = start_with(|tcp| tcp.max_queries_per_connection = Some(3)).await;
    let mut stream = connect_from("127.0.66.1", server.addr);
    let frame = framed(&bytes(&app_query()));
    stream.write_all(&frame.repeat(5)).expect("five queries");
    for _ in 0..3 {
        read_framed(&mut stream).expect("answered up to the limit");
    }
    assert_cut(&server, &mut stream, "query_limit").await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_longer_than_any_query_is_answered_as_over_udp_and_the_connection_goes_on() {
    let server = start().await;
    // A query followed by junk up to 5000 bytes: both transports keep the first 4096.
    let mut long = bytes(&app_query());
    long.resize(5000, 0);
    let over_udp = udp_raw(server.addr, &long).expect("udp answer");
    let mut stream = connect_from("127.0.67.1", server.addr);
    stream.write_all(&framed(&long)).expect("long query");
    assert_eq!(read_framed(&mut stream).expect("tcp answer"), over_udp);
    assert!(
        answered(&mut stream),
        "the whole message was read: framing holds"
    );
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_and_new_tcp_clients_are_answered_while_a_flood_holds_connections() {
    // Connections held for the whole test: the message timeout does not cut the flood early.
    let server = start_with(|tcp| tcp.message_timeout_ms = Some(60_000)).await;
    // 20 networks × 20 connections, each announcing 65535 bytes and sending 1000.
    let mut flood = Vec::new();
    for net in 0..20 {
        for host in 1..=20 {
            let mut stream = connect_from(&format!("127.1.{net}.{host}"), server.addr);
            let mut start = vec![0xff, 0xff];
            start.extend_from_slice(&[0u8; 1000]);
            // A refused connection may already be reset.
            let _ = stream.write_all(&start);
            flood.push(stream);
        }
    }
    // 16 per network admitted (the default), 4 per network reset.
    wait_for_metric(
        &server,
        "gslbd_dns_tcp_refused_total",
        &["reason=\"per_network\""],
        80.0,
    )
    .await;
    wait_for_metric(&server, "gslbd_dns_tcp_connections", &[], 320.0).await;

    let reply = udp(server.addr, &app_query());
    assert_eq!(addresses(&reply), ["192.0.2.1"], "udp answered");
    let mut fresh = connect_from("127.0.68.1", server.addr);
    assert!(answered(&mut fresh), "a new tcp client answered");
    assert_eq!(metric(&server, "gslbd_dns_tcp_connections", &[]), 321.0);
    drop(flood);
    server.app.shutdown().await;
}
