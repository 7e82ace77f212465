//! ControlServer: the Unix socket `mcrctl` talks to.
//!
//! Each connection is served by its own task, so a slow, silent or
//! streaming client never holds up anyone else; each request becomes one
//! typed message to the actor that owns the answer. Requests over
//! `MAX_REQUEST` (a 16 MiB config, escaped), malformed JSON, unknown
//! commands and unauthorised mutations get an error reply; a client that
//! does not finish a line within `IDLE` is disconnected; lines over
//! `LARGE_REQUEST` are read and served for `LARGE_READERS` clients at a
//! time, a further one is told it is busy after `PERMIT_WAIT`. The socket
//! file is checked every second and recreated if it was deleted.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcr::control::trace::{check_count, RuleTraceReport, TracePacket, TraceReport};
use mcr::control::{
    parse_request, Done, EventKind, FaultRequest, Request, Response, RuleInfo, LARGE_REQUEST,
    MAX_REQUEST,
};
use mcr::ipc::rule_key;
use mcr::ipc::trace::RuleTrace;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::handles::{
    self, Config, ConfigMsg, ControlMsg, LinkMsg, PimMsg, Root, RootMsg, TraceOp, WmMsg, WorkerKey,
};
use super::shared::Shared;
use super::util::{lock, spawn_ticker};

/// A client that sends nothing for this long is disconnected.
const IDLE: Duration = Duration::from_secs(30);
/// A client that does not read its replies for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ControlServer;

