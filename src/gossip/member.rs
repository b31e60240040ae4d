//! What foca (SWIM membership and failure detection) needs from us: who a member is (an
//! identity signed with its region's key, so no member can invent one), how members are
//! written on the wire (refusing identities whose signature does not verify, and more
//! instances per region than a region may have), and what to do with the heartbeats it relays
//! (verify them before foca keeps or passes on any).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use foca::{BroadcastHandler, Codec, Header, Invalidates, Member as FocaMember, PostcardCodec};
use serde::{Deserialize, Serialize};

use super::keys::{RegionKeys, SigningKey};
use super::report::ReportRejection;
use super::store::{Change, MAX_INSTANCES, RunId, Store};
use super::unit::{self, Kind};

/// A gossip node as foca knows it: where it listens, whom it speaks for, a counter that grows
/// when it rejoins after being declared down, and its region's signature over all of these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub addr: SocketAddr,
    pub region: String,
    pub instance: String,
    pub bump: u64,
    pub signature: Vec<u8>,
}

impl Member {
    /// An identity signed with its region's key.
    pub fn signed(
        addr: SocketAddr,
        region: &str,
        instance: &str,
        bump: u64,
        key: &SigningKey,
        cluster: &str,
    ) -> Self {
        let mut member = Self {
            addr,
            region: region.to_string(),
            instance: instance.to_string(),
            bump,
            signature: Vec::new(),
        };
        member.signature = key.sign(&member.signed_message(cluster)).to_vec();
        member
    }

    /// A seed known only by its address, to announce ourselves to: any identity at that
    /// address takes the announcement.
    pub fn seed(addr: SocketAddr) -> Self {
        Self {
            addr,
            region: String::new(),
            instance: String::new(),
            bump: 0,
            signature: Vec::new(),
        }
    }

    fn signed_message(&self, cluster: &str) -> Vec<u8> {
        format!(
            "{cluster}\nmember\n{}\n{}\n{}\n{}",
            self.addr, self.region, self.instance, self.bump
        )
        .into_bytes()
    }
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    /// A renewed identity needs a new signature, which only the node can make: when declared
    /// down, foca goes defunct and the node rejoins with a new identity (`gossip::node`).
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// Why a membership message was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    #[error("member {0:?} is not signed by its region, or is one instance too many")]
    Refused(String),
}

/// foca's postcard encoding, with every identity read off the wire checked: signed with its
/// region's key, a sane instance name, and within the instances a region may have.
pub struct MemberCodec {
    cluster: String,
    keys: Arc<RegionKeys>,
    /// Identities whose signature verified (bounded: cleared when full).
    verified: std::collections::HashSet<Member>,
    /// Instances seen per region, and when last.
    instances: HashMap<String, HashMap<String, Instant>>,
}

/// Verified identities remembered, at most.
const MAX_VERIFIED: usize = 1024;

/// An instance unseen this long makes room for another.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl MemberCodec {
    pub fn new(cluster: String, keys: Arc<RegionKeys>) -> Self {
        Self {
            cluster,
            keys,
            verified: std::collections::HashSet::new(),
            instances: HashMap::new(),
        }
    }

    fn check(&mut self, member: &Member) -> Result<(), CodecError> {
        let refused = || CodecError::Refused(format!("{}/{}", member.region, member.instance));
        if member.instance.is_empty() || member.instance.len() > 63 {
            return Err(refused());
        }
        if !self.verified.contains(member) {
            let key = self.keys.get(&member.region).ok_or_else(refused)?;
            if !key.verify(&member.signed_message(&self.cluster), &member.signature) {
                return Err(refused());
            }
            if self.verified.len() >= MAX_VERIFIED {
                self.verified.clear();
            }
            self.verified.insert(member.clone());
        }
        let now = Instant::now();
        let seen = self.instances.entry(member.region.clone()).or_default();
        if !seen.contains_key(&member.instance) && seen.len() >= MAX_INSTANCES {
            seen.retain(|_, at| now.duration_since(*at) < FORGET_AFTER);
            if seen.len() >= MAX_INSTANCES {
                return Err(refused());
            }
        }
        seen.insert(member.instance.clone(), now);
        Ok(())
    }
}

impl Codec<Member> for MemberCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<Member>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Ok(PostcardCodec.encode_header(header, buf)?)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<Member>, Self::Error> {
        let header: Header<Member> = PostcardCodec.decode_header(buf)?;
        self.check(&header.src)?;
        Ok(header)
    }

    fn encode_member(
        &mut self,
        member: &FocaMember<Member>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Ok(PostcardCodec.encode_member(member, buf)?)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<FocaMember<Member>, Self::Error> {
        let member: FocaMember<Member> = PostcardCodec.decode_member(buf)?;
        self.check(member.id())?;
        Ok(member)
    }
}

/// A heartbeat in foca's dissemination backlog: a newer one of the same run replaces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeatKey {
    run: RunId,
    seq: u64,
}

impl Invalidates for BeatKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.run == other.run && self.seq > other.seq
    }
}

/// What heartbeats relayed by foca did, for the node to pass on and count.
pub type Inbox = Arc<Mutex<Vec<Result<Vec<Change>, ReportRejection>>>>;

/// Verifies every heartbeat foca receives, in the store, before foca keeps or relays it: only
/// a heartbeat new to this node goes on.
pub struct Heartbeats {
    pub store: Arc<Mutex<Store>>,
    pub inbox: Inbox,
}

/// Never raised: refusals are counted through the inbox and the item is dropped.
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
pub struct Never;

impl BroadcastHandler<Member> for Heartbeats {
    type Key = BeatKey;
    type Error = Never;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Member>,
    ) -> Result<Option<BeatKey>, Never> {
        // The header only: the store checks the signature when it takes the unit, and a unit
        // the node adds (sender `None`) is one it verified already.
        let header = match unit::peek(data) {
            Ok(header) if header.kind == Kind::Heartbeat => header,
            // Only heartbeats travel this way.
            Ok(_) => return Ok(None),
            Err(rejection) => {
                if let Ok(mut inbox) = self.inbox.lock() {
                    inbox.push(Err(rejection));
                }
                return Ok(None);
            }
        };
        let key = BeatKey {
            run: RunId::of(&header.stamp),
            seq: header.stamp.seq,
        };
        // Added by the node: ours, or another's it took as new already.
        if sender.is_none() {
            return Ok(Some(key));
        }
        let Ok(mut store) = self.store.lock() else {
            return Ok(None);
        };
        // Ours, relayed back: old news.
        if store.is_local(&header.stamp) {
            return Ok(None);
        }
        let result = store.accept(Arc::from(data), Instant::now());
        drop(store);
        let new = result.is_ok();
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.push(result);
        }
        Ok(new.then_some(key))
    }
}
