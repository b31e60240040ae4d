//! RFC 2136 dynamic update of the parent zone, signed with TSIG (RFC 8945): reads what the
//! parent serves for the delegation, sends only the differences (deletes of exactly the
//! records that should go, adds of those missing), verifies the signed reply and reads the
//! result back. Only NS records at the zone's name and A/AAAA records inside the zone are
//! ever touched.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{DNSClass, Name, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::key::TsigKey;
use super::{Delegation, Entry};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Allowed clock difference with the server (RFC 8945 recommends 300 s).
const FUDGE: u16 = 300;

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("cannot reach {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("{0} did not answer within {TIMEOUT:?}")]
    Timeout(SocketAddr),
    #[error("bad reply from {0}: {1}")]
    BadReply(SocketAddr, String),
    #[error(
        "{server} refused the key {key}: {why} (check the key's name, algorithm and secret, and the server's clock)"
    )]
    BadKey {
        server: SocketAddr,
        key: Name,
        why: String,
    },
    #[error("{server} refused the update of {parent} ({rcode}): {hint}")]
    Refused {
        server: SocketAddr,
        parent: Name,
        rcode: String,
        hint: &'static str,
    },
    #[error("cannot sign the update: {0}")]
    Sign(String),
    #[error("{0} accepted the update but still serves something else: {1:?} missing, {2:?} extra")]
    NotApplied(SocketAddr, Vec<String>, Vec<String>),
}

/// What an apply would change, or changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub add: Vec<Entry>,
    pub delete: Vec<Entry>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }
}

/// The differences between what `server` serves and `delegation`.
pub async fn plan(server: SocketAddr, delegation: &Delegation) -> Result<Changes, UpdateError> {
    let current = current(server, delegation).await?;
    Ok(Changes {
        add: delegation.records.difference(&current).cloned().collect(),
        delete: current.difference(&delegation.records).cloned().collect(),
    })
}

/// The delegation records `server` serves now: the NS and DS sets at the zone's name and the
/// glue of every in-zone nameserver (current or wanted), read with plain queries (the parent
/// answers them with referrals, and the DS set, its own, with an answer).
pub async fn current(
    server: SocketAddr,
    delegation: &Delegation,
) -> Result<BTreeSet<Entry>, UpdateError> {
    let zone = &delegation.zone;
    let mut found = BTreeSet::new();
    for rtype in [RecordType::NS, RecordType::DS] {
        let reply = ask(server, zone, rtype).await?;
        collect(&reply, zone, &mut found);
    }
    let nameservers: BTreeSet<Name> = found
        .iter()
        .chain(&delegation.records)
        .filter_map(|e| match e {
            Entry::Ns { target, .. } if zone.zone_of(target) => Some(target.clone()),
            _ => None,
        })
        .collect();
    for nameserver in nameservers {
        for rtype in [RecordType::A, RecordType::AAAA] {
            let reply = ask(server, &nameserver, rtype).await?;
            collect(&reply, zone, &mut found);
        }
    }
    Ok(found)
}

fn collect(reply: &Message, zone: &Name, found: &mut BTreeSet<Entry>) {
    for record in reply
        .answers
        .iter()
        .chain(&reply.authorities)
        .chain(&reply.additionals)
    {
        if let Some(entry) = Entry::of(record, zone) {
            found.insert(entry);
        }
    }
}

async fn ask(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Message, UpdateError> {
    let mut query = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name.clone(), rtype));
    let bytes = query
        .to_vec()
        .map_err(|e| UpdateError::BadReply(server, e.to_string()))?;
    let reply = exchange(server, &bytes).await?;
    Message::from_vec(&reply).map_err(|e| UpdateError::BadReply(server, e.to_string()))
}

fn rand_id() -> u16 {
    let mut id = [0u8; 2];
    // A fresh id per message; not a secret (TSIG authenticates the update).
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    u16::from_be_bytes(id)
}

