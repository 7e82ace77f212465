//! The simulator proven with a small hello protocol that exists only here:
//! every interface sends a hello each second to a multicast group, a
//! neighbor unheard for the hold time is dropped, and a new neighbor is
//! greeted once by unicast.

use super::*;
use crate::proto::Timers;
use std::collections::{BTreeMap, VecDeque};

const HELLO_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 99);
const PERIOD: Duration = Duration::from_secs(1);
const HOLD: Duration = Duration::from_millis(3500);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Up(u32, Ipv4Addr),
    Down(u32, Ipv4Addr),
    Greeted(Ipv4Addr),
    Poked(u8),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Hello(u32),
    Expire(u32, Ipv4Addr),
}

struct Hello {
    ifaces: Vec<u32>,
    neighbors: BTreeMap<(u32, Ipv4Addr), ()>,
    timers: Timers<Key>,
    tx: VecDeque<Transmit>,
    ev: VecDeque<Ev>,
}

impl Hello {
    fn new(now: Instant, ifaces: &[u32]) -> Self {
        let mut timers = Timers::new();
        for &i in ifaces {
            timers.set(Key::Hello(i), now);
        }
        Hello {
            ifaces: ifaces.to_vec(),
            neighbors: BTreeMap::new(),
            timers,
            tx: VecDeque::new(),
            ev: VecDeque::new(),
        }
    }

    fn send(&mut self, ifindex: u32, dst: Ipv4Addr, payload: &[u8]) {
        self.tx.push_back(Transmit {
            ifindex,
            src: None,
            dst,
            ttl: 1,
            router_alert: false,
            payload: payload.to_vec(),
        });
    }
}

impl Protocol for Hello {
    type Config = Vec<u32>;
    type Input = u8;
    type Output = Ev;

