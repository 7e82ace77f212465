//! The incremental `reconcile` against the full one: two instances, one
//! forced to walk every tree at every pass as before, driven in lockstep
//! through the same random inputs (neighbors coming, restarting and
//! leaving, Join/Prunes for us and overheard, Asserts, data, local
//! receivers, RPF answers that change, null-Registers, reloads, interfaces
//! going down, time on a virtual clock), must send the same packets, raise
//! the same events, install the same routes, ask the same RPF questions,
//! keep the same timers and show the same state after every step.
//! Plus the cost of one Join/Prune with many (S,G), incremental and full
//! (`--ignored`, it prints figures).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{PimInput, PimInstance, RpfResult};
use crate::pim::codec::{
    self, Assert, EncodedGroup, EncodedSource, Hello, JoinPrune, JoinPruneGroup, LanPruneDelay,
    Message, RegisterStop, ALL_PIM_ROUTERS,
};
use crate::pim::config::{PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp};
use crate::pim::state::downstream::TreeKey;
use crate::pim::state::register::null_register;
use crate::proto::{Protocol, Rng};

const IFACES: [u32; 3] = [1, 2, 3];

fn our_addr(ifindex: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, ifindex as u8, 0, 1)
}

fn neighbor(ifindex: u32, n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, ifindex as u8, 0, 2 + n % 2)
}

const GROUPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(239, 1, 1, 1),
    Ipv4Addr::new(239, 1, 1, 2),
    Ipv4Addr::new(239, 2, 2, 2),
    Ipv4Addr::new(232, 1, 1, 1),
];

const SOURCES: [Ipv4Addr; 5] = [
    Ipv4Addr::new(10, 1, 0, 10),
    Ipv4Addr::new(10, 1, 0, 11),
    Ipv4Addr::new(10, 5, 0, 1),
    Ipv4Addr::new(10, 5, 0, 2),
    Ipv4Addr::new(10, 3, 0, 10),
];

const REMOTE_RP: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);

/// Two RP layouts the reloads switch between: 239.1/16 at a remote RP
/// and 239.2/16 at us (10.2.0.1), or everything at the remote RP.
fn config(variant: u8) -> PimConfig {
    let rp = |g: &str, rp: Ipv4Addr| StaticRp {
        group: g.parse().expect("prefix"),
        rp,
    };
    let static_rp = match variant % 2 {
        0 => vec![
            rp("239.1.0.0/16", REMOTE_RP),
            rp("239.2.0.0/16", our_addr(2)),
        ],
        _ => vec![rp("239.0.0.0/8", REMOTE_RP)],
    };
    PimConfig {
        enabled: true,
        interfaces: ["a", "b", "c"]
            .iter()
            .map(|n| PimInterfaceConfig::named(n))
            .collect(),
        static_rp,
        spt_switchover: if variant & 2 == 0 {
            SptSwitchover::Immediate
        } else {
            SptSwitchover::Never
        },
        ..PimConfig::default()
    }
}

