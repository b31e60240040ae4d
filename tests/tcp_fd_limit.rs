//! The TCP accept loop out of file descriptors: it backs off instead of spinning, counts the
//! failures, keeps UDP answered, and accepts again once descriptors are free. A test binary of
//! its own: it lowers the whole process's open-file limit.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// A client in another process (its connection costs this process no descriptor): it waits
/// for a line on stdin, asks the query given in hex over TCP and prints the answer in hex.
const CLIENT: &str = r#"
import socket, struct, sys
port, query = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
sys.stdin.readline()
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(struct.pack("!H", len(query)) + query)
length = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
print(s.recv(length, socket.MSG_WAITALL).hex())
"#;

/// The lowest descriptor number not open (what the kernel gives the next file opened): a
/// soft limit equal to it leaves none to open.
fn lowest_free_fd() -> u64 {
    let probe = std::fs::File::open("/dev/null").expect("open /dev/null");
    u64::try_from(probe.as_raw_fd()).expect("a descriptor is not negative")
}

fn accept_errors(server: &TestServer) -> f64 {
    sample(
        &server.app.metrics().encode(),
        "gslbd_dns_tcp_accept_errors_total",
        &["reason=\"fd_limit\""],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn accepting_backs_off_while_out_of_descriptors_udp_is_answered_and_tcp_resumes() {
    let server = start().await;
    let question = bytes(&query("app.gslb.example.com", RecordType::A));
    let hex: String = question.iter().map(|b| format!("{b:02x}")).collect();
    let mut client = Command::new("python3")
        .args(["-c", CLIENT, &server.addr.port().to_string(), &hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the client");
    let udp_client = UdpSocket::bind("127.0.0.1:0").expect("udp client");
    udp_client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    // No descriptor left for this process: the server cannot accept the client's connection.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    setrlimit(Resource::RLIMIT_NOFILE, lowest_free_fd(), hard).expect("lower the limit");
    let mut stdin = client.stdin.take().expect("client stdin");
    writeln!(stdin, "go").expect("start the client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while accept_errors(&server) < 2.0 {
        assert!(Instant::now() < deadline, "accept never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Half a second out of descriptors: a spinning loop fails millions of times, a backing
    // off one a handful.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failures = accept_errors(&server);
    udp_client
        .send_to(&question, server.addr)
        .expect("send over udp");
    let mut reply = [0u8; 512];
    let (length, _) = udp_client.recv_from(&mut reply).expect("udp answered");
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
    assert!(failures < 50.0, "{failures} failed accepts: spinning");

    let output = client.wait_with_output().expect("client ends");
    let text = String::from_utf8(output.stdout).expect("hex");
    let tcp_reply: Vec<u8> = (0..text.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).expect("hex digits"))
        .collect();
    let over_tcp = Message::from_vec(&tcp_reply).expect("the queued client is answered");
    assert_eq!(addresses(&over_tcp), ["192.0.2.1"]);
    let over_udp = Message::from_vec(&reply[..length]).expect("parses");
    assert_eq!(addresses(&over_udp), ["192.0.2.1"]);
    server.app.shutdown().await;
}