    fn handle_packet(&mut self, now: Instant, ifindex: u32, src: Ipv4Addr, _: Ipv4Addr, p: &[u8]) {
        match p {
            b"hello" => {
                if self.neighbors.insert((ifindex, src), ()).is_none() {
                    self.ev.push_back(Ev::Up(ifindex, src));
                    self.send(ifindex, src, b"hi");
                }
                self.timers.set(Key::Expire(ifindex, src), now + HOLD);
            }
            b"hi" => self.ev.push_back(Ev::Greeted(src)),
            [b'p', n] => self.ev.push_back(Ev::Poked(*n)),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_due(now) {
            match k {
                Key::Hello(i) => {
                    self.send(i, HELLO_GROUP, b"hello");
                    self.timers.set(Key::Hello(i), now + PERIOD);
                }
                Key::Expire(i, a) => {
                    self.neighbors.remove(&(i, a));
                    self.ev.push_back(Ev::Down(i, a));
                }
            }
        }
    }

    fn handle_config(&mut self, now: Instant, ifaces: Vec<u32>) {
        *self = Hello::new(now, &ifaces);
    }

    fn handle_event(&mut self, _: Instant, n: u8) {
        for i in self.ifaces.clone() {
            self.send(i, HELLO_GROUP, &[b'p', n]);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.ev.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

/// A LAN with `n` hello nodes, node i at 10.0.0.(i+1) on ifindex 7.
fn lan_of(n: usize, seed: u64) -> (Sim<Hello>, LanId) {
    let mut sim = Sim::new(seed);
    let lan = sim.add_lan();
    for i in 0..n {
        let id = sim.add_node(Hello::new(sim.base(), &[7]));
        sim.attach(id, lan, 7, ip(i as u8 + 1));
    }
    (sim, lan)
}

fn events_of(sim: &Sim<Hello>, node: NodeId) -> Vec<(Duration, Ev)> {
    sim.events()
        .iter()
        .filter(|r| r.node == node)
        .map(|r| (r.at, r.event.clone()))
        .collect()
}

#[test]
fn hellos_arrive_every_period_and_neighbors_come_up_at_once() {
    let (mut sim, _) = lan_of(2, 1);
    sim.run_for(Duration::from_millis(2500));
    assert_eq!(sim.elapsed(), Duration::from_millis(2500));
    let hellos_to_1: Vec<Duration> = sim
        .delivered()
        .iter()
        .filter(|d| d.to == 1 && d.payload == b"hello")
        .map(|d| d.at)
        .collect();
    assert_eq!(hellos_to_1, vec![Duration::ZERO, PERIOD, PERIOD * 2]);
    assert!(sim.delivered().iter().all(|d| d.payload != b"hello"
        || (d.dst == HELLO_GROUP && d.src == ip(d.from.unwrap() as u8 + 1))));
    let e0 = events_of(&sim, 0);
    assert_eq!(e0[0], (Duration::ZERO, Ev::Up(7, ip(2))));
    assert!(e0.contains(&(Duration::ZERO, Ev::Greeted(ip(2)))));
}

#[test]
fn a_node_taken_down_expires_at_last_hello_plus_hold_time_exactly() {
    let (mut sim, _) = lan_of(2, 1);
    sim.run_until(sim.base() + Duration::from_millis(4200));
    sim.down(1);
    sim.run_for(Duration::from_secs(20));
    // Node 1's last hello went out at 4 s.
    let downs: Vec<_> = events_of(&sim, 0)
        .into_iter()
        .filter(|(_, e)| matches!(e, Ev::Down(..)))
        .collect();
    assert_eq!(
        downs,
        vec![(Duration::from_millis(7500), Ev::Down(7, ip(2)))]
    );
    // The downed node received nothing after it went down.
    assert!(sim
        .delivered()
        .iter()
        .all(|d| d.to != 1 || d.at <= Duration::from_millis(4200)));
    // Up again: its overdue hello fires at once, and node 0 sees it return.
    sim.up(1);
    let back = sim.elapsed();
    sim.run_for(Duration::from_millis(10));
    assert!(events_of(&sim, 0).contains(&(back, Ev::Up(7, ip(2)))));
}

#[test]
fn lan_delay_shifts_every_arrival() {
    let (mut sim, lan) = lan_of(2, 1);
    sim.set_delay(lan, Duration::from_millis(30));
    sim.run_for(Duration::from_millis(1500));
    let ups: Vec<_> = sim
        .events()
        .iter()
        .filter(|r| matches!(r.event, Ev::Up(..)))
        .map(|r| r.at)
        .collect();
    assert_eq!(ups, vec![Duration::from_millis(30); 2]);
    // The unicast greeting answering a hello takes one more delay.
    assert!(events_of(&sim, 1).contains(&(Duration::from_millis(60), Ev::Greeted(ip(1)))));
}

#[test]
fn unicast_reaches_only_the_owner_of_the_address_and_other_lans_see_nothing() {
    let (mut sim, _) = lan_of(3, 1);
    let other = sim.add_lan();
    let far = sim.add_node(Hello::new(sim.base(), &[9]));
    sim.attach(far, other, 9, ip(50));
    sim.run_for(Duration::from_millis(500));
    let greetings: Vec<_> = sim
        .delivered()
        .iter()
        .filter(|d| d.payload == b"hi")
        .collect();
    // Each of 3 nodes greets the 2 others: 6 greetings, each to its owner.
    assert_eq!(greetings.len(), 6);
    // Each hello was sent once and delivered to the 2 other nodes of its LAN.
    let hellos_sent = sim
        .sent()
        .iter()
        .filter(|s| s.payload == b"hello" && s.lan != other)
        .count();
    let hellos_got = sim
        .delivered()
        .iter()
        .filter(|d| d.payload == b"hello" && d.lan != other)
        .count();
    assert_eq!(hellos_got, 2 * hellos_sent);
    assert!(hellos_sent >= 3);
    for g in greetings {
        assert_eq!(g.dst, ip(g.to as u8 + 1));
    }
    assert!(sim
        .delivered()
        .iter()
        .all(|d| d.to != far || d.lan == other));
    assert!(events_of(&sim, far).is_empty());
}

#[test]
fn loss_is_seeded_and_replays_exactly() {
    let run = |seed: u64, loss: f64| {
        let (mut sim, lan) = lan_of(2, seed);
        sim.set_loss(lan, loss);
        sim.run_for(Duration::from_secs(100));
        (sim.delivered().len(), sim.lost().len())
    };
    let (d, l) = run(42, 0.5);
    assert_eq!(run(42, 0.5), (d, l));
    assert!(
        l > 50 && d > 50,
        "about half of ~200 lost: {d} delivered, {l} lost"
    );
    assert_eq!(run(42, 1.0).0, 0);
    assert_eq!(run(42, 0.0).1, 0);
}

#[test]
fn injected_packets_and_inputs_reach_the_nodes() {
    let (mut sim, lan) = lan_of(2, 1);
    sim.run_for(Duration::from_millis(100));
    sim.inject(lan, ip(200), HELLO_GROUP, b"p\x05".to_vec());
    sim.run_for(Duration::ZERO);
    for n in 0..2 {
        assert!(events_of(&sim, n).contains(&(Duration::from_millis(100), Ev::Poked(5))));
    }
    let injected: Vec<_> = sim
        .delivered()
        .iter()
        .filter(|d| d.from.is_none())
        .collect();
    assert_eq!(injected.len(), 2);
    assert!(injected.iter().all(|d| d.src == ip(200)));
    // An event from the node's daemon makes node 0 poke node 1.
    sim.input(0, 9);
    sim.run_for(Duration::ZERO);
    assert!(events_of(&sim, 1).contains(&(Duration::from_millis(100), Ev::Poked(9))));
    assert!(!events_of(&sim, 0).iter().any(|(_, e)| *e == Ev::Poked(9)));
}

#[test]
fn replace_restarts_a_node_with_fresh_state() {
    let (mut sim, _) = lan_of(2, 1);
    sim.run_for(Duration::from_millis(1500));
    let now = sim.now();
    sim.replace(1, Hello::new(now, &[7]));
    sim.configure(0, vec![7]);
    sim.run_for(Duration::from_millis(10));
    // Both forgot their neighbor and meet again at the restart instant.
    let ups: Vec<_> = sim
        .events()
        .iter()
        .filter(|r| matches!(r.event, Ev::Up(..)))
        .map(|r| (r.at, r.node))
        .collect();
    assert_eq!(ups.len(), 4);
    assert!(ups[2..]
        .iter()
        .all(|(t, _)| *t == Duration::from_millis(1500)));
}
