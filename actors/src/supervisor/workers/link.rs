//! WorkerLink: the supervisor's side of one worker process.
//!
//! A thin actor: it keeps the worker's table current (`table`), starts
//! and watches the process (`process`), and carries out what
//! `mcr::worker_policy` decides: restart with backoff when the process
//! exits, kill it when it misses its Hello or heartbeats, resync or
//! restart it when its table drifts, and stop it when its interface has
//! had no rules for the idle timeout.
//!
//! Everything that must survive a restart of this actor (the process, its
//! sockets, the table sync state, counters) is in `LinkState`, kept in the
//! root's registry.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcr::control::{Done, Event};
use mcr::iface::Ifaces;
use mcr::ipc::trace::{merge_parts, RuleTrace};
use mcr::ipc::{Fault, FromWorker, PimData, ToWorker, IPC_VERSION};
use mcr::rib::InterfaceTable;
use mcr::worker_policy::{self as policy, DriftAction, ExitAction, Observed, Phase, TickAction};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::process::{start_process, LinkState, SpawnSettings, StartSlot};
use crate::supervisor::handles::{
    LinkFault, LinkMsg, Pim, PimMsg, Reply, Rib, RibMsg, Stats, StatsMsg, TraceOp, WorkerKey,
};
use crate::supervisor::shared::Shared;
use crate::supervisor::util::{lock, spawn_ticker};

const TICK: Duration = Duration::from_millis(200);

/// Punted packets on their way to the PimActor and not yet taken by it
/// (it takes one off as it handles each). Actor mailboxes have no bound,
/// so this is the bound: past `MAX_PUNTS_QUEUED` a punt is dropped here
/// rather than queued, and a source faster than Register encapsulation
/// costs lost Registers, not memory and seconds of delay.
pub static PUNTS_QUEUED: AtomicUsize = AtomicUsize::new(0);
pub const MAX_PUNTS_QUEUED: usize = 512;

/// One queued punt is gone (handled, or never delivered). Saturating: a
/// new PimActor resets the count while punts for its predecessor may
/// still be counted down, and a wrapped count would drop every punt.
pub fn punt_done() {
    let _ = PUNTS_QUEUED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(1))
    });
}
/// Punts dropped because the PimActor was behind, since the daemon started.
static PUNTS_DROPPED: AtomicU64 = AtomicU64::new(0);

pub struct LinkArgs {
    pub key: WorkerKey,
    pub shared: Arc<Shared>,
    pub table: Arc<InterfaceTable>,
    pub ifaces: Arc<Ifaces>,
    pub nworkers: u32,
    pub core: Option<u32>,
    /// Restarts of the worker this one replaces (its interface went down
    /// or away and came back): a replacement continues its count.
    pub restarts: u32,
}

pub struct WorkerLink;

pub struct LinkActorState {
    shared: Arc<Shared>,
    key: WorkerKey,
    st: Arc<Mutex<LinkState>>,
    ticker: tokio::task::JoinHandle<()>,
    /// `trace show` requests waiting for the worker's report, by nonce,
    /// with the parts received so far. Dropped (the asker hears "stopped
    /// before answering") when the process exits: its traces went with it.
    traces: Vec<PendingTrace>,
    next_nonce: u64,
}

struct PendingTrace {
    nonce: u64,
    parts: Vec<RuleTrace>,
    reply: Reply<Vec<RuleTrace>>,
}

