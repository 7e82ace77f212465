//! One builder for the namespace labs of the interop tests: which
//! namespaces exist (plain hosts, FRR routers, the one MCR runs in), the
//! veth links between them with their addresses, extra addresses, unicast
//! routes, each FRR router's config and MCR's config. Written as a
//! description, built in one call, torn down when the [`Lab`] drops (also
//! while a test panics, and also when building itself fails half-way:
//! every namespace and daemon is owned from the moment it exists).
//!
//! ```ignore
//! let lab = LabSpec::new("pimf")
//!     .frr("r1")
//!     .host("mcr")
//!     .link(("mcr", "m-r1", MCR), ("r1", "r1-m", R1))
//!     .stub("h1", "h1-m", H1, ("mcr", "m-h1", MCR_H1)) // host, link, default route
//!     .route("r1", "10.207.1.0/24", MCR)          // FRR: `ip route` in its config
//!     .frr_loopback_rp("r1", RP)                  // lo /32, `ip pim`, `ip pim rp`
//!     .frr_pim_link("r1", "r1-m")                 // `ip pim`, 1 s Hellos
//!     .mcr("mcr", &format!("{{ {} }}", mcr_pim(&["m-r1", "m-h1"], RP, "")))
//!     .build();
//! lab.frr("r1").json("show ip pim neighbor");
//! lab.mcr().ctl_ok(&["pim", "rp"]);
//! lab.ns("h1");                                   // any node's namespace
//! ```
//!
//! Names: a node `x` of a lab tagged `t` lives in namespace
//! `mcrt-<pid>-<n>-t-x` (FRR routers in `mcrt-<pid>-<n>-frr-t-x`, which is
//! also their FRR pathspace), so labs of parallel tests and processes never
//! meet. Keep tags and node names short: the FRR pathspace ends up in unix
//! socket paths.
//!
//! Every link is a veth pair with a /24 on each end. Routes on an FRR
//! router go into its config as `ip route` lines (staticd), so that pimd's
//! RPF sees them as FRR would in the field; routes elsewhere are kernel
//! routes. Build order: namespaces, links, addresses, kernel routes, FRR
//! routers (in the order declared, each started and its config applied),
//! then MCR, which therefore sees every interface at its start.
//!
//! Adopting it in a test that wires its own lab: replace the `Netns::new`,
//! `FrrRouter::new`, `veth`, `ip route` and `r.start(config)` lines by one
//! [`LabSpec`], keep the addresses as constants, and read `lab.r1` as
//! `lab.frr("r1")`, `lab.h1` as `lab.ns("h1")`, `lab.mcr` as `lab.mcr()`.
//! The test's own helpers can stay methods: `impl Lab { … }` in the test
//! file is allowed (same crate). A test that keeps a struct of its own
//! moves the parts out with [`Lab::take_mcr`], [`Lab::take_frr`] and
//! [`Lab::take_ns`] and keeps the rest of the `Lab` as a field, declared
//! so that MCR drops before the routers and the routers before the
//! namespaces (see `pim_frr.rs`, and [`super::pim_lab::TransitLab`], the
//! ready-made h1 ── r1 (RP) ── MCR ── r2 ── h2 lab, built on this).
//! [`LabSpec::line`] starts the common two-router lab, h1 ── r1 ── MCR ──
//! h2 or h1 ── MCR ── r1 ── h2, with its addresses ([`LineAddrs`]).
//!
//! An FRR router's frr.conf is its static routes, then its fragments
//! (`frr_config`, `frr_pim*`, `frr_igmp`, `frr_rp`, `frr_loopback_rp`) in
//! call order. MCR's config is text (`mcr_pim` and `mcr_igmp_querier`
//! write the usual sections); `mcr_metrics` gives it a Prometheus endpoint
//! read with [`Lab::metric`], `fault_injection` allows `mcrctl fault`.

use std::net::Ipv4Addr;

use super::daemon::{metric_sample, scrape_metrics, Daemon, DaemonOpts};
use super::frr::FrrRouter;
use super::{unique_port, veth, Netns};