pub struct ControlState {
    shared: Arc<Shared>,
    path: PathBuf,
    inode: u64,
    accept: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Drop for ControlState {
    fn drop(&mut self) {
        self.accept.abort();
        self.ticker.abort();
    }
}

/// Bind the control socket: refuse if another daemon answers there,
/// replace a stale file, set mode 0660 and the control group. Returns the
/// listener (non-blocking) and the socket file's inode.
fn bind(shared: &Shared, path: &Path) -> Result<(std::os::unix::net::UnixListener, u64), String> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another mcrd is already listening on {}",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing stale {}: {e}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("binding {}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("setting {} non-blocking: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    if let Some(gid) = shared.settings.control_gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    let inode = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
    Ok((l, inode))
}

/// Serve the shared listening socket: a duplicate of it is handed to tokio,
/// so that dropping this task (when the actor restarts) closes only the
/// duplicate and the socket keeps accepting.
fn spawn_accept(shared: Arc<Shared>) -> Result<tokio::task::JoinHandle<()>, String> {
    let dup = {
        let l = lock(&shared.control_listener);
        let (std_l, _) = l.as_ref().ok_or("no control listener")?;
        std_l
            .try_clone()
            .map_err(|e| format!("duplicating the control socket: {e}"))?
    };
    let listener =
        UnixListener::from_std(dup).map_err(|e| format!("registering the control socket: {e}"))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(serve(conn, shared.clone()));
                }
                Err(e) => {
                    warn!(target: "ControlSocket", "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// The listener's inode, binding it first if the root holds none (first
/// start) or its file is gone or replaced.
fn ensure_listener(shared: &Shared, path: &Path) -> Result<(u64, bool), String> {
    let current = std::fs::metadata(path).map(|m| m.ino()).ok();
    let mut l = lock(&shared.control_listener);
    if let Some((_, inode)) = l.as_ref() {
        if current == Some(*inode) {
            return Ok((*inode, false));
        }
    }
    // Drop ours first: a stale file of our own must not look like another
    // daemon listening.
    *l = None;
    let (listener, inode) = bind(shared, path)?;
    *l = Some((listener, inode));
    Ok((inode, true))
}

impl Actor for ControlServer {
    type Msg = ControlMsg;
    type State = ControlState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<ControlMsg>,
        shared: Arc<Shared>,
    ) -> Result<ControlState, ActorProcessingErr> {
        let path = shared.settings.socket_path.clone();
        // After a restart of this actor the root still holds the listening
        // socket: clients were never refused meanwhile.
        let (inode, fresh) = ensure_listener(&shared, &path)?;
        if fresh {
            info!(target: "ControlSocket", "listening on {}", path.display());
        }
        let accept = spawn_accept(shared.clone())?;
        let me = myself.clone();
        let ticker = spawn_ticker(me, Duration::from_secs(1), || ControlMsg::Tick);
        Ok(ControlState {
            shared,
            path,
            inode,
            accept,
            ticker,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<ControlMsg>,
        msg: ControlMsg,
        st: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ControlMsg::Tick => {
                if st.shared.is_shutting_down() {
                    return Ok(());
                }
                let same = std::fs::metadata(&st.path)
                    .map(|m| m.ino() == st.inode)
                    .unwrap_or(false);
                if !same {
                    warn!(target: "ControlSocket", "control socket {} was removed or replaced; recreating it", st.path.display());
                    st.accept.abort();
                    let (inode, _) = ensure_listener(&st.shared, &st.path)?;
                    st.inode = inode;
                    st.accept = spawn_accept(st.shared.clone())?;
                    st.shared.publish(mcr::control::Event::ActorRestarted {
                        name: "control-socket".into(),
                        restarts: 0,
                        reason: "socket file recreated".into(),
                    });
                }
            }
            ControlMsg::Subscribe(reply) => {
                let _ = reply.send(st.shared.subscribe());
            }
            ControlMsg::DeleteSocket(reply) => {
                let r = std::fs::remove_file(&st.path)
                    .map(|_| Done {
                        message: format!(
                            "{} deleted; the daemon recreates it within a second",
                            st.path.display()
                        ),
                        id: None,
                        warnings: Vec::new(),
                    })
                    .map_err(|e| format!("deleting {}: {e}", st.path.display()));
                let _ = reply.send(r);
            }
            ControlMsg::Panic => panic!("fault injection: control server panic requested"),
            ControlMsg::Ops(o) => o.run("control").await,
        }
        Ok(())
    }
}

/// Whether the peer may change daemon state: root, our own user, or a
/// member of the configured control group.
fn authorised(shared: &Shared, cred: Option<tokio::net::unix::UCred>) -> bool {
    let Some(c) = cred else { return false };
    if c.uid() == 0 || c.uid() == nix::unistd::geteuid().as_raw() {
        return true;
    }
    let Some(gid) = shared.settings.control_gid else {
        return false;
    };
    if c.gid() == gid {
        return true;
    }
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(c.uid()))
        .ok()
        .flatten()
        .and_then(|u| {
            let name = std::ffi::CString::new(u.name).ok()?;
            nix::unistd::getgrouplist(&name, u.gid).ok()
        })
        .is_some_and(|gs| gs.iter().any(|g| g.as_raw() == gid))
}

enum Line {
    /// A whole line, with the large-line permit it took, if any: kept until
    /// the request made from the line is answered, since the request (a
    /// config text) lives that long.
    Got(Vec<u8>, Option<tokio::sync::SemaphorePermit<'static>>),
    Eof,
    TooLong,
    Idle,
    /// No large-line permit came free within `PERMIT_WAIT`.
    Busy,
    Err(std::io::Error),
}

/// How many connections may hold a request line longer than
/// `LARGE_REQUEST` at once. Each may reach `MAX_REQUEST` (32 MiB) and the
/// request parsed from it as much again until it is answered, so this
/// bounds what clients sending long lines can make the daemon hold; a
/// further one waits for a permit, at most `PERMIT_WAIT`.
const LARGE_READERS: usize = 2;
static LARGE_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LARGE_READERS);
/// Longest wait for a large-line permit. Shorter than `IDLE` and not
/// counted in it, so a client behind stalled ones hears why it was turned
/// away instead of being closed as idle.
const PERMIT_WAIT: Duration = Duration::from_secs(5);

/// Read one request line, at most `MAX_REQUEST` bytes, waiting at most
/// `IDLE` for it to complete (time spent waiting for a permit aside). Past
/// `LARGE_REQUEST` bytes the line takes one of the `LARGE_READERS` permits.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Line {
    let mut line = Vec::new();
    let mut permit = None;
    let mut deadline = tokio::time::Instant::now() + IDLE;
    loop {
        let buf = match tokio::time::timeout_at(deadline, r.fill_buf()).await {
            Err(_) => return Line::Idle,
            Ok(Err(e)) => return Line::Err(e),
            Ok(Ok(b)) => b,
        };
        if buf.is_empty() {
            return Line::Eof;
        }
        let end = buf.iter().position(|b| *b == b'\n');
        let take = end.unwrap_or(buf.len());
        if line.len() + take > MAX_REQUEST {
            return Line::TooLong;
        }
        if permit.is_none() && line.len() + take > LARGE_REQUEST {
            let t0 = tokio::time::Instant::now();
            match tokio::time::timeout(PERMIT_WAIT, LARGE_PERMITS.acquire()).await {
                Ok(Ok(p)) => permit = Some(p),
                // The semaphore is never closed.
                Ok(Err(_)) | Err(_) => return Line::Busy,
            }
            deadline += t0.elapsed();
            // `fill_buf` again: the buffer may not be borrowed across the
            // wait.
            continue;
        }
        line.extend_from_slice(&buf[..take]);
        match end {
            Some(i) => {
                r.consume(i + 1);
                return Line::Got(line, permit);
            }
            None => r.consume(take),
        }
    }
}

async fn write_line<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    resp: &impl serde::Serialize,
) -> bool {
    let mut v = match serde_json::to_vec(resp) {
        Ok(v) => v,
        Err(_) => return false,
    };
    v.push(b'\n');
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&v)).await,
        Ok(Ok(()))
    )
}

