//! The gossip node's one task: it owns the sealed socket, foca (membership, failure detection,
//! heartbeats relayed) and its timers, and the store of verified units. It pushes this run's
//! new units to every member at once, asks peers for the units of runs it does not hold whole
//! (the run's origin first, then other members in turn), answers such asks within a rate, and
//! hands what changed to the gossip layer's receiver.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Foca, OwnedNotification, Timer};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::keys::{RegionKeys, SigningKey};
use super::member::{Heartbeats, Inbox, Member, MemberCodec};
use super::report::ReportRejection;
use super::store::{Change, RunId, Store, Want};
use super::transport::SealedSocket;
use super::unit::{self, Kind};
use super::wire::{self, Message};
use crate::metrics::Metrics;

/// Bytes of units per answer to a `Want` (the asker asks again while `more`).
const ANSWER_BUDGET: usize = 32 * 1024;
/// Bytes of non-heartbeat units pushed to every member at once; more waits for the pull.
const PUSH_BUDGET: usize = 32 * 1024;
/// How long an ask waits for its answer before another peer is asked.
const ASK_TIMEOUT: Duration = Duration::from_millis(400);
/// Asks answered per peer: a burst, and per second after it.
const ASKS: Rate = Rate {
    burst: 400.0,
    per_second: 200.0,
};
/// Units taken per peer: a burst (a whole 10-region catch-up from one peer fits), and per
/// second after it. Beyond, units are dropped unread (each would cost a signature check).
const UNITS: Rate = Rate {
    burst: 8192.0,
    per_second: 4096.0,
};
/// How often seeds that are not members are announced to.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Peers remembered by address, at most.
const MAX_PEERS: usize = 256;
/// How long a peer heard from, or a run not held whole, is kept on: a region cut off for this
/// long is given up on (a restart starts a new run anyway).
const REMEMBER: Duration = Duration::from_secs(600);

type Gossiper = Foca<Member, MemberCodec, StdRng, Heartbeats>;

