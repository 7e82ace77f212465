//! PIM interop labs with FRR (issue 10): MCR as a transit router between two
//! FRR routers, and a host's group membership read on a thread.
//!
//! ```text
//! h1 ── r1 (FRR, RP on lo) ── m-r1 [MCR] m-r2 ── r2 (FRR, last hop) ── h2
//!                                    m-h3 ── h3   (only with `.with_h3()`)
//! ```
//!
//! Every address is `10.<net>.x.y`, with `<net>` chosen per test file so
//! that two labs never meet (see [`TransitAddrs`]). Unicast routing is
//! static on every side, so each router's RPF toward the RP (r1's loopback)
//! and toward h1's subnet points across MCR, and every PIM hello runs at
//! 1 s so adjacencies form within a few seconds. FRR r2 runs IGMP toward h2
//! (query interval 2 s); MCR runs PIM on m-r1 and m-r2 with a static RP for
//! 239.0.0.0/8 and, with `.with_h3()`, an IGMP querier on m-h3.
//!
//! Build one with [`TransitLab::new`], adjust it with the builder methods,
//! then [`TransitLab::build`] (a [`LabSpec`] underneath); everything
//! (namespaces, FRR daemons, MCR) is torn down when the returned
//! [`Transit`] drops. New FRR tests that need this shape should use it;
//! h1 ── one router ── the other ── h2 is [`LabSpec::line`]; other shapes
//! are a [`LabSpec`] of their own (`tests/common/lab.rs`).
//!
//! [`Member`] and [`SeqReceiver`] are the hosts' group sockets the FRR tests
//! read from (both views of one [`Recorder`]); [`wait`] is their "poll
//! until true or fail" helper; [`wait_igmp_group`] and [`mcr_sg`] read
//! MCR's side of a lab.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr::pim::instance::UpstreamSnapshot;

use super::daemon::Daemon;
use super::frr::FrrRouter;
use super::lab::{mcr_igmp_querier, mcr_pim, LabSpec};
#[allow(unused_imports)] // for tests that bind their own member socket
pub use super::recorder::udp_bound_in;
use super::recorder::Recorder;
use super::Netns;

/// The addresses of a transit lab on `10.<net>.0.0/16`.
#[derive(Clone, Copy, Debug)]
pub struct TransitAddrs {
    pub net: u8,
    /// h1, the source host behind r1 (10.net.1.10), and r1's side (.1).
    pub h1: Ipv4Addr,
    pub r1_h1: Ipv4Addr,
    /// The r1 ⇄ MCR link, 10.net.12.0/24: r1 is .1, MCR's m-r1 is .2.
    pub r1: Ipv4Addr,
    pub mcr1: Ipv4Addr,
    /// The MCR ⇄ r2 link, 10.net.23.0/24: MCR's m-r2 is .2, r2 is .3.
    pub mcr2: Ipv4Addr,
    pub r2: Ipv4Addr,
    /// h2, the member host behind r2 (10.net.2.10), and r2's side (.1).
    pub r2_h2: Ipv4Addr,
    pub h2: Ipv4Addr,
    /// h3, the member host behind MCR's m-h3 (10.net.3.10), and MCR's side (.1).
    pub mcr3: Ipv4Addr,
    pub h3: Ipv4Addr,
    /// The RP: r1's loopback address 10.net.255.1.
    pub rp: Ipv4Addr,
}

impl TransitAddrs {
    pub fn new(net: u8) -> TransitAddrs {
        let a = |c: u8, d: u8| Ipv4Addr::new(10, net, c, d);
        TransitAddrs {
            net,
            h1: a(1, 10),
            r1_h1: a(1, 1),
            r1: a(12, 1),
            mcr1: a(12, 2),
            mcr2: a(23, 2),
            r2: a(23, 3),
            r2_h2: a(2, 1),
            h2: a(2, 10),
            mcr3: a(3, 1),
            h3: a(3, 10),
            rp: a(255, 1),
        }
    }

    /// `10.net.<c>.0/24`.
    pub fn subnet(&self, c: u8) -> String {
        format!("10.{}.{c}.0/24", self.net)
    }
}

/// How to build a transit lab; see the module docs.
pub struct TransitLab {
    addrs: TransitAddrs,
    tag: String,
    join_prune_interval: u64,
    h3: bool,
    fault_injection: bool,
}