async fn serve(conn: UnixStream, shared: Arc<Shared>) {
    let cred = conn.peer_cred().ok();
    let (rd, mut wr) = conn.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let (line, permit) = match read_line(&mut rd).await {
            Line::Got(l, p) => (l, p),
            Line::Eof => return,
            Line::Err(e) => {
                debug!(target: "ControlSocket", "client read failed: {e}");
                return;
            }
            Line::Idle => {
                debug!(target: "ControlSocket", "closing a client idle for {IDLE:?}");
                return;
            }
            Line::TooLong => {
                let _ = write_line(
                    &mut wr,
                    &Response::err(format!("request exceeds the {MAX_REQUEST}-byte limit")),
                )
                .await;
                return;
            }
            // The rest of the line is unread, so the connection cannot go on.
            Line::Busy => {
                let msg = format!(
                    "busy: {LARGE_READERS} other requests over {LARGE_REQUEST} bytes are being read or served; retry"
                );
                let _ = write_line(&mut wr, &Response::err(msg)).await;
                return;
            }
        };
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let parsed = parse_request(&line);
        // The raw line can be as large as the request made from it.
        drop(line);
        let req = match parsed {
            Ok(r) => r,
            Err(e) => {
                if !write_line(&mut wr, &Response::err(e)).await {
                    return;
                }
                continue;
            }
        };
        if req.mutates() && !authorised(&shared, cred) {
            let who = cred
                .map(|c| format!("uid {}", c.uid()))
                .unwrap_or_else(|| "unknown peer".into());
            warn!(target: "Security", "refused a mutating request from {who}");
            let msg = match shared.settings.control_gid {
                Some(_) => {
                    format!("permission denied: {who} is neither root nor in the control group")
                }
                None => {
                    format!("permission denied: {who} is not root (set control.group to delegate)")
                }
            };
            if !write_line(&mut wr, &Response::err(msg)).await {
                return;
            }
            continue;
        }
        if let Request::Subscribe { events } = req {
            drop(permit);
            stream_events(&shared, events, rd, wr).await;
            return;
        }
        let resp = dispatch(&shared, req).await;
        // Held until the request is answered: its text lived until now.
        drop(permit);
        if !write_line(&mut wr, &resp).await {
            return;
        }
    }
}

