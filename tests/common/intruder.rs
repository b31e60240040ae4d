//! A member holding the cluster key and no region's signing key, speaking gossip's wire
//! protocol over a real sealed socket: it can ask any node for a run's units, send units and
//! foca packets of its own making, and flood. What it sends passes the transport (it has the
//! key); everything after that is the receivers' business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gslbd::gossip::keys::Keyring;
use gslbd::gossip::store::{RunId, Want};
use gslbd::gossip::transport::{OpenNetwork, SealedSocket, TransportStats};
use gslbd::gossip::wire::{self, Message};

pub struct Intruder {
    pub socket: SealedSocket,
}

impl Intruder {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        let socket = SealedSocket::bind(
            "127.0.0.1:0".parse().expect("an address"),
            keyring,
            Arc::new(TransportStats::default()),
            Arc::new(OpenNetwork),
        )
        .expect("bind the intruder's socket");
        Self { socket }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    /// Every unit `peer` holds of `run`, asked the way nodes ask.
    pub async fn fetch(&mut self, peer: SocketAddr, run: &RunId) -> Vec<Arc<[u8]>> {
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut message = Vec::new();
            let want = Want {
                run: run.clone(),
                heartbeat: 0,
                held: Vec::new(),
            };
            wire::want(&want, &mut message);
            self.socket.send(peer, &message).await;
            let reply = tokio::time::timeout(Duration::from_secs(1), self.socket.recv()).await;
            if let Ok(Ok((from, bytes))) = reply
                && from == peer
                && let Ok(Message::Units { units, .. }) = wire::decode(&bytes)
                && !units.is_empty()
            {
                // Asked with nothing held, one answer carries the heartbeat and the first
                // slots; that is all a replay needs.
                all.extend(units);
                return all;
            }
            assert!(Instant::now() < deadline, "{peer} never served {run:?}");
        }
    }

    pub async fn send_units(&mut self, peer: SocketAddr, units: &[Arc<[u8]>]) {
        let mut message = Vec::new();
        wire::units(units, false, &mut message);
        self.socket.send(peer, &message).await;
    }

    pub async fn send_raw(&mut self, peer: SocketAddr, message: &[u8]) {
        self.socket.send(peer, message).await;
    }
}
