//! The I/O side of one worker: its process (started with its AF_PACKET
//! socket and the IPC socket pair as fd 3, killed through a pidfd, reaped
//! by `tokio::process`), the task that reads its messages, and
//! `LinkState`, everything about the worker that outlives its WorkerLink
//! actor (kept in the root's registry). The reader, the exit watcher and
//! the log relay are tasks on the supervisor's runtime, not threads, so a
//! daemon with hundreds of inputs does not run hundreds of threads; the
//! reader and the watcher address the link by its
//! registry name, so a restarted link receives their messages without
//! re-plumbing anything. When to start, kill or restart is
//! `mcr::worker_policy`'s decision.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use mcr::control::WorkerInfo;
use mcr::dataplane::sockets;
use mcr::iface::Ifaces;
use mcr::ipc::fdpass::{pass_as_fd3, recv_msg, send_msg, seqpacket_pair, wait_readable};
use mcr::ipc::{
    decode, encode, EgressSpec, Fault, FrameFormat, FromWorker, PimData, ToWorker, WorkerSetup,
    IPC_VERSION, MAX_MESSAGE,
};
use mcr::logging::{LogFormat, LogLevels};
use mcr::rib::state::WorkerView;
use mcr::rib::{EgressMap, InterfaceTable, TableSync};
use mcr::supervise::FailureStreak;
use mcr::sys::pidfd;
use mcr::worker_policy::Phase;
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tracing::{debug, info, warn};

use crate::supervisor::handles::{Link, LinkMsg, WorkerKey};
use crate::supervisor::util::lock;

/// Worker processes that are starting now: spawned, and no Hello yet.
static STARTING: AtomicUsize = AtomicUsize::new(0);

/// How many workers may start at once: [`STARTS_PER_CORE`] per core.
///
/// A worker's start is the costly part of its life (exec, its receive
/// ring's pages, its io_uring), and the Hello and heartbeat deadlines run
/// through it. Started all at once, 256 workers each got 1/256 of the
/// machine: none made its deadlines, and the supervisor, one process among
/// them, answered nothing for seconds. In waves, each start gets a share
/// that meets the deadlines, and a worker that truly hangs is still killed
/// on them.
pub fn start_limit() -> usize {
    // Read once: `available_parallelism` reads cgroup files, and every
    // waiting link asks on every tick.
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * STARTS_PER_CORE).max(MIN_STARTS)
    })
}
/// See [`start_limit`].
pub const STARTS_PER_CORE: usize = 8;
/// See [`start_limit`]: a one-core machine still starts a few at once.
const MIN_STARTS: usize = 4;

/// One of the [`start_limit`] starts; given back when dropped.
pub struct StartSlot(());

impl StartSlot {
    /// A slot if fewer than [`start_limit`] workers are starting.
    pub fn take() -> Option<StartSlot> {
        let limit = start_limit();
        STARTING
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| StartSlot(()))
    }
}