/// A running transit lab. Fields drop in declaration order: MCR first, then
/// the FRR routers, then the host and MCR namespaces.
pub struct Transit {
    pub mcr: Daemon,
    pub r1: FrrRouter,
    pub r2: FrrRouter,
    pub h1: Netns,
    pub h2: Netns,
    /// Present when built `.with_h3()`.
    pub h3: Option<Netns>,
    pub mcr_ns: Netns,
    pub addrs: TransitAddrs,
}

impl TransitLab {
    /// A lab on `10.<net>.0.0/16` whose namespaces carry `tag` (short: it
    /// becomes part of namespace names and FRR pathspaces).
    /// MCR's Join/Prune period defaults to 10 s.
    pub fn new(net: u8, tag: &str) -> TransitLab {
        TransitLab {
            addrs: TransitAddrs::new(net),
            tag: tag.to_string(),
            join_prune_interval: 10,
            h3: false,
            fault_injection: false,
        }
    }

    /// MCR's `join_prune_interval` in seconds.
    pub fn join_prune_interval(mut self, secs: u64) -> TransitLab {
        self.join_prune_interval = secs;
        self
    }

    /// Add host h3 on MCR's m-h3, where MCR is IGMP querier (query every
    /// 2 s, 1 s response time).
    pub fn with_h3(mut self) -> TransitLab {
        self.h3 = true;
        self
    }

    /// Start MCR with fault injection (`mcrctl fault …`) allowed.
    pub fn fault_injection(mut self) -> TransitLab {
        self.fault_injection = true;
        self
    }

    pub fn build(self) -> Transit {
        let a = self.addrs;
        let with_h3 = self.h3;
        let mut spec = LabSpec::new(&self.tag)
            .frr("r1")
            .frr("r2")
            .host("mcr")
            .stub("h1", "h1-r1", a.h1, ("r1", "r1-h1", a.r1_h1))
            .link(("r1", "r1-m", a.r1), ("mcr", "m-r1", a.mcr1))
            .link(("mcr", "m-r2", a.mcr2), ("r2", "r2-m", a.r2))
            .stub("h2", "h2-r2", a.h2, ("r2", "r2-h2", a.r2_h2));
        if with_h3 {
            spec = spec.stub("h3", "h3-m", a.h3, ("mcr", "m-h3", a.mcr3));
        }
        let (rp32, s1, s2, s12, s23) = (
            format!("{}/32", a.rp),
            a.subnet(1),
            a.subnet(2),
            a.subnet(12),
            a.subnet(23),
        );
        let igmp = if with_h3 {
            format!(", {}", mcr_igmp_querier("m-h3", ""))
        } else {
            String::new()
        };
        let config = format!(
            "{{ {}{igmp} }}",
            mcr_pim(
                &["m-r1", "m-r2"],
                a.rp,
                &format!("join_prune_interval: {}", self.join_prune_interval)
            )
        );
        let mut spec = spec
            // MCR's unicast routes toward the RP and both hosts: its RPF.
            .routes("mcr", &[(&rp32, a.r1), (&s1, a.r1), (&s2, a.r2)])
            .routes("r1", &[(&s2, a.mcr1), (&s23, a.mcr1)])
            .frr_loopback_rp("r1", a.rp)
            .frr_pim("r1", "r1-h1")
            .frr_pim_link("r1", "r1-m")
            .routes("r2", &[(&rp32, a.mcr2), (&s1, a.mcr2), (&s12, a.mcr2)])
            .frr_pim_link("r2", "r2-m")
            .frr_igmp("r2", "r2-h2")
            .frr_rp("r2", a.rp)
            .mcr("mcr", &config);
        if self.fault_injection {
            spec = spec.fault_injection();
        }
        let mut lab = spec.build();
        Transit {
            mcr: lab.take_mcr(),
            r1: lab.take_frr("r1"),
            r2: lab.take_frr("r2"),
            h1: lab.take_ns("h1"),
            h2: lab.take_ns("h2"),
            h3: with_h3.then(|| lab.take_ns("h3")),
            mcr_ns: lab.take_ns("mcr"),
            addrs: a,
        }
    }
}

impl Transit {
    /// Waits until r1 and r2 each list MCR as a PIM neighbor; panics after
    /// `timeout`. Returns how long it took.
    pub fn wait_adjacencies(&self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let a = self.addrs;
        super::wait_for(timeout, || {
            let n1 = self.r1.try_json("show ip pim neighbor json").ok()?;
            let n2 = self.r2.try_json("show ip pim neighbor json").ok()?;
            n1.get("r1-m")?.get(a.mcr1.to_string())?;
            n2.get("r2-m")?.get(a.mcr2.to_string()).map(|_| ())
        })
        .unwrap_or_else(|| panic!("no PIM adjacencies r1-MCR and MCR-r2 within {timeout:?}"));
        t0.elapsed()
    }
}

