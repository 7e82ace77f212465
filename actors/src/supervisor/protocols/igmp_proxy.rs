//! IgmpProxyActor: the shell of the IGMP proxy (RFC 4605) configured by
//! `igmp.proxy`.
//!
//! Owns the proxy's upstream I/O and its forwarding routes. The downstream
//! interfaces run ordinary queriers (IgmpActors; RFC 4605 §4.1 router
//! side); each tells this actor its memberships. This actor merges them
//! (`mcr::igmp::ProxyMembership`, RFC 4605 §4.1 with the RFC 3376 §3.2
//! rules), drives an [`IgmpHost`] on the upstream interface with the
//! result (RFC 4605 §4.1 host side: unsolicited reports, answers to
//! queries, leaves), and puts one (*,G) route of origin `igmp` per merged
//! group into the RIB, from the upstream interface with no outputs of its
//! own: the RIB adds every interface the route names whose members accept
//! a source (RFC 4605 §4.2 forwarding, in route mode: source kept, TTL −
//! 1). The route names the downstream interfaces where MCR is the querier:
//! §4.2 leaves a LAN with a querier of lower address to that router
//! (which forwards there itself), and an interface that is not downstream
//! is not the proxy's to serve. The memberships of every downstream
//! interface are still reported upstream.
//!
//! Data from a source on a downstream link goes upstream, and to the
//! other served downstream interfaces with members (RFC 4605 §4.2): a
//! packet socket per downstream interface sees the headers of the
//! multicast data there; a source whose unicast route points back out of
//! that interface (a local source, not traffic another router forwarded
//! onto the LAN) gets an (S,G) route from that interface to the upstream,
//! withdrawn `SOURCE_TIMEOUT` after its last packet.
//!
//! Restarts lose nothing that forwards: the RIB keeps the routes while
//! this actor is down, the restarted actor asks every downstream querier
//! for its members before it withdraws a route it no longer wants, and the
//! new host side reports the whole membership upstream at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::config::Config;
use mcr::igmp::codec::{decode, DecodeError, Message};
use mcr::igmp::instance::{GroupRow, InterfaceRow, Role};
use mcr::igmp::state::{GroupSnapshot, QuerierSnapshot};
use mcr::igmp::{
    Counters, FilterMode, HostConfig, HostFilter, IgmpHost, IgmpParams, IgmpSettings,
    ProxyMembership, SetMemberships, Snapshot,
};
use mcr::proto::{Protocol, Rng};
use mcr::rib::{Origin, Route};
use mcr::sys::igmp::{
    data_source_group, open_data_rx, open_igmp_rx, open_igmp_tx, parse_ipv4, send_igmp,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::igmp::{start_reader, tick_at_with, DropLog, Reader, Task};
use super::{igmp_metrics, ProtocolChild, SpawnFuture};
use crate::supervisor::handles::{Igmp, IgmpProxy, IgmpProxyMsg, Rib};
use crate::supervisor::netlink::route::RouteLookup;
use crate::supervisor::shared::Shared;

/// How often the actor looks at the config (a reload that changes the
/// downstream list, the upstream or the timers) and at the upstream
/// interface when it is missing.
const CHECK: Duration = Duration::from_secs(1);

/// How long a downstream source's (S,G) route stays after its last packet.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Downstream sources forwarded upstream at once, at most (RFC 4605 §4.2).
const MAX_LOCAL_SOURCES: usize = 1024;
/// A data watch tells the actor about one (S,G) at most this often.
const DATA_REPORT: Duration = Duration::from_secs(1);
/// (S,G) a data watch remembers; a flood of new ones beyond it is not
/// reported until the older ones age out.
const DATA_KEYS: usize = 4096;

pub struct IgmpProxyActor;

pub struct ProxyArgs {
    pub shared: Arc<Shared>,
}

struct Upstream {
    host: IgmpHost,
    ifindex: u32,
    tx: OwnedFd,
    reader: Reader,
    /// The last router heard querying upstream.
    querier: Option<Ipv4Addr>,
}

pub struct ProxyState {
    shared: Arc<Shared>,
    upstream: String,
    params: IgmpParams,
    members: ProxyMembership,
    run: Option<Upstream>,
    /// Groups this actor has a (*,G) route for in the RIB.
    routed: BTreeSet<Ipv4Addr>,
    /// Downstream interfaces where another router is the querier. Every
    /// router starts as querier (RFC 3376 §6.1), so an interface is
    /// served until its querier says otherwise.
    not_querier: BTreeSet<String>,
    /// The interfaces the routes in the RIB name (`route`).
    serving: BTreeSet<String>,
    /// The data watch of each downstream interface: its ifindex and
    /// reader.
    watches: BTreeMap<String, (u32, Reader)>,
    /// Local sources on downstream interfaces with an (S,G) route: the
    /// interface and when a packet was last seen.
    sources: BTreeMap<(Ipv4Addr, Ipv4Addr), (String, Instant)>,
    /// `sources` reached `MAX_LOCAL_SOURCES` and that was logged.
    sources_full: bool,
    /// (S,G) seen on a downstream interface whose source is not local to
    /// it, and when (asked again after `SOURCE_TIMEOUT`).
    foreign: BTreeMap<(Ipv4Addr, Ipv4Addr), Instant>,
    /// What the source routes in the RIB were made for: upstream and
    /// served interfaces.
    sources_for: (String, BTreeSet<String>),
    rpf: Option<RouteLookup>,
    timer: Option<(Instant, Task)>,
    /// Upstream packets dropped: an unusable IP header or IGMP that does
    /// not decode (RFC 3376 §4, §9.1), and those with a bad checksum.
    bad_ip: u64,
    bad_checksum: u64,
    drops: DropLog,
}

/// The proxy section and its timers, if the config has one.
fn setup(cfg: &Config) -> Option<(String, Vec<String>, IgmpSettings)> {
    let igmp = cfg.igmp.as_ref()?;
    let p = igmp.proxy.as_ref()?;
    Some((
        p.upstream.clone(),
        p.downstream.clone(),
        igmp.settings.clone(),
    ))
}

/// What a querier's `igmp groups` row says a member wants, as the proxy
/// merges it: INCLUDE of the timed sources, or EXCLUDE of the blocked ones
/// (a source with no timer in EXCLUDE mode).
fn row_filter(g: &GroupSnapshot) -> HostFilter {
    let sources = g
        .sources
        .iter()
        .filter(|(_, t)| (g.mode == FilterMode::Include) == t.is_some())
        .map(|(s, _)| *s)
        .collect();
    HostFilter {
        mode: g.mode,
        sources,
    }
}

impl ProxyState {
    fn downstream(&self) -> Vec<String> {
        setup(&self.shared.config())
            .map(|(_, d, _)| d)
            .unwrap_or_default()
    }

    /// The downstream interfaces this proxy forwards onto (RFC 4605
    /// §4.2): those where it is the querier.
    fn served(&self) -> BTreeSet<String> {
        self.downstream()
            .into_iter()
            .filter(|d| !self.not_querier.contains(d))
            .collect()
    }

    /// The (*,G) route of a proxied group: from the upstream, with the
    /// members of the served interfaces as outputs.
    fn route(&self, g: Ipv4Addr) -> Route {
        Route {
            member_interfaces: Some(self.serving.clone()),
            ..Route::star_g(g, &self.upstream, &[])
        }
    }

    /// Bring the RIB and the upstream membership to what the downstream
    /// members want now.
    fn apply(&mut self, me: &ActorRef<IgmpProxyMsg>) {
        self.members.retain_interfaces(&self.downstream());
        let merged = self.members.merged();
        let want: BTreeSet<Ipv4Addr> = merged.keys().copied().collect();
        let served = self.served();
        let fresh: Vec<Ipv4Addr> = if served != self.serving {
            info!(target: "Protocol", "IGMP proxy: forwarding onto {served:?} (the downstream interfaces where it is the querier)");
            self.serving = served;
            // Replaces each route in place: no gap on the others.
            want.iter().copied().collect()
        } else {
            want.difference(&self.routed).copied().collect()
        };
        for g in fresh {
            Rib::route(Origin::Igmp, self.route(g));
            if !self.routed.contains(&g) {
                info!(target: "Protocol", "IGMP proxy: forwarding {g} from {}", self.upstream);
            }
        }
        for g in self.routed.difference(&want) {
            Rib::withdraw(Origin::Igmp, None, *g);
            info!(target: "Protocol", "IGMP proxy: no member of {g} downstream any more");
        }
        self.routed = want;
        let now_for = (self.upstream.clone(), self.serving.clone());
        if now_for != self.sources_for {
            self.sources_for = now_for;
            for (s, g) in self.sources.keys() {
                Rib::route(Origin::Igmp, self.source_route(*s, *g));
            }
        }
        if let Some(run) = self.run.as_mut() {
            run.host
                .handle_event(Instant::now(), SetMemberships(merged));
        }
        self.drain(me);
    }

    /// The (S,G) route of a local source on a downstream interface: to
    /// the upstream, and to the members of the other served interfaces.
    fn source_route(&self, s: Ipv4Addr, g: Ipv4Addr) -> Route {
        let on = self.sources.get(&(s, g)).map(|(i, _)| i.as_str());
        let others = self
            .serving
            .iter()
            .filter(|i| Some(i.as_str()) != on)
            .cloned()
            .collect();
        Route {
            member_interfaces: Some(others),
            ..Route::s_g(s, g, on.unwrap_or_default(), &[&self.upstream])
        }
    }

    /// Watch every downstream interface that is there for data; stop
    /// watching those that went away or are no longer downstream.
    fn watch(&mut self, me: &ActorRef<IgmpProxyMsg>) {
        let want: BTreeMap<String, u32> = self
            .downstream()
            .into_iter()
            .filter_map(|d| Some((d.clone(), mcr::sys::interface_info(&d)?.ifindex)))
            .collect();
        self.watches
            .retain(|d, (ifindex, _)| want.get(d) == Some(ifindex));
        for (d, ifindex) in want {
            if self.watches.contains_key(&d) {
                continue;
            }
            let rx = match open_data_rx(ifindex) {
                Ok(rx) => rx,
                Err(e) => {
                    debug!(target: "Protocol", "IGMP proxy: no data watch on {d}: {e}");
                    continue;
                }
            };
            let mut seen: HashMap<(Ipv4Addr, Ipv4Addr), Instant> = HashMap::new();
            let name = d.clone();
            let wrap = move |p: &[u8]| {
                let (source, group) = data_source_group(p)?;
                let now = Instant::now();
                let recent = |t: &Instant| now.duration_since(*t) < DATA_REPORT;
                if seen.get(&(source, group)).is_some_and(recent) {
                    return None;
                }
                if seen.len() >= DATA_KEYS {
                    seen.retain(|_, t| recent(t));
                    if seen.len() >= DATA_KEYS {
                        return None;
                    }
                }
                seen.insert((source, group), now);
                Some(IgmpProxyMsg::Data {
                    interface: name.clone(),
                    source,
                    group,
                })
            };
            match start_reader(rx, me.clone(), &format!("data-{d}"), wrap) {
                Ok(r) => {
                    self.watches.insert(d, (ifindex, r));
                }
                Err(e) => warn!(target: "Protocol", "IGMP proxy: data watch on {d}: {e}"),
            }
        }
    }

    /// Whether `s`'s unicast route leaves through `ifindex`: a source on
    /// that link, not traffic forwarded onto it from elsewhere.
    async fn local(&mut self, s: Ipv4Addr, ifindex: u32) -> bool {
        if !self.rpf.as_ref().is_some_and(RouteLookup::is_alive) {
            self.rpf = RouteLookup::open().ok();
        }
        let Some(rpf) = self.rpf.as_ref() else {
            return false;
        };
        matches!(rpf.get(s).await, Ok(r) if r.oif == ifindex)
    }

    /// Data of (s, g) on downstream `interface`.
    async fn on_data(&mut self, interface: String, s: Ipv4Addr, g: Ipv4Addr) {
        let now = Instant::now();
        if let Some((on, seen)) = self.sources.get_mut(&(s, g)) {
            if *on == interface {
                *seen = now;
                return;
            }
        }
        if self.foreign.contains_key(&(s, g)) {
            return;
        }
        let Some((ifindex, _)) = self.watches.get(&interface) else {
            return;
        };
        if !self.local(s, *ifindex).await {
            debug!(target: "Protocol", "IGMP proxy: ({s},{g}) on {interface} is not from a local source; not sent upstream");
            self.foreign.insert((s, g), now);
            return;
        }
        if self.sources.len() >= MAX_LOCAL_SOURCES {
            // Each source is a route and a table push to the workers; a
            // host sending from many (spoofed) addresses must not make
            // thousands. Refused flows are asked about again later.
            if !self.sources_full {
                warn!(target: "Protocol", "IGMP proxy: {MAX_LOCAL_SOURCES} downstream sources already forwarded upstream; ({s},{g}) on {interface} and further ones are not");
                self.sources_full = true;
            }
            return;
        }
        self.sources_full = false;
        info!(target: "Protocol", "IGMP proxy: source {s} of {g} on {interface}; forwarding it to {}", self.upstream);
        self.sources.insert((s, g), (interface, now));
        Rib::route(Origin::Igmp, self.source_route(s, g));
    }

    /// Withdraw the routes of sources that went quiet.
    fn expire_sources(&mut self) {
        let now = Instant::now();
        let quiet: Vec<(Ipv4Addr, Ipv4Addr)> = self
            .sources
            .iter()
            .filter(|(_, (_, t))| now.duration_since(*t) >= SOURCE_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for (s, g) in quiet {
            self.sources.remove(&(s, g));
            Rib::withdraw(Origin::Igmp, Some(s), g);
            info!(target: "Protocol", "IGMP proxy: source {s} of {g} quiet for {SOURCE_TIMEOUT:?}; no longer forwarded");
        }
        self.foreign
            .retain(|_, t| now.duration_since(*t) < SOURCE_TIMEOUT);
    }

    /// Open the upstream sockets and start the host side, if the
    /// interface is there; it reports the current membership at once.
    fn try_start(&mut self, me: &ActorRef<IgmpProxyMsg>) -> Result<(), String> {
        let info = mcr::sys::interface_info(&self.upstream)
            .ok_or_else(|| format!("interface {} does not exist", self.upstream))?;
        let address = *info
            .addrs
            .first()
            .ok_or_else(|| format!("interface {} has no IPv4 address", self.upstream))?;
        let rx = open_igmp_rx(info.ifindex).map_err(|e| format!("IGMP receive socket: {e}"))?;
        let tx = open_igmp_tx(&self.upstream, info.ifindex, address)
            .map_err(|e| format!("IGMP send socket: {e}"))?;
        let reader = start_reader(rx, me.clone(), &self.upstream, |p| {
            Some(IgmpProxyMsg::Packet(p.to_vec()))
        })?;
        let config = HostConfig {
            ifindex: info.ifindex,
            address,
            params: self.params.clone(),
        };
        let mut host = IgmpHost::new(config, Rng::from_entropy());
        host.handle_event(Instant::now(), SetMemberships(self.members.merged()));
        self.run = Some(Upstream {
            host,
            ifindex: info.ifindex,
            tx,
            reader,
            querier: None,
        });
        info!(target: "Protocol", "IGMP proxy upstream on {} ({address}, ifindex {})", self.upstream, info.ifindex);
        Ok(())
    }

    /// Follow a reload (upstream, timers) and the upstream interface
    /// (gone, or a new address: the host starts over on what has the name).
    fn check(&mut self) {
        if let Some((upstream, _, settings)) = setup(&self.shared.config()) {
            if upstream != self.upstream {
                info!(target: "Protocol", "IGMP proxy: upstream {} → {upstream}", self.upstream);
                for g in std::mem::take(&mut self.routed) {
                    Rib::withdraw(Origin::Igmp, None, g);
                }
                igmp_metrics::forget(&self.upstream, Role::ProxyUpstream);
                self.upstream = upstream;
                self.run = None;
            }
            if let Ok(p) = settings.validate() {
                if p != self.params {
                    self.params = p.clone();
                    if let Some(run) = self.run.as_mut() {
                        let c = HostConfig {
                            ifindex: run.ifindex,
                            address: run.host.address(),
                            params: p,
                        };
                        run.host.handle_config(Instant::now(), c);
                    }
                }
            }
        }
        let Some(run) = self.run.as_ref() else {
            return;
        };
        let now = mcr::sys::interface_info(&self.upstream)
            .and_then(|i| Some((i.ifindex, *i.addrs.first()?)));
        if now != Some((run.ifindex, run.host.address())) {
            warn!(target: "Protocol", "IGMP proxy: upstream {} went away or changed address; starting over", self.upstream);
            self.run = None;
        }
    }

    /// Send what the host wants sent and re-arm the one timer.
    fn drain(&mut self, me: &ActorRef<IgmpProxyMsg>) {
        let mut at = Instant::now() + CHECK;
        if let Some(run) = self.run.as_mut() {
            while let Some(t) = run.host.poll_transmit() {
                if let Err(e) = send_igmp(&run.tx, t.dst, &t.payload) {
                    // The host repeats every state change robustness times.
                    debug!(target: "Protocol", "IGMP proxy send on {} to {}: {e}", self.upstream, t.dst);
                }
            }
            if let Some(t) = run.host.poll_timeout() {
                at = at.min(t);
            }
        }
        if let Some(run) = self.run.as_ref() {
            let c = self.counters(run);
            let groups = run.host.joined().len();
            igmp_metrics::publish(&self.upstream, Role::ProxyUpstream, &c, groups, false);
        }
        if self.timer.as_ref().map(|(t, _)| *t) != Some(at) {
            let task = tokio::spawn(tick_at_with(at, me.clone(), || IgmpProxyMsg::Tick));
            self.timer = Some((at, Task(task)));
        }
    }

    /// The upstream row's counters (`igmp interfaces`, Prometheus).
    fn counters(&self, run: &Upstream) -> Counters {
        Counters {
            queries_received: run.host.counters.queries_received,
            reports_sent: run.host.counters.reports_sent,
            leaves_sent: run.host.counters.leaves_sent,
            malformed: self.bad_ip,
            checksum_errors: self.bad_checksum,
            ..Default::default()
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        let Some(run) = self.run.as_ref() else {
            return s;
        };
        let h = &run.host;
        let version = h.version() as u8;
        for (g, f) in h.joined() {
            s.groups.push(GroupRow {
                interface: self.upstream.clone(),
                ifindex: run.ifindex,
                group: GroupSnapshot {
                    group: *g,
                    mode: f.mode,
                    sources: f.sources.iter().map(|s| (*s, None)).collect(),
                    last_reporter: h.address(),
                    expires: None,
                    version,
                },
            });
        }
        s.interfaces.push(InterfaceRow {
            interface: self.upstream.clone(),
            ifindex: run.ifindex,
            role: Role::ProxyUpstream,
            querier: QuerierSnapshot {
                address: h.address(),
                querier: false,
                current_querier: run.querier.unwrap_or(Ipv4Addr::UNSPECIFIED),
                other_querier_expires: None,
                version,
                counters: self.counters(run),
            },
        });
        s
    }

    /// A restarted proxy learns the downstream members from the queriers
    /// (which outlive it) and withdraws the routes of a predecessor that
    /// no member wants any more.
    async fn resync(&mut self) {
        for d in self.downstream() {
            if let Ok(s) = Igmp::snapshot(&d).await {
                if s.interfaces.iter().any(|i| !i.querier.querier) {
                    self.not_querier.insert(d.clone());
                }
                let groups = s
                    .groups
                    .iter()
                    .map(|r| (r.group.group, row_filter(&r.group)))
                    .collect();
                self.members.replace(&d, groups);
            }
        }
        let want: BTreeSet<Ipv4Addr> = self.members.merged().keys().copied().collect();
        if let Ok(entries) = Rib::mroute().await {
            for e in entries {
                let ours = e.source.is_none()
                    && e.interface == self.upstream
                    && (e.origin == "igmp" || e.origins.iter().any(|o| o == "igmp"));
                if ours && !want.contains(&e.group) {
                    Rib::withdraw(Origin::Igmp, None, e.group);
                }
                // A predecessor's downstream source: kept until it is
                // quiet for SOURCE_TIMEOUT, like one seen now.
                let igmp = e.origin == "igmp" || e.origins.iter().any(|o| o == "igmp");
                if let (Some(s), true) = (e.source, igmp && e.interface != self.upstream) {
                    self.sources
                        .insert((s, e.group), (e.interface.clone(), Instant::now()));
                }
            }
        }
        // A predecessor's routes are replaced by identical ones.
        self.serving = self.served();
        for g in &want {
            Rib::route(Origin::Igmp, self.route(*g));
        }
        self.routed = want;
    }
}

impl Actor for IgmpProxyActor {
    type Msg = IgmpProxyMsg;
    type State = ProxyState;
    type Arguments = ProxyArgs;

    async fn pre_start(
        &self,
        me: ActorRef<IgmpProxyMsg>,
        args: ProxyArgs,
    ) -> Result<ProxyState, ActorProcessingErr> {
        let (upstream, _, settings) =
            setup(&args.shared.config()).ok_or("the config has no igmp.proxy section")?;
        let params = settings.validate().map_err(|e| e.to_string())?;
        let mut st = ProxyState {
            shared: args.shared,
            upstream,
            params,
            members: ProxyMembership::default(),
            run: None,
            routed: BTreeSet::new(),
            not_querier: BTreeSet::new(),
            serving: BTreeSet::new(),
            watches: BTreeMap::new(),
            sources: BTreeMap::new(),
            sources_full: false,
            foreign: BTreeMap::new(),
            sources_for: (String::new(), BTreeSet::new()),
            rpf: None,
            timer: None,
            bad_ip: 0,
            bad_checksum: 0,
            drops: DropLog::default(),
        };
        st.resync().await;
        st.watch(&me);
        // A missing upstream is not a failure: the check retries it.
        if let Err(e) = st.try_start(&me) {
            warn!(target: "Protocol", "IGMP proxy on {}: {e}; retrying every {CHECK:?}", st.upstream);
        }
        st.apply(&me);
        Ok(st)
    }

    async fn post_stop(
        &self,
        _me: ActorRef<IgmpProxyMsg>,
        st: &mut ProxyState,
    ) -> Result<(), ActorProcessingErr> {
        igmp_metrics::forget(&st.upstream, Role::ProxyUpstream);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<IgmpProxyMsg>,
        msg: IgmpProxyMsg,
        st: &mut ProxyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IgmpProxyMsg::Membership {
                interface,
                group,
                filter,
            } => {
                if st.downstream().contains(&interface) {
                    st.members.set(&interface, group, filter);
                    st.apply(&me);
                }
            }
            IgmpProxyMsg::Memberships { interface, groups } => {
                if st.downstream().contains(&interface) {
                    st.members.replace(&interface, groups);
                } else {
                    st.members.remove_interface(&interface);
                }
                st.apply(&me);
            }
            IgmpProxyMsg::Querier { interface, local } => {
                let changed = if local {
                    st.not_querier.remove(&interface)
                } else {
                    st.not_querier.insert(interface.clone())
                };
                if changed {
                    info!(target: "Protocol", "IGMP proxy: {} the querier on {interface}", if local { "now" } else { "no longer" });
                    st.apply(&me);
                }
            }
            IgmpProxyMsg::Data {
                interface,
                source,
                group,
            } => {
                if let Some((_, r)) = st.watches.get(&interface) {
                    r.handled();
                }
                st.on_data(interface, source, group).await;
            }
            IgmpProxyMsg::Packet(p) => {
                let Some(run) = st.run.as_mut() else {
                    return Ok(());
                };
                run.reader.handled();
                match parse_ipv4(&p) {
                    Some((src, dst, payload)) if src != run.host.address() => {
                        match decode(payload) {
                            Ok(m) => {
                                if matches!(m, Message::Query(_)) {
                                    run.querier = Some(src);
                                }
                                run.host.handle_packet(
                                    Instant::now(),
                                    run.ifindex,
                                    src,
                                    dst,
                                    payload,
                                );
                            }
                            Err(e) => {
                                if e == DecodeError::Checksum {
                                    st.bad_checksum += 1;
                                } else {
                                    st.bad_ip += 1;
                                }
                                st.drops.dropped(&st.upstream, src, e);
                            }
                        }
                    }
                    // Our own report, looped back.
                    Some(_) => {}
                    None => {
                        st.bad_ip += 1;
                        st.drops.dropped(&st.upstream, "?", "unusable IPv4 header");
                    }
                }
                st.drain(&me);
            }
            IgmpProxyMsg::Tick => {
                st.timer = None;
                st.drops.flush(&st.upstream);
                st.watch(&me);
                st.expire_sources();
                st.check();
                match st.run.as_mut() {
                    Some(run) => run.host.handle_timeout(Instant::now()),
                    None => {
                        if let Err(e) = st.try_start(&me) {
                            debug!(target: "Protocol", "IGMP proxy on {}: {e}", st.upstream);
                        }
                    }
                }
                st.apply(&me);
            }
            IgmpProxyMsg::Snapshot(reply) => {
                let _ = reply.send(st.snapshot());
            }
            IgmpProxyMsg::Panic => panic!("fault injection: igmp proxy panic requested"),
        }
        Ok(())
    }
}

/// The proxy as a child of the ProtocolSupervisor, key `igmp-proxy`.
struct ProxyChild;

impl ProtocolChild for ProxyChild {
    fn key(&self) -> String {
        IgmpProxy::NAME.to_string()
    }

    fn spawn(&self, name: String, shared: Arc<Shared>, supervisor: ActorCell) -> SpawnFuture {
        Box::pin(async move {
            let args = ProxyArgs { shared };
            let (a, _) = Actor::spawn_linked(Some(name), IgmpProxyActor, args, supervisor).await?;
            Ok(a.get_cell())
        })
    }

    fn retired(&self) {
        // Only the proxy puts igmp routes in the RIB.
        Rib::withdraw_origin(Origin::Igmp);
    }
}

/// The proxy, when the config has an `igmp.proxy` section.
pub fn children(cfg: &Config) -> Vec<Arc<dyn ProtocolChild>> {
    match setup(cfg) {
        Some(_) => vec![Arc::new(ProxyChild)],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_querier_row_becomes_the_filter_its_members_want() {
        let s = |n| Ipv4Addr::new(10, 0, 0, n);
        let row = |mode, sources| GroupSnapshot {
            group: Ipv4Addr::new(239, 1, 1, 1),
            mode,
            sources,
            last_reporter: s(9),
            expires: None,
            version: 3,
        };
        // INCLUDE: the timed sources.
        let f = row_filter(&row(FilterMode::Include, vec![(s(1), Some(3.0))]));
        assert_eq!(f.sources, BTreeSet::from([s(1)]));
        // EXCLUDE: only the blocked (untimed) sources; timed ones are
        // still forwarded.
        let f = row_filter(&row(
            FilterMode::Exclude,
            vec![(s(1), Some(3.0)), (s(2), None)],
        ));
        assert_eq!(
            (f.mode, f.sources),
            (FilterMode::Exclude, BTreeSet::from([s(2)]))
        );
    }
}