/// The unicast routes, in three versions the "routes changed" step moves
/// between: links 1 and 3 hold directly connected sources, the RP and the
/// 10.5/16 sources are behind neighbors that move or vanish.
fn route(version: u8, target: Ipv4Addr) -> Option<RpfResult> {
    let o = target.octets();
    let via = |ifindex: u32, n: u8, pref: u32| {
        Some(RpfResult {
            ifindex,
            next_hop: Some(neighbor(ifindex, n)),
            metric_preference: pref,
            metric: u32::from(version) + 1,
        })
    };
    match (o[0], o[1]) {
        (10, 1) | (10, 2) | (10, 3) => Some(RpfResult {
            ifindex: u32::from(o[1]),
            next_hop: None,
            metric_preference: 0,
            metric: 0,
        }),
        (10, 9) => match version % 3 {
            0 => via(2, 0, 110),
            1 => via(3, 0, 110),
            _ => None,
        },
        (10, 5) => match version % 3 {
            0 => via(2, o[3], 120),
            1 => via(3, o[3], 90),
            _ => via(2, 0, 120),
        },
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum Entry {
    StarG,
    Sg(u8),
    SgRpt(u8),
}

#[derive(Clone, Debug)]
enum Step {
    Hello {
        ifindex: u32,
        n: u8,
        gen_id: u8,
        holdtime: u8,
        priority: u8,
    },
    /// A Join/Prune for us (`to_us`) or for another router on the LAN.
    JoinPrune {
        ifindex: u32,
        n: u8,
        to_us: bool,
        group: u8,
        joins: Vec<Entry>,
        prunes: Vec<Entry>,
        holdtime: u8,
    },
    Assert {
        ifindex: u32,
        n: u8,
        group: u8,
        source: Option<u8>,
        rpt: bool,
        metric: u8,
    },
    Data {
        ifindex: u32,
        source: u8,
        group: u8,
    },
    Local {
        ifindex: u32,
        join: bool,
        source: Option<u8>,
        group: u8,
    },
    Members {
        ifindex: u32,
        keys: Vec<(Option<u8>, u8)>,
    },
    Excludes {
        ifindex: u32,
        sg: Vec<(u8, u8)>,
    },
    Time(u8),
    AnswerRpf(u8),
    RoutesChanged,
    Config(u8),
    Down(u32),
    Up(u32),
    NullRegister {
        source: u8,
        group: u8,
    },
    RegisterStop {
        source: u8,
        group: u8,
    },
}

fn iface() -> impl Strategy<Value = u32> {
    prop::sample::select(IFACES.to_vec())
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        Just(Entry::StarG),
        (0u8..5).prop_map(Entry::Sg),
        (0u8..5).prop_map(Entry::SgRpt),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (iface(), any::<u8>(), 0u8..3, 0u8..4, 0u8..3).prop_map(
            |(ifindex, n, gen_id, holdtime, priority)| Step::Hello {
                ifindex,
                n,
                gen_id,
                holdtime,
                priority
            }
        ),
        8 => (
            iface(),
            any::<u8>(),
            prop::bool::weighted(0.8),
            0u8..4,
            prop::collection::vec(entry(), 0..3),
            prop::collection::vec(entry(), 0..3),
            0u8..3
        )
            .prop_map(|(ifindex, n, to_us, group, joins, prunes, holdtime)| {
                Step::JoinPrune {
                    ifindex,
                    n,
                    to_us,
                    group,
                    joins,
                    prunes,
                    holdtime,
                }
            }),
        3 => (iface(), any::<u8>(), 0u8..4, prop::option::of(0u8..5), any::<bool>(), 0u8..4)
            .prop_map(|(ifindex, n, group, source, rpt, metric)| Step::Assert {
                ifindex,
                n,
                group,
                source,
                rpt,
                metric
            }),
        4 => (iface(), 0u8..5, 0u8..4).prop_map(|(ifindex, source, group)| Step::Data {
            ifindex,
            source,
            group
        }),
        3 => (iface(), any::<bool>(), prop::option::of(0u8..5), 0u8..4).prop_map(
            |(ifindex, join, source, group)| Step::Local {
                ifindex,
                join,
                source,
                group
            }
        ),
        1 => (iface(), prop::collection::vec((prop::option::of(0u8..5), 0u8..4), 0..3))
            .prop_map(|(ifindex, keys)| Step::Members { ifindex, keys }),
        1 => (iface(), prop::collection::vec((0u8..5, 0u8..4), 0..3))
            .prop_map(|(ifindex, sg)| Step::Excludes { ifindex, sg }),
        6 => (0u8..7).prop_map(Step::Time),
        5 => (0u8..3).prop_map(Step::AnswerRpf),
        1 => Just(Step::RoutesChanged),
        1 => (0u8..4).prop_map(Step::Config),
        1 => iface().prop_map(Step::Down),
        1 => iface().prop_map(Step::Up),
        1 => (0u8..5, 0u8..4).prop_map(|(source, group)| Step::NullRegister { source, group }),
        1 => (0u8..5, 0u8..4).prop_map(|(source, group)| Step::RegisterStop { source, group }),
    ]
}

fn encoded(e: &Entry, rp: Ipv4Addr) -> EncodedSource {
    match e {
        Entry::StarG => EncodedSource::star_g(rp),
        Entry::Sg(s) => EncodedSource::s_g(SOURCES[usize::from(*s)]),
        Entry::SgRpt(s) => EncodedSource {
            rpt: true,
            ..EncodedSource::s_g(SOURCES[usize::from(*s)])
        },
    }
}

/// Everything an instance tells the outside after a step.
#[derive(Debug, PartialEq)]
struct Outputs {
    transmits: Vec<crate::proto::Transmit>,
    events: Vec<super::PimEvent>,
    routes: Vec<super::PimRouteChange>,
    rpf: Vec<Ipv4Addr>,
    decap: Vec<super::Decapsulated>,
    next_timeout: Option<Instant>,
    state: Vec<super::UpstreamSnapshot>,
    asserts: Vec<super::AssertSnapshot>,
    registers: Vec<super::RegisterSnapshot>,
    rpf_targets: Vec<Ipv4Addr>,
}

fn drain(p: &mut PimInstance, now: Instant) -> Outputs {
    let mut o = Outputs {
        transmits: Vec::new(),
        events: Vec::new(),
        routes: Vec::new(),
        rpf: Vec::new(),
        decap: Vec::new(),
        next_timeout: p.poll_timeout(),
        state: p.routes(now),
        asserts: p.asserts(now),
        registers: p.registers(now),
        rpf_targets: p.rpf_targets(),
    };
    while let Some(t) = p.poll_transmit() {
        o.transmits.push(t);
    }
    while let Some(e) = p.poll_event() {
        o.events.push(e);
    }
    while let Some(r) = p.poll_route_change() {
        o.routes.push(r);
    }
    while let Some(r) = p.poll_rpf_request() {
        o.rpf.push(r);
    }
    while let Some(d) = p.poll_decapsulated() {
        o.decap.push(d);
    }
    o
}

struct Pair {
    full: PimInstance,
    inc: PimInstance,
    t0: Instant,
    now: Instant,
    version: u8,
    /// RPF questions asked and not answered yet, oldest first.
    pending: Vec<Ipv4Addr>,
}

impl Pair {
    fn new() -> Self {
        let t0 = Instant::now();
        let mut full = PimInstance::new(Rng::new(7));
        full.force_full_reconcile(true);
        let inc = PimInstance::new(Rng::new(7));
        let mut pair = Pair {
            full,
            inc,
            t0,
            now: t0,
            version: 0,
            pending: Vec::new(),
        };
        pair.both(|p, now| p.handle_config(now, config(0)));
        for ifindex in IFACES {
            pair.up(ifindex);
        }
        pair
    }

    fn up(&mut self, ifindex: u32) {
        let name = ["a", "b", "c"][ifindex as usize - 1].to_string();
        self.both(|p, now| {
            p.handle_event(
                now,
                PimInput::InterfaceUp {
                    ifindex,
                    name: name.clone(),
                    addr: our_addr(ifindex),
                },
            )
        });
    }

    /// Apply one input to both and compare what comes out.
    fn both(&mut self, f: impl Fn(&mut PimInstance, Instant)) {
        let now = self.now;
        f(&mut self.full, now);
        f(&mut self.inc, now);
        self.compare();
    }

    fn compare(&mut self) {
        let a = drain(&mut self.full, self.now);
        let b = drain(&mut self.inc, self.now);
        assert_eq!(a, b, "incremental and full reconcile differ");
        self.pending.extend(a.rpf);
    }

    fn packet(&mut self, ifindex: u32, src: Ipv4Addr, dst: Ipv4Addr, m: &Message) {
        let payload = codec::encode(m);
        self.both(|p, now| p.handle_packet(now, ifindex, src, dst, &payload));
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let (a, b) = (self.full.poll_timeout(), self.inc.poll_timeout());
            assert_eq!(a, b, "timers differ");
            match a {
                Some(at) if at <= end => {
                    self.now = at.max(self.t0);
                    let now = self.now;
                    self.full.handle_timeout(now);
                    self.inc.handle_timeout(now);
                    self.compare();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn run(&mut self, s: &Step) {
        let g = |i: u8| GROUPS[usize::from(i) % GROUPS.len()];
        let src = |i: u8| SOURCES[usize::from(i) % SOURCES.len()];
        match s {
            Step::Hello {
                ifindex,
                n,
                gen_id,
                holdtime,
                priority,
            } => {
                let h = Hello {
                    holdtime: Some([0, 105, 4, 0xffff][usize::from(*holdtime)]),
                    lan_prune_delay: Some(LanPruneDelay {
                        tracking: false,
                        propagation_delay_ms: 500,
                        override_interval_ms: 2500,
                    }),
                    dr_priority: Some(u32::from(*priority)),
                    generation_id: Some(u32::from(*gen_id)),
                    address_list: Vec::new(),
                    unknown: Vec::new(),
                };
                self.packet(
                    *ifindex,
                    neighbor(*ifindex, *n),
                    ALL_PIM_ROUTERS,
                    &Message::Hello(h),
                );
            }
            Step::JoinPrune {
                ifindex,
                n,
                to_us,
                group,
                joins,
                prunes,
                holdtime,
            } => {
                let group = g(*group);
                let rp = if group.octets()[1] == 2 {
                    our_addr(2)
                } else {
                    REMOTE_RP
                };
                let upstream_neighbor = if *to_us {
                    our_addr(*ifindex)
                } else {
                    neighbor(*ifindex, n.wrapping_add(1))
                };
                let jp = JoinPrune {
                    upstream_neighbor,
                    holdtime: [210, 5, 0][usize::from(*holdtime)],
                    groups: vec![JoinPruneGroup {
                        group: EncodedGroup::host(group),
                        joins: joins.iter().map(|e| encoded(e, rp)).collect(),
                        prunes: prunes.iter().map(|e| encoded(e, rp)).collect(),
                    }],
                };
                self.packet(
                    *ifindex,
                    neighbor(*ifindex, *n),
                    ALL_PIM_ROUTERS,
                    &Message::JoinPrune(jp),
                );
            }
            Step::Assert {
                ifindex,
                n,
                group,
                source,
                rpt,
                metric,
            } => {
                let a = Assert {
                    group: EncodedGroup::host(g(*group)),
                    source: source.map_or(Ipv4Addr::UNSPECIFIED, src),
                    rpt: *rpt,
                    preference: [0, 100, 110, 0x7fff_ffff][usize::from(*metric)],
                    metric: [0, 1, 5, u32::MAX][usize::from(*metric)],
                };
                self.packet(
                    *ifindex,
                    neighbor(*ifindex, *n),
                    ALL_PIM_ROUTERS,
                    &Message::Assert(a),
                );
            }
            Step::Data {
                ifindex,
                source,
                group,
            } => {
                let (source, group) = (src(*source), g(*group));
                self.both(|p, now| {
                    p.handle_event(
                        now,
                        PimInput::Data {
                            ifindex: *ifindex,
                            source,
                            group,
                        },
                    )
                });
            }
            Step::Local {
                ifindex,
                join,
                source,
                group,
            } => {
                let key = TreeKey {
                    source: source.map(src),
                    group: g(*group),
                };
                let ev = if *join {
                    PimInput::LocalJoin {
                        ifindex: *ifindex,
                        key,
                    }
                } else {
                    PimInput::LocalLeave {
                        ifindex: *ifindex,
                        key,
                    }
                };
                self.both(|p, now| p.handle_event(now, ev.clone()));
            }
            Step::Members { ifindex, keys } => {
                let members: Vec<TreeKey> = keys
                    .iter()
                    .map(|(s, gr)| TreeKey {
                        source: s.map(src),
                        group: g(*gr),
                    })
                    .collect();
                let ev = PimInput::LocalMembers {
                    ifindex: *ifindex,
                    members,
                };
                self.both(|p, now| p.handle_event(now, ev.clone()));
            }
            Step::Excludes { ifindex, sg } => {
                let excludes = sg.iter().map(|(s, gr)| (src(*s), g(*gr))).collect();
                let ev = PimInput::LocalExcludes {
                    ifindex: *ifindex,
                    excludes,
                };
                self.both(|p, now| p.handle_event(now, ev.clone()));
            }
            Step::Time(i) => {
                let ms = [10, 300, 1_000, 3_000, 20_000, 70_000, 220_000][usize::from(*i)];
                self.advance(Duration::from_millis(ms));
            }
            Step::AnswerRpf(how) => {
                // All of them, or the oldest one, or the oldest with no route.
                let n = if *how == 0 { self.pending.len() } else { 1 };
                let targets: Vec<Ipv4Addr> =
                    self.pending.drain(..n.min(self.pending.len())).collect();
                for target in targets {
                    let result = if *how == 2 {
                        None
                    } else {
                        route(self.version, target)
                    };
                    self.both(|p, now| p.handle_event(now, PimInput::Rpf { target, result }));
                }
            }
            Step::RoutesChanged => {
                self.version = self.version.wrapping_add(1);
                self.both(|p, now| p.handle_event(now, PimInput::RoutesChanged));
            }
            Step::Config(v) => self.both(|p, now| p.handle_config(now, config(*v))),
            Step::Down(ifindex) => self
                .both(|p, now| p.handle_event(now, PimInput::InterfaceDown { ifindex: *ifindex })),
            Step::Up(ifindex) => self.up(*ifindex),
            Step::NullRegister { source, group } => {
                let payload = null_register(src(*source), g(*group), false);
                self.both(|p, now| p.handle_packet(now, 2, neighbor(2, 0), our_addr(2), &payload));
            }
            Step::RegisterStop { source, group } => {
                let m = Message::RegisterStop(RegisterStop {
                    group: EncodedGroup::host(g(*group)),
                    source: src(*source),
                });
                self.packet(2, REMOTE_RP, our_addr(2), &m);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_reconcile_matches_the_full_one(steps in prop::collection::vec(step(), 1..80)) {
        let mut pair = Pair::new();
        for s in &steps {
            pair.run(s);
        }
    }
}

/// A hand-written run through the cases the random one reaches only
/// sometimes: a tree built through a neighbor, a source tree switch, an
/// assert on the RPF interface, the route moving, a neighbor leaving.
#[test]
fn a_scripted_run_matches_the_full_one() {
    let mut p = Pair::new();
    let steps = [
        Step::Hello {
            ifindex: 2,
            n: 0,
            gen_id: 1,
            holdtime: 1,
            priority: 1,
        },
        Step::Hello {
            ifindex: 3,
            n: 0,
            gen_id: 1,
            holdtime: 1,
            priority: 1,
        },
        Step::Hello {
            ifindex: 1,
            n: 0,
            gen_id: 1,
            holdtime: 1,
            priority: 0,
        },
        Step::JoinPrune {
            ifindex: 1,
            n: 0,
            to_us: true,
            group: 0,
            joins: vec![Entry::StarG, Entry::Sg(2)],
            prunes: vec![Entry::SgRpt(3)],
            holdtime: 0,
        },
        Step::AnswerRpf(0),
        Step::Data {
            ifindex: 2,
            source: 2,
            group: 0,
        },
        Step::AnswerRpf(0),
        Step::Assert {
            ifindex: 2,
            n: 1,
            group: 0,
            source: Some(2),
            rpt: false,
            metric: 0,
        },
        Step::Time(3),
        Step::RoutesChanged,
        Step::AnswerRpf(0),
        Step::Hello {
            ifindex: 2,
            n: 0,
            gen_id: 2,
            holdtime: 1,
            priority: 1,
        },
        Step::Time(5),
        Step::Hello {
            ifindex: 3,
            n: 0,
            gen_id: 1,
            holdtime: 0,
            priority: 1,
        },
        Step::Time(6),
    ];
    for s in &steps {
        p.run(s);
    }
}
