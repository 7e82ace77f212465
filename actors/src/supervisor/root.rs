//! RootSupervisor: starts the tree, restarts a failed child (one-for-one)
//! within a restart budget, and past the budget stops the daemon with a
//! clear error so that systemd restarts it instead of it running
//! half-dead. Also the daemon's signal handling and orderly shutdown.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::control::{Event, StatusReport};
use mcr::iface::Ifaces;
use mcr::rib::state::Tables;
use mcr::supervise::{RestartBudget, Verdict};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use super::handles::{self, Child, ConfigMsg, PimMsg, RootMsg, WmMsg};
use super::shared::Shared;
use super::util::{child_down, lock};
use super::workers::input_igmp;
use super::{
    config_actor, control, loglevel, metrics, netlink, protocols, rib_actor, stats_actor, systemd,
    workers,
};

/// Restarts allowed per child within `BUDGET_WINDOW`.
pub const RESTART_BUDGET: usize = 5;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);

pub struct Root;

pub struct RootState {
    shared: Arc<Shared>,
    children: HashMap<ActorId, Child>,
    budgets: HashMap<Child, RestartBudget>,
    /// Set when the daemon must exit non-zero.
    fatal: Option<String>,
}

async fn spawn_child(
    kind: Child,
    root: ActorCell,
    shared: Arc<Shared>,
) -> Result<ActorCell, ActorProcessingErr> {
    let name = Some(kind.name().to_string());
    let cell = match kind {
        Child::LogLevel => Actor::spawn_linked(name, loglevel::LogLevelActor, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Config => Actor::spawn_linked(name, config_actor::ConfigActor, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Stats => Actor::spawn_linked(name, stats_actor::StatsActor, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Workers => Actor::spawn_linked(name, workers::WorkerManager, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Rib => Actor::spawn_linked(name, rib_actor::RibActor, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Netlink => Actor::spawn_linked(name, netlink::NetlinkMonitor, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Protocols => {
            let args = protocols::ProtocolsArgs {
                shared,
                wanted: protocols::wanted,
            };
            Actor::spawn_linked(name, protocols::ProtocolSupervisor, args, root)
                .await?
                .0
                .get_cell()
        }
        Child::Metrics => Actor::spawn_linked(name, metrics::MetricsServer, shared, root)
            .await?
            .0
            .get_cell(),
        Child::Control => Actor::spawn_linked(name, control::ControlServer, shared, root)
            .await?
            .0
            .get_cell(),
    };
    Ok(cell)
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        shared: Arc<Shared>,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut children = HashMap::new();
        for kind in Child::ALL {
            let cell = spawn_child(kind, myself.get_cell(), shared.clone())
                .await
                .map_err(|e| {
                    format!(
                        "starting the {} actor: {}",
                        kind.name(),
                        startup_error(&e.to_string())
                    )
                })?;
            shared.actor_state(kind.name(), "running");
            children.insert(cell.get_id(), kind);
        }
        Ok(RootState {
            shared,
            children,
            budgets: HashMap::new(),
            fatal: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Ping(r) => {
                let _ = r.send("pong".into());
            }
            RootMsg::Version(r) => {
                let _ = r.send(mcr::control::VersionInfo {
                    daemon: env!("CARGO_PKG_VERSION").to_string(),
                    protocol: mcr::control::PROTOCOL_VERSION,
                    ipc: mcr::ipc::IPC_VERSION,
                    instance_id: st.shared.instance_id.clone(),
                });
            }
            RootMsg::Status(r) => {
                let cfg = st.shared.config();
                let workers = lock(&st.shared.registry).len() as u32;
                let mut actors = vec![mcr::control::ActorInfo {
                    name: "root".into(),
                    state: "running".into(),
                    restarts: 0,
                    last_failure: None,
                }];
                actors.extend(st.shared.actor_infos().into_iter().map(|mut a| {
                    a.name = format!("root/{}", a.name);
                    a
                }));
                let _ = r.send(StatusReport {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    instance_id: st.shared.instance_id.clone(),
                    pid: std::process::id(),
                    uptime_secs: st.shared.started.elapsed().as_secs_f64(),
                    config_file: st
                        .shared
                        .settings
                        .config_path
                        .as_ref()
                        .map(|p| p.display().to_string()),
                    fault_injection: st.shared.settings.fault_injection,
                    rules: cfg.rules.len() as u32,
                    workers,
                    actors,
                });
            }
            RootMsg::Reload => {
                handles::Config::tell(ConfigMsg::Reload(None));
            }
            RootMsg::Shutdown => {
                shutdown(&st.shared).await;
                myself.stop(Some("shutdown".into()));
            }
            RootMsg::Panic => panic!("fault injection: root supervisor panic requested"),
            RootMsg::Ops(o) => o.run("root").await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = child_down(evt) else {
            return Ok(());
        };
        let Some(kind) = st.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        if st.shared.is_shutting_down() {
            return Ok(());
        }
        let restarts = st.shared.actor_failed(kind.name(), &why);
        let budget = st
            .budgets
            .entry(kind)
            .or_insert_with(|| RestartBudget::new(RESTART_BUDGET, BUDGET_WINDOW));
        if let Verdict::GiveUp { recent } = budget.record(Instant::now()) {
            let msg = format!(
                "the {} actor failed {recent} times within {BUDGET_WINDOW:?} (budget {RESTART_BUDGET}); last failure: {why}",
                kind.name(),
            );
            error!(target: "Supervisor", "{msg}; stopping the daemon");
            st.shared.actor_state(kind.name(), "failed");
            st.fatal = Some(msg.clone());
            shutdown(&st.shared).await;
            myself.stop(Some(msg));
            return Ok(());
        }
        warn!(target: "Supervisor", "actor {} failed ({why}); restart {restarts}", kind.name());
        // The name is free only once the old actor has fully stopped.
        for _ in 0..50 {
            if !handles::is_registered(kind.name()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match spawn_child(kind, myself.get_cell(), st.shared.clone()).await {
            Ok(cell) => {
                st.children.insert(cell.get_id(), kind);
                st.shared.actor_state(kind.name(), "running");
                st.shared.publish(Event::ActorRestarted {
                    name: kind.name().into(),
                    restarts,
                    reason: why,
                });
                info!(target: "Supervisor", "actor {} restarted", kind.name());
            }
            Err(e) => {
                let msg = format!("restarting the {} actor failed: {e}", kind.name());
                error!(target: "Supervisor", "{msg}");
                st.fatal = Some(msg.clone());
                shutdown(&st.shared).await;
                myself.stop(Some(msg));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RootMsg>,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(f) = st.fatal.take() {
            *lock(&FATAL) = Some(f);
        }
        Ok(())
    }
}

/// Why the root stopped, if it was a failure (read by `run`).
static FATAL: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Stop every worker, then let the tree go.
async fn shutdown(shared: &Arc<Shared>) {
    if shared.shutting_down.swap(true, Ordering::SeqCst) {
        return;
    }
    // Told at the start, so that systemd waits for the workers to stop
    // instead of counting them as a hang.
    systemd::stopping();
    // The input groups are left first: with the memberships held at the
    // link layer, nothing in the kernel leaves them when the daemon ends,
    // so the upstream (a querier, a snooping switch) would go on sending
    // them until its membership timer ran out. Reconciling to no tables
    // drops the memberships and the IGMP reporters, whose tasks then send
    // the leaves (`shutting_down`, set above, keeps the WorkerManager from
    // joining them again). The leaves go out while PIM says goodbye.
    let leaves = {
        let mut inputs = lock(&shared.inputs);
        inputs.reconcile(&Tables::new(), &Ifaces::new());
        inputs.leaves()
    };
    // Before the tree goes: neighbors must hear PIM's goodbye Hellos. PIM
    // is the ProtocolSupervisor's child, but only the root knows the
    // daemon is stopping rather than the subtree restarting.
    let _ = handles::Pim::call_within(PimMsg::Shutdown, Duration::from_secs(1)).await;
    // The leaves need the runtime, which ends soon after the workers stop.
    if !leaves
        .sent(input_igmp::LEAVE_GRACE + Duration::from_secs(1))
        .await
    {
        warn!(target: "Supervisor", "shutting down: input group leaves not all sent");
    }
    info!(target: "Supervisor", "shutting down: stopping workers");
    let _ = handles::Workers::call_within(WmMsg::StopAll, Duration::from_secs(8)).await;
    workers::kill_all(shared);
    let _ = std::fs::remove_file(&shared.settings.socket_path);
}

/// ractor wraps startup errors in "Actor panicked during startup '...'"
/// once per level of the tree; operators want the innermost reason.
fn startup_error(s: &str) -> String {
    let mut cur = s;
    while let Some(i) = cur.find("during startup '") {
        cur = &cur[i + "during startup '".len()..];
    }
    cur.trim_end_matches('\'').to_string()
}

fn status_line(shared: &Shared, state: &str) -> String {
    let rules = shared.config().rules.len();
    let workers = lock(&shared.registry).len();
    systemd::status_line(rules, workers, state)
}

/// Ping systemd's watchdog only while the root and every child answer a
/// round-trip: a wedged actor (deadlock, a handler stuck on I/O) stops the
/// pings, and systemd restarts the daemon, where a timer alone would keep
/// a half-dead daemon looking alive.
async fn watchdog(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.is_shutting_down() {
            return;
        }
        match handles::tree_answers(every).await {
            Ok(()) => systemd::watchdog(&status_line(&shared, "running")),
            Err(e) => warn!(target: "Supervisor", "watchdog ping withheld: {e}"),
        }
    }
}

/// Run the daemon until it is told to stop or fails past its budget.
pub async fn run(shared: Arc<Shared>) -> Result<(), String> {
    let (root, handle) = Actor::spawn(Some(handles::ROOT.into()), Root, shared.clone())
        .await
        .map_err(|e| format!("cannot start: {}", startup_error(&e.to_string())))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    info!(
        target: "Supervisor",
        "mcrd {} running (pid {}), control socket {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        shared.settings.socket_path.display()
    );
    systemd::ready(&status_line(&shared, "running"));
    let watchdog =
        systemd::watchdog_interval().map(|every| tokio::spawn(watchdog(shared.clone(), every)));
    let mut handle = handle;
    loop {
        tokio::select! {
            _ = term.recv() => { info!(target: "Supervisor", "SIGTERM"); let _ = root.cast(RootMsg::Shutdown); }
            _ = int.recv() => { info!(target: "Supervisor", "SIGINT"); let _ = root.cast(RootMsg::Shutdown); }
            _ = hup.recv() => { info!(target: "Supervisor", "SIGHUP: reloading the config"); let _ = root.cast(RootMsg::Reload); }
            r = &mut handle => {
                let _ = r;
                break;
            }
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    let orderly = shared.is_shutting_down();
    if !orderly {
        systemd::stopping();
    }
    workers::kill_all(&shared);
    let _ = std::fs::remove_file(&shared.settings.socket_path);
    match lock(&FATAL).take() {
        Some(f) => Err(f),
        // The root itself failed (it has no supervisor to restart it).
        None if !orderly => Err(
            "the root supervisor failed; exiting so that the service manager restarts mcrd".into(),
        ),
        None => Ok(()),
    }
}
