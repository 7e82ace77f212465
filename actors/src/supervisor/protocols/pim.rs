//! PimActor: the I/O shell around the sans-I/O PIM-SM core
//! (`mcr::pim::PimInstance`).
//!
//! Owns: the one timer the core asks for (`poll_timeout`), feeding the
//! core interface snapshots (from the NetlinkMonitor) and the running
//! configuration, answering the control queries from the core's state,
//! and turning the core's events into `subscribe` events. It also answers
//! the core's RPF
//! questions with the kernel's unicast route (`route_get`, asked again
//! when the NetlinkMonitor reports route changes and every
//! `RESYNC` period), feeds it the IGMP memberships the RIB pushes (local
//! receivers, RFC 7761 §4.1.6), and hands the core's (*,G)/(S,G) routes
//! to the RIB (origin `pim`, route mode), each (S,G) with the interfaces
//! its (S,G,rpt) prunes take it off the shared tree on (§4.1.6
//! inherited_olist(S,G,rpt)). The protocol itself (RFC 7761
//! §4.3 Hellos, neighbors, DR; §4.5 Join/Prune both ways; §4.9 decoding)
//! is the core's. The rest of the shell is in submodules: the
//! per-interface PIM sockets (one raw socket per interface that runs PIM,
//! a reader thread each, the flood cap) in `pim_socks.rs`; the data side
//! as RP (forwarding of decapsulated Registers, §4.4.2, and the per-(S,G)
//! data reports from the workers' counters) in `pim_register.rs`; the
//! first-hop data path and unicast PIM in `pim_data.rs`; what goes to the
//! RIB in `pim_rib.rs`; events in `pim_events.rs`.
//!
//! A packet never restarts this actor: the core counts and drops what it
//! cannot decode. After a panic the new actor starts from nothing with a
//! new generation id: neighbors are re-learned from their Hellos, and the
//! new generation id tells them to send us their state again (§4.3.1).
//! The new actor starts from the `pim` routes the RIB still has from the
//! one that panicked and, until it has been up for a Join/Prune period
//! (every downstream neighbor has re-sent its Joins by then, whether or
//! not it reacts to the new generation id), only adds to them: a route it
//! re-learns keeps the old route's outputs too, so traffic that still has
//! receivers never stops. After that period it sends only what it has
//! learned, and each periodic re-send replaces the RIB's whole `pim` set
//! (`ReplaceOrigin`), so what nobody re-joined is withdrawn.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::control::Event;
use mcr::iface::Ifaces;
use mcr::pim::instance::{PimRouteChange, RpfResult};
use mcr::pim::state::downstream::TreeKey;
use mcr::pim::{PimConfig, PimInput, PimInstance};
use mcr::proto::{Protocol, Rng};
use mcr::rib::learned::Memberships;
use mcr::rib::{Origin, Route};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tracing::{debug, info, warn};

use mcr::config::Config;

use super::{ProtocolChild, SpawnFuture};
use crate::supervisor::handles::{Pim, PimMsg, Rib, RibMsg};
use crate::supervisor::netlink::route::RouteLookup;
use crate::supervisor::shared::Shared;

#[path = "pim_data.rs"]
mod data;
#[path = "pim_events.rs"]
mod events;
#[path = "pim_rib.rs"]
mod rib;
use rib::{leave_pim_members_to_pim, merge_inherited, rib_routes};
#[path = "pim_register.rs"]
mod register;
#[path = "pim_socks.rs"]
mod socks;
use socks::{rx_handled, Sock};

pub struct PimActor;

/// How often every RPF target is resolved again and every route re-sent to
/// the RIB, in case a netlink event or a RIB message was lost (a restarted
/// RIB forgets learned routes).
const RESYNC: Duration = Duration::from_secs(30);

pub struct PimState {
    shared: Arc<Shared>,
    core: PimInstance,
    /// What the core was last told is up: ifindex -> (name, address).
    links: BTreeMap<u32, (String, Ipv4Addr)>,
    /// What the core was last told of each interface's other addresses.
    secondary: BTreeMap<u32, Vec<Ipv4Addr>>,
    socks: BTreeMap<u32, Sock>,
    timer: Option<(Instant, tokio::task::JoinHandle<()>)>,
    config_watch: tokio::task::JoinHandle<()>,
    resync: tokio::task::JoinHandle<()>,
    said_goodbye: bool,
    /// The last IGMP memberships from the RIB, by interface name.
    members: Arc<Memberships>,
    /// What this actor told the RIB, by (S,G).
    sent: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
    started: Instant,
    /// The routes the previous actor left in the RIB, kept until this one
    /// has been up for a Join/Prune period.
    inherited: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
    /// One netlink connection for every RPF lookup; reopened if it dies.
    rpf: Option<RouteLookup>,
    /// The RP's sockets for decapsulated packets.
    fwd: register::Forwarder,
    /// The per-(S,G) data reports from the workers' counters.
    activity: register::Activity,
    /// Upcalls, register punts and unicast PIM (`pim_data.rs`).
    data: data::DataPath,
}

