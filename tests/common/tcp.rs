//! DNS over TCP from chosen loopback sources: each 127.x.y.0/24 is a client network of its
//! own to gslbd's per-network limit, so tests stand for many networks on one host.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use socket2::{Domain, Protocol, Socket, Type};

/// A connection to `server` from `source` (a 127.0.0.0/8 address, any port).
pub fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let source: SocketAddr = format!("{source}:0").parse().expect("a source address");
    assert!(
        source.ip().is_loopback(),
        "tests connect from loopback only"
    );
    let socket =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a tcp socket");
    socket.bind(&source.into()).expect("bind the source");
    socket.connect(&server.into()).expect("connect");
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
}

/// `message` with its 2-byte length prefix (RFC 7766 §8).
pub fn framed(message: &[u8]) -> Vec<u8> {
    let length = u16::try_from(message.len()).expect("a message fits the prefix");
    let mut frame = length.to_be_bytes().to_vec();
    frame.extend_from_slice(message);
    frame
}

/// Reads one length-prefixed message.
pub fn read_framed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

/// Sends `query` on `stream` and reads the answer; `None` when the connection is closed or
/// reset instead.
pub fn ask(stream: &mut TcpStream, query: &Message) -> Option<Message> {
    let bytes = query.to_vec().expect("query encodes");
    stream.write_all(&framed(&bytes)).ok()?;
    let reply = read_framed(stream).ok()?;
    Some(Message::from_vec(&reply).expect("reply parses"))
}

/// Whether the server closes or resets `stream` within `patience` (reading whatever it sends).
pub fn closed_within(stream: &mut TcpStream, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    let mut sink = [0u8; 512];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}