/// One end of a link: (node, interface name, address).
pub type End<'a> = (&'a str, &'a str, Ipv4Addr);

/// The description of a lab; see the module docs.
#[derive(Default)]
pub struct LabSpec {
    tag: String,
    /// (node, runs FRR), in declaration order.
    nodes: Vec<(String, bool)>,
    /// (node, ifname, addr) pairs.
    links: Vec<[(String, String, Ipv4Addr); 2]>,
    /// (node, device, cidr).
    addrs: Vec<(String, String, String)>,
    /// (node, destination, gateway).
    routes: Vec<(String, String, Ipv4Addr)>,
    /// (router, config fragment), in order.
    frr_conf: Vec<(String, String)>,
    /// (node, config, fault injection).
    mcr: Option<(String, String, bool)>,
    /// Give MCR a Prometheus endpoint.
    metrics: bool,
}

impl LabSpec {
    /// A lab whose namespace names carry `tag`.
    pub fn new(tag: &str) -> LabSpec {
        LabSpec {
            tag: tag.to_string(),
            ..Default::default()
        }
    }

    /// A plain namespace (a host, or where MCR runs).
    pub fn host(mut self, name: &str) -> LabSpec {
        self.nodes.push((name.to_string(), false));
        self
    }

    /// Several plain namespaces.
    pub fn hosts(self, names: &[&str]) -> LabSpec {
        names.iter().fold(self, |s, n| s.host(n))
    }

    /// An FRR router (zebra, staticd, pimd): a namespace set up for
    /// multicast routing, see [`FrrRouter::new`].
    pub fn frr(mut self, name: &str) -> LabSpec {
        self.nodes.push((name.to_string(), true));
        self
    }

    /// A veth link between two nodes, a /24 on each end.
    pub fn link(mut self, a: End, b: End) -> LabSpec {
        let own = |(n, i, x): End| (n.to_string(), i.to_string(), x);
        self.links.push([own(a), own(b)]);
        self
    }

    /// A host `name` on a link of its own to a router (`gw`: the router's
    /// node, interface and address), with its default route via `gw`.
    pub fn stub(self, name: &str, ifname: &str, addr: Ipv4Addr, gw: End) -> LabSpec {
        self.host(name)
            .link(gw, (name, ifname, addr))
            .route(name, "default", gw.2)
    }

    /// `addr` as a /32 on `dev` of `node` (a loopback RP, a secondary).
    pub fn addr(mut self, node: &str, dev: &str, addr: Ipv4Addr) -> LabSpec {
        self.addrs
            .push((node.to_string(), dev.to_string(), format!("{addr}/32")));
        self
    }

    /// A unicast route on `node` to `dst` (`default`, `a.b.c.d/n`) via
    /// `via`. On an FRR router it is a static route of its config.
    pub fn route(mut self, node: &str, dst: &str, via: Ipv4Addr) -> LabSpec {
        self.routes.push((node.to_string(), dst.to_string(), via));
        self
    }

    /// Several routes on one node.
    pub fn routes(self, node: &str, routes: &[(&str, Ipv4Addr)]) -> LabSpec {
        routes.iter().fold(self, |s, (d, v)| s.route(node, d, *v))
    }

    /// Raw lines appended to router `node`'s frr.conf.
    pub fn frr_config(mut self, node: &str, text: &str) -> LabSpec {
        self.frr_conf.push((node.to_string(), text.to_string()));
        self
    }

    /// `interface <ifname>` with `ip pim` (a loopback RP, a source's LAN)
    /// and `extra` lines.
    pub fn frr_interface(self, node: &str, ifname: &str, extra: &[&str]) -> LabSpec {
        let mut text = format!("interface {ifname}\n ip pim\n");
        for l in extra {
            text.push_str(&format!(" {l}\n"));
        }
        text.push_str("!\n");
        self.frr_config(node, &text)
    }

    /// `ip pim` on `ifname`.
    pub fn frr_pim(self, node: &str, ifname: &str) -> LabSpec {
        self.frr_interface(node, ifname, &[])
    }

