//! IgmpActor: the shell around [`IgmpRouter`] for one querier interface
//! (RFC 2236 §3, RFC 3376 §6 are the core's; this owns only I/O).
//!
//! It reads every IGMP packet on the interface from a packet socket (see
//! `mcr::sys::igmp` for why not a raw IGMP socket), sends what the core
//! wants sent from a raw IGMP socket with Router Alert and TTL 1, keeps one
//! timer at the core's `poll_timeout`, and turns the core's events into
//! RIB memberships and `subscribe` events.
//!
//! A packet never fails the actor: the decoder refuses bad input and the
//! core counts it; the shell logs why at debug under the Protocol facility,
//! rate-limited like the data plane's drop lines (`DropLog`), so a flood of
//! bad packets cannot flood the log. If the actor fails anyway, the restarted one starts
//! with no members and says nothing destructive: it sends the startup
//! queries, adds what the answers name, and only once the answers to every
//! startup query are due does it hand the RIB the full membership of the
//! interface (`RibMsg::Memberships`), so forwarding to members that are
//! still there never stops.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::control::Event;
use mcr::dataplane::explain::{Admit, Limiter, WINDOW_MS};
use mcr::igmp::config::InterfaceConfig;
use mcr::igmp::instance::Role;
use mcr::igmp::{
    FilterMode, HostFilter, IgmpEvent, IgmpParams, IgmpRouter, RouterConfig, Snapshot,
};
use mcr::proto::Protocol;
use mcr::rib::SourceFilter;
use mcr::sys::igmp::{open_igmp_rx, open_igmp_tx, parse_ipv4, send_igmp};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use mcr::config::Config;
use mcr::igmp::IgmpSettings;

use super::{igmp_metrics, ProtocolChild, SpawnFuture};
use crate::supervisor::handles::{Igmp, IgmpMsg, IgmpProxy, IgmpProxyMsg, Rib, RibMsg};
use crate::supervisor::packet_reader::{self, PacketSink};
use crate::supervisor::shared::{IgmpSetup, Shared};

/// How often to look again for an interface that is missing or has no
/// IPv4 address.
const RETRY: Duration = Duration::from_secs(1);
/// Longer than any IPv4 packet an Ethernet-sized link delivers; a longer
/// one is cut and then refused by the IP header check.
const MAX_PACKET: usize = 65_535;

pub struct IgmpActor;

pub struct IgmpArgs {
    pub shared: Arc<Shared>,
    pub interface: String,
    pub params: IgmpParams,
}

