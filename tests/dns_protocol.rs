//! RFC 1034/1035/2308/6891/8482 behaviour over real UDP and TCP sockets.

mod common;

use common::config::{ConfigFile, Service};
use common::*;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RData, RecordType};

/// 40 IPv6 addresses: too many for 512 bytes, fine for TCP or a large EDNS buffer.
fn big_service() -> Service {
    let addrs: Vec<String> = (1..=40).map(|i| format!("2001:db8:b::{i:x}")).collect();
    Service::round_robin("big.gslb.example.com").target("eu", &addrs)
}

#[tokio::test(flavor = "multi_thread")]
async fn service_answer_is_authoritative_without_recursion() {
    let server = start().await;
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative, "AA set");
    assert!(!reply.metadata.recursion_available, "RA clear");
    assert!(reply.metadata.recursion_desired, "RD copied");
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(addresses(&reply), vec!["192.0.2.1"]);
    assert_eq!(reply.answers[0].ttl, 30);
    let reply = udp(
        server.addr,
        &query("app.gslb.example.com", RecordType::AAAA),
    );
    assert_eq!(addresses(&reply), vec!["2001:db8:e::1"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apex_soa_and_ns_with_glue() {
    let server = start().await;
    let reply = udp(server.addr, &query("gslb.example.com", RecordType::SOA));
    assert!(reply.metadata.authoritative);
    let RData::SOA(soa) = &reply.answers[0].data else {
        panic!("expected SOA, got {:?}", reply.answers);
    };
    assert_eq!(soa.serial, 7);
    assert_eq!(soa.mname.to_string(), "ns-eu.gslb.example.com.");
    assert_eq!(soa.rname.to_string(), "hostmaster.example.com.");
    assert_eq!(reply.answers[0].ttl, 120);

    let reply = udp(server.addr, &query("gslb.example.com", RecordType::NS));
    let ns: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(
        ns,
        vec![
            "ns-eu.gslb.example.com.",
            "ns-us.gslb.example.com.",
            "ns-ap.gslb.example.com."
        ]
    );
    let glue: Vec<String> = reply
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(
        glue,
        vec![
            "ns-eu.gslb.example.com. 127.0.10.1",
            "ns-eu.gslb.example.com. 2001:db8::10",
            "ns-us.gslb.example.com. 127.0.20.1",
            "ns-ap.gslb.example.com. 127.0.30.1",
        ]
    );
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_without_a_nameserver_are_left_out_of_the_ns_set() {
    let mut config = ConfigFile::base();
    let ap = config.region_mut("ap");
    ap.nameserver = None;
    ap.glue.clear();
    let server = start_config(&config).await;
    let reply = udp(server.addr, &query("gslb.example.com", RecordType::NS));
    assert_eq!(reply.answers.len(), 2);
    assert_eq!(reply.additionals.len(), 3);
    // ap still serves traffic.
    let reply = udp(
        server.addr,
        &ecs_query("geo.gslb.example.com", RecordType::A, "203.0.113.0", 24),
    );
    assert_eq!(addresses(&reply), vec!["203.0.113.5"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nameserver_names_answer_their_addresses() {
    let server = start().await;
    let reply = udp(server.addr, &query("ns-eu.gslb.example.com", RecordType::A));
    assert_eq!(addresses(&reply), vec!["127.0.10.1"]);
    assert!(reply.metadata.authoritative);
    let reply = udp(
        server.addr,
        &query("ns-eu.gslb.example.com", RecordType::AAAA),
    );
    assert_eq!(addresses(&reply), vec!["2001:db8::10"]);
    // ns-us has no AAAA: NODATA.
    let reply = udp(
        server.addr,
        &query("ns-us.gslb.example.com", RecordType::AAAA),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    server.app.shutdown().await;
}

fn assert_negative(reply: &Message, rcode: ResponseCode, negative_ttl: u32) {
    assert_eq!(reply.metadata.response_code, rcode);
    assert!(
        reply.metadata.authoritative,
        "negative answers are authoritative"
    );
    assert!(reply.answers.is_empty());
    assert_eq!(reply.authorities.len(), 1, "SOA in authority");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(reply.authorities[0].name.to_string(), "gslb.example.com.");
    assert_eq!(reply.authorities[0].ttl, negative_ttl);
}

#[tokio::test(flavor = "multi_thread")]
async fn nodata_and_nxdomain_carry_soa_with_negative_ttl() {
    let server = start().await;
    // SOA TTL 120, MINIMUM 60: negative TTL is 60 (RFC 2308 §5).
    let nodata = udp(
        server.addr,
        &query("v4only.deep.gslb.example.com", RecordType::AAAA),
    );
    assert_negative(&nodata, ResponseCode::NoError, 60);
    let mx = udp(server.addr, &query("app.gslb.example.com", RecordType::MX));
    assert_negative(&mx, ResponseCode::NoError, 60);
    let nx = udp(server.addr, &query("nope.gslb.example.com", RecordType::A));
    assert_negative(&nx, ResponseCode::NXDomain, 60);
    let below = udp(server.addr, &query("x.app.gslb.example.com", RecordType::A));
    assert_negative(&below, ResponseCode::NXDomain, 60);
    // An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 8020).
    let ent = udp(server.addr, &query("deep.gslb.example.com", RecordType::A));
    assert_negative(&ent, ResponseCode::NoError, 60);
    server.app.shutdown().await;

    // SOA TTL below MINIMUM: the SOA TTL wins.
    let mut config = ConfigFile::base();
    config.zone.soa.as_mut().expect("base has an SOA table").ttl = Some(20);
    let server = start_config(&config).await;
    let nx = udp(server.addr, &query("nope.gslb.example.com", RecordType::A));
    assert_negative(&nx, ResponseCode::NXDomain, 20);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_outside_the_zone_are_refused() {
    let server = start().await;
    for qname in [
        "example.com",
        "www.example.org",
        "gslb.example.com.evil.net",
    ] {
        let reply = udp(server.addr, &query(qname, RecordType::A));
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{qname}"
        );
        assert!(!reply.metadata.authoritative);
        assert!(reply.answers.is_empty());
    }
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_class_is_refused() {
    let server = start().await;
    let reply = udp(
        server.addr,
        &class_query("version.bind", RecordType::TXT, DNSClass::CH),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let reply = udp(
        server.addr,
        &class_query("app.gslb.example.com", RecordType::A, DNSClass::CH),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edns_is_echoed_and_unknown_options_ignored() {
    let server = start().await;
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    let edns = reply.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.version(), 0);
    assert_eq!(edns.max_payload(), 1232);

    let mut with_unknown = query("app.gslb.example.com", RecordType::A);
    with_unknown
        .edns
        .as_mut()
        .expect("edns")
        .options_mut()
        .insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
    let reply = udp(server.addr, &with_unknown);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply), vec!["192.0.2.1"]);
    let edns = reply.edns.as_ref().expect("OPT echoed");
    assert!(
        edns.options().options.is_empty(),
        "unknown option not echoed"
    );

    // Without EDNS in the query, none in the reply.
    let reply = udp(
        server.addr,
        &plain_query("app.gslb.example.com", RecordType::A),
    );
    assert!(reply.edns.is_none());
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edns_version_above_zero_gets_badvers() {
    let server = start().await;
    let mut message = query("app.gslb.example.com", RecordType::A);
    message.edns.as_mut().expect("edns").set_version(1);
    let reply = udp(server.addr, &message);
    // BADVERS and BADSIG share the value 16 (RFC 6891 §9, RFC 8945).
    assert_eq!(u16::from(reply.metadata.response_code), 16);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.edns.as_ref().expect("OPT in BADVERS").version(), 0);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncates_to_the_clients_udp_size_and_answers_fully_over_tcp() {
    let mut config = ConfigFile::base();
    config.services.push(big_service());
    let server = start_config(&config).await;
    let qname = "big.gslb.example.com";

    // No EDNS: 512 bytes at most; what does not fit whole is the minimal response (RFC 6891
    // §7: header, question, and the OPT record when the query had one).
    let reply = udp_raw(server.addr, &bytes(&plain_query(qname, RecordType::AAAA))).expect("reply");
    assert!(reply.len() <= 512);
    let reply = Message::from_vec(&reply).expect("parses");
    assert!(reply.metadata.truncation, "TC set");
    assert!(reply.answers.is_empty());

    // EDNS 1232: 40 AAAA (~1.1 KB) fit.
    let reply = udp(server.addr, &query(qname, RecordType::AAAA));
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 40);

    // EDNS with 600 bytes: honoured.
    let mut small = query(qname, RecordType::AAAA);
    small.edns.as_mut().expect("edns").set_max_payload(600);
    let raw = udp_raw(server.addr, &bytes(&small)).expect("reply");
    assert!(raw.len() <= 600, "{} bytes", raw.len());
    let reply = Message::from_vec(&raw).expect("parses");
    assert!(reply.metadata.truncation);
    assert_eq!(reply.edns.expect("OPT kept").max_payload(), 600);

    // A client asking for more than our maximum gets ours.
    let mut large = query(qname, RecordType::AAAA);
    large.edns.as_mut().expect("edns").set_max_payload(4096);
    assert_eq!(
        udp(server.addr, &large).edns.expect("edns").max_payload(),
        1232
    );

    // TCP: the full answer, whatever the size.
    let reply = tcp(server.addr, &plain_query(qname, RecordType::AAAA));
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 40);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn question_count_other_than_one_is_formerr() {
    let server = start().await;
    let mut none = query("app.gslb.example.com", RecordType::A);
    none.queries.clear();
    let reply = udp(server.addr, &none);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let mut two = query("app.gslb.example.com", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        name("web.gslb.example.com"),
        RecordType::A,
    ));
    let reply = udp(server.addr, &two);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.answers.is_empty());
    let reply = tcp(server.addr, &two);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn opcodes_other_than_query_are_notimp() {
    let server = start().await;
    for opcode in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut message = query("gslb.example.com", RecordType::SOA);
        message.metadata.op_code = opcode;
        let reply = udp(server.addr, &message);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NotImp,
            "{opcode:?}"
        );
        assert_eq!(reply.metadata.op_code, opcode);
        assert!(reply.answers.is_empty());
    }
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_never_answered() {
    let server = start().await;
    let mut message = query("app.gslb.example.com", RecordType::A);
    message.metadata.message_type = hickory_proto::op::MessageType::Response;
    let packet = bytes(&message);
    assert_eq!(
        udp_raw_wait(server.addr, &packet, std::time::Duration::from_millis(500)),
        None
    );
    // The server is still there.
    assert_eq!(
        addresses(&udp(
            server.addr,
            &query("app.gslb.example.com", RecordType::A)
        )),
        vec!["192.0.2.1"]
    );
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn question_case_is_echoed() {
    let server = start().await;
    for qname in [
        "ApP.GsLb.ExAmPlE.CoM",
        "NOPE.gslb.example.com",
        "GSLB.EXAMPLE.COM",
    ] {
        let message = query(qname, RecordType::A);
        let reply = udp(server.addr, &message);
        assert_eq!(reply.queries[0].name().to_string(), format!("{qname}."));
        let reply = tcp(server.addr, &message);
        assert_eq!(reply.queries[0].name().to_string(), format!("{qname}."));
    }
    let reply = udp(server.addr, &query("ApP.GsLb.ExAmPlE.CoM", RecordType::A));
    assert_eq!(addresses(&reply), vec!["192.0.2.1"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn any_is_answered_minimally() {
    let server = start().await;
    // RFC 8482: one RRset, not everything.
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::ANY));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.answers.is_empty());
    assert!(
        reply
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::A)
    );
    let reply = udp(server.addr, &query("gslb.example.com", RecordType::ANY));
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].record_type(), RecordType::SOA);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zone_transfers_are_refused() {
    let server = start().await;
    let reply = tcp(server.addr, &query("gslb.example.com", RecordType::AXFR));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_subnet_is_echoed_with_scope_zero_for_non_geo_services() {
    let server = start().await;
    let reply = udp(
        server.addr,
        &ecs_query("app.gslb.example.com", RecordType::A, "198.51.100.0", 24),
    );
    let edns = reply.edns.as_ref().expect("edns");
    let Some(EdnsOption::Subnet(subnet)) = edns.option(EdnsCode::Subnet) else {
        panic!("ECS echoed: {edns:?}");
    };
    assert_eq!(subnet.addr().to_string(), "198.51.100.0");
    assert_eq!(subnet.source_prefix(), 24);
    assert_eq!(subnet.scope_prefix(), 0);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_get_formerr_or_nothing_and_the_server_lives_on() {
    let server = start().await;
    let good = bytes(&query("app.gslb.example.com", RecordType::A));
    // Too short for a header: dropped.
    assert_eq!(
        udp_raw_wait(
            server.addr,
            &good[..5],
            std::time::Duration::from_millis(300)
        ),
        None
    );
    // A header announcing a question that is not there: FORMERR.
    let reply = udp_raw(server.addr, &good[..14]).expect("formerr reply");
    let reply = Message::from_vec(&reply).expect("parses");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, 0x1234);
    // A label pointer looping onto itself.
    let mut looping = good[..12].to_vec();
    looping.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    looping[5] = 1;
    looping[11] = 0;
    let reply = udp_raw(server.addr, &looping).expect("formerr reply");
    assert_eq!(
        Message::from_vec(&reply)
            .expect("parses")
            .metadata
            .response_code,
        ResponseCode::FormErr
    );
    assert_eq!(
        addresses(&udp(
            server.addr,
            &query("app.gslb.example.com", RecordType::A)
        )),
        vec!["192.0.2.1"]
    );
    server.app.shutdown().await;
}

/// A query asking for the server's NSID (an empty NSID option, RFC 5001 §2.1).
fn nsid_query(qname: &str) -> Message {
    let mut message = query(qname, RecordType::A);
    let edns = message.edns.as_mut().expect("edns");
    edns.options_mut().insert(EdnsOption::NSID(
        hickory_proto::rr::rdata::opt::NSIDPayload::new(Vec::new()).expect("empty"),
    ));
    message
}

fn nsid_of(reply: &Message) -> Option<Vec<u8>> {
    match reply.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => Some(payload.as_ref().to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nsid_is_sent_to_queries_that_ask_for_it() {
    let mut config = ConfigFile::base();
    config.server.nsid = Some("eu-1".into());
    let server = start_config(&config).await;
    for qname in ["app.gslb.example.com", "nope.gslb.example.com"] {
        let ask = nsid_query(qname);
        for reply in [udp(server.addr, &ask), tcp(server.addr, &ask)] {
            assert_eq!(nsid_of(&reply).as_deref(), Some(&b"eu-1"[..]), "{qname}");
        }
        let reply = udp(server.addr, &query(qname, RecordType::A));
        assert_eq!(nsid_of(&reply), None, "not asked: not sent");
    }
    let reply = udp(server.addr, &nsid_query("app.gslb.example.com"));
    assert_eq!(addresses(&reply), ["192.0.2.1"], "the answer is the same");
    server.app.shutdown().await;

    // Without `server.nsid`, nothing is sent, asked or not.
    let server = start().await;
    let reply = udp(server.addr, &nsid_query("app.gslb.example.com"));
    assert_eq!(nsid_of(&reply), None);
    server.app.shutdown().await;
}