    /// `ip pim` with 1 s Hellos on a link to another PIM router, so that
    /// adjacencies form within a few seconds.
    pub fn frr_pim_link(self, node: &str, ifname: &str) -> LabSpec {
        self.frr_interface(node, ifname, &["ip pim hello 1"])
    }

    /// `ip pim` and an IGMP querier (2 s queries) toward a member host.
    pub fn frr_igmp(self, node: &str, ifname: &str) -> LabSpec {
        self.frr_interface(node, ifname, &["ip igmp", "ip igmp query-interval 2"])
    }

    /// `rp` as the router's static RP for 239.0.0.0/8.
    pub fn frr_rp(self, node: &str, rp: Ipv4Addr) -> LabSpec {
        self.frr_config(node, &format!("ip pim rp {rp} 239.0.0.0/8\n"))
    }

    /// `rp` as the router's loopback address (a /32 on `lo`, with `ip
    /// pim`) and its RP for 239.0.0.0/8: an RP that stays up whichever
    /// link goes down.
    pub fn frr_loopback_rp(self, node: &str, rp: Ipv4Addr) -> LabSpec {
        self.addr(node, "lo", rp)
            .frr_pim(node, "lo")
            .frr_rp(node, rp)
    }

    /// Run MCR in `node` with `config` once everything else is up.
    pub fn mcr(mut self, node: &str, config: &str) -> LabSpec {
        self.mcr = Some((node.to_string(), config.to_string(), false));
        self
    }

    /// Allow `mcrctl fault …` in MCR.
    pub fn fault_injection(mut self) -> LabSpec {
        if let Some(m) = self.mcr.as_mut() {
            m.2 = true;
        }
        self
    }

    /// Give MCR a Prometheus endpoint on a port of this test's own (see
    /// [`Lab::metric`]); its `metrics` section is added to the config.
    pub fn mcr_metrics(mut self) -> LabSpec {
        self.metrics = true;
        self
    }

    /// Build it all; panics (after tearing down what was built) if a step
    /// fails.
    pub fn build(self) -> Lab {
        let mut lab = Lab::default();
        let t = &self.tag;
        for (name, frr) in &self.nodes {
            if *frr {
                lab.routers
                    .push((name.clone(), FrrRouter::new(&format!("{t}-{name}"))));
            } else {
                lab.nss
                    .push((name.clone(), Netns::new(&format!("{t}-{name}"))));
            }
        }
        for [(na, ia, xa), (nb, ib, xb)] in &self.links {
            let (a, b) = (lab.ns(na), lab.ns(nb));
            veth(a, ia, &format!("{xa}/24"), b, ib, &format!("{xb}/24"));
        }
        for (node, dev, cidr) in &self.addrs {
            lab.ns(node).ip(&["addr", "add", cidr, "dev", dev]);
        }
        let mut frr_text: Vec<(String, String)> = lab
            .routers
            .iter()
            .map(|(n, _)| (n.clone(), String::new()))
            .collect();
        let text_of = |t: &[(String, String)], node: &str| t.iter().position(|(n, _)| n == node);
        for (node, dst, via) in &self.routes {
            if let Some(i) = text_of(&frr_text, node) {
                let dst = if dst == "default" { "0.0.0.0/0" } else { dst };
                frr_text[i].1.push_str(&format!("ip route {dst} {via}\n"));
            } else {
                lab.ns(node)
                    .ip(&["route", "add", dst, "via", &via.to_string()]);
            }
        }
        for (node, text) in &self.frr_conf {
            let i = text_of(&frr_text, node)
                .unwrap_or_else(|| panic!("lab {t}: {node} is not an FRR router"));
            frr_text[i].1.push_str(text);
        }
        for ((_, r), (_, text)) in lab.routers.iter_mut().zip(&frr_text) {
            r.start(text);
        }
        if let Some((node, config, fault_injection)) = &self.mcr {
            let mut config = config.clone();
            if self.metrics {
                let port = unique_port();
                let body = config
                    .trim_end()
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("lab {t}: MCR's config is not one object: {config}"));
                config = format!("{body}, metrics: {{ listen: \"127.0.0.1:{port}\" }} }}");
                lab.metrics_port = Some(port);
            }
            let d = Daemon::start(
                lab.ns(node),
                DaemonOpts {
                    config: Some(&config),
                    fault_injection: *fault_injection,
                    ..Default::default()
                },
            );
            lab.mcr = Some(d);
            lab.mcr_node = node.clone();
        }
        lab
    }
}