/// Every querier interface's state and the IGMP proxy's upstream; an
/// IgmpActor that is restarting has nothing to show until it is back.
async fn igmp_snapshot(shared: &Shared) -> mcr::igmp::Snapshot {
    let mut all = mcr::igmp::Snapshot::default();
    let interfaces = shared
        .igmp()
        .map(|s| s.querier_interfaces)
        .unwrap_or_default();
    for i in interfaces {
        if let Ok(s) = handles::Igmp::snapshot(&i).await {
            all.groups.extend(s.groups);
            all.interfaces.extend(s.interfaces);
        }
    }
    if let Ok(s) = handles::IgmpProxy::call(handles::IgmpProxyMsg::Snapshot).await {
        all.groups.extend(s.groups);
        all.interfaces.extend(s.interfaces);
    }
    all
}

fn to_resp<T: serde::Serialize>(r: Result<T, String>) -> Response {
    match r {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(e),
    }
}

/// Ask the PimActor. With PIM switched off there is no actor (the
/// ProtocolSupervisor runs it only when enabled), and nothing to list.
async fn pim_call<T: Default + Send + 'static>(
    shared: &Shared,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> PimMsg,
) -> Result<T, String> {
    let enabled = shared.config().pim.as_ref().is_some_and(|p| p.enabled);
    if !enabled && !handles::is_registered(handles::Pim::NAME) {
        return Ok(T::default());
    }
    handles::Pim::call(msg).await
}

fn flat<T>(r: Result<Result<T, String>, String>) -> Result<T, String> {
    r.and_then(|x| x)
}

async fn dispatch(shared: &Shared, req: Request) -> Response {
    match req {
        Request::Ping => to_resp(Root::call(RootMsg::Ping).await),
        Request::Version => to_resp(Root::call(RootMsg::Version).await),
        Request::Status => to_resp(Root::call(RootMsg::Status).await),
        Request::Add {
            id,
            name,
            input,
            outputs,
        } => to_resp(flat(
            Config::call(|reply| ConfigMsg::Add {
                id,
                name,
                input,
                outputs,
                reply,
            })
            .await,
        )),
        Request::Remove { id, name } => to_resp(flat(
            Config::call(|reply| ConfigMsg::Remove { id, name, reply }).await,
        )),
        Request::List => to_resp(handles::Rib::list().await),
        Request::Mroute => to_resp(handles::Rib::mroute().await),
        Request::PimNeighbors => to_resp(pim_call(shared, PimMsg::Neighbors).await),
        Request::PimInterfaces => to_resp(pim_call(shared, PimMsg::InterfaceList).await),
        Request::PimRoutes => to_resp(pim_call(shared, PimMsg::Routes).await),
        Request::PimRp => to_resp(pim_call(shared, PimMsg::RpTable).await),
        Request::PimRegister => to_resp(pim_call(shared, PimMsg::RegisterState).await),
        Request::PimAssert => to_resp(pim_call(shared, PimMsg::AssertState).await),
        Request::Stats => to_resp(handles::Stats::get().await),
        Request::Workers => to_resp(handles::Workers::list().await),
        Request::ConfigShow => to_resp(Config::call(ConfigMsg::Show).await),
        Request::ConfigCheck { text } => {
            to_resp(Config::call(|reply| ConfigMsg::Check { text, reply }).await)
        }
        Request::ConfigLoad { text, replace } => to_resp(flat(
            Config::call(|reply| ConfigMsg::Load {
                text,
                replace,
                reply,
            })
            .await,
        )),
        Request::ConfigSave => to_resp(flat(Config::call(ConfigMsg::Save).await)),
        Request::ConfigReload => to_resp(flat(Config::call(|r| ConfigMsg::Reload(Some(r))).await)),
        Request::LogLevelGet => to_resp(Config::call(ConfigMsg::LogGet).await),
        Request::LogLevelSet { facility, level } => to_resp(flat(
            Config::call(|reply| ConfigMsg::LogSet {
                facility,
                level,
                reply,
            })
            .await,
        )),
        Request::Subscribe { .. } => Response::err("subscribe is handled by the connection"),
        Request::IgmpGroups => Response::ok(igmp_snapshot(shared).await.groups),
        Request::IgmpInterfaces => Response::ok(igmp_snapshot(shared).await.interfaces),
        Request::TraceEnable { rule_id, count } => to_resp(trace_enable(&rule_id, count).await),
        Request::TraceDisable { rule_id } => to_resp(trace_disable(&rule_id).await),
        Request::TraceShow { rule_id } => to_resp(trace_show(rule_id.as_deref()).await),
        Request::Fault(f) => {
            if !shared.settings.fault_injection {
                return Response::err(
                    "fault injection is disabled; start mcrd with --enable-fault-injection to run drills",
                );
            }
            to_resp(fault(f).await)
        }
    }
}

