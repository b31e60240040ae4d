//! The admin endpoint's limits over real loopback sockets: connections beyond the cap closed
//! while the held ones and later ones are served, a request head not sent in time, and a
//! bounded `/explain`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use common::config::ConfigFile;
use common::tcp::closed_within;
use common::*;
use gslbd::admin::{AdminLimits, AdminServer};
use gslbd::tasks::Tasks;

const PATIENCE: Duration = Duration::from_secs(10);

/// An admin endpoint within `limits` on the snapshot of a started server.
async fn admin_with(server: &TestServer, limits: AdminLimits, tasks: &Tasks) -> SocketAddr {
    let store = Arc::new(ArcSwap::new(server.app.snapshot()));
    AdminServer::start_with(
        tasks,
        "127.0.0.1:0".parse().expect("an address"),
        limits,
        server.app.metrics().clone(),
        store,
        None,
    )
    .await
    .expect("admin listens")
}

fn connect(admin: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(admin).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_and_places_come_back() {
    let server = start().await;
    let tasks = Tasks::new();
    let limits = AdminLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(60),
        ..AdminLimits::default()
    };
    let admin = admin_with(&server, limits, &tasks).await;
    // Two connections hold both places: one idle, one half-way through a request head.
    let idle = connect(admin);
    let mut partial = connect(admin);
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .expect("part of a head");
    let mut third = connect(admin);
    assert!(closed_within(&mut third, PATIENCE), "no place: closed");

    // The held one still finishes its request.
    partial
        .write_all(b"Host: localhost\r\nConnection: close\r\n\r\n")
        .expect("rest of the head");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut partial, &mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Its place, and the idle one's, come back once they close.
    drop(idle);
    let deadline = Instant::now() + PATIENCE;
    let mut served = 0;
    while served < 2 {
        assert!(Instant::now() < deadline, "places never came back");
        let mut stream = connect(admin);
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut response);
        if response.starts_with("HTTP/1.1 200") {
            served += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tasks.shutdown().await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_not_sent_in_time_closes_the_connection() {
    let server = start().await;
    let tasks = Tasks::new();
    let limits = AdminLimits {
        header_timeout: Duration::from_millis(300),
        ..AdminLimits::default()
    };
    let admin = admin_with(&server, limits, &tasks).await;
    let mut slow = connect(admin);
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .expect("part of a head");
    assert!(closed_within(&mut slow, PATIENCE), "cut, not kept waiting");
    let mut silent = connect(admin);
    assert!(closed_within(&mut silent, PATIENCE), "a silent one too");
    // A kept-alive connection is answered, then closed once idle past the header timeout.
    let mut kept = connect(admin);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("a request, kept alive");
    assert!(
        closed_within(&mut kept, PATIENCE),
        "idle after its answer: closed"
    );
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    tasks.shutdown().await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_refuses_more_down_regions_than_the_zone_has() {
    let mut config = ConfigFile::base();
    config.server.admin = Some("127.0.0.1:0".into());
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin enabled");
    let (status, body) = http_get(admin, "/explain?name=app&client=192.0.2.1&down=eu,us,ap,eu");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("down= names 4 regions; the zone has 3"),
        "{body}"
    );
    let (status, body) = http_get(admin, "/explain?name=app&client=192.0.2.1&down=eu,us,ap");
    assert_eq!(status, 200, "every region once is a question: {body}");
    server.app.shutdown().await;
}