/// One DNS exchange over TCP (RFC 1035 §4.2.2 length prefix).
async fn exchange(server: SocketAddr, message: &[u8]) -> Result<Vec<u8>, UpdateError> {
    let talk = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| UpdateError::Connect(server, e))?;
        let mut framed = (message.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(message);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| UpdateError::Connect(server, e))?;
        let mut length = [0u8; 2];
        stream
            .read_exact(&mut length)
            .await
            .map_err(|e| UpdateError::BadReply(server, e.to_string()))?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| UpdateError::BadReply(server, e.to_string()))?;
        Ok(reply)
    };
    tokio::time::timeout(TIMEOUT, talk)
        .await
        .map_err(|_| UpdateError::Timeout(server))?
}

/// Sends `changes` to `server` for the parent zone `parent`, signed with `key`, then reads
/// the delegation back to check it holds.
pub async fn apply(
    server: SocketAddr,
    parent: &Name,
    delegation: &Delegation,
    changes: &Changes,
    key: &TsigKey,
) -> Result<(), UpdateError> {
    let mut update = Message::new(rand_id(), MessageType::Query, OpCode::Update);
    // RFC 2136 §2.3: the zone section names the zone, type SOA.
    let mut zone = Query::query(parent.clone(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    update.add_query(zone);
    for entry in &changes.delete {
        // §2.5.4: delete an RR from an RRset: class NONE, TTL 0, the RR's data.
        let mut record = entry.record(0);
        record.dns_class = DNSClass::NONE;
        update.authorities.push(record);
    }
    for entry in &changes.add {
        update.authorities.push(entry.record(delegation.ttl));
    }
    let signer = TSigner::new(
        key.secret.clone(),
        key.algorithm.clone(),
        key.name.clone(),
        FUDGE,
    )
    .map_err(|e| UpdateError::Sign(e.to_string()))?;
    let now = crate::unix_ms() / 1000;
    let verifier = update
        .finalize(&signer, now)
        .map_err(|e| UpdateError::Sign(e.to_string()))?;
    let bytes = update
        .to_vec()
        .map_err(|e| UpdateError::Sign(e.to_string()))?;
    let reply_bytes = exchange(server, &bytes).await?;
    let reply = Message::from_vec(&reply_bytes)
        .map_err(|e| UpdateError::BadReply(server, e.to_string()))?;
    let tsig_error = reply.signature.as_ref().and_then(|s| s.data.error);
    if let Some(error) = tsig_error {
        let why = match error {
            TsigError::BadKey => "unknown key (BADKEY)".to_string(),
            TsigError::BadSig => "bad signature (BADSIG)".to_string(),
            TsigError::BadTime => "clock difference too large (BADTIME)".to_string(),
            other => format!("{other:?}"),
        };
        return Err(UpdateError::BadKey {
            server,
            key: key.name.clone(),
            why,
        });
    }
    match reply.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NotAuth => {
            return Err(UpdateError::BadKey {
                server,
                key: key.name.clone(),
                why: "NOTAUTH".to_string(),
            });
        }
        rcode => {
            let hint = match rcode {
                ResponseCode::Refused => "does the server's ACL let this key update this zone?",
                ResponseCode::NotZone => "a record is outside the zone: check --parent-zone",
                ResponseCode::ServFail => "the server failed; see its log",
                _ => "see the server's log",
            };
            return Err(UpdateError::Refused {
                server,
                parent: parent.clone(),
                rcode: format!("{rcode:?}"),
                hint,
            });
        }
    }
    // A signed request gets a signed reply: check it is the server's.
    if let Some(mut verifier) = verifier {
        verifier
            .verify(&reply_bytes)
            .map_err(|e| UpdateError::BadReply(server, format!("reply signature: {e}")))?;
    }
    let now = current(server, delegation).await?;
    let missing: Vec<String> = delegation
        .records
        .difference(&now)
        .map(|e| e.record(delegation.ttl).to_string())
        .collect();
    let extra: Vec<String> = now
        .difference(&delegation.records)
        .map(|e| e.record(delegation.ttl).to_string())
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(UpdateError::NotApplied(server, missing, extra));
    }
    Ok(())
}