/// The rule `rule_id` and the running workers that serve its input: a
/// trace lives in them.
async fn trace_targets(rule_id: &str) -> Result<(RuleInfo, Vec<WorkerKey>), String> {
    let rule = handles::Rib::list()
        .await?
        .into_iter()
        .find(|r| r.id == rule_id)
        .ok_or_else(|| format!("no rule with id {rule_id:?} (`mcrctl list` shows the ids)"))?;
    let keys: Vec<WorkerKey> = handles::Workers::list()
        .await?
        .into_iter()
        .filter(|w| w.interface == rule.input.interface && w.state == "running")
        .map(|w| WorkerKey {
            interface: w.interface,
            index: w.index,
        })
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "rule {rule_id} has no running worker on {} (rule state {}): nothing to trace",
            rule.input.interface,
            rule.state.as_str()
        ));
    }
    Ok((rule, keys))
}

/// Ask each worker. With `all_or_none` the first failure is the answer;
/// otherwise a worker that cannot answer (it is restarting, and so has no
/// trace) is left out.
async fn trace_each(
    keys: &[WorkerKey],
    op: TraceOp,
    all_or_none: bool,
) -> Result<Vec<(WorkerKey, Vec<RuleTrace>)>, String> {
    let mut out = Vec::new();
    for k in keys {
        let op = op.clone();
        let r = handles::Link::call(&k.actor_name(), |reply| LinkMsg::Trace(op, reply)).await;
        match r.and_then(|x| x) {
            Ok(t) => out.push((k.clone(), t)),
            Err(e) if all_or_none => return Err(e),
            Err(e) => debug!(target: "ControlSocket", "trace show: worker {k}: {e}"),
        }
    }
    Ok(out)
}

async fn trace_enable(rule_id: &str, count: Option<u32>) -> Result<Done, String> {
    let count = check_count(count)?;
    let (rule, keys) = trace_targets(rule_id).await?;
    let key = rule_key(&rule.id);
    trace_each(&keys, TraceOp::Enable { key, count }, true).await?;
    Ok(Done::new(
        format!(
            "tracing rule {rule_id} on {} ({} worker{}): the last {count} packets; `mcrctl trace show --rule-id {rule_id}` shows them",
            rule.input.interface,
            keys.len(),
            if keys.len() == 1 { "" } else { "s" }
        ),
        None,
    ))
}

async fn trace_disable(rule_id: &str) -> Result<Done, String> {
    let (rule, keys) = trace_targets(rule_id).await?;
    let key = rule_key(&rule.id);
    trace_each(&keys, TraceOp::Disable { key }, true).await?;
    Ok(Done::new(format!("trace of rule {rule_id} stopped"), None))
}