impl Drop for PimState {
    fn drop(&mut self) {
        self.config_watch.abort();
        self.resync.abort();
        if let Some((_, t)) = self.timer.take() {
            t.abort();
        }
    }
}

/// Start the PimActor linked to `supervisor` under the name `name`.
pub async fn spawn_linked(
    name: &str,
    shared: Arc<Shared>,
    supervisor: ActorCell,
) -> Result<ActorCell, SpawnErr> {
    let (a, _) = Actor::spawn_linked(Some(name.to_string()), PimActor, shared, supervisor).await?;
    Ok(a.get_cell())
}

/// The PimActor as a child of the ProtocolSupervisor, key `pim`.
struct PimChild;

impl ProtocolChild for PimChild {
    fn key(&self) -> String {
        Pim::NAME.to_string()
    }

    fn spawn(&self, name: String, shared: Arc<Shared>, supervisor: ActorCell) -> SpawnFuture {
        Box::pin(async move { Ok(spawn_linked(&name, shared, supervisor).await?) })
    }
}

/// PIM runs only when the config has an enabled `pim` section; turning it
/// off stops the actor, which says goodbye to its neighbors on the way.
pub fn children(cfg: &Config) -> Vec<Arc<dyn ProtocolChild>> {
    match &cfg.pim {
        Some(p) if p.enabled => vec![Arc::new(PimChild)],
        _ => Vec::new(),
    }
}

/// Interfaces that can carry PIM: up, with an IPv4 address. The first
/// address is the primary one the kernel reports first.
fn usable(ifaces: &Ifaces) -> BTreeMap<u32, (String, Ipv4Addr)> {
    ifaces
        .values()
        .filter(|i| i.up)
        .filter_map(|i| Some((i.ifindex, (i.name.clone(), *i.addrs.first()?))))
        .collect()
}

/// The addresses after the primary one of every usable interface: ours
/// too, and announced in Hellos (RFC 7761 §4.3.1 Address List).
fn secondaries(ifaces: &Ifaces) -> BTreeMap<u32, Vec<Ipv4Addr>> {
    ifaces
        .values()
        .filter(|i| i.up && i.addrs.len() > 1)
        .map(|i| (i.ifindex, i.addrs.iter().skip(1).copied().collect()))
        .collect()
}

impl PimState {
    fn apply_config(&mut self, cfg: &PimConfig) {
        if self.core.config() != cfg {
            self.core.handle_config(Instant::now(), cfg.clone());
        }
    }