/// A running lab. Fields drop in declaration order: MCR first (its
/// goodbyes go out while the links still exist), then the FRR routers,
/// then the other namespaces.
#[derive(Default)]
pub struct Lab {
    mcr: Option<Daemon>,
    routers: Vec<(String, FrrRouter)>,
    nss: Vec<(String, Netns)>,
    /// Where MCR's Prometheus endpoint listens (in MCR's namespace).
    metrics_port: Option<u16>,
    mcr_node: String,
}

impl Lab {
    /// The namespace of node `name`, an FRR router's included.
    pub fn ns(&self, name: &str) -> &Netns {
        self.nss
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| ns)
            .or_else(|| {
                self.routers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, r)| &r.ns)
            })
            .unwrap_or_else(|| panic!("the lab has no node {name}"))
    }

    /// FRR router `name`.
    pub fn frr(&self, name: &str) -> &FrrRouter {
        self.routers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("the lab has no FRR router {name}"))
    }

    /// The MCR daemon (built with [`LabSpec::mcr`]).
    pub fn mcr(&self) -> &Daemon {
        self.mcr.as_ref().expect("the lab runs no MCR")
    }

    pub fn mcr_mut(&mut self) -> &mut Daemon {
        self.mcr.as_mut().expect("the lab runs no MCR")
    }

    /// One sample of MCR's Prometheus endpoint (built with
    /// [`LabSpec::mcr_metrics`]); `None` while it is not exported.
    pub fn metric(&self, name_and_labels: &str) -> Option<f64> {
        let port = self
            .metrics_port
            .expect("the lab's MCR has no metrics endpoint");
        metric_sample(
            &scrape_metrics(self.ns(&self.mcr_node), port),
            name_and_labels,
        )
    }

    /// Move the MCR daemon out (to stop it on its own, or to keep it in a
    /// struct of the test's); the caller then owns its teardown order.
    pub fn take_mcr(&mut self) -> Daemon {
        self.mcr.take().expect("the lab runs no MCR")
    }

    /// Move router `name` out; see [`Lab::take_mcr`].
    pub fn take_frr(&mut self, name: &str) -> FrrRouter {
        take(&mut self.routers, name, "FRR router")
    }

    /// Move plain namespace `name` out; see [`Lab::take_mcr`].
    pub fn take_ns(&mut self, name: &str) -> Netns {
        take(&mut self.nss, name, "namespace")
    }
}

fn take<T>(nodes: &mut Vec<(String, T)>, name: &str, what: &str) -> T {
    let i = nodes
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the lab has no {what} {name}"));
    nodes.remove(i).1
}

/// MCR's `pim` section: PIM on `interfaces` with 1 s Hellos and a 50 ms
/// triggered Hello delay (adjacencies within a second or two), `rp` the
/// static RP of 239.0.0.0/8, and `extra` fields (`join_prune_interval:
/// 10`, `spt_switchover: "never"`) when not empty.
pub fn mcr_pim(interfaces: &[&str], rp: Ipv4Addr, extra: &str) -> String {
    let ifs: Vec<String> = interfaces
        .iter()
        .map(|i| format!("{{ name: \"{i}\", hello_interval: 1, triggered_hello_delay: 0.05 }}"))
        .collect();
    format!(
        "pim: {{ enabled: true, interfaces: [ {} ], \
         static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{rp}\" }} ]{} }}",
        ifs.join(", "),
        more(extra)
    )
}

