//! WorkerLink: the supervisor's side of one worker process.
//!
//! It starts the process (AF_PACKET socket, IPC pair, fd 3), sends it its
//! egress sockets and its table as sequenced deltas (`mcr::rib::TableSync`),
//! watches acks and heartbeats for drift, restarts the process with backoff
//! when it exits, kills it when it stops heartbeating, and stops it when
//! its interface has had no rules for the idle timeout.
//!
//! Everything that must survive a restart of this actor (the process, its
//! sockets, the table sync state, counters) is in `LinkState`, kept in the
//! root's registry. The per-process IPC reader task and exit watcher
//! address the link by its registry name, so a restarted link receives
//! their messages without re-plumbing anything.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcr::control::{Done, Event, WorkerInfo};
use mcr::dataplane::sockets::{self, InterfaceInfo};
use mcr::ipc::fdpass::{pass_as_fd3, recv_msg, send_msg, seqpacket_pair};
use mcr::ipc::{
    decode, encode, EgressSpec, Fault, FrameFormat, FromWorker, TableOutput, TableRule, ToWorker,
    WorkerSetup, IPC_VERSION, MAX_MESSAGE,
};
use mcr::logging::LogLevels;
use mcr::rib::{EgressKey, EgressMap, InterfaceTable, SyncAction, TableSync};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, error, info, warn};

use crate::supervisor::rib_actor::{self, Ifaces, RibMsg, WorkerView};
use crate::supervisor::stats_actor::{self, StatsMsg};
use crate::supervisor::{lock, Shared, WorkerKey};

/// A worker must say Hello within this long after it is started.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A worker that ran this long before it died was not crash-looping: it
/// restarts at once, without backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(200);
/// An egress id that no socket has: outputs that cannot send keep their
/// place in the rule (so per-output counters line up) and count errors.
const NO_EGRESS: u32 = u32::MAX;

/// Where a worker is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Process started, no Hello yet.
    Starting(Instant),
    Running,
    /// Exited; next start not before this instant.
    Restarting(Instant),
    Stopping,
    Stopped,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting(_) => "starting",
            Phase::Running => "running",
            Phase::Restarting(_) => "restarting",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// A running worker process.
pub struct Proc {
    pub pid: u32,
    ipc: Arc<OwnedFd>,
    /// Set by the exit watcher, under this lock, before it reaps: a pid we
    /// still see as not exited cannot have been reused yet.
    exited: Arc<Mutex<bool>>,
}