impl Drop for LinkActorState {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl LinkActorState {
    fn report(&self, st: &LinkState) {
        Rib::tell(RibMsg::Worker(self.key.clone(), Some(st.view())));
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
            s.restarts = s.restarts.max(a.restarts);
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
        let ticker = spawn_ticker(me, TICK, || LinkMsg::Tick);
        Ok(LinkActorState {
            shared: a.shared,
            key: a.key,
            st,
            ticker,
            traces: Vec::new(),
            next_nonce: 0,
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
                set_table(&mut st, table, ifaces, nworkers, core);
                ls.report(&st);
            }
            LinkMsg::FromWorker {
                gen,
                msg: FromWorker::Trace { nonce, rules, last },
            } => {
                if gen == lock(&st_arc).gen {
                    trace_part(ls, nonce, rules, last);
                }
            }
            LinkMsg::FromWorker { gen, msg } => {
                let mut st = lock(&st_arc);
                if gen == st.gen {
                    from_worker(&shared, &mut st, ls, msg);
                }
            }
            LinkMsg::Trace(op, reply) => {
                let st = lock(&st_arc);
                if st.proc.is_none() || st.phase != Phase::Running {
                    let _ = reply.send(Err(format!("worker {} is not running", ls.key)));
                    return Ok(());
                }
                let msg = match op {
                    TraceOp::Enable { key, count } => ToWorker::TraceEnable { key, count },
                    TraceOp::Disable { key } => ToWorker::TraceDisable { key },
                    TraceOp::Get { key } => {
                        ls.next_nonce += 1;
                        let nonce = ls.next_nonce;
                        st.send(&ToWorker::TraceGet { key, nonce }, &[]);
                        ls.traces.push(PendingTrace {
                            nonce,
                            parts: Vec::new(),
                            reply,
                        });
                        return Ok(());
                    }
                };
                st.send(&msg, &[]);
                let _ = reply.send(Ok(Vec::new()));
            }
            LinkMsg::Exited { gen, how } => {
                ls.traces.clear();
                let mut st = lock(&st_arc);
                if gen == st.gen && exited(&shared, &mut st, ls, how) {
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
                let mut st = lock(&st_arc);
                st.send(&ToWorker::SetLogLevel(levels.clone()), &[]);
                st.levels_sent = Some(levels);
            }
            LinkMsg::Fault(LinkFault::Panic, reply) => {
                let _ = reply.send(Ok(Done {
                    message: format!("link {} panicking", ls.key),
                    id: None,
                    warnings: Vec::new(),
                }));
                panic!("fault injection: worker link panic requested");
            }
            LinkMsg::Fault(f, reply) => {
                let r = fault(&mut lock(&st_arc), f);
                let _ = reply.send(r.map(|message| Done::new(message, None)));
            }
            LinkMsg::PimData(d) => {
                let mut st = lock(&st_arc);
                st.set_pim(d);
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

/// A new table (or placement) from the WorkerManager.
fn set_table(
    st: &mut LinkState,
    table: Arc<InterfaceTable>,
    ifaces: Arc<Ifaces>,
    nworkers: u32,
    core: Option<u32>,
) {
    let pin_changed = st.core != core || st.nworkers != nworkers;
    st.table = table;
    st.ifaces = ifaces;
    st.core = core;
    st.nworkers = nworkers;
    if !st.has_work() {
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
}

/// A message from the current process.
fn from_worker(shared: &Shared, st: &mut LinkState, ls: &LinkActorState, msg: FromWorker) {
    match msg {
        FromWorker::Hello { version, pid } => {
            if version != IPC_VERSION {
                st.kill(format!(
                    "speaks IPC version {version}, expected {IPC_VERSION}"
                ));
                return;
            }
            if st.crash_next > 0 {
                st.crash_next -= 1;
                st.inject_crash();
                return;
            }
            st.started_up();
            st.phase = Phase::Running;
            st.started_at = Some(Instant::now());
            st.last_heartbeat = Some(Instant::now());
            shared.publish(Event::WorkerStarted {
                interface: st.key.interface.clone(),
                index: st.key.index,
                pid,
            });
            st.apply_table();
            if st.pim != PimData::default() {
                st.send(&ToWorker::PimData(st.pim.clone()), &[]);
            }
            ls.report(st);
        }
        FromWorker::Ack { seq, hash, gap, .. } => {
            st.worker_hash = Some(hash);
            let action = st.sync.on_ack(seq, hash, gap);
            act(shared, st, action);
            let was = st.in_sync;
            let synced = seq == st.sync.seq() && hash == st.sync.expected_hash();
            let acked_changed = st.set_in_sync(synced);
            if was != st.in_sync || acked_changed {
                ls.report(st);
            }
        }
        FromWorker::Heartbeat { seq, hash } => {
            st.last_heartbeat = Some(Instant::now());
            st.worker_hash = Some(hash);
            let action = st.sync.on_heartbeat(seq, hash);
            act(shared, st, action);
        }
        FromWorker::Stats {
            counters,
            rules,
            last,
        } => {
            let pid = st.proc.as_ref().map(|p| p.pid).unwrap_or(0);
            Stats::tell(StatsMsg::Report {
                key: st.key.clone(),
                pid,
                counters: *counters,
                rules,
                last,
            });
        }
        FromWorker::Error { message } => {
            warn!(target: "DataPlane", "worker {}: {message}", st.key);
        }
        // Taken in `handle`, which owns the waiting requests.
        FromWorker::Trace { .. } => {}
        // The IPC reader task sends these to PIM itself (`to_pim`).
        msg @ (FromWorker::Upcall { .. } | FromWorker::Punt { .. }) => {
            to_pim(&st.key.interface, msg);
        }
    }
}

/// Hand PIM's messages from the worker on `interface` to the PimActor:
/// the worker's IPC reader calls this directly, so that a stream of
/// punted packets does not queue behind this actor. Returns the message
/// back if it is not PIM's.
pub fn to_pim(interface: &str, msg: FromWorker) -> Option<FromWorker> {
    match msg {
        FromWorker::Upcall { source, group } => {
            Pim::tell(PimMsg::Data {
                interface: interface.to_string(),
                source,
                group,
            });
        }
        FromWorker::Punt { packet } => {
            if PUNTS_QUEUED.fetch_add(1, Ordering::Relaxed) >= MAX_PUNTS_QUEUED {
                punt_done();
                let n = PUNTS_DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    warn!(target: "Protocol", "{n} packets to register dropped so far: Register encapsulation is behind the source");
                }
                return None;
            }
            let sent = Pim::tell(PimMsg::RegisterData {
                interface: interface.to_string(),
                packet,
            });
            if !sent {
                punt_done();
            }
        }
        other => return Some(other),
    }
    None
}

/// A part of a trace report; the last one answers its request.
fn trace_part(ls: &mut LinkActorState, nonce: u64, rules: Vec<RuleTrace>, last: bool) {
    let Some(i) = ls.traces.iter().position(|p| p.nonce == nonce) else {
        return;
    };
    ls.traces[i].parts.extend(rules);
    if last {
        let p = ls.traces.swap_remove(i);
        let _ = p.reply.send(Ok(merge_parts(p.parts)));
    }
}

/// The current process exited: decide about a restart. Returns whether
/// the restart is due at once.
fn exited(shared: &Shared, st: &mut LinkState, ls: &LinkActorState, how: String) -> bool {
    let pid = st.proc.as_ref().map(|p| p.pid).unwrap_or(0);
    st.proc = None;
    st.early.clear();
    st.forget_acked();
    let reason = match st.kill_reason.take() {
        Some(k) => format!("{k} ({how})"),
        None => how,
    };
    let now = Instant::now();
    let timing = timing(shared);
    let (phase, started) = (st.phase.clone(), st.started_at);
    let delay = match policy::on_exit(&phase, started, &mut st.streak, now, &timing) {
        ExitAction::Stopped => {
            st.phase = Phase::Stopped;
            info!(target: "Supervisor", "worker {} stopped: {reason}", st.key);
            return false;
        }
        ExitAction::Restart { at, delay } => {
            st.phase = Phase::Restarting(at);
            delay
        }
    };
    st.restarts += 1;
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
    ls.report(st);
    delay.is_zero()
}

/// Carry out a fault injection on the worker process.
fn fault(st: &mut LinkState, f: LinkFault) -> Result<String, String> {
    let pid = st.proc.as_ref().map(|p| p.pid);
    match (f, pid) {
        // Carried out by the actor itself.
        (LinkFault::Panic, _) => Err("a link panics itself, not its worker".into()),
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
    }
}

/// The timing settings of the running config.
fn timing(shared: &Shared) -> policy::Timing {
    let w = &shared.config().workers;
    policy::Timing {
        heartbeat_timeout: w.heartbeat_timeout,
        idle_timeout: w.idle_timeout,
        backoff_max: w.restart_backoff_max,
    }
}

fn spawn_settings(shared: &Shared) -> SpawnSettings {
    SpawnSettings {
        log_format: shared.settings.log_format,
        stats_interval_ms: shared.settings.stats_interval_ms,
        levels: shared.levels(),
        uid: shared.settings.worker_uid,
        gid: shared.settings.worker_gid,
        rx: shared.config().workers.rx,
    }
}

/// Carry out what the timers decide. Returns a reason when the link
/// should stop because it idled out.
fn tick(shared: &Shared, st: &mut LinkState, ls: &LinkActorState) -> Option<String> {
    let now = Instant::now();
    let timing = timing(shared);
    let observed = Observed {
        phase: st.phase.clone(),
        idle_since: st.idle_since,
        has_rules: st.has_work(),
        last_heartbeat: st.last_heartbeat,
    };
    match policy::on_tick(&observed, now, &timing) {
        TickAction::Nothing => {}
        TickAction::IdleExit => return Some("no rules left (idle)".into()),
        TickAction::Kill(why) => {
            // Judged from what the link has handled, which lags what the
            // worker sent when the supervisor is behind: a Hello or a
            // heartbeat already read (or waiting on the socket) is not a
            // missed one. A starting worker's first message is its Hello.
            let within = match st.phase {
                Phase::Starting(_) => Duration::MAX,
                _ => timing.heartbeat_timeout,
            };
            if st
                .proc
                .as_ref()
                .is_some_and(|p| p.heard_within(now, within))
            {
                debug!(target: "Supervisor", "worker {}: {why}, but its messages are on their way", st.key);
            } else {
                st.kill(why);
            }
        }
        TickAction::Start => {
            // No slot: as many workers as may are starting; this one
            // stays due and asks again on its next tick.
            let slot = StartSlot::take()?;
            let settings = spawn_settings(shared);
            st.levels_sent = Some(settings.levels.clone());
            if let Err(e) = start_process(st, &settings, slot) {
                let at = policy::on_start_failure(&mut st.streak, now, &timing);
                warn!(target: "Supervisor", "worker {}: {e}; retrying in {:?}", st.key, at - now);
                st.last_exit = Some(e);
                st.phase = Phase::Restarting(at);
            }
            ls.report(st);
        }
    }
    if st.proc.is_some() {
        // A reload may have turned early drop off or on for this input.
        let rx = shared.config().workers.rx;
        let info = st.ifaces.get(&st.key.interface).cloned();
        if let Some(info) = info {
            if super::early_drop::follow(&mut st.early, &info, st.nworkers, &rx) {
                st.kill("early drop turned on; restarting so the worker gets its flag".into());
            }
        }
    }
    let want = shared.levels();
    if st.proc.is_some() && st.levels_sent.as_ref() != Some(&want) {
        info!(target: "Supervisor", "worker {}: sending log levels it missed", st.key);
        st.send(&ToWorker::SetLogLevel(want.clone()), &[]);
        st.levels_sent = Some(want);
    }
    None
}

fn act(shared: &Shared, st: &mut LinkState, action: mcr::rib::SyncAction) {
    match policy::on_drift(action) {
        DriftAction::Nothing => {}
        DriftAction::Resync(why) => {
            shared.publish(Event::WorkerResynced {
                interface: st.key.interface.clone(),
                index: st.key.index,
                reason: why.clone(),
            });
            st.full_sync(&why);
        }
        DriftAction::Kill(why) => st.kill(why),
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
    Rib::tell(RibMsg::Worker(ls.key.clone(), None));
    Stats::tell(StatsMsg::Forget(ls.key.clone()));
    myself.stop(Some(reason));
    Ok(())
}