/// A host's member socket for a group, read on a thread inside its
/// namespace (a [`Recorder`]). Joining sends the host's IGMP report;
/// dropping the member (or [`Member::leave`]) closes the socket, which
/// sends the leave.
pub struct Member {
    rec: Recorder,
    /// When the join was sent.
    pub joined_at: Instant,
}

impl Member {
    /// Join `group` on `port` through the interface with address `local`,
    /// from `source` only when given (IGMPv3 INCLUDE).
    pub fn join(
        ns: &Netns,
        local: Ipv4Addr,
        group: Ipv4Addr,
        port: u16,
        source: Option<Ipv4Addr>,
    ) -> Member {
        let rec = Recorder::start(ns, port, move |s| match source {
            None => s.join_multicast_v4(&group, &local),
            Some(src) => s.join_ssm_v4(&src, &group, &local),
        });
        Member {
            joined_at: rec.joined_at,
            rec,
        }
    }

    /// Every datagram received so far: arrival time and source address.
    pub fn received(&self) -> Vec<(Instant, Ipv4Addr)> {
        self.rec
            .received()
            .into_iter()
            .map(|d| (d.at, d.source))
            .collect()
    }

    /// Leave (close the socket); returns when the leave was sent.
    pub fn leave(&mut self) -> Instant {
        self.rec.stop()
    }
}

/// Polls `f` until it yields a value, failing the test with `what` after
/// `timeout`.
pub fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    super::wait_for(timeout, f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Wait until MCR's IGMP querier lists a member of `group` on
/// `interface` (`mcrctl igmp groups`), so that data arriving later has
/// somewhere to go.
pub fn wait_igmp_group(mcr: &Daemon, interface: &str, group: Ipv4Addr) {
    wait(
        &format!("a member of {group} on {interface} at MCR"),
        Duration::from_secs(10),
        || {
            let rows: Vec<serde_json::Value> = mcr.ctl_json(&["igmp", "groups"]);
            rows.iter()
                .any(|r| r["interface"] == interface && r["group"] == group.to_string())
                .then_some(())
        },
    );
}

/// MCR's PIM route for (`source`, `group`) (`mcrctl pim routes`); fails
/// the test, listing the routes, when there is none.
pub fn mcr_sg(mcr: &Daemon, source: Ipv4Addr, group: Ipv4Addr) -> UpstreamSnapshot {
    let routes: Vec<UpstreamSnapshot> = mcr.ctl_json(&["pim", "routes"]);
    routes
        .iter()
        .find(|r| r.source == Some(source) && r.group == group)
        .cloned()
        .unwrap_or_else(|| panic!("no ({source},{group}) at MCR: {routes:?}"))
}

/// One mcrgen datagram at a [`SeqReceiver`].
#[derive(Clone, Copy, Debug)]
pub struct Got {
    pub at: Instant,
    pub source: Ipv4Addr,
    /// The IP TTL it arrived with, which tells which tree (how many
    /// routers) it came down.
    pub ttl: u8,
    /// The mcrgen sequence number, for counting losses and duplicates.
    pub seq: u64,
}

/// A host's member socket (a [`Recorder`]) that keeps every mcrgen
/// datagram's source, IP TTL and sequence number. Datagrams that are not
/// mcrgen's are skipped. Dropping it leaves the group.
pub struct SeqReceiver {
    rec: Recorder,
    /// When the join was sent.
    pub joined_at: Instant,
}

impl SeqReceiver {
    /// Join `group` on `port` through the interface with address `local`.
    pub fn join(ns: &Netns, local: Ipv4Addr, group: Ipv4Addr, port: u16) -> SeqReceiver {
        let rec = Recorder::start(ns, port, move |s| s.join_multicast_v4(&group, &local));
        SeqReceiver {
            joined_at: rec.joined_at,
            rec,
        }
    }

    /// Every datagram so far, in arrival order.
    pub fn received(&self) -> Vec<Got> {
        self.rec
            .received()
            .into_iter()
            .filter_map(|d| {
                Some(Got {
                    at: d.at,
                    source: d.source,
                    ttl: d.ttl.unwrap_or(0),
                    seq: d.seq?,
                })
            })
            .collect()
    }
}