/// Aborts its task when dropped, so a failed actor leaves no reader or
/// timer behind (its state is dropped however it ends).
pub(super) struct Task(pub(super) JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Running {
    router: IgmpRouter,
    ifindex: u32,
    tx: OwnedFd,
    reader: Reader,
}

pub struct IgmpState {
    shared: Arc<Shared>,
    interface: String,
    params: IgmpParams,
    run: Option<Running>,
    timer: Option<(Instant, Task)>,
    _resync: Option<Task>,
    /// Packets whose IP header was unusable; shown with the core's
    /// `malformed` counter.
    bad_ip: u64,
    drops: DropLog,
}

/// Debug lines about dropped IGMP packets, at most `BURST` per 10 s
/// window; the rest are counted and the count is logged with the next
/// line or at the next tick once the window is over (the same limiter as
/// the data plane's drop explanations, `mcr::dataplane::explain`).
pub(super) struct DropLog {
    start: Instant,
    limiter: Limiter,
}

impl Default for DropLog {
    fn default() -> Self {
        DropLog {
            start: Instant::now(),
            limiter: Limiter::default(),
        }
    }
}

impl DropLog {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One dropped packet from `src` on `interface`, `why`.
    pub(super) fn dropped(
        &mut self,
        interface: &str,
        src: impl std::fmt::Display,
        why: impl std::fmt::Display,
    ) {
        // The level check first: with debug off a drop costs nothing more.
        if !tracing::enabled!(target: "Protocol", tracing::Level::DEBUG) {
            return;
        }
        if let Admit::Log { held_back } = self.limiter.admit(self.now_ms()) {
            let more = if held_back > 0 {
                format!(
                    " ({held_back} more dropped in the previous {} s, not logged)",
                    WINDOW_MS / 1000
                )
            } else {
                String::new()
            };
            debug!(target: "Protocol", "IGMP on {interface}: dropped a packet from {src}: {why}{more}");
        }
    }

    /// After a window with lines held back: how many, once.
    pub(super) fn flush(&mut self, interface: &str) {
        if let Some(n) = self.limiter.flush(self.now_ms()) {
            debug!(target: "Protocol", "IGMP on {interface}: {n} more dropped packets in the last {} s, not logged", WINDOW_MS / 1000);
        }
    }
}

/// The filter a core event names, as the RIB keeps it.
fn filter(mode: FilterMode, sources: Vec<std::net::Ipv4Addr>) -> SourceFilter {
    let set = sources.into_iter().collect();
    match mode {
        FilterMode::Include => SourceFilter::Include(set),
        FilterMode::Exclude => SourceFilter::Exclude(set),
    }
}

/// The same filter as the IGMP proxy merges it (RFC 4605 §4.1).
fn host_filter(mode: FilterMode, sources: Vec<std::net::Ipv4Addr>) -> HostFilter {
    HostFilter {
        mode,
        sources: sources.into_iter().collect(),
    }
}

/// Tell the proxy (if one runs) every membership of `interface`; it keeps
/// only those of its downstream interfaces.
fn proxy_memberships(
    interface: &str,
    members: Vec<(std::net::Ipv4Addr, FilterMode, Vec<std::net::Ipv4Addr>)>,
) {
    let groups = members
        .into_iter()
        .map(|(g, m, s)| (g, host_filter(m, s)))
        .collect();
    IgmpProxy::tell(IgmpProxyMsg::Memberships {
        interface: interface.to_string(),
        groups,
    });
}

/// When the answers to every startup query are due: after the last of
/// them (startup count − 1 intervals after the first) plus the response
/// time. Always shorter than the group membership interval, so nothing
/// that is still there expires before the RIB hears about it.
pub fn startup_window(p: &IgmpParams) -> Duration {
    let queries = u32::from(p.startup_query_count.max(1)) - 1;
    p.startup_query_interval * queries + p.query_response_interval
}

impl IgmpState {
    /// Open the sockets and start the core, if the interface is there.
    fn try_start(&mut self, me: &ActorRef<IgmpMsg>) -> Result<(), String> {
        let info = mcr::sys::interface_info(&self.interface)
            .ok_or_else(|| format!("interface {} does not exist", self.interface))?;
        let address = *info
            .addrs
            .first()
            .ok_or_else(|| format!("interface {} has no IPv4 address", self.interface))?;
        let rx = open_igmp_rx(info.ifindex).map_err(|e| format!("IGMP receive socket: {e}"))?;
        let tx = open_igmp_tx(&self.interface, info.ifindex, address)
            .map_err(|e| format!("IGMP send socket: {e}"))?;
        let reader = start_reader(rx, me.clone(), &self.interface, |p| {
            Some(IgmpMsg::Packet(p.to_vec()))
        })?;
        let now = Instant::now();
        let config = RouterConfig {
            params: self.params.clone(),
            interfaces: vec![InterfaceConfig {
                ifindex: info.ifindex,
                name: self.interface.clone(),
                address,
            }],
        };
        self.run = Some(Running {
            router: IgmpRouter::new(now, config),
            ifindex: info.ifindex,
            tx,
            reader,
        });
        // To this actor, not by name: a Resync from a predecessor would
        // hand the RIB a membership not yet re-learned.
        let me = me.clone();
        let window = startup_window(&self.params);
        self._resync = Some(Task(tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let _ = me.cast(IgmpMsg::Resync);
        })));
        info!(target: "Protocol", "IGMP querier on {} ({address}, ifindex {})", self.interface, info.ifindex);
        Ok(())
    }

    /// Stop when the interface went away or changed address: its sockets
    /// are bound to what is gone, and its members with it. The next tick
    /// starts afresh on whatever has the name now.
    fn check_interface(&mut self) {
        let Some(run) = self.run.as_ref() else {
            return;
        };
        let now = mcr::sys::interface_info(&self.interface)
            .and_then(|i| Some((i.ifindex, *i.addrs.first()?)));
        let was = run
            .router
            .interface(run.ifindex)
            .map(|i| (run.ifindex, i.address()));
        if now.is_some() && now == was {
            return;
        }
        warn!(target: "Protocol", "IGMP on {}: the interface went away or changed address; starting over", self.interface);
        let members = run
            .router
            .interface(run.ifindex)
            .map(|i| i.members())
            .unwrap_or_default();
        self.run = None;
        self._resync = None;
        Rib::tell(RibMsg::LeaveInterface(self.interface.clone()));
        proxy_memberships(&self.interface, Vec::new());
        for (group, _, _) in members {
            self.shared.publish(Event::IgmpLeave {
                interface: self.interface.clone(),
                group,
            });
        }
    }

    /// Send, report and re-arm after the core ran.
    fn drain(&mut self, me: &ActorRef<IgmpMsg>) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        while let Some(t) = run.router.poll_transmit() {
            if let Err(e) = send_igmp(&run.tx, t.dst, &t.payload) {
                // A full buffer or a downed link loses one query; the
                // protocol repeats every query it needs.
                debug!(target: "Protocol", "IGMP send on {} to {}: {e}", self.interface, t.dst);
            }
        }
        let mut events = Vec::new();
        while let Some(e) = run.router.poll_event() {
            events.push(e);
        }
        for e in events {
            self.event(e);
        }
        self.publish_metrics();
        let Some(run) = self.run.as_ref() else {
            return;
        };
        match run.router.poll_timeout() {
            Some(at) if self.timer.as_ref().map(|(t, _)| *t) != Some(at) => {
                self.timer = Some((at, Task(tokio::spawn(tick_at(at, me.clone())))));
            }
            Some(_) => {}
            None => self.timer = None,
        }
    }

    fn event(&self, e: IgmpEvent) {
        let interface = self.interface.clone();
        match e {
            IgmpEvent::Join {
                group,
                mode,
                sources,
                ..
            } => {
                self.membership(group, mode, sources);
                self.shared.publish(Event::IgmpJoin { interface, group });
            }
            IgmpEvent::Change {
                group,
                mode,
                sources,
                ..
            } => self.membership(group, mode, sources),
            IgmpEvent::Leave { group, .. } => {
                IgmpProxy::tell(IgmpProxyMsg::Membership {
                    interface: interface.clone(),
                    group,
                    filter: host_filter(FilterMode::Include, Vec::new()),
                });
                Rib::tell(RibMsg::Leave {
                    interface: interface.clone(),
                    group,
                });
                self.shared.publish(Event::IgmpLeave { interface, group });
            }
            IgmpEvent::QuerierChange { querier, local, .. } => {
                info!(target: "Protocol", "IGMP querier on {interface}: {querier}{}", if local { " (us)" } else { "" });
                IgmpProxy::tell(IgmpProxyMsg::Querier {
                    interface: interface.clone(),
                    local,
                });
                self.shared.publish(Event::IgmpQuerier {
                    interface,
                    querier,
                    local,
                });
            }
        }
    }

    /// A group's members on this interface now want `sources` in `mode`:
    /// the proxy reports it upstream, the RIB forwards by it.
    fn membership(
        &self,
        group: std::net::Ipv4Addr,
        mode: FilterMode,
        sources: Vec<std::net::Ipv4Addr>,
    ) {
        IgmpProxy::tell(IgmpProxyMsg::Membership {
            interface: self.interface.clone(),
            group,
            filter: host_filter(mode, sources.clone()),
        });
        Rib::tell(RibMsg::Join {
            interface: self.interface.clone(),
            group,
            filter: filter(mode, sources),
        });
    }

    /// A querier of the proxy's downstream, or one of its own.
    fn role(&self) -> Role {
        let downstream = self
            .shared
            .config()
            .igmp
            .as_ref()
            .and_then(|c| c.proxy.as_ref())
            .is_some_and(|p| p.downstream.contains(&self.interface));
        if downstream {
            Role::ProxyDownstream
        } else {
            Role::Querier
        }
    }

    fn publish_metrics(&self) {
        let Some(run) = self.run.as_ref() else {
            return;
        };
        if let Some(i) = run.router.interface(run.ifindex) {
            let mut c = i.counters.clone();
            c.malformed += self.bad_ip;
            let groups = i.members().len();
            igmp_metrics::publish(&self.interface, self.role(), &c, groups, i.is_querier());
        }
    }

    fn snapshot(&self) -> Snapshot {
        let Some(run) = self.run.as_ref() else {
            return Snapshot::default();
        };
        let mut s = run.router.snapshot(Instant::now());
        let role = self.role();
        for i in &mut s.interfaces {
            i.querier.counters.malformed += self.bad_ip;
            i.role = role;
        }
        s
    }
}

