//! A virtual-clock network simulator for protocol cores: N instances of one
//! [`Protocol`] on simulated LANs, run with no sockets and no sleeps.
//!
//! Owns: the virtual clock (a fixed `base` instant plus offsets), the LANs
//! (which node interface sits on which segment, per-LAN delay and seeded
//! loss), delivery of every [`Transmit`] (multicast and broadcast to every
//! other interface on the LAN, unicast to the owner of the address), and the
//! record of what was delivered and which events were raised, each with its
//! virtual time. Tests use the record to assert timings to the nanosecond.
//!
//! Time only moves inside [`Sim::run_until`] / [`Sim::run_for`]: the clock
//! jumps to the earliest pending delivery or `poll_timeout`, so an hour of
//! protocol time costs as much as the events in it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Protocol, Rng, Transmit};

/// Index of a node, in the order of [`Sim::add_node`].
pub type NodeId = usize;
/// Index of a LAN, in the order of [`Sim::add_lan`].
pub type LanId = usize;

/// A packet as one node (or an injecting test) put it on a LAN and another
/// node received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Virtual time of arrival, relative to [`Sim::base`].
    pub at: Duration,
    pub lan: LanId,
    /// The sending node; `None` for a packet the test injected.
    pub from: Option<NodeId>,
    pub to: NodeId,
    /// Receiving interface.
    pub ifindex: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub payload: Vec<u8>,
}

/// A packet as it was put on a LAN, whether anyone received it or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Virtual time of sending, relative to [`Sim::base`].
    pub at: Duration,
    pub lan: LanId,
    /// The sending node; `None` for a packet the test injected.
    pub from: Option<NodeId>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub payload: Vec<u8>,
}

/// An event a node raised through `poll_event`, with its virtual time.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<E> {
    pub at: Duration,
    pub node: NodeId,
    pub event: E,
}

#[derive(Clone, Debug)]
struct Attachment {
    lan: LanId,
    ifindex: u32,
    addr: Ipv4Addr,
}

struct Node<P> {
    proto: P,
    ifaces: Vec<Attachment>,
    up: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Lan {
    delay: Duration,
    /// Probability of losing one delivery, in millionths.
    loss_ppm: u32,
}

/// See the module documentation.
pub struct Sim<P: Protocol> {
    base: Instant,
    now: Instant,
    nodes: Vec<Node<P>>,
    lans: Vec<Lan>,
    /// Deliveries waiting for their arrival time; the sequence number keeps
    /// same-instant deliveries in the order they were sent.
    in_flight: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    rng: Rng,
    sent: Vec<Sent>,
    delivered: Vec<Delivery>,
    lost: Vec<Delivery>,
    events: Vec<Recorded<P::Output>>,
    /// Safety net: a core that keeps asking for a timeout in the past (or
    /// two cores answering each other forever at one instant) would spin.
    max_steps_per_instant: usize,
}

impl<P: Protocol> Sim<P> {
    /// An empty network; `seed` drives the loss decisions.
    pub fn new(seed: u64) -> Self {
        let base = Instant::now();
        Sim {
            base,
            now: base,
            nodes: Vec::new(),
            lans: Vec::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            rng: Rng::new(seed),
            sent: Vec::new(),
            delivered: Vec::new(),
            lost: Vec::new(),
            events: Vec::new(),
            max_steps_per_instant: 100_000,
        }
    }

