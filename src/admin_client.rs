//! The command line's side of the admin endpoint: `gslbd drain` / `gslbd undrain` send one
//! HTTP/1.1 POST to a running gslbd's admin endpoint (by default on loopback, where the
//! endpoint takes controls from) and print what it answered; `gslbd status` and `gslbd explain`
//! GET its `/state` and `/explain`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::admin::CONTROL_HEADER;

/// How long the whole exchange may take (the endpoint answers once the change serves).
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the admin endpoint at {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a region or service name")]
    BadName(String),
    #[error("the admin endpoint answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the admin endpoint's answer is not HTTP")]
    Malformed,
}

/// Drains (`drained`) or undrains `region`, or one `service` of it, at the gslbd whose admin
/// endpoint is `addr`; returns its answer.
pub fn drain(
    addr: SocketAddr,
    region: &str,
    service: Option<&str>,
    drained: bool,
) -> Result<String, ControlError> {
    // Names go into the query as they are: keep them to what DNS and region names hold.
    for name in std::iter::once(region).chain(service) {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        if name.is_empty() || !name.bytes().all(plain) {
            return Err(ControlError::BadName(name.to_string()));
        }
    }
    let path = if drained { "/drain" } else { "/undrain" };
    let mut query = format!("region={region}");
    if let Some(service) = service {
        query.push_str(&format!("&service={service}"));
    }
    let request = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: {addr}\r\n{CONTROL_HEADER}: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    exchange(addr, &request)
}

/// `GET path_and_query` at the admin endpoint `addr`: the body of a 200 answer.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Result<String, ControlError> {
    let request =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, &request)
}

/// Sends `request` and reads the whole answer: its body when the status is 200.
fn exchange(addr: SocketAddr, request: &str) -> Result<String, ControlError> {
    let connect = |source| ControlError::Connect { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(connect)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(connect)?;
    stream.write_all(request.as_bytes()).map_err(connect)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(connect)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or(ControlError::Malformed)?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ControlError::Malformed)?;
    let body = body.trim_end().to_string();
    if status == 200 {
        Ok(body)
    } else {
        Err(ControlError::Refused { status, body })
    }
}

/// An admin endpoint as given on the command line: `host:port`, or a URL `http://host:port/`.
pub fn parse_admin(text: &str) -> Result<SocketAddr, String> {
    let bare = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    bare.parse()
        .map_err(|_| format!("{text:?} is not an admin address (host:port or http://host:port)"))
}