impl Proc {
    fn kill(&self) {
        let exited = lock(&self.exited);
        if !*exited {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    pub fn has_exited(&self) -> bool {
        *lock(&self.exited)
    }

    fn send(&self, msg: &ToWorker, fds: &[&OwnedFd]) -> Result<(), String> {
        let bytes = encode(msg).map_err(|e| e.to_string())?;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_msg(self.ipc.as_fd(), &bytes, &raw, true).map_err(|e| e.to_string())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The reader thread ends when the killed process's end closes.
        self.kill();
    }
}

/// Everything about one worker that outlives the WorkerLink actor.
pub struct LinkState {
    pub key: WorkerKey,
    pub proc: Option<Proc>,
    /// Incremented per process, so messages from a previous process are
    /// recognised and ignored.
    pub gen: u64,
    pub phase: Phase,
    pub sync: TableSync,
    egress: EgressMap,
    egress_fds: BTreeMap<u32, (EgressSpec, u32, OwnedFd)>,
    /// The AF_PACKET socket and the ifindex it is bound to. Kept across
    /// worker restarts: while the new worker starts, arriving packets
    /// queue in the kernel instead of being lost. The supervisor also
    /// updates its BPF filter through it.
    ingress: Option<(OwnedFd, u32, FrameFormat)>,
    /// The next start must open a fresh ingress socket (the old one may
    /// hold a stale backlog, or its fanout group changed).
    fresh_ingress: bool,
    /// Fault injection: panic the next this-many workers right after they
    /// start (a crash loop).
    crash_next: u32,
    pub table: Arc<InterfaceTable>,
    pub ifaces: Arc<Ifaces>,
    pub problems: BTreeMap<(String, usize), String>,
    pub restarts: u32,
    failures_in_row: u32,
    pub last_exit: Option<String>,
    kill_reason: Option<String>,
    pub started_at: Option<Instant>,
    pub last_heartbeat: Option<Instant>,
    pub worker_hash: Option<u64>,
    pub idle_since: Option<Instant>,
    pub core: Option<u32>,
    pub nworkers: u32,
    pub in_sync: bool,
}

impl LinkState {
    fn new(key: WorkerKey) -> Self {
        LinkState {
            key,
            proc: None,
            gen: 0,
            phase: Phase::Restarting(Instant::now()),
            sync: TableSync::new(),
            egress: EgressMap::new(),
            egress_fds: BTreeMap::new(),
            ingress: None,
            fresh_ingress: false,
            crash_next: 0,
            table: Arc::new(Vec::new()),
            ifaces: Arc::new(BTreeMap::new()),
            problems: BTreeMap::new(),
            restarts: 0,
            failures_in_row: 0,
            last_exit: None,
            kill_reason: None,
            started_at: None,
            last_heartbeat: None,
            worker_hash: None,
            idle_since: None,
            core: None,
            nworkers: 1,
            in_sync: false,
        }
    }

    /// `workers` view.
    pub fn info(&self) -> WorkerInfo {
        let backoff_ms = match self.phase {
            Phase::Restarting(at) => {
                Some(at.saturating_duration_since(Instant::now()).as_millis() as u64)
            }
            _ => None,
        };
        WorkerInfo {
            interface: self.key.interface.clone(),
            index: self.key.index,
            pid: self.proc.as_ref().map(|p| p.pid),
            core: self.core,
            state: if self.phase == Phase::Running
                && self.table.is_empty()
                && self.idle_since.is_some()
            {
                "idle".into()
            } else {
                self.phase.name().into()
            },
            uptime_secs: self
                .started_at
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0),
            restarts: self.restarts,
            rules: self.sync.rules() as u32,
            table_hash: self
                .worker_hash
                .map(|h| format!("{h:016x}"))
                .unwrap_or_default(),
            expected_hash: format!("{:016x}", self.sync.expected_hash()),
            resyncs: self.sync.resyncs,
            last_heartbeat_ms: self.last_heartbeat.map(|t| t.elapsed().as_millis() as u64),
            last_exit: self.last_exit.clone(),
            backoff_ms,
        }
    }

    fn view(&self) -> WorkerView {
        WorkerView {
            state: self.phase.name().to_string(),
            in_sync: self.in_sync,
            reason: self
                .last_exit
                .clone()
                .filter(|_| self.phase != Phase::Running),
            problems: self.problems.clone(),
        }
    }

    fn send(&self, msg: &ToWorker, fds: &[&OwnedFd]) {
        if let Some(p) = &self.proc {
            if let Err(e) = p.send(msg, fds) {
                // The drift machinery repairs whatever this loses.
                warn!(target: "RuleDispatch", "worker {}: IPC send failed: {e}", self.key);
            }
        }
    }

    /// Multicast and unicast destinations this worker's filter lets in.
    fn filter_dsts(&self) -> Vec<std::net::Ipv4Addr> {
        self.table.iter().map(|r| r.group).collect()
    }

    /// Turn the compiled table into the worker's table: open egress
    /// sockets for new (interface, TTL, mode) combinations, note outputs
    /// that cannot send, and send the worker what changed.
    fn apply_table(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let mut problems = BTreeMap::new();
        let mut used: BTreeMap<EgressKey, u32> = BTreeMap::new();
        let mut adds: Vec<u32> = Vec::new();
        let mut desired: Vec<TableRule> = Vec::with_capacity(self.table.len());
        let table = self.table.clone();
        let ifaces = self.ifaces.clone();
        for r in table.iter() {
            let mut outs = Vec::with_capacity(r.outputs.len());
            for (i, o) in r.outputs.iter().enumerate() {
                let key = o.egress_key();
                let egress = match ifaces.get(&o.interface) {
                    None => {
                        problems.insert(
                            (r.rule_id.clone(), i),
                            format!("output interface {} does not exist", o.interface),
                        );
                        NO_EGRESS
                    }
                    Some(info) => {
                        if !info.up {
                            problems.insert(
                                (r.rule_id.clone(), i),
                                format!("output interface {} is down", o.interface),
                            );
                        }
                        match self.egress_for(&key, info, &mut adds) {
                            Ok(id) => {
                                used.insert(key, id);
                                id
                            }
                            Err(e) => {
                                problems.insert((r.rule_id.clone(), i), e);
                                NO_EGRESS
                            }
                        }
                    }
                };
                outs.push(TableOutput {
                    egress,
                    group: o.group,
                    port: o.port,
                    mode: o.mode,
                });
            }
            desired.push(TableRule {
                key: r.key,
                id: r.rule_id.clone(),
                group: r.group,
                port: r.port,
                source: r.source,
                outputs: outs,
            });
        }
        for id in adds {
            if let Some((spec, _, fd)) = self.egress_fds.get(&id) {
                self.send(&ToWorker::AddEgress(spec.clone()), &[fd]);
            }
        }
        for m in self.sync.update(&desired) {
            self.send(&m, &[]);
        }
        // Egress sockets no output uses any more.
        let stale: Vec<EgressKey> = self
            .egress
            .keys()
            .filter(|(k, _)| !used.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(id) = self.egress.release(&k) {
                self.egress_fds.remove(&id);
                self.send(&ToWorker::RemoveEgress { id }, &[]);
            }
        }
        if let Some((ingress, _, fmt)) = &self.ingress {
            let dsts = self.filter_dsts();
            if let Err(e) =
                sockets::set_ingress_filter(ingress.as_fd(), Some(&dsts), fmt.link_header)
            {
                warn!(target: "Ingress", "worker {}: updating the ingress filter: {e}", self.key);
            }
        }
        self.problems = problems;
        self.in_sync = self.worker_hash == Some(self.sync.expected_hash());
    }

    /// The egress id for `key`, opening its socket if new (or if its
    /// interface was re-created with a new ifindex).
    fn egress_for(
        &mut self,
        key: &EgressKey,
        info: &InterfaceInfo,
        adds: &mut Vec<u32>,
    ) -> Result<u32, String> {
        if let Some(id) = self.egress.get(key) {
            match self.egress_fds.get(&id) {
                Some((spec, ifindex, _)) if *ifindex == info.ifindex && spec.mtu == info.mtu => {
                    return Ok(id)
                }
                _ => {
                    self.egress.release(key);
                    self.egress_fds.remove(&id);
                    self.send(&ToWorker::RemoveEgress { id }, &[]);
                }
            }
        }
        let sndbuf = mcr::env_override("MCR_SOCKET_SNDBUF").unwrap_or(sockets::EGRESS_SNDBUF);
        let fd = sockets::open_egress(
            &key.interface,
            info.ifindex,
            key.ttl.max(1),
            key.mode,
            sndbuf,
        )
        .map_err(|e| {
            format!(
                "cannot open a {} socket on {}: {e}",
                key.mode.as_str(),
                key.interface
            )
        })?;
        let (id, _) = self.egress.id(key);
        let spec = EgressSpec {
            id,
            interface: key.interface.clone(),
            ttl: key.ttl,
            mode: key.mode,
            mtu: info.mtu,
        };
        self.egress_fds.insert(id, (spec, info.ifindex, fd));
        adds.push(id);
        Ok(id)
    }

    /// Resend every egress socket and the whole table.
    fn full_sync(&mut self, why: &str) {
        warn!(target: "RuleDispatch", "worker {}: full table resync: {why}", self.key);
        for (spec, _, fd) in self.egress_fds.values() {
            self.send(&ToWorker::AddEgress(spec.clone()), &[fd]);
        }
        for m in self.sync.full_sync() {
            self.send(&m, &[]);
        }
        self.in_sync = false;
    }

    /// Fault injection: make the worker panic, as a crashing worker would.
    fn inject_crash(&mut self) {
        self.kill_reason = Some("crash loop injected".into());
        self.send(&ToWorker::Fault(Fault::Panic), &[]);
    }

    fn kill(&mut self, why: String) {
        if let Some(p) = &self.proc {
            warn!(target: "Supervisor", "worker {} (pid {}): killing: {why}", self.key, p.pid);
            self.kill_reason = Some(why);
            p.kill();
        }
    }
}

fn fanout_id(ifindex: u32) -> u16 {
    // Unique per interface in this namespace and per daemon, so two mcrd
    // instances never share a fanout group by accident.
    ((std::process::id() as u16).rotate_left(8)) ^ (ifindex as u16)
}

/// Start a worker process for `st.key`.
fn start_process(st: &mut LinkState, shared: &Shared) -> Result<(), String> {
    let ifc = st.key.interface.clone();
    let info = st
        .ifaces
        .get(&ifc)
        .cloned()
        .or_else(|| sockets::interface_info(&ifc))
        .ok_or_else(|| format!("interface {ifc} does not exist"))?;
    let dsts = st.filter_dsts();
    let format = sockets::frame_format(info.link_type);
    let reuse = !st.fresh_ingress
        && st
            .ingress
            .as_ref()
            .is_some_and(|(_, ix, f)| *ix == info.ifindex && *f == format);
    if !reuse {
        st.ingress = None;
        let fd = sockets::open_ingress(info.ifindex, sockets::INGRESS_RCVBUF, Some(&dsts), format)
            .map_err(|e| format!("cannot open an AF_PACKET socket on {ifc}: {e}"))?;
        if st.nworkers > 1 {
            sockets::join_fanout(fd.as_fd(), fanout_id(info.ifindex))
                .map_err(|e| format!("cannot join the PACKET_FANOUT group on {ifc}: {e}"))?;
        }
        st.ingress = Some((fd, info.ifindex, format));
        st.fresh_ingress = false;
    }
    let Some((ingress, _, _)) = &st.ingress else {
        return Err("no ingress socket".into());
    };
    let (sup, child_end) = seqpacket_pair().map_err(|e| format!("IPC socket pair: {e}"))?;
    let fmt = match shared.settings.log_format {
        mcr::logging::LogFormat::Json => "json",
        mcr::logging::LogFormat::Text => "text",
    };
    let mut cmd = Command::new(crate::self_exe());
    cmd.args([
        "worker",
        "--interface",
        &ifc,
        "--index",
        &st.key.index.to_string(),
        "--log-format",
        fmt,
    ])
    .stdin(Stdio::null());
    pass_as_fd3(&mut cmd, &child_end);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the worker process: {e}"))?;
    drop(child_end);
    let pid = child.id();
    st.gen += 1;
    let gen = st.gen;
    let name = st.key.actor_name();
    let ipc = Arc::new(sup);
    let exited = Arc::new(Mutex::new(false));
    spawn_exit_watcher(child, exited.clone(), name.clone(), gen);
    let reader_fd = ipc.clone();
    std::thread::Builder::new()
        .name("mcrd-ipc".into())
        .spawn(move || read_ipc(reader_fd, name, gen))
        .map_err(|e| format!("cannot start the IPC reader thread: {e}"))?;
    let proc = Proc { pid, ipc, exited };
    let setup = WorkerSetup {
        version: IPC_VERSION,
        interface: ifc.clone(),
        ifindex: info.ifindex,
        // Virtual links can hand us a local sender's GSO batches (up to
        // 64 KB per frame); physical ones carry at most an MTU.
        format,
        buffer_size: if format.vnet && sockets::may_receive_gso(&ifc) {
            sockets::MAX_FRAME + 64
        } else {
            info.mtu + 64
        },
        stats_interval_ms: shared.settings.stats_interval_ms,
        levels: crate::supervisor::current_levels(shared),
        uid: shared.settings.worker_uid,
        gid: shared.settings.worker_gid,
        core: st.core,
        worker_index: st.key.index,
    };
    proc.send(&ToWorker::Hello(setup), &[ingress])?;
    st.proc = Some(proc);
    st.sync.reset();
    st.egress.clear();
    st.egress_fds.clear();
    st.phase = Phase::Starting(Instant::now());
    st.in_sync = false;
    st.worker_hash = None;
    st.last_heartbeat = None;
    info!(target: "Supervisor", "worker {} started (pid {pid})", st.key);
    Ok(())
}

/// Wait for the process to exit on a plain thread (std's `wait` blocks),
/// flag it before reaping, and tell the link.
fn spawn_exit_watcher(
    mut child: std::process::Child,
    exited: Arc<Mutex<bool>>,
    link: String,
    gen: u64,
) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let r = std::thread::Builder::new()
        .name("mcrd-reaper".into())
        .spawn(move || {
            use nix::sys::wait::{waitid, Id, WaitPidFlag};
            // WNOWAIT: see the exit without reaping, so the pid stays ours
            // until `exited` is set and no kill can hit a recycled pid.
            while let Err(nix::errno::Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
            *lock(&exited) = true;
            let how = match child.wait() {
                Ok(s) => describe_exit(s),
                Err(e) => format!("exit status unknown: {e}"),
            };
            crate::supervisor::cast(&link, LinkMsg::Exited { gen, how });
        });
    if let Err(e) = r {
        error!(target: "Supervisor", "cannot start the exit watcher thread: {e}");
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = s.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        format!("killed by {name}")
    } else {
        match s.code() {
            Some(0) => "exited cleanly".into(),
            Some(101) => "panicked (exit status 101)".into(),
            Some(c) => format!("exited with status {c}"),
            None => "exited".into(),
        }
    }
}

/// Read worker messages (blocking, on its own thread) and forward them to
/// whichever link actor holds the name now. Ends when the worker's end
/// closes, which it does when the process exits or is killed.
fn read_ipc(ipc: Arc<OwnedFd>, link: String, gen: u64) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match recv_msg(ipc.as_fd(), &mut buf, false) {
            Ok(Some(m)) => match decode::<FromWorker>(&buf[..m.len]) {
                Ok(msg) => crate::supervisor::cast(&link, LinkMsg::FromWorker { gen, msg }),
                Err(e) => {
                    warn!(target: "RuleDispatch", "{link}: undecodable message from the worker: {e}")
                }
            },
            // EOF: the process is gone; the exit watcher reports it.
            Ok(None) => return,
            Err(e) => {
                debug!(target: "RuleDispatch", "{link}: IPC read: {e}");
                return;
            }
        }
    }
}