/// How often seeds are resolved again (host names may move); every second until one resolves.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Resolves the seeds (`host:port`) into `addresses`, now and every [`RESOLVE_EVERY`].
pub async fn resolve_seeds(
    seeds: Vec<String>,
    addresses: watch::Sender<Vec<SocketAddr>>,
    stop: CancellationToken,
) {
    loop {
        let mut resolved = Vec::new();
        for seed in &seeds {
            match tokio::net::lookup_host(seed.as_str()).await {
                Ok(found) => resolved.extend(found),
                Err(error) => debug!(%seed, %error, "gossip seed does not resolve"),
            }
        }
        resolved.sort();
        resolved.dedup();
        let wait = if resolved.is_empty() && !seeds.is_empty() {
            Duration::from_secs(1)
        } else {
            RESOLVE_EVERY
        };
        addresses.send_if_modified(|held| {
            let changed = *held != resolved;
            *held = resolved;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// foca's timers, due in order.
#[derive(Default)]
struct Timers {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Timer<Member>>,
    next: u64,
}

impl Timers {
    fn add(&mut self, after: Duration, event: Timer<Member>) {
        self.next += 1;
        self.due.push(Reverse((Instant::now() + after, self.next)));
        self.events.insert(self.next, event);
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Timer<Member>> {
        let Reverse((at, id)) = *self.due.peek()?;
        if at > now {
            return None;
        }
        self.due.pop();
        self.events.remove(&id)
    }
}

/// A token bucket's size and refill.
struct Rate {
    burst: f64,
    per_second: f64,
}

/// Token buckets per peer.
#[derive(Default)]
struct Buckets {
    peers: HashMap<SocketAddr, (f64, Instant)>,
}

impl Buckets {
    /// Takes `n` tokens of `peer`'s bucket if it has them.
    fn take(&mut self, peer: SocketAddr, n: f64, rate: &Rate, now: Instant) -> bool {
        if self.peers.len() > 1024 {
            self.peers
                .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(10));
        }
        let (tokens, at) = self.peers.entry(peer).or_insert((rate.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * rate.per_second).min(rate.burst);
        *at = now;
        if *tokens < n {
            return false;
        }
        *tokens -= n;
        true
    }
}

/// An ask in flight for a run's units.
struct Ask {
    peer: SocketAddr,
    sent: Instant,
}

/// What the node needs to run.
pub struct NodeParts {
    pub socket: SealedSocket,
    pub identity: Member,
    /// Signs this node's identity anew when it rejoins.
    pub signing: Arc<SigningKey>,
    pub cluster: String,
    pub region_keys: Arc<RegionKeys>,
    /// The seeds' addresses, resolved apart (`resolve_seeds`) so that a slow DNS lookup never
    /// holds the node up.
    pub seeds: watch::Receiver<Vec<SocketAddr>>,
    pub store: Arc<Mutex<Store>>,
    pub changes: mpsc::Sender<Result<Vec<Change>, ReportRejection>>,
    pub interval: Duration,
    pub metrics: Arc<Metrics>,
}

pub struct Node {
    socket: SealedSocket,
    foca: Gossiper,
    runtime: AccumulatingRuntime<Member>,
    timers: Timers,
    store: Arc<Mutex<Store>>,
    inbox: Inbox,
    changes: mpsc::Sender<Result<Vec<Change>, ReportRejection>>,
    seeds: watch::Receiver<Vec<SocketAddr>>,
    asks: HashMap<RunId, Ask>,
    attempts: HashMap<RunId, usize>,
    asks_served: Buckets,
    units_taken: Buckets,
    /// Every address a sealed message came from, and when last: pushes and asks go to these
    /// as well as to foca's members, so that they never depend on foca's (unauthenticated)
    /// view of who is alive.
    peers: HashMap<SocketAddr, Instant>,
    metrics: Arc<Metrics>,
    buffer: Vec<u8>,
    signing: Arc<SigningKey>,
    cluster: String,
}

impl Node {
    pub fn new(parts: NodeParts) -> Self {
        let inbox: Inbox = Arc::default();
        let handler = Heartbeats {
            store: parts.store.clone(),
            inbox: inbox.clone(),
        };
        let size =
            NonZeroU32::new((parts.region_keys.len() * 2).max(2) as u32).unwrap_or(NonZeroU32::MIN);
        // WAN timing (probes every 5 s, 3 s to answer): foca's verdict decides no answer, and
        // a busy node should not be declared down. Heartbeats reach every peer directly;
        // foca's relays carry them across broken links. Its packets go through our
        // fragmenting transport.
        let mut config = foca::Config::new_wan(size);
        config.max_packet_size = NonZeroUsize::new(16 * 1024).unwrap_or(NonZeroUsize::MIN);
        config.max_transmissions = config
            .max_transmissions
            .max(NonZeroU8::new(4).unwrap_or(NonZeroU8::MIN));
        config.periodic_gossip = Some(foca::PeriodicParams {
            frequency: parts.interval,
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        config.remove_down_after = Some(Duration::from_secs(3600));
        let seed = ring::rand::generate::<[u8; 32]>(&ring::rand::SystemRandom::new())
            .map(|random| random.expose())
            .unwrap_or_else(|_| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&crate::unix_ms().to_be_bytes());
                seed
            });
        let foca = Foca::with_custom_broadcast(
            parts.identity,
            config,
            StdRng::from_seed(seed),
            MemberCodec::new(parts.cluster.clone(), parts.region_keys),
            handler,
        );
        Self {
            socket: parts.socket,
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: Timers::default(),
            store: parts.store,
            inbox,
            changes: parts.changes,
            seeds: parts.seeds,
            asks: HashMap::new(),
            attempts: HashMap::new(),
            asks_served: Buckets::default(),
            units_taken: Buckets::default(),
            peers: HashMap::new(),
            metrics: parts.metrics,
            buffer: Vec::new(),
            signing: parts.signing,
            cluster: parts.cluster,
        }
    }

    /// Runs until `stop`, then leaves the cluster.
    pub async fn run(
        mut self,
        mut published: mpsc::Receiver<Vec<Arc<[u8]>>>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval.min(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut announced: Option<Instant> = None;
        loop {
            let timer = self
                .timers
                .next_due()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = self.socket.recv() => match received {
                    Ok((from, message)) => self.received(from, &message).await,
                    Err(error) => {
                        debug!(%error, "gossip receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = tokio::time::sleep_until(timer.into()) => {
                    let now = Instant::now();
                    while let Some(event) = self.timers.pop_due(now) {
                        if let Err(error) = self.foca.handle_timer(event, &mut self.runtime) {
                            debug!(%error, "foca timer");
                        }
                    }
                }
                units = published.recv() => match units {
                    Some(units) => self.publish(units).await,
                    None => return,
                },
                _ = tick.tick() => {
                    if announced.is_none_or(|at| at.elapsed() >= ANNOUNCE_EVERY) {
                        announced = Some(Instant::now());
                        self.announce().await;
                    }
                    self.ask().await;
                    self.metrics.gossip.set_members(self.foca.num_members() + 1);
                    if let Ok(store) = self.store.lock() {
                        self.metrics.gossip.set_held_bytes(store.bytes());
                    }
                }
                _ = stop.cancelled() => {
                    let _ = self.foca.leave_cluster(&mut self.runtime);
                    self.flush().await;
                    return;
                }
            }
            self.flush().await;
            if self.deliver().await.is_err() {
                return;
            }
        }
    }

    /// Sends what foca asked to send, schedules its timers, logs its news; rejoins with a new
    /// identity when declared down.
    async fn flush(&mut self) {
        let mut defunct = false;
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::Defunct => defunct = true,
                OwnedNotification::MemberUp(member) => {
                    info!(region = %member.region, instance = %member.instance, addr = %member.addr, "gossip member up");
                }
                OwnedNotification::MemberDown(member) => {
                    info!(region = %member.region, instance = %member.instance, addr = %member.addr, "gossip member down");
                }
                other => debug!(?other, "foca"),
            }
        }
        if defunct {
            let old = self.foca.identity().clone();
            let renewed = Member::signed(
                old.addr,
                &old.region,
                &old.instance,
                old.bump.wrapping_add(1),
                &self.signing,
                &self.cluster,
            );
            info!(
                bump = renewed.bump,
                "declared down by the cluster: rejoining as a new identity"
            );
            if let Err(error) = self.foca.change_identity(renewed, &mut self.runtime) {
                debug!(%error, "foca identity change");
            }
        }
        while let Some((after, event)) = self.runtime.to_schedule() {
            self.timers.add(after, event);
        }
        while let Some((to, packet)) = self.runtime.to_send() {
            wire::foca(&packet, &mut self.buffer);
            let message = std::mem::take(&mut self.buffer);
            self.socket.send(to.addr, &message).await;
            self.buffer = message;
        }
    }

    /// Hands what heartbeats relayed by foca changed, and their refusals, to the receiver.
    async fn deliver(&mut self) -> Result<(), ()> {
        let results: Vec<_> = match self.inbox.lock() {
            Ok(mut inbox) => inbox.drain(..).collect(),
            Err(_) => return Err(()),
        };
        for result in results {
            self.changes.send(result).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn received(&mut self, from: SocketAddr, message: &[u8]) {
        self.heard_from(from);
        let decoded = match wire::decode(message) {
            Ok(decoded) => decoded,
            Err(_) => {
                self.socket.undecodable(from);
                return;
            }
        };
        match decoded {
            Message::Foca(packet) => {
                if let Err(error) = self.foca.handle_data(packet, &mut self.runtime) {
                    if matches!(error, foca::Error::Decode(_)) {
                        self.metrics
                            .gossip
                            .report_rejected(ReportRejection::UnknownMember);
                    }
                    debug!(%from, %error, "foca packet refused");
                }
            }
            Message::Want(want) => self.answer(from, &want).await,
            Message::Units { more, units } => {
                let now = Instant::now();
                if !self.units_taken.take(from, units.len() as f64, &UNITS, now) {
                    self.metrics
                        .gossip
                        .reports_rejected(ReportRejection::RateLimited, units.len() as u64);
                    return;
                }
                let mut runs = Vec::new();
                for unit in units {
                    let (result, local) = match self.store.lock() {
                        Ok(mut store) => {
                            (store.accept(unit.clone(), now), store.is_local_unit(&unit))
                        }
                        Err(_) => return,
                    };
                    // Another's heartbeat new here goes on through foca too: across a broken
                    // link, relays are how it reaches the other side.
                    if result.is_ok() && !local && unit::kind_of(&unit) == Some(Kind::Heartbeat) {
                        let _ = self.foca.add_broadcast(&unit);
                    }
                    let _ = self.changes.send(result).await;
                }
                // The asks this peer answered: go on while it has more, else done.
                for (run, ask) in &self.asks {
                    if ask.peer == from {
                        runs.push(run.clone());
                    }
                }
                for run in runs {
                    self.asks.remove(&run);
                    if more && let Some(want) = self.want_of(&run, now) {
                        self.send_want(from, want, now).await;
                    } else {
                        // Answered, all it has: if the run is still not whole, the next ask
                        // goes to the next peer.
                        *self.attempts.entry(run).or_default() += 1;
                    }
                }
            }
        }
    }

    /// Remembers a peer's address (its message opened with the cluster key).
    fn heard_from(&mut self, from: SocketAddr) {
        let now = Instant::now();
        if !self.peers.contains_key(&from) && self.peers.len() >= MAX_PEERS {
            self.peers
                .retain(|_, at| now.duration_since(*at) < REMEMBER);
            if self.peers.len() >= MAX_PEERS {
                return;
            }
        }
        self.peers.insert(from, now);
    }

    /// Whom to push to and ask: every member foca knows, alive or not (its verdict may be
    /// wrong, or a lie), and every peer heard from within [`REMEMBER`].
    fn targets(&self) -> Vec<SocketAddr> {
        let now = Instant::now();
        let own = self.foca.identity().addr;
        let mut targets: Vec<SocketAddr> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id().addr)
            .chain(
                self.peers
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) < REMEMBER)
                    .map(|(addr, _)| *addr),
            )
            .filter(|addr| *addr != own)
            .collect();
        targets.sort();
        targets.dedup();
        targets
    }

    /// Answers a peer's ask, within its rate.
    async fn answer(&mut self, from: SocketAddr, want: &Want) {
        if !self.asks_served.take(from, 1.0, &ASKS, Instant::now()) {
            self.metrics
                .gossip
                .report_rejected(ReportRejection::RateLimited);
            return;
        }
        let (units, more) = match self.store.lock() {
            Ok(store) => store.serve(want, ANSWER_BUDGET),
            Err(_) => return,
        };
        wire::units(&units, more, &mut self.buffer);
        let message = std::mem::take(&mut self.buffer);
        self.socket.send(from, &message).await;
        self.buffer = message;
    }

    /// This run's new units: held, pushed to every member, the heartbeat also to foca.
    async fn publish(&mut self, units: Vec<Arc<[u8]>>) {
        let now = Instant::now();
        let mut push = Vec::new();
        let mut size = 0;
        for unit in units {
            match self.store.lock() {
                Ok(mut store) => {
                    if let Err(rejection) = store.publish(unit.clone(), now) {
                        debug!(reason = rejection.as_str(), "own unit not held");
                    }
                }
                Err(_) => return,
            }
            if unit::kind_of(&unit) == Some(Kind::Heartbeat) {
                if let Err(error) = self.foca.add_broadcast(&unit) {
                    debug!(%error, "heartbeat not handed to foca");
                }
                push.push(unit);
            } else if size + unit.len() <= PUSH_BUDGET {
                size += unit.len();
                push.push(unit);
            }
        }
        let members = self.targets();
        for chunk in push.chunks(64) {
            wire::units(chunk, false, &mut self.buffer);
            let message = std::mem::take(&mut self.buffer);
            for member in &members {
                self.socket.send(*member, &message).await;
            }
            self.buffer = message;
        }
    }

    /// Announces this node to every seed that is not a member (a restarted peer, a healed
    /// partition, the first start).
    async fn announce(&mut self) {
        let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        let own = self.foca.identity().addr;
        let seeds = self.seeds.borrow().clone();
        for addr in seeds {
            if addr != own && !members.contains(&addr) {
                let _ = self.foca.announce(Member::seed(addr), &mut self.runtime);
            }
        }
    }

    /// Asks a peer for the units of every run not held whole, unless an ask is in flight.
    async fn ask(&mut self) {
        let now = Instant::now();
        let wants = match self.store.lock() {
            Ok(store) => store.wants(now, REMEMBER),
            Err(_) => return,
        };
        let wanted: std::collections::HashSet<&RunId> = wants.iter().map(|w| &w.run).collect();
        self.attempts.retain(|run, _| wanted.contains(run));
        self.asks.retain(|run, _| wanted.contains(run));
        for want in wants {
            if let Some(ask) = self.asks.get(&want.run) {
                if now.duration_since(ask.sent) < ASK_TIMEOUT {
                    continue;
                }
                *self.attempts.entry(want.run.clone()).or_default() += 1;
            }
            let attempt = self.attempts.get(&want.run).copied().unwrap_or(0);
            let Some(peer) = self.peer_for(&want.run, attempt) else {
                continue;
            };
            self.send_want(peer, want, now).await;
        }
    }

    fn want_of(&self, run: &RunId, now: Instant) -> Option<Want> {
        let store = self.store.lock().ok()?;
        store
            .wants(now, REMEMBER)
            .into_iter()
            .find(|want| want.run == *run)
    }

    async fn send_want(&mut self, peer: SocketAddr, want: Want, now: Instant) {
        wire::want(&want, &mut self.buffer);
        let message = std::mem::take(&mut self.buffer);
        self.socket.send(peer, &message).await;
        self.buffer = message;
        self.asks.insert(want.run, Ask { peer, sent: now });
    }

    /// Whom to ask for a run's units at the `attempt`th try: the run's own node first (as foca
    /// knows it, alive or not), then every other peer in turn.
    fn peer_for(&self, run: &RunId, attempt: usize) -> Option<SocketAddr> {
        let origin = self
            .foca
            .iter_membership_state()
            .map(|m| m.id())
            .find(|m| m.region == run.region.as_str() && m.instance == run.instance)
            .map(|m| m.addr);
        let mut peers: Vec<SocketAddr> = origin.into_iter().collect();
        peers.extend(self.targets().into_iter().filter(|p| Some(*p) != origin));
        if peers.is_empty() {
            return None;
        }
        Some(peers[attempt % peers.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate_and_others_their_own() {
        let rate = Rate {
            burst: 10.0,
            per_second: 100.0,
        };
        let mut buckets = Buckets::default();
        let start = Instant::now();
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 2], 1)),
            SocketAddr::from(([127, 0, 0, 3], 1)),
        );
        assert!(buckets.take(a, 10.0, &rate, start));
        assert!(!buckets.take(a, 1.0, &rate, start));
        assert!(buckets.take(b, 10.0, &rate, start), "b has its own bucket");
        // 50 ms later: 5 tokens back, never more than the burst.
        let later = start + Duration::from_millis(50);
        assert!(buckets.take(a, 5.0, &rate, later));
        assert!(!buckets.take(a, 1.0, &rate, later));
        let much_later = start + Duration::from_secs(60);
        assert!(!buckets.take(a, 11.0, &rate, much_later));
        assert!(buckets.take(a, 10.0, &rate, much_later));
    }
}