impl Drop for StartSlot {
    fn drop(&mut self) {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a new worker process is told besides its interface.
pub struct SpawnSettings {
    pub log_format: LogFormat,
    pub stats_interval_ms: u32,
    pub levels: LogLevels,
    pub uid: u32,
    pub gid: u32,
    /// The config's receive path settings at the time of the spawn.
    pub rx: mcr::config::RxConfig,
}

/// A running worker process.
pub struct Proc {
    pub pid: u32,
    ipc: Arc<UnixDatagram>,
    /// The process's pidfd: a kill through it reaches this process or, once
    /// it has been reaped, nobody; never a later process with the same pid.
    pidfd: OwnedFd,
    /// Set by the exit watcher once the process is gone.
    pub(super) exited: Arc<Mutex<bool>>,
    /// When the reader last took a message of this process off its
    /// socket. The link hears of it later, through its mailbox, and a
    /// supervisor that is behind (a start storm, a loaded machine) must
    /// not take its own delay for a worker that missed its Hello or a
    /// heartbeat.
    heard: Arc<Mutex<Option<Instant>>>,
    /// The kill was sent (and logged) already: a tick that decides it again
    /// before the exit is seen only repeats the signal.
    killing: bool,
    /// Held from the spawn until the worker's Hello, or until the process
    /// is gone.
    pub(super) start_slot: Option<StartSlot>,
}

impl Proc {
    pub(super) fn kill(&self) {
        if !*lock(&self.exited) {
            let _ = pidfd::send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }

    pub fn has_exited(&self) -> bool {
        *lock(&self.exited)
    }

    /// Whether the process sent anything within `within` of `now`, as the
    /// reader saw it (its Hello, a heartbeat, stats, acks), or has
    /// messages waiting on its socket that no one has read yet.
    pub(super) fn heard_within(&self, now: Instant, within: std::time::Duration) -> bool {
        let recent = lock(&self.heard).is_some_and(|t| now.saturating_duration_since(t) <= within);
        recent || wait_readable(self.ipc.as_fd(), std::time::Duration::ZERO).unwrap_or(false)
    }

    fn send(&self, msg: &ToWorker, fds: &[&OwnedFd]) -> Result<(), String> {
        let bytes = encode(msg).map_err(|e| e.to_string())?;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_msg(self.ipc.as_fd(), &bytes, &raw, true).map_err(|e| e.to_string())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The reader task ends when the killed process's end closes.
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
    pub(super) egress: EgressMap,
    pub(super) egress_fds: BTreeMap<u32, (EgressSpec, u32, OwnedFd)>,
    /// The AF_PACKET socket and the ifindex it is bound to. Kept across
    /// worker restarts: while the new worker starts, arriving packets
    /// queue in the kernel instead of being lost. The supervisor also
    /// updates its BPF filter through it.
    pub(super) ingress: Option<(OwnedFd, u32, FrameFormat)>,
    /// The receive settings of the worker that `ingress` was opened for.
    /// A worker's ring stays on the socket after it exits, so a worker
    /// started with other settings gets a fresh socket (see `same_rx`).
    pub(super) ingress_rx: mcr::config::RxConfig,
    /// The next start must open a fresh ingress socket (the old one may
    /// hold a stale backlog, or its fanout group changed).
    pub(super) fresh_ingress: bool,
    /// Fault injection: panic the next this-many workers right after they
    /// start (a crash loop).
    pub(super) crash_next: u32,
    pub table: Arc<InterfaceTable>,
    pub ifaces: Arc<Ifaces>,
    pub problems: BTreeMap<(String, usize), String>,
    pub restarts: u32,
    pub(super) streak: FailureStreak,
    pub last_exit: Option<String>,
    pub(super) kill_reason: Option<String>,
    pub started_at: Option<Instant>,
    pub last_heartbeat: Option<Instant>,
    pub worker_hash: Option<u64>,
    pub idle_since: Option<Instant>,
    pub core: Option<u32>,
    pub nworkers: u32,
    /// The worker has acknowledged the table of the last `apply_table`.
    pub in_sync: bool,
    /// The compiled table the sync was last updated to.
    pub applied: Arc<InterfaceTable>,
    /// The compiled table the worker last acknowledged; what rule states
    /// are judged by (`mcr::rib::state::rule_infos`).
    pub acked: Arc<InterfaceTable>,
    /// The log levels last sent to this worker (a new process gets the
    /// running ones in its setup). Compared on every tick, so a change
    /// whose push was lost while the LogLevel actor or the WorkerManager
    /// restarted still reaches the worker.
    pub levels_sent: Option<LogLevels>,
    /// What PIM asks of this worker; every new process is told at Hello.
    pub pim: PimData,
    /// The input's early-drop XDP program (`early_drop`).
    pub early: super::early_drop::EarlyState,
}

impl LinkState {
    pub(super) fn new(key: WorkerKey) -> Self {
        LinkState {
            key,
            proc: None,
            gen: 0,
            phase: Phase::Restarting(Instant::now()),
            sync: TableSync::new(),
            egress: EgressMap::new(),
            egress_fds: BTreeMap::new(),
            ingress: None,
            ingress_rx: mcr::config::RxConfig::default(),
            fresh_ingress: false,
            crash_next: 0,
            table: Arc::new(Vec::new()),
            ifaces: Arc::new(BTreeMap::new()),
            problems: BTreeMap::new(),
            restarts: 0,
            streak: FailureStreak::default(),
            last_exit: None,
            kill_reason: None,
            started_at: None,
            last_heartbeat: None,
            worker_hash: None,
            idle_since: None,
            core: None,
            nworkers: 1,
            in_sync: false,
            applied: Arc::new(Vec::new()),
            acked: Arc::new(Vec::new()),
            levels_sent: None,
            pim: PimData::default(),
            early: Default::default(),
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

    pub(super) fn view(&self) -> WorkerView {
        WorkerView {
            state: self.phase.name().to_string(),
            acked: self.acked.clone(),
            reason: self
                .last_exit
                .clone()
                .filter(|_| self.phase != Phase::Running),
            problems: self.problems.clone(),
        }
    }

    /// Record whether the worker has the applied table; once it has, that
    /// table becomes the acked one. Returns whether the acked table
    /// changed (the RIB must hear of it).
    pub(super) fn set_in_sync(&mut self, in_sync: bool) -> bool {
        self.in_sync = in_sync;
        if in_sync && !Arc::ptr_eq(&self.acked, &self.applied) {
            self.acked = self.applied.clone();
            return true;
        }
        false
    }

    /// The worker's table is unknown (a new process, or drift): nothing
    /// counts as acked until it acks again.
    pub(super) fn forget_acked(&mut self) {
        self.in_sync = false;
        self.acked = Arc::new(Vec::new());
    }

    pub(super) fn send(&self, msg: &ToWorker, fds: &[&OwnedFd]) {
        if let Some(p) = &self.proc {
            if let Err(e) = p.send(msg, fds) {
                // The drift machinery repairs whatever this loses.
                warn!(target: "RuleDispatch", "worker {}: IPC send failed: {e}", self.key);
            }
        }
    }

    /// Multicast and unicast destinations this worker's filter lets in.
    /// With PIM's upcalls also every routable group: the groups no rule
    /// names are the ones it has to hear about. Unicast and link-local
    /// traffic no rule names is still dropped in the kernel, where letting
    /// all IPv4 in cost the worker a wakeup per packet it then discarded.
    pub(super) fn filter_dsts(&self) -> Vec<std::net::Ipv4Addr> {
        let mut dsts: Vec<std::net::Ipv4Addr> = self.table.iter().map(|r| r.group).collect();
        if self.pim.upcall {
            dsts.push(mcr::sys::bpf::ROUTABLE_MULTICAST);
        }
        dsts
    }

    /// Whether the worker has anything to do: rules, or PIM's upcalls.
    pub(super) fn has_work(&self) -> bool {
        !self.table.is_empty() || self.pim.upcall
    }

    /// Apply a new request of PIM: the worker is told, and on a PIM
    /// interface the ingress socket lets every routable group in and asks the
    /// interface for all multicast frames (IFF_ALLMULTI, as the kernel's
    /// multicast routing does for its vifs), held only while the socket is.
    pub(super) fn set_pim(&mut self, d: PimData) {
        if self.pim == d {
            return;
        }
        let toggled = self.pim.upcall != d.upcall;
        self.pim = d;
        self.send(&ToWorker::PimData(self.pim.clone()), &[]);
        if toggled {
            if let Some((ingress, ifindex, fmt)) = &self.ingress {
                set_allmulti(ingress.as_fd(), *ifindex, self.pim.upcall);
                let dsts = self.filter_dsts();
                if let Err(e) = sockets::set_ingress_filter(
                    ingress.as_fd(),
                    Some(&dsts),
                    fmt.link_header,
                    *ifindex,
                ) {
                    warn!(target: "Ingress", "worker {}: updating the ingress filter: {e}", self.key);
                }
            }
            if self.has_work() {
                self.idle_since = None;
            } else if self.idle_since.is_none() {
                self.idle_since = Some(Instant::now());
            }
        }
    }
}

impl LinkState {
    /// Fault injection: make the worker panic, as a crashing worker would.
    pub(super) fn inject_crash(&mut self) {
        self.kill_reason = Some("crash loop injected".into());
        self.send(&ToWorker::Fault(Fault::Panic), &[]);
    }

    /// The worker said Hello: the costly part of its start (exec, the
    /// runtime and logging set up) is over, and another may begin. The
    /// ring and io_uring set up after it, within the heartbeat deadline.
    pub(super) fn started_up(&mut self) {
        if let Some(p) = &mut self.proc {
            p.start_slot = None;
        }
    }

    pub(super) fn kill(&mut self, why: String) {
        if let Some(p) = &mut self.proc {
            if !p.killing {
                warn!(target: "Supervisor", "worker {} (pid {}): killing: {why}", self.key, p.pid);
                p.killing = true;
                self.kill_reason = Some(why);
            }
            p.kill();
        }
    }
}

fn fanout_id(ifindex: u32) -> u16 {
    // Unique per interface in this namespace and per daemon, so two mcrd
    // instances never share a fanout group by accident.
    ((std::process::id() as u16).rotate_left(8)) ^ (ifindex as u16)
}

/// Whether a socket opened for a worker with receive settings `was` can
/// serve one with `now`. Reusing it keeps the frames queued while no
/// worker ran, but a ring left on it keeps its shape and block timeout
/// (the kernel refuses a second ring, and a mapped one cannot be asked its
/// timeout), and would swallow every frame of a `recv` worker; so any
/// change but between two `recv` settings (no ring, the sizes unused)
/// means a fresh socket.
fn same_rx(was: &mcr::config::RxConfig, now: &mcr::config::RxConfig) -> bool {
    use mcr::config::RxPath;
    (was.path == RxPath::Recv && now.path == RxPath::Recv) || was == now
}

/// Start a worker process for `st.key`.
pub(super) fn start_process(
    st: &mut LinkState,
    spawn: &SpawnSettings,
    slot: StartSlot,
) -> Result<(), String> {
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
        && same_rx(&st.ingress_rx, &spawn.rx)
        && st
            .ingress
            .as_ref()
            .is_some_and(|(_, ix, f)| *ix == info.ifindex && *f == format);
    if !reuse {
        st.ingress = None;
        let fd = sockets::open_ingress_bound(
            info.ifindex,
            sockets::INGRESS_RCVBUF,
            Some(&dsts),
            format,
            sockets::ingress_protocol(&info.name),
        )
        .map_err(|e| format!("cannot open an AF_PACKET socket on {ifc}: {e}"))?;
        if st.pim.upcall {
            set_allmulti(fd.as_fd(), info.ifindex, true);
        }
        if st.nworkers > 1 {
            sockets::join_fanout(fd.as_fd(), fanout_id(info.ifindex))
                .map_err(|e| format!("cannot join the PACKET_FANOUT group on {ifc}: {e}"))?;
        }
        st.ingress = Some((fd, info.ifindex, format));
        st.ingress_rx = spawn.rx;
        st.fresh_ingress = false;
    }
    let Some((ingress, _, _)) = &st.ingress else {
        return Err("no ingress socket".into());
    };
    // The reader, exit watcher and log relay run on the supervisor's runtime.
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|e| format!("no runtime for the worker's tasks: {e}"))?;
    super::early_drop::ensure(&mut st.early, &info, st.nworkers, &spawn.rx);
    let early_map = st.early.map_for_worker();
    let (sup, child_end) = seqpacket_pair().map_err(|e| format!("IPC socket pair: {e}"))?;
    let fmt = match spawn.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
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
    if crate::logsetup::has_file() {
        cmd.stderr(Stdio::piped());
    }
    pass_as_fd3(&mut cmd, &child_end);
    // tokio::process reaps it (through its own pidfd: no thread).
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| format!("cannot start the worker process: {e}"))?;
    drop(child_end);
    let watched = child
        .id()
        .ok_or_else(|| std::io::Error::other("exited before it could be watched"))
        .and_then(|pid| Ok((pid, pidfd::open(pid)?, ipc_handle(sup)?)));
    let (pid, pidfd, ipc) = match watched {
        Ok(w) => w,
        Err(e) => {
            // Not yet reaped, so this kill cannot hit a recycled pid; the
            // runtime reaps the dropped child.
            let _ = child.start_kill();
            return Err(format!("cannot watch the worker process: {e}"));
        }
    };
    if let Some(err) = child.stderr.take() {
        crate::logsetup::relay_worker_stderr(err);
    }
    st.gen += 1;
    let gen = st.gen;
    let name = st.key.actor_name();
    let exited = Arc::new(Mutex::new(false));
    let heard = Arc::new(Mutex::new(None));
    rt.spawn(watch_exit(child, exited.clone(), name.clone(), gen));
    rt.spawn(read_ipc(ipc.clone(), heard.clone(), name, gen, ifc.clone()));
    let proc = Proc {
        pid,
        ipc,
        pidfd,
        exited,
        heard,
        killing: false,
        start_slot: Some(slot),
    };
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
        stats_interval_ms: spawn.stats_interval_ms,
        levels: spawn.levels.clone(),
        uid: spawn.uid,
        gid: spawn.gid,
        core: st.core,
        worker_index: st.key.index,
        rx: spawn.rx,
        early_drop: early_map.is_some(),
    };
    let fds: Vec<&OwnedFd> = std::iter::once(ingress).chain(early_map.as_ref()).collect();
    proc.send(&ToWorker::Hello(setup), &fds)?;
    st.proc = Some(proc);
    st.sync.reset();
    st.egress.clear();
    st.egress_fds.clear();
    st.phase = Phase::Starting(Instant::now());
    st.forget_acked();
    st.worker_hash = None;
    st.last_heartbeat = None;
    info!(target: "Supervisor", "worker {} started (pid {pid})", st.key);
    Ok(())
}

/// Receive (or stop receiving) every multicast frame on `ifindex` for as
/// long as `fd` is open. A failure costs only traffic a NIC's filter would
/// have dropped: logged, not fatal.
fn set_allmulti(fd: std::os::fd::BorrowedFd<'_>, ifindex: u32, on: bool) {
    let mut mreq: libc::packet_mreq = mcr::sys::sockopt::zeroed();
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
    let op = if on {
        libc::PACKET_ADD_MEMBERSHIP
    } else {
        libc::PACKET_DROP_MEMBERSHIP
    };
    if let Err(e) = mcr::sys::sockopt::setsockopt(fd, libc::SOL_PACKET, op, &mreq) {
        warn!(target: "Ingress", "ifindex {ifindex}: all-multicast {}: {e}", if on { "on" } else { "off" });
    }
}

/// Wait for the process to exit, flag it and tell the link. tokio reaps
/// it before `wait` returns; kills go through the pidfd, which cannot
/// reach whatever process gets the pid next, so the flag only spares
/// kills that would fail.
async fn watch_exit(
    mut child: tokio::process::Child,
    exited: Arc<Mutex<bool>>,
    link: String,
    gen: u64,
) {
    let how = match child.wait().await {
        Ok(s) => describe_exit(s),
        Err(e) => format!("exit status unknown: {e}"),
    };
    *lock(&exited) = true;
    Link::tell(&link, LinkMsg::Exited { gen, how });
}

/// The supervisor's end of the IPC pair, registered with the runtime so
/// that a task can wait for its messages. tokio has no SEQPACKET type; its
/// `UnixDatagram` serves here only as that registration: every receive
/// and send goes through `fdpass` (non-blocking, with SCM_RIGHTS).
fn ipc_handle(sup: OwnedFd) -> std::io::Result<Arc<UnixDatagram>> {
    let std_sock = std::os::unix::net::UnixDatagram::from(sup);
    // Every call on it already passes MSG_DONTWAIT; the flag is what the
    // runtime expects of a registered socket.
    std_sock.set_nonblocking(true)?;
    Ok(Arc::new(UnixDatagram::from_std(std_sock)?))
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

/// Read worker messages and forward them to whichever link actor holds
/// the name now (PIM's straight to the PimActor). Ends when the worker's
/// end closes, which it does when the process exits or is killed.
async fn read_ipc(
    ipc: Arc<UnixDatagram>,
    heard: Arc<Mutex<Option<Instant>>>,
    link: String,
    gen: u64,
    interface: String,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        if let Err(e) = ipc.readable().await {
            debug!(target: "RuleDispatch", "{link}: IPC wait: {e}");
            return;
        }
        let received = ipc.try_io(Interest::READABLE, || recv_msg(ipc.as_fd(), &mut buf, true));
        match received {
            // Drained (or a spurious wake-up): wait for the next message.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Ok(Some(m)) => match decode::<FromWorker>(&buf[..m.len]) {
                Ok(msg) => {
                    *lock(&heard) = Some(Instant::now());
                    if let Some(msg) = super::link::to_pim(&interface, msg) {
                        Link::tell(&link, LinkMsg::FromWorker { gen, msg });
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::same_rx;
    use mcr::config::{RxConfig, RxPath};

    #[test]
    fn a_changed_receive_setting_means_a_fresh_socket() {
        let ring = RxConfig::default();
        let recv = RxConfig {
            path: RxPath::Recv,
            ..ring
        };
        assert!(same_rx(&ring, &ring));
        // The ring left on the socket would take every frame from recvmsg.
        assert!(!same_rx(&ring, &recv));
        assert!(!same_rx(&recv, &ring));
        // The kernel keeps the old ring's timeout and size.
        let slower = RxConfig {
            block_ms: ring.block_ms + 1,
            ..ring
        };
        let bigger = RxConfig {
            ring_mb: ring.ring_mb * 2,
            ..ring
        };
        assert!(!same_rx(&ring, &slower));
        assert!(!same_rx(&ring, &bigger));
        // Without a ring the sizes are unused: keep the queued frames.
        let recv_other = RxConfig {
            block_ms: 9,
            ring_mb: 2,
            ..recv
        };
        assert!(same_rx(&recv, &recv_other));
    }
}