/// Fault injections a link can carry out.
#[derive(Clone, Debug)]
pub enum LinkFault {
    Kill,
    /// Panic the running worker and the next `n - 1` after it.
    CrashLoop(u32),
    Stall,
    CorruptTable,
    DropIpc(u32),
    Panic,
}

pub enum LinkMsg {
    /// The compiled table for this interface and the interfaces now.
    SetTable {
        table: Arc<InterfaceTable>,
        ifaces: Arc<Ifaces>,
        nworkers: u32,
        core: Option<u32>,
    },
    FromWorker {
        gen: u64,
        msg: FromWorker,
    },
    Exited {
        gen: u64,
        how: String,
    },
    Tick,
    SetLevels(LogLevels),
    Fault(LinkFault, RpcReplyPort<Result<Done, String>>),
    /// Stop the worker (interface gone or down, or shutdown) and this link.
    Stop {
        reason: String,
        reply: Option<RpcReplyPort<()>>,
    },
}

pub struct LinkArgs {
    pub key: WorkerKey,
    pub shared: Arc<Shared>,
    pub table: Arc<InterfaceTable>,
    pub ifaces: Arc<Ifaces>,
    pub nworkers: u32,
    pub core: Option<u32>,
}

pub struct WorkerLink;

pub struct LinkActorState {
    shared: Arc<Shared>,
    key: WorkerKey,
    st: Arc<Mutex<LinkState>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Drop for LinkActorState {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl LinkActorState {
    fn report(&self, st: &LinkState) {
        crate::supervisor::cast(
            rib_actor::NAME,
            RibMsg::Worker(self.key.clone(), Some(st.view())),
        );
    }
}

impl Actor for WorkerLink {
    type Msg = LinkMsg;
    type State = LinkActorState;
    type Arguments = LinkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LinkMsg>,
        a: LinkArgs,
    ) -> Result<LinkActorState, ActorProcessingErr> {
        let st = {
            let mut reg = lock(&a.shared.registry);
            reg.entry(a.key.clone())
                .or_insert_with(|| Arc::new(Mutex::new(LinkState::new(a.key.clone()))))
                .clone()
        };
        {
            let mut s = lock(&st);
            s.table = a.table;
            s.ifaces = a.ifaces;
            s.nworkers = a.nworkers;
            s.core = a.core;
            // Adopting a process whose exit we may have missed while no
            // link was registered.
            if s.proc.as_ref().is_some_and(|p| p.has_exited()) {
                s.proc = None;
                s.last_exit = Some("exited while its link was restarting".into());
                s.phase = Phase::Restarting(Instant::now());
            }
            if s.phase == Phase::Stopped || s.phase == Phase::Stopping {
                s.phase = Phase::Restarting(Instant::now());
            }
        }
        let me = myself.clone();
        let ticker = crate::supervisor::spawn_ticker(me, TICK, || LinkMsg::Tick);
        Ok(LinkActorState {
            shared: a.shared,
            key: a.key,
            st,
            ticker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LinkMsg>,
        msg: LinkMsg,
        ls: &mut LinkActorState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = ls.shared.clone();
        let st_arc = ls.st.clone();
        match msg {
            LinkMsg::SetTable {
                table,
                ifaces,
                nworkers,
                core,
            } => {
                let mut st = lock(&st_arc);
                let pin_changed = st.core != core || st.nworkers != nworkers;
                st.table = table;
                st.ifaces = ifaces;
                st.core = core;
                st.nworkers = nworkers;
                if st.table.is_empty() {
                    if st.idle_since.is_none() {
                        st.idle_since = Some(Instant::now());
                    }
                } else {
                    st.idle_since = None;
                }
                if pin_changed && st.proc.is_some() {
                    // Pinning and fanout are fixed at process start.
                    st.fresh_ingress = true;
                    st.kill("pinning changed; restarting with the new placement".into());
                } else {
                    st.apply_table();
                }
                ls.report(&st);
            }
            LinkMsg::FromWorker { gen, msg } => {
                let mut st = lock(&st_arc);
                if gen != st.gen {
                    return Ok(());
                }
                match msg {
                    FromWorker::Hello { version, pid } => {
                        if version != IPC_VERSION {
                            st.kill(format!(
                                "speaks IPC version {version}, expected {IPC_VERSION}"
                            ));
                            return Ok(());
                        }
                        if st.crash_next > 0 {
                            st.crash_next -= 1;
                            st.inject_crash();
                            return Ok(());
                        }
                        st.phase = Phase::Running;
                        st.started_at = Some(Instant::now());
                        st.last_heartbeat = Some(Instant::now());
                        shared.publish(Event::WorkerStarted {
                            interface: st.key.interface.clone(),
                            index: st.key.index,
                            pid,
                        });
                        st.apply_table();
                        ls.report(&st);
                    }
                    FromWorker::Ack { seq, hash, gap, .. } => {
                        st.worker_hash = Some(hash);
                        let action = st.sync.on_ack(seq, hash, gap);
                        act(&shared, &mut st, action);
                        let was = st.in_sync;
                        st.in_sync = seq == st.sync.seq() && hash == st.sync.expected_hash();
                        if was != st.in_sync {
                            ls.report(&st);
                        }
                    }
                    FromWorker::Heartbeat { seq, hash } => {
                        st.last_heartbeat = Some(Instant::now());
                        st.worker_hash = Some(hash);
                        let action = st.sync.on_heartbeat(seq, hash);
                        act(&shared, &mut st, action);
                    }
                    FromWorker::Stats {
                        counters,
                        rules,
                        last,
                    } => {
                        let pid = st.proc.as_ref().map(|p| p.pid).unwrap_or(0);
                        crate::supervisor::cast(
                            stats_actor::NAME,
                            StatsMsg::Report {
                                key: st.key.clone(),
                                pid,
                                counters,
                                rules,
                                last,
                            },
                        );
                    }
                    FromWorker::Error { message } => {
                        warn!(target: "DataPlane", "worker {}: {message}", st.key);
                    }
                }
            }
            LinkMsg::Exited { gen, how } => {
                let mut st = lock(&st_arc);
                if gen != st.gen {
                    return Ok(());
                }
                let pid = st.proc.as_ref().map(|p| p.pid).unwrap_or(0);
                st.proc = None;
                st.in_sync = false;
                let reason = match st.kill_reason.take() {
                    Some(k) => format!("{k} ({how})"),
                    None => how,
                };
                if st.phase == Phase::Stopping {
                    st.phase = Phase::Stopped;
                    info!(target: "Supervisor", "worker {} stopped: {reason}", st.key);
                    return Ok(());
                }
                if st.started_at.is_some_and(|t| t.elapsed() >= HEALTHY_AFTER) {
                    st.failures_in_row = 0;
                }
                st.failures_in_row += 1;
                st.restarts += 1;
                // First restart at once; then back off, doubling, capped,
                // so a crash loop costs little.
                let cap = shared.config().workers.restart_backoff_max;
                let delay = if st.failures_in_row <= 1 {
                    Duration::ZERO
                } else {
                    (BACKOFF_START * 2u32.saturating_pow(st.failures_in_row - 2)).min(cap)
                };
                st.phase = Phase::Restarting(Instant::now() + delay);
                st.started_at = None;
                st.last_exit = Some(reason.clone());
                warn!(target: "Supervisor", "worker {} (pid {pid}) {reason}; restart {} in {delay:?}", st.key, st.restarts);
                shared.publish(Event::WorkerExited {
                    interface: st.key.interface.clone(),
                    index: st.key.index,
                    pid,
                    reason,
                    restarts: st.restarts,
                });
                ls.report(&st);
                if delay.is_zero() {
                    let _ = myself.cast(LinkMsg::Tick);
                }
            }
            LinkMsg::Tick => {
                let idle = {
                    let mut st = lock(&st_arc);
                    tick(&shared, &mut st, ls)
                };
                if let Some(reason) = idle {
                    shared.publish(Event::WorkerIdleExit {
                        interface: ls.key.interface.clone(),
                    });
                    return stop_link(&myself, ls, reason).await;
                }
            }
            LinkMsg::SetLevels(levels) => {
                lock(&st_arc).send(&ToWorker::SetLogLevel(levels), &[]);
            }
            LinkMsg::Fault(f, reply) => {
                let mut st = lock(&st_arc);
                let pid = st.proc.as_ref().map(|p| p.pid);
                let r = match (f, pid) {
                    (LinkFault::Panic, _) => {
                        drop(st);
                        let _ = reply.send(Ok(Done {
                            message: format!("link {} panicking", ls.key),
                            id: None,
                        }));
                        panic!("fault injection: worker link panic requested");
                    }
                    (_, None) => Err(format!("worker {} has no running process", st.key)),
                    (LinkFault::Kill, Some(pid)) => {
                        st.kill_reason = Some("killed by fault injection".into());
                        if let Some(p) = &st.proc {
                            p.kill();
                        }
                        Ok(format!("worker {} (pid {pid}) killed", st.key))
                    }
                    (LinkFault::Stall, Some(pid)) => {
                        st.send(&ToWorker::Fault(Fault::Stall), &[]);
                        Ok(format!("worker {} (pid {pid}) told to stall", st.key))
                    }
                    (LinkFault::CorruptTable, Some(pid)) => {
                        st.send(&ToWorker::Fault(Fault::CorruptTable), &[]);
                        Ok(format!(
                            "worker {} (pid {pid}) told to corrupt its table",
                            st.key
                        ))
                    }
                    (LinkFault::CrashLoop(n), Some(pid)) => {
                        st.crash_next = n.saturating_sub(1);
                        st.inject_crash();
                        Ok(format!(
                            "worker {} (pid {pid}) will crash {n} times in a row",
                            st.key
                        ))
                    }
                    (LinkFault::DropIpc(n), Some(_)) => {
                        st.sync.drop_next(n);
                        Ok(format!(
                            "the next {n} table messages to worker {} will be dropped",
                            st.key
                        ))
                    }
                };
                let _ = reply.send(r.map(|message| Done { message, id: None }));
            }
            LinkMsg::Stop { reason, reply } => {
                stop_link(&myself, ls, reason).await?;
                if let Some(r) = reply {
                    let _ = r.send(());
                }
            }
        }
        Ok(())
    }
}

/// Timers: restart after backoff, Hello and heartbeat deadlines, idle exit.
/// Returns a reason when the link should stop because it idled out.
fn tick(shared: &Shared, st: &mut LinkState, ls: &LinkActorState) -> Option<String> {
    let now = Instant::now();
    let cfg = shared.config();
    let idle_out = st.table.is_empty()
        && st
            .idle_since
            .is_some_and(|t| t.elapsed() >= cfg.workers.idle_timeout);
    match st.phase.clone() {
        Phase::Restarting(at) if now >= at => {
            if idle_out {
                return Some("no rules left (idle)".into());
            }
            if let Err(e) = start_process(st, shared) {
                st.failures_in_row += 1;
                let delay = (BACKOFF_START * 2u32.saturating_pow(st.failures_in_row.min(16)))
                    .min(cfg.workers.restart_backoff_max);
                warn!(target: "Supervisor", "worker {}: {e}; retrying in {delay:?}", st.key);
                st.last_exit = Some(e);
                st.phase = Phase::Restarting(now + delay);
            }
            ls.report(st);
        }
        Phase::Starting(since) if now.duration_since(since) > HELLO_TIMEOUT => {
            st.kill(format!("no Hello within {HELLO_TIMEOUT:?}"));
        }
        Phase::Running => {
            if let Some(hb) = st.last_heartbeat {
                let quiet = now.duration_since(hb);
                if quiet > cfg.workers.heartbeat_timeout {
                    st.kill(format!(
                        "no heartbeat for {:.1}s (stuck)",
                        quiet.as_secs_f64()
                    ));
                }
            }
            if idle_out {
                return Some("no rules left (idle)".into());
            }
        }
        _ => {}
    }
    None
}

fn act(shared: &Shared, st: &mut LinkState, action: SyncAction) {
    match action {
        SyncAction::None => {}
        SyncAction::Resync(why) => {
            shared.publish(Event::WorkerResynced {
                interface: st.key.interface.clone(),
                index: st.key.index,
                reason: why.clone(),
            });
            st.full_sync(&why);
        }
        SyncAction::Restart(why) => st.kill(format!("table drift: {why}")),
    }
}

/// Stop the worker gracefully (Shutdown, then SIGKILL after a grace
/// period), forget it, and stop this link.
async fn stop_link(
    myself: &ActorRef<LinkMsg>,
    ls: &mut LinkActorState,
    reason: String,
) -> Result<(), ActorProcessingErr> {
    let exited = {
        let mut st = lock(&ls.st);
        st.phase = Phase::Stopping;
        info!(target: "Supervisor", "stopping worker {}: {reason}", st.key);
        st.send(&ToWorker::Shutdown, &[]);
        st.proc.as_ref().map(|p| p.exited.clone())
    };
    if let Some(exited) = exited {
        for _ in 0..40 {
            if *lock(&exited) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut st = lock(&ls.st);
        if let Some(p) = st.proc.take() {
            // Drop kills it if it is still there.
            drop(p);
        }
        st.phase = Phase::Stopped;
    }
    lock(&ls.shared.registry).remove(&ls.key);
    crate::supervisor::cast(rib_actor::NAME, RibMsg::Worker(ls.key.clone(), None));
    crate::supervisor::cast(stats_actor::NAME, StatsMsg::Forget(ls.key.clone()));
    myself.stop(Some(reason));
    Ok(())
}