async fn tick_at(at: Instant, me: ActorRef<IgmpMsg>) {
    tick_at_with(at, me, || IgmpMsg::Tick).await
}

/// Send `tick()` to `me` at `at` (the IGMP proxy shares this).
pub(super) async fn tick_at_with<M: ractor::Message>(
    at: Instant,
    me: ActorRef<M>,
    tick: fn() -> M,
) {
    tokio::time::sleep_until(at.into()).await;
    let _ = me.cast(tick());
}

/// The receiving task of one interface (a `packet_reader`); it
/// notices within `POLL` that it should stop.
pub(super) struct Reader {
    stop: Arc<AtomicBool>,
    /// Packets handed to the actor and not yet handled.
    queued: Arc<AtomicUsize>,
}

impl Reader {
    pub(super) fn handled(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const POLL: Duration = Duration::from_millis(200);
/// Packets the actor may have waiting. A LAN sends a few reports per
/// member per query interval; more than this waiting is a flood, which is
/// dropped at the socket rather than grown into the mailbox.
const MAX_QUEUED: usize = 4096;

/// Start reading `rx` on a task; each packet reaches `me` as
/// `wrap(packet)`, unless that is `None` (the IGMP proxy's upstream and
/// its data watch read the same way).
pub(super) fn start_reader<M: ractor::Message>(
    rx: OwnedFd,
    me: ActorRef<M>,
    interface: &str,
    wrap: impl FnMut(&[u8]) -> Option<M> + Send + 'static,
) -> Result<Reader, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(AtomicUsize::new(0));
    let sink = ActorSink {
        me,
        wrap,
        stop: stop.clone(),
        queued: queued.clone(),
        dropped: 0,
    };
    packet_reader::spawn(rx, format!("igmp-{interface}"), MAX_PACKET, POLL, sink)
        .map_err(|e| format!("IGMP receive task: {e}"))?;
    Ok(Reader { stop, queued })
}

/// Hands every packet to the actor until it is gone or says stop,
/// dropping what comes while `MAX_QUEUED` wait.
struct ActorSink<M: ractor::Message, W> {
    me: ActorRef<M>,
    wrap: W,
    stop: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    /// Packets dropped in the flood going on.
    dropped: u64,
}

impl<M, W> PacketSink for ActorSink<M, W>
where
    M: ractor::Message,
    W: FnMut(&[u8]) -> Option<M> + Send + 'static,
{
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn deliver(&mut self, packet: &[u8]) -> bool {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            if self.dropped == 0 {
                warn!(target: "Protocol", "IGMP flood: more than {MAX_QUEUED} packets waiting; dropping");
            }
            self.dropped += 1;
            return true;
        }
        if self.dropped > 0 {
            warn!(target: "Protocol", "IGMP flood over: {} packets dropped", self.dropped);
            self.dropped = 0;
        }
        let Some(m) = (self.wrap)(packet) else {
            return true;
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.me.cast(m).is_ok()
    }

    fn receive_error(&self, e: &std::io::Error) {
        // The interface went down: packets flow again when it comes back.
        warn!(target: "Protocol", "IGMP receive: {e}");
    }
}

impl Actor for IgmpActor {
    type Msg = IgmpMsg;
    type State = IgmpState;
    type Arguments = IgmpArgs;