    /// The instant virtual time 0 stands for; hand it to the cores.
    pub fn base(&self) -> Instant {
        self.base
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since `base`.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    pub fn add_lan(&mut self) -> LanId {
        self.lans.push(Lan::default());
        self.lans.len() - 1
    }

    /// Every packet on `lan` arrives `delay` after it was sent.
    pub fn set_delay(&mut self, lan: LanId, delay: Duration) {
        self.lans[lan].delay = delay;
    }

    /// Each delivery on `lan` is lost with probability `loss` (0.0..=1.0),
    /// decided by the seeded RNG so a run replays exactly.
    pub fn set_loss(&mut self, lan: LanId, loss: f64) {
        self.lans[lan].loss_ppm = (loss.clamp(0.0, 1.0) * 1e6) as u32;
    }

    pub fn add_node(&mut self, proto: P) -> NodeId {
        self.nodes.push(Node {
            proto,
            ifaces: Vec::new(),
            up: true,
        });
        self.nodes.len() - 1
    }

    /// Put interface `ifindex` of `node`, with address `addr`, on `lan`.
    pub fn attach(&mut self, node: NodeId, lan: LanId, ifindex: u32, addr: Ipv4Addr) {
        self.nodes[node]
            .ifaces
            .push(Attachment { lan, ifindex, addr });
    }

    pub fn node(&self, node: NodeId) -> &P {
        &self.nodes[node].proto
    }

    /// Direct access to a core; call [`Sim::drain`] after driving it by hand.
    pub fn node_mut(&mut self, node: NodeId) -> &mut P {
        &mut self.nodes[node].proto
    }

    /// Take a node off the network: it receives nothing, its timers do not
    /// run, and what it had queued to send is dropped.
    pub fn down(&mut self, node: NodeId) {
        self.nodes[node].up = false;
        while self.nodes[node].proto.poll_transmit().is_some() {}
    }

    /// Bring a node back. Timers that fell due while it was down fire at
    /// the next step, as after a process that was stopped and resumed.
    pub fn up(&mut self, node: NodeId) {
        self.nodes[node].up = true;
    }

    /// Replace a node's core by a fresh instance (a restart with lost state).
    pub fn replace(&mut self, node: NodeId, proto: P) {
        self.nodes[node].proto = proto;
        self.nodes[node].up = true;
        self.drain(node);
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes[node].up
    }

    /// Apply a configuration to a node now.
    pub fn configure(&mut self, node: NodeId, config: P::Config) {
        let now = self.now;
        self.nodes[node].proto.handle_config(now, config);
        self.drain(node);
    }

    /// Hand a node an event from the rest of its daemon now.
    pub fn input(&mut self, node: NodeId, event: P::Input) {
        let now = self.now;
        self.nodes[node].proto.handle_event(now, event);
        self.drain(node);
    }

    /// A packet from something that is not a simulated node (a host's
    /// report), put on `lan` now with the LAN's delay and loss. It reaches
    /// every node on the LAN (multicast) or the owner of `dst` (unicast).
    pub fn inject(&mut self, lan: LanId, src: Ipv4Addr, dst: Ipv4Addr, payload: Vec<u8>) {
        self.send_on_lan(lan, None, src, dst, payload);
    }

    /// Move every queued transmit and event out of a node: transmits go on
    /// the wire, events into the record.
    pub fn drain(&mut self, node: NodeId) {
        let at = self.elapsed();
        while let Some(event) = self.nodes[node].proto.poll_event() {
            self.events.push(Recorded { at, node, event });
        }
        let mut out = Vec::new();
        while let Some(t) = self.nodes[node].proto.poll_transmit() {
            out.push(t);
        }
        if !self.nodes[node].up {
            return;
        }
        for t in out {
            self.transmit(node, t);
        }
    }

    fn transmit(&mut self, node: NodeId, t: Transmit) {
        // A transmit on an interface the node does not have goes nowhere,
        // as a send on a vanished interface would.
        let Some(att) = self.nodes[node]
            .ifaces
            .iter()
            .find(|a| a.ifindex == t.ifindex)
            .cloned()
        else {
            return;
        };
        let src = t.src.unwrap_or(att.addr);
        self.send_on_lan(att.lan, Some(node), src, t.dst, t.payload);
    }

    fn send_on_lan(
        &mut self,
        lan: LanId,
        from: Option<NodeId>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: Vec<u8>,
    ) {
        let flood = dst.is_multicast() || dst.is_broadcast();
        let cfg = self.lans[lan];
        self.sent.push(Sent {
            at: self.now - self.base,
            lan,
            from,
            src,
            dst,
            payload: payload.clone(),
        });
        let arrive = self.now + cfg.delay;
        let mut receivers = Vec::new();
        for (id, n) in self.nodes.iter().enumerate() {
            if Some(id) == from {
                continue;
            }
            for a in n.ifaces.iter().filter(|a| a.lan == lan) {
                if flood || a.addr == dst {
                    receivers.push((id, a.ifindex));
                }
            }
        }
        for (to, ifindex) in receivers {
            let d = Delivery {
                at: arrive - self.base,
                lan,
                from,
                to,
                ifindex,
                src,
                dst,
                payload: payload.clone(),
            };
            if cfg.loss_ppm > 0 && (self.rng.next_u32() % 1_000_000) < cfg.loss_ppm {
                self.lost.push(d);
                continue;
            }
            self.seq += 1;
            self.in_flight.insert((arrive, self.seq), d);
        }
    }

    /// The next instant anything happens: a delivery or a timer of a node
    /// that is up.
    fn next_instant(&self) -> Option<Instant> {
        let delivery = self.in_flight.keys().next().map(|(t, _)| *t);
        let timer = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.proto.poll_timeout())
            .min();
        match (delivery, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run every delivery and timer up to and including `until`, then leave
    /// the clock at `until`.
    pub fn run_until(&mut self, until: Instant) {
        // A core built with output already queued (a router's first query)
        // sends it once the network is assembled, at the current time.
        for id in 0..self.nodes.len() {
            self.drain(id);
        }
        let mut steps_here = 0usize;
        let mut last = self.now;
        while let Some(next) = self.next_instant() {
            if next > until {
                break;
            }
            // Overdue timers (a node that was down) fire at the current time.
            let at = next.max(self.now);
            if at == last {
                steps_here += 1;
                assert!(
                    steps_here < self.max_steps_per_instant,
                    "simulation does not advance at {:?}: a core keeps asking for a past timeout",
                    at - self.base
                );
            } else {
                steps_here = 0;
                last = at;
            }
            self.now = at;
            self.step_at(at);
        }
        if until > self.now {
            self.now = until;
        }
    }

    /// Run for `d` of virtual time from now.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn step_at(&mut self, at: Instant) {
        // Deliveries first, so a report arriving at the instant a timer
        // expires refreshes the state before the expiry is judged.
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > at {
                break;
            }
            let d = entry.remove();
            if !self.nodes[d.to].up {
                continue;
            }
            self.nodes[d.to]
                .proto
                .handle_packet(at, d.ifindex, d.src, d.dst, &d.payload);
            let to = d.to;
            self.delivered.push(d);
            self.drain(to);
        }
        for id in 0..self.nodes.len() {
            let n = &mut self.nodes[id];
            if n.up && n.proto.poll_timeout().is_some_and(|t| t <= at) {
                n.proto.handle_timeout(at);
                self.drain(id);
            }
        }
    }

    /// Every packet put on a LAN so far, in sending order.
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    /// Every packet delivered so far, in delivery order.
    pub fn delivered(&self) -> &[Delivery] {
        &self.delivered
    }

    /// Deliveries the LAN's loss setting dropped.
    pub fn lost(&self) -> &[Delivery] {
        &self.lost
    }

    /// Every event raised so far, in order.
    pub fn events(&self) -> &[Recorded<P::Output>] {
        &self.events
    }

    /// Forget the record (sent, deliveries, losses, events), keep the network.
    pub fn clear_record(&mut self) {
        self.sent.clear();
        self.delivered.clear();
        self.lost.clear();
        self.events.clear();
    }
}

#[cfg(test)]
mod tests;
