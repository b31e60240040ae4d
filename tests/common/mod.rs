//! Test helpers: start gslbd in-process on an ephemeral loopback port and talk DNS to it over
//! real UDP and TCP sockets, building and parsing messages with hickory-proto.
#![allow(dead_code)]

pub mod backends;
pub mod check;
pub mod cluster;
pub mod config;
pub mod dns_software;
pub mod intruder;
pub mod kube_api;
pub mod kube_cluster;
pub mod processes;
pub mod tcp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use gslbd::app::App;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use config::ConfigFile;

/// A running in-process server.
pub struct TestServer {
    pub app: App,
    pub addr: SocketAddr,
}

/// Starts gslbd on [`ConfigFile::base`].
pub async fn start() -> TestServer {
    start_config(&ConfigFile::base()).await
}

/// Starts gslbd on `config`.
pub async fn start_config(config: &ConfigFile) -> TestServer {
    start_text(&config.to_toml()).await
}

/// Refuses a config that would probe anything but loopback: tests never send traffic elsewhere.
pub fn assert_probes_stay_local(config: &gslbd::config::Config) {
    let observe = config.gossip.as_ref().and_then(|g| g.observe);
    for key in gslbd::health::plan::at_start(&config.model, observe, false).keys() {
        let local = match &key.endpoint {
            gslbd::health::probe_key::Endpoint::Addr(addr) => addr.ip().is_loopback(),
            // Resolved from /etc/hosts, never by a DNS query.
            gslbd::health::probe_key::Endpoint::Name(name, _) => name == "localhost",
        };
        assert!(
            local,
            "test config would probe {key}: only 127.0.0.0/8, ::1 and localhost may be probed"
        );
    }
}

/// Starts gslbd on a whole config text (for text the typed [`ConfigFile`] cannot write).
pub async fn start_text(text: &str) -> TestServer {
    let config = gslbd::config::parse(text).expect("test config is valid");
    assert_probes_stay_local(&config);
    let app = App::start(config, None).await.expect("server starts");
    let addr = app.dns_addrs()[0];
    TestServer { app, addr }
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("valid name")
}

/// A query message with EDNS (payload 1232) as resolvers send it.
pub fn query(qname: &str, rtype: RecordType) -> Message {
    let mut message = plain_query(qname, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    message
}

/// A query message without EDNS.
pub fn plain_query(qname: &str, rtype: RecordType) -> Message {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(qname), rtype));
    message
}

/// A query carrying an EDNS Client Subnet option.
pub fn ecs_query(qname: &str, rtype: RecordType, subnet: &str, source_prefix: u8) -> Message {
    let mut message = query(qname, rtype);
    let edns = message.edns.as_mut().expect("query has edns");
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            subnet.parse().expect("valid address"),
            source_prefix,
            0,
        )));
    message
}

/// A query with a class other than IN.
pub fn class_query(qname: &str, rtype: RecordType, class: DNSClass) -> Message {
    let mut message = query(qname, rtype);
    message.queries[0].set_query_class(class);
    message
}

pub fn bytes(message: &Message) -> Vec<u8> {
    message.to_bytes().expect("message encodes")
}

/// Sends `packet` over UDP and returns the reply, or `None` after `wait` without one.
pub fn udp_raw_wait(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client socket");
    socket.set_read_timeout(Some(wait)).expect("set timeout");
    socket.send_to(packet, addr).expect("send");
    let mut buf = vec![0u8; 65_535];
    match socket.recv_from(&mut buf) {
        Ok((len, _)) => Some(buf[..len].to_vec()),
        Err(_) => None,
    }
}

pub fn udp_raw(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    udp_raw_wait(addr, packet, Duration::from_secs(2))
}

/// Sends a query over UDP and parses the reply.
pub fn udp(addr: SocketAddr, message: &Message) -> Message {
    let reply = udp_raw(addr, &bytes(message)).expect("a udp reply");
    Message::from_vec(&reply).expect("reply parses")
}

/// Sends one message over a new TCP connection (RFC 7766 two-byte length prefix).
pub fn tcp_raw(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    let len = u16::try_from(packet.len()).expect("short packet");
    stream.write_all(&len.to_be_bytes()).expect("write length");
    stream.write_all(packet).expect("write packet");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("read length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).expect("read reply");
    reply
}

pub fn tcp(addr: SocketAddr, message: &Message) -> Message {
    Message::from_vec(&tcp_raw(addr, &bytes(message))).expect("reply parses")
}

/// The answer section's addresses, as text, in order.
pub fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
            _ => None,
        })
        .collect()
}

/// The answer to `qname`'s `rtype` from `server` over UDP: the rcode, the answer section's
/// rdata as text and the additional section's addresses as `owner address`, both sorted.
pub fn records(
    server: SocketAddr,
    qname: &str,
    rtype: RecordType,
) -> (ResponseCode, Vec<String>, Vec<String>) {
    let reply = udp(server, &query(qname, rtype));
    let mut answers: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    answers.sort();
    let mut glue: Vec<String> = reply
        .additionals
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    glue.sort();
    (reply.metadata.response_code, answers, glue)
}

/// The A answer of `qname` from `server`, sorted.
pub fn sorted_answer(server: SocketAddr, qname: &str) -> Vec<String> {
    let mut got = addresses(&udp(server, &query(qname, RecordType::A)));
    got.sort();
    got
}

/// Polls `server` until the sorted A answer of `qname` satisfies `want`, within `patience`;
/// returns it. Tests assert the state reached, never how fast.
pub async fn wait_for_answer(
    server: SocketAddr,
    qname: &str,
    patience: Duration,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let got = sorted_answer(server, qname);
        if want(&got) {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{server} {qname}: still {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// `GET path` from an HTTP endpoint (the admin listener): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path)
}

/// `method path` with no body and no other header to an HTTP endpoint: status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The sum of the samples named `name` (exactly) whose lines hold every `labels` fragment.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && labels.iter().all(|f| l.contains(f))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}