    /// Tell the core what changed, and open or close sockets so that
    /// exactly the configured, usable interfaces have one.
    fn apply_links(&mut self, me: &ActorRef<PimMsg>, now_links: BTreeMap<u32, (String, Ipv4Addr)>) {
        let now = Instant::now();
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|k| !now_links.contains_key(k))
            .copied()
            .collect();
        for ifindex in gone {
            self.links.remove(&ifindex);
            self.core
                .handle_event(now, PimInput::InterfaceDown { ifindex });
        }
        for (ifindex, (name, addr)) in now_links {
            if self.links.get(&ifindex) != Some(&(name.clone(), addr)) {
                self.links.insert(ifindex, (name.clone(), addr));
                self.core.handle_event(
                    now,
                    PimInput::InterfaceUp {
                        ifindex,
                        name,
                        addr,
                    },
                );
            }
        }
        self.fwd.forget_gone(&self.links);
        self.sync_sockets(me);
    }

    /// Tell the core each interface's secondary addresses when they change
    /// (after [`Self::apply_links`], which the core needs first).
    fn apply_secondaries(&mut self, now_secondary: BTreeMap<u32, Vec<Ipv4Addr>>) {
        let now = Instant::now();
        let ifindexes: BTreeSet<u32> = self
            .secondary
            .keys()
            .chain(now_secondary.keys())
            .copied()
            .collect();
        for ifindex in ifindexes {
            let new = now_secondary.get(&ifindex).cloned().unwrap_or_default();
            if self.secondary.get(&ifindex).cloned().unwrap_or_default() != new {
                self.core.handle_event(
                    now,
                    PimInput::InterfaceAddresses {
                        ifindex,
                        secondary: new,
                    },
                );
            }
        }
        self.secondary = now_secondary;
    }

    /// Goodbye Hellos (holdtime 0) let neighbors re-elect the DR now
    /// rather than after our holdtime. Once only: the root asks before it
    /// stops the tree, and `post_stop` covers any other orderly stop.
    fn goodbye(&mut self, me: &ActorRef<PimMsg>) {
        if !std::mem::replace(&mut self.said_goodbye, true) {
            self.core.handle_event(Instant::now(), PimInput::Shutdown);
            self.drain(me);
        }
    }

    /// Tell the core the local receivers of every interface it knows.
    /// An EXCLUDE filter is a (*,G) receiver plus the sources it excludes
    /// (RFC 7761 §4.1.6 pim_exclude); each INCLUDE source is an (S,G).
    fn apply_members(&mut self) {
        let now = Instant::now();
        for (&ifindex, (name, _)) in &self.links {
            let mut keys = Vec::new();
            let mut excludes = Vec::new();
            for ((ifc, group), filter) in self.members.iter() {
                if ifc != name || filter.is_empty() {
                    continue;
                }
                if filter.accepts_unlisted() {
                    keys.push(TreeKey::star_g(*group));
                    excludes.extend(filter.sources().iter().map(|s| (*s, *group)));
                } else {
                    keys.extend(filter.sources().iter().map(|s| TreeKey::s_g(*s, *group)));
                }
            }
            self.core
                .handle_event(now, PimInput::LocalExcludes { ifindex, excludes });
            self.core.handle_event(
                now,
                PimInput::LocalMembers {
                    ifindex,
                    members: keys,
                },
            );
        }
    }

    /// Log and publish a route change of the core.
    fn announce(&self, change: &PimRouteChange) {
        match change {
            PimRouteChange::Add {
                source,
                group,
                upstream,
                downstream,
            } => {
                let name = |i: &u32| self.links.get(i).map(|(n, _)| n.clone());
                let Some(up) = name(upstream) else {
                    debug!(target: "Protocol", "route for {group}: upstream ifindex {upstream} has no name");
                    return;
                };
                let down: Vec<String> = downstream.iter().filter_map(name).collect();
                info!(target: "Protocol", "route {} from {up} to {down:?}", mcr::rib::learned::sg_string(*source, *group));
                self.shared.publish(Event::PimRoute {
                    source: *source,
                    group: *group,
                    upstream: up,
                    downstream: down,
                });
            }
            PimRouteChange::Withdraw { source, group } => {
                info!(target: "Protocol", "route {} withdrawn", mcr::rib::learned::sg_string(*source, *group));
                self.shared.publish(Event::PimRouteWithdrawn {
                    source: *source,
                    group: *group,
                });
            }
        }
    }

    /// The routes PIM wants in the RIB, by (S,G): see [`rib_routes`].
    fn desired(&self) -> BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route> {
        let table = self.core.route_table();
        // This runs after every message: the full tree snapshot is only
        // worth building when a shared tree exists for a prune to act on.
        let shared_tree = table
            .iter()
            .any(|c| matches!(c, PimRouteChange::Add { source: None, .. }));
        let pruned: Vec<(Ipv4Addr, Ipv4Addr, BTreeSet<String>)> = if shared_tree {
            self.core
                .routes(Instant::now())
                .into_iter()
                .filter_map(|r| {
                    let s = r.source?;
                    (!r.rpt_pruned_on.is_empty())
                        .then(|| (s, r.group, r.rpt_pruned_on.into_iter().collect()))
                })
                .collect()
        } else {
            Vec::new()
        };
        let routes = rib_routes(&table, &pruned, |i| {
            self.links.get(&i).map(|(n, _)| n.clone())
        });
        leave_pim_members_to_pim(routes, &self.members, &self.links)
    }

    /// What goes to the RIB now: [`Self::desired`], and while this actor
    /// may still be re-learning, the inherited routes merged in (same
    /// upstream: union of outputs; otherwise the new route wins).
    fn for_rib(&mut self) -> BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route> {
        let mut want = self.desired();
        if self.started.elapsed() >= self.core.config().join_prune_interval {
            self.inherited.clear();
        }
        merge_inherited(&mut want, &self.inherited);
        want
    }

    /// Tell the RIB what changed since the last time: routes this actor
    /// no longer wants are withdrawn, new or changed ones applied.
    fn sync_rib(&mut self) {
        let want = self.for_rib();
        for (source, group) in self.sent.keys().filter(|k| !want.contains_key(*k)) {
            Rib::withdraw(Origin::Pim, *source, *group);
        }
        for (k, r) in &want {
            if self.sent.get(k) != Some(r) {
                Rib::route(Origin::Pim, r.clone());
            }
        }
        self.sent = want;
    }

    /// The periodic re-send: a restarted RIB forgot the routes, and a
    /// message lost on the way left it wrong. The set replaces whatever
    /// `pim` routes the RIB has (while re-learning, it still holds the
    /// inherited ones).
    fn resend(&mut self) {
        let want = self.for_rib();
        Rib::replace_origin(Origin::Pim, want.values().cloned().collect());
        self.sent = want;
    }

    /// Send what the core queued, publish its events, re-arm the timer.
    fn drain(&mut self, me: &ActorRef<PimMsg>) {
        while let Some(target) = self.core.poll_rpf_request() {
            let me = me.clone();
            if !self.rpf.as_ref().is_some_and(RouteLookup::is_alive) {
                self.rpf = match RouteLookup::open() {
                    Ok(l) => Some(l),
                    Err(e) => {
                        // Unanswered: the core asks again on the next
                        // route change or resync.
                        warn!(target: "Protocol", "RPF {target}: {e}");
                        let _ = me.cast(PimMsg::Rpf {
                            target,
                            result: None,
                        });
                        continue;
                    }
                };
            }
            let Some(lookup) = self.rpf.clone() else {
                continue;
            };
            tokio::spawn(async move {
                let result = match lookup.get(target).await {
                    Ok(r) => Some(RpfResult {
                        ifindex: r.oif,
                        next_hop: r.gateway,
                        metric_preference: r.preference.unwrap_or(0),
                        metric: r.metric.unwrap_or(0),
                    }),
                    Err(e) => {
                        debug!(target: "Protocol", "RPF {target}: {e}");
                        None
                    }
                };
                let _ = me.cast(PimMsg::Rpf { target, result });
            });
        }
        while let Some(change) = self.core.poll_route_change() {
            self.announce(&change);
        }
        // Also when no route changed: an (S,G,rpt) prune alone changes
        // what the RIB must forward.
        self.sync_rib();
        self.activity.watch(&self.sent, &self.links);
        while let Some(d) = self.core.poll_decapsulated() {
            self.fwd.forward(&d, &self.links);
        }
        self.send_queued();
        while let Some(ev) = self.core.poll_event() {
            self.data_event(&ev);
            if let Some(e) = events::to_event(ev) {
                self.shared.publish(e);
            }
        }
        self.sync_punts();
        self.drained();
        let next = self.core.poll_timeout();
        if self.timer.as_ref().map(|(at, _)| *at) != next {
            if let Some((_, t)) = self.timer.take() {
                t.abort();
            }
            if let Some(at) = next {
                let me = me.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    let _ = me.cast(PimMsg::Timer);
                });
                self.timer = Some((at, task));
            }
        }
    }
}