async fn trace_show(rule_id: Option<&str>) -> Result<TraceReport, String> {
    let (keys, want) = match rule_id {
        Some(id) => {
            let (rule, keys) = trace_targets(id).await?;
            (keys, Some(rule_key(&rule.id)))
        }
        None => {
            let keys = handles::Workers::list()
                .await?
                .into_iter()
                .filter(|w| w.state == "running")
                .map(|w| WorkerKey {
                    interface: w.interface,
                    index: w.index,
                })
                .collect::<Vec<_>>();
            (keys, None)
        }
    };
    let ids: Vec<String> = handles::Rib::list()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut report = TraceReport::default();
    for (worker, traces) in trace_each(&keys, TraceOp::Get { key: want }, rule_id.is_some()).await?
    {
        for t in traces {
            let rule_id = ids
                .iter()
                .find(|id| rule_key(id) == t.key)
                .cloned()
                .unwrap_or_else(|| format!("(removed rule {:016x})", t.key));
            report.rules.push(RuleTraceReport {
                rule_id,
                interface: worker.interface.clone(),
                worker: worker.index,
                capacity: t.capacity,
                seen: t.seen,
                packets: t
                    .packets
                    .iter()
                    .map(|p| TracePacket::from_ipc(p, &t.outputs))
                    .collect(),
            });
        }
    }
    if let (Some(id), true) = (rule_id, report.rules.is_empty()) {
        return Err(format!(
            "rule {id} is not traced (`mcrctl trace enable --rule-id {id}` starts it; a worker restart ends it)"
        ));
    }
    Ok(report)
}

/// Carry out a fault through the same messages as everything else.
async fn fault(f: FaultRequest) -> Result<Done, String> {
    match f {
        FaultRequest::PanicActor { name } => match handles::panic_actor(&name).await? {
            true => Ok(Done {
                message: format!("actor {name} told to panic"),
                id: None,
                warnings: Vec::new(),
            }),
            false => Err(format!("actor {name} is not running")),
        },
        FaultRequest::WedgeActor { name, secs } => {
            match handles::wedge_actor(&name, Duration::from_secs(secs))? {
                true => Ok(Done::new(format!("actor {name} wedged for {secs} s"), None)),
                false => Err(format!("actor {name} is not running")),
            }
        }
        FaultRequest::DeleteSocket => flat(handles::Control::call(ControlMsg::DeleteSocket).await),
        other => flat(handles::Workers::call(|r| WmMsg::Fault(other, r)).await),
    }
}

/// Stream events to a subscriber until it disconnects or falls too far
/// behind to keep up with writes.
async fn stream_events(
    shared: &Shared,
    kinds: Vec<EventKind>,
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) {
    let kinds = if kinds.is_empty() {
        EventKind::ALL.to_vec()
    } else {
        kinds
    };
    let mut rx = match handles::Control::call(ControlMsg::Subscribe).await {
        Ok(rx) => rx,
        Err(e) => {
            let _ = write_line(&mut wr, &Response::err(e)).await;
            return;
        }
    };
    if !write_line(
        &mut wr,
        &Response::ok(serde_json::json!({ "subscribed": kinds })),
    )
    .await
    {
        return;
    }
    let mut sink = [0u8; 256];
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let ev = match ev {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        shared.stamp(mcr::control::Event::Lagged { missed: n })
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if !matches!(ev.event, mcr::control::Event::Lagged { .. }) && !kinds.contains(&ev.event.kind()) {
                    continue;
                }
                if !write_line(&mut wr, &ev).await {
                    return;
                }
            }
            r = tokio::io::AsyncReadExt::read(&mut rd, &mut sink) => {
                // The client closed (or talks on a streaming connection,
                // which it must not).
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}