    async fn pre_start(
        &self,
        me: ActorRef<IgmpMsg>,
        args: IgmpArgs,
    ) -> Result<IgmpState, ActorProcessingErr> {
        let mut st = IgmpState {
            shared: args.shared,
            interface: args.interface,
            params: args.params,
            run: None,
            timer: None,
            _resync: None,
            bad_ip: 0,
            drops: DropLog::default(),
        };
        // A missing interface is not a failure of the actor: it waits.
        if let Err(e) = st.try_start(&me) {
            warn!(target: "Protocol", "IGMP on {}: {e}; retrying every {RETRY:?}", st.interface);
            let at = Instant::now() + RETRY;
            st.timer = Some((at, Task(tokio::spawn(tick_at(at, me.clone())))));
        }
        st.drain(&me);
        Ok(st)
    }

    async fn post_stop(
        &self,
        _me: ActorRef<IgmpMsg>,
        st: &mut IgmpState,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped because the config no longer wants it (a failed actor
        // is restarted and publishes again).
        igmp_metrics::forget(&st.interface, Role::Querier);
        igmp_metrics::forget(&st.interface, Role::ProxyDownstream);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<IgmpMsg>,
        msg: IgmpMsg,
        st: &mut IgmpState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IgmpMsg::Packet(p) => {
                let Some(run) = st.run.as_mut() else {
                    return Ok(());
                };
                run.reader.handled();
                match parse_ipv4(&p) {
                    Some((src, dst, payload)) => {
                        run.router
                            .handle_packet(Instant::now(), run.ifindex, src, dst, payload);
                        if let Some((_, src, why)) = run.router.take_dropped() {
                            st.drops.dropped(&st.interface, src, why);
                        }
                    }
                    None => {
                        st.bad_ip += 1;
                        st.drops.dropped(&st.interface, "?", "unusable IPv4 header");
                    }
                }
                st.drain(&me);
            }
            IgmpMsg::Tick => {
                st.timer = None;
                st.drops.flush(&st.interface);
                st.check_interface();
                match st.run.as_mut() {
                    Some(run) => run.router.handle_timeout(Instant::now()),
                    None => {
                        if let Err(e) = st.try_start(&me) {
                            debug!(target: "Protocol", "IGMP on {}: {e}", st.interface);
                            let at = Instant::now() + RETRY;
                            st.timer = Some((at, Task(tokio::spawn(tick_at(at, me.clone())))));
                        }
                    }
                }
                st.drain(&me);
            }
            IgmpMsg::Resync => {
                if let Some(run) = st.run.as_ref() {
                    let members = run
                        .router
                        .interface(run.ifindex)
                        .map(|i| i.members())
                        .unwrap_or_default();
                    proxy_memberships(&st.interface, members.clone());
                    let groups = members
                        .into_iter()
                        .map(|(g, mode, sources)| (g, filter(mode, sources)))
                        .collect();
                    Rib::tell(RibMsg::Memberships {
                        interface: st.interface.clone(),
                        groups,
                    });
                }
            }
            IgmpMsg::Params(p) => {
                if p != st.params {
                    info!(target: "Protocol", "IGMP on {}: new timers from the config", st.interface);
                    st.params = p.clone();
                    if let Some(run) = st.run.as_mut() {
                        if let Some(address) =
                            run.router.interface(run.ifindex).map(|i| i.address())
                        {
                            // Same interface and address: the core keeps
                            // its groups and election, swaps the timers.
                            let config = RouterConfig {
                                params: p,
                                interfaces: vec![InterfaceConfig {
                                    ifindex: run.ifindex,
                                    name: st.interface.clone(),
                                    address,
                                }],
                            };
                            run.router.handle_config(Instant::now(), config);
                        }
                    }
                    st.drain(&me);
                }
            }
            IgmpMsg::Snapshot(reply) => {
                let _ = reply.send(st.snapshot());
            }
            IgmpMsg::Panic => panic!("fault injection: igmp actor panic requested"),
        }
        Ok(())
    }
}

/// Start the IgmpActor of `interface` under `supervisor`, registered as
/// `igmp/INTERFACE`.
pub async fn spawn_linked(
    shared: Arc<Shared>,
    interface: String,
    params: IgmpParams,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let name = Igmp::actor_name(&interface);
    let args = IgmpArgs {
        shared,
        interface,
        params,
    };
    let (a, _) = Actor::spawn_linked(Some(name), IgmpActor, args, supervisor).await?;
    Ok(a.get_cell())
}

/// One querier's IgmpActor as a child of the ProtocolSupervisor, key
/// `igmp/<interface>`.
struct IgmpChild {
    interface: String,
    settings: IgmpSettings,
}

impl ProtocolChild for IgmpChild {
    fn key(&self) -> String {
        Igmp::actor_name(&self.interface)
    }