impl Actor for PimActor {
    type Msg = PimMsg;
    type State = PimState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<PimMsg>,
        shared: Arc<Shared>,
    ) -> Result<PimState, ActorProcessingErr> {
        let mut events = shared.subscribe();
        let me = myself.clone();
        let config_watch = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) if matches!(ev.event, Event::ConfigApplied { .. }) => {
                        if me.cast(PimMsg::Reconfigure).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Missed events may include a config change.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if me.cast(PimMsg::Reconfigure).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut st = PimState {
            core: PimInstance::new(Rng::from_entropy()),
            links: BTreeMap::new(),
            secondary: BTreeMap::new(),
            socks: BTreeMap::new(),
            timer: None,
            config_watch,
            resync: spawn_resync(myself.clone()),
            said_goodbye: false,
            members: Arc::new(Memberships::new()),
            sent: BTreeMap::new(),
            started: Instant::now(),
            inherited: BTreeMap::new(),
            rpf: None,
            fwd: register::Forwarder::default(),
            activity: register::Activity::spawn(myself.clone()),
            data: {
                socks::reset_queue();
                data::DataPath::new()
            },
            shared,
        };
        let cfg = st.shared.config().pim.clone().unwrap_or_default();
        st.apply_config(&cfg);
        // The NetlinkMonitor only sends changes; a (re)started actor reads
        // the interfaces once itself.
        let ifaces = mcr::iface::scan();
        st.apply_links(&myself, usable(&ifaces));
        st.apply_secondaries(secondaries(&ifaces));
        st.apply_mtus(&ifaces);
        // Memberships the RIB already has; changes are pushed from now on.
        // What a predecessor left: kept, and counted as sent, so that
        // once this actor has settled what it did not re-learn goes.
        let inherited = Rib::call_within(
            |r| RibMsg::OriginRoutes(Origin::Pim, r),
            Duration::from_secs(1),
        )
        .await;
        if let Ok(routes) = inherited {
            st.inherited = routes
                .into_iter()
                .map(|r| ((r.source, r.group), r))
                .collect();
            st.sent = st.inherited.clone();
        }
        if let Ok(m) = Rib::call_within(RibMsg::MembershipSnapshot, Duration::from_secs(1)).await {
            st.members = Arc::new(m);
            st.apply_members();
        }
        st.drain(&myself);
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<PimMsg>,
        msg: PimMsg,
        st: &mut PimState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PimMsg::Packet {
                ifindex,
                src,
                dst,
                payload,
            } => {
                rx_handled();
                st.core
                    .handle_packet(Instant::now(), ifindex, src, dst, &payload);
            }
            PimMsg::Timer => {
                st.timer = None;
                st.core.handle_timeout(Instant::now());
            }
            // Only the full drain after the match is wanted.
            PimMsg::Drain => {}
            PimMsg::Interfaces(ifaces) => {
                st.apply_links(&myself, usable(&ifaces));
                st.apply_secondaries(secondaries(&ifaces));
                st.apply_mtus(&ifaces);
                // Interface indexes behind the names may have changed.
                st.apply_members();
                st.core
                    .handle_event(Instant::now(), PimInput::RoutesChanged);
            }
            PimMsg::Memberships(m) => {
                st.members = m;
                st.apply_members();
            }
            PimMsg::Rpf { target, result } => {
                st.core
                    .handle_event(Instant::now(), PimInput::Rpf { target, result });
            }
            PimMsg::RoutesChanged => {
                st.core
                    .handle_event(Instant::now(), PimInput::RoutesChanged);
                st.resend();
                st.data.resend();
            }
            PimMsg::Routes(r) => {
                let _ = r.send(st.core.routes(Instant::now()));
            }
            PimMsg::RpTable(r) => {
                let _ = r.send(st.core.rp_table());
            }
            PimMsg::RegisterState(r) => {
                let _ = r.send(st.core.register_report(Instant::now()));
            }
            PimMsg::AssertState(r) => {
                let _ = r.send(st.core.asserts(Instant::now()));
            }
            PimMsg::Reconfigure => {
                let cfg = st.shared.config().pim.clone().unwrap_or_default();
                st.apply_config(&cfg);
                st.sync_sockets(&myself);
            }
            PimMsg::Neighbors(r) => {
                let _ = r.send(st.core.neighbors(Instant::now()));
            }
            PimMsg::InterfaceList(r) => {
                let _ = r.send(st.core.interfaces(Instant::now()));
            }
            PimMsg::Shutdown(r) => {
                st.goodbye(&myself);
                let _ = r.send(());
            }
            PimMsg::Activity(flows) => register::report(&mut st.core, Instant::now(), flows),
            PimMsg::Ops(o) => o.run("pim").await,
            msg @ (PimMsg::Data { .. } | PimMsg::RegisterData { .. }) => {
                if !st.on_data(&myself, msg) {
                    return Ok(());
                }
            }
            PimMsg::Panic => panic!("fault injection: pim actor panic requested"),
        }
        st.drain(&myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<PimMsg>,
        st: &mut PimState,
    ) -> Result<(), ActorProcessingErr> {
        st.goodbye(&myself);
        // Without PIM nobody keeps these trees alive upstream.
        Rib::withdraw_origin(Origin::Pim);
        Ok(())
    }
}

fn spawn_resync(me: ActorRef<PimMsg>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(RESYNC);
        t.tick().await;
        loop {
            t.tick().await;
            if me.cast(PimMsg::RoutesChanged).is_err() {
                return;
            }
        }
    })
}