/// MCR's `igmp` section: querier on `interface` every 2 s with a 1 s
/// response time, and `extra` fields when not empty.
pub fn mcr_igmp_querier(interface: &str, extra: &str) -> String {
    format!(
        "igmp: {{ querier_interfaces: [\"{interface}\"], query_interval: 2, \
         query_response_interval: 1{} }}",
        more(extra)
    )
}

/// `, fields` to append to an object's members, or nothing.
fn more(fields: &str) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(", {fields}")
    }
}

/// Which router of a [`LabSpec::line`] the source host h1 hangs off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstHop {
    /// h1 ── r1 (FRR) ── MCR ── h2.
    Frr,
    /// h1 ── MCR ── r1 (FRR) ── h2.
    Mcr,
}

/// The addresses of a [`LabSpec::line`] on `10.<net>.0.0/16`: h1's LAN is
/// `10.<net>.1.0/24`, the routers' link `10.<net>.12.0/24`, h2's LAN
/// `10.<net>.2.0/24`. `const`, so that a test can name them as constants.
#[derive(Clone, Copy, Debug)]
pub struct LineAddrs {
    pub h1: Ipv4Addr,
    /// The first-hop router's address on h1's LAN.
    pub h1_gw: Ipv4Addr,
    /// r1's address on the link to MCR.
    pub r1: Ipv4Addr,
    /// MCR's address on the link to r1.
    pub mcr: Ipv4Addr,
    /// The last-hop router's address on h2's LAN.
    pub h2_gw: Ipv4Addr,
    pub h2: Ipv4Addr,
}

impl LineAddrs {
    pub const fn new(net: u8) -> LineAddrs {
        LineAddrs {
            h1: Ipv4Addr::new(10, net, 1, 10),
            h1_gw: Ipv4Addr::new(10, net, 1, 1),
            r1: Ipv4Addr::new(10, net, 12, 1),
            mcr: Ipv4Addr::new(10, net, 12, 2),
            h2_gw: Ipv4Addr::new(10, net, 2, 1),
            h2: Ipv4Addr::new(10, net, 2, 10),
        }
    }
}

impl LabSpec {
    /// The two-router lab most FRR tests use: h1 ── first hop ── other ──
    /// h2, FRR router `r1` and MCR (node `mcr`) in the order `first_hop`
    /// says, addressed as [`LineAddrs::new`]`(net)`. Each host routes by
    /// default through its router and each router reaches the far host's
    /// LAN through the other. Interfaces are named `<node>-<peer>` with
    /// MCR as `m` (`h1-r1`, `r1-m`, `m-h2`, ...). Nothing of PIM or IGMP
    /// yet: add it, any other routes and `.mcr(...)`, then build.
    pub fn line(tag: &str, net: u8, first_hop: FirstHop) -> LabSpec {
        let a = LineAddrs::new(net);
        let (h1_side, h2_side) = match first_hop {
            FirstHop::Frr => ("r1", "m"),
            FirstHop::Mcr => ("m", "r1"),
        };
        let node = |s: &'static str| if s == "m" { "mcr" } else { s };
        let h1_if = format!("h1-{h1_side}");
        let h1_gw_if = format!("{h1_side}-h1");
        let h2_if = format!("h2-{h2_side}");
        let h2_gw_if = format!("{h2_side}-h2");
        let (to_h1, to_h2) = (format!("10.{net}.1.0/24"), format!("10.{net}.2.0/24"));
        let (h1_router, h2_router) = (node(h1_side), node(h2_side));
        let via = |router: &str| if router == "r1" { a.mcr } else { a.r1 };
        LabSpec::new(tag)
            .frr("r1")
            .host("mcr")
            .stub("h1", &h1_if, a.h1, (h1_router, &h1_gw_if, a.h1_gw))
            .link(("r1", "r1-m", a.r1), ("mcr", "m-r1", a.mcr))
            .stub("h2", &h2_if, a.h2, (h2_router, &h2_gw_if, a.h2_gw))
            .route(h2_router, &to_h1, via(h2_router))
            .route(h1_router, &to_h2, via(h1_router))
    }
}