    // `spawn_linked` registers the actor as `igmp/<interface>`: the key,
    // which is the name the supervisor passes.
    fn spawn(&self, _name: String, shared: Arc<Shared>, supervisor: ActorCell) -> SpawnFuture {
        let interface = self.interface.clone();
        let settings = self.settings.clone();
        Box::pin(async move {
            let params = settings.validate().map_err(|e| e.to_string())?;
            spawn_linked(shared, interface, params, supervisor).await
        })
    }

    fn reconfigure(&self) {
        if let Ok(p) = self.settings.validate() {
            Igmp::tell(&self.interface, IgmpMsg::Params(p));
        }
    }

    fn retired(&self) {
        // Nobody tracks this interface's members any more.
        Rib::tell(RibMsg::LeaveInterface(self.interface.clone()));
        proxy_memberships(&self.interface, Vec::new());
    }
}

/// One querier per interface of the config's `igmp` section.
pub fn children(cfg: &Config) -> Vec<Arc<dyn ProtocolChild>> {
    let Some(setup) = IgmpSetup::from_config(cfg) else {
        return Vec::new();
    };
    setup
        .querier_interfaces
        .into_iter()
        .map(|interface| {
            let c: Arc<dyn ProtocolChild> = Arc::new(IgmpChild {
                interface,
                settings: setup.settings.clone(),
            });
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::igmp::IgmpSettings;

    #[test]
    fn resync_comes_after_every_startup_answer_and_before_any_expiry() {
        let fast = IgmpSettings {
            query_interval: 2.0,
            query_response_interval: 1.0,
            ..Default::default()
        };
        for s in [IgmpSettings::default(), fast] {
            let p = s.validate().unwrap();
            let w = startup_window(&p);
            let last_query = p.startup_query_interval * u32::from(p.startup_query_count - 1);
            assert!(w >= last_query + p.query_response_interval, "{w:?}");
            assert!(w < p.gmi(p.robustness, p.query_interval), "{w:?}");
        }
    }

    #[test]
    fn core_filters_map_to_rib_filters() {
        let s = std::net::Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(filter(FilterMode::Exclude, vec![]), SourceFilter::any());
        assert!(filter(FilterMode::Include, vec![s]).accepts(s));
        assert!(!filter(FilterMode::Exclude, vec![s]).accepts(s));
    }
}
