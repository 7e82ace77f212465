//! MetricsServer: the Prometheus endpoint (`metrics.listen`), serving
//! `/metrics` in the text exposition formats (OpenMetrics 1.0 and the
//! classic 0.0.4).
//!
//! Owns: the listener (bound, and rebound when a reload changes the
//! address) and the gathering of a scrape's snapshot. Protocols add their
//! counters through `metric_sources`, which every scrape includes.
//!
//! A scrape never blocks forwarding or an actor: it asks the StatsActor
//! and the WorkerManager for the reports they already keep (one message
//! each, the same as `mcrctl stats` and `workers`), then builds the text
//! on a blocking-pool thread, holding no lock while it does. Workers are
//! separate processes and are never asked anything.

pub mod http;
pub mod render;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::handles::{MetricsMsg, Stats, StatsMsg, WmMsg, Workers};
use super::metric_sources::{self, add_source};
use super::shared::Shared;
use super::util::spawn_ticker;
use render::{Format, ProcessInfo, Snapshot};

/// How long a scrape waits for an actor's report; a restarting actor's
/// part is left out (and `mcr_metrics_source_up` says so) rather than
/// holding the scrape.
pub const SOURCE_WAIT: Duration = Duration::from_secs(5);

/// The endpoint's own counters, kept for the life of the process so that
/// a restart of this actor does not reset them.
struct ServerCounters {
    scrapes: Counter,
    refused: Counter,
}

fn server_counters() -> &'static ServerCounters {
    static C: OnceLock<ServerCounters> = OnceLock::new();
    C.get_or_init(|| {
        let c = ServerCounters {
            scrapes: Counter::default(),
            refused: Counter::default(),
        };
        let mut r = Registry::with_prefix("mcr_metrics");
        r.register(
            "scrapes",
            "Scrapes of /metrics answered.",
            c.scrapes.clone(),
        );
        r.register(
            "refused_requests",
            "HTTP requests refused (not GET /metrics, too large, too slow).",
            c.refused.clone(),
        );
        // The first user of the registry of sources: protocols join it
        // the same way.
        add_source("metrics", Arc::new(r));
        c
    })
}

/// Gather what a scrape shows.
async fn snapshot(shared: &Shared) -> Snapshot {
    let (stats, workers) = tokio::join!(
        Stats::call_within(StatsMsg::Get, SOURCE_WAIT),
        Workers::call_within(WmMsg::List, SOURCE_WAIT)
    );
    Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: shared.instance_id.clone(),
        rules: shared.config().rules.len(),
        stats: stats.ok(),
        workers: workers.ok(),
        actors: shared.actor_infos(),
        process: ProcessInfo::default(),
    }
}

/// The scrape function the HTTP server calls.
fn scraper(shared: Arc<Shared>) -> http::Scrape {
    Arc::new(move |format: Format| {
        server_counters().scrapes.inc();
        let shared = shared.clone();
        Box::pin(async move {
            let mut snap = snapshot(&shared).await;
            let uptime = shared.started.elapsed().as_secs_f64();
            let extra = metric_sources::all();
            let text = tokio::task::spawn_blocking(move || {
                snap.process = ProcessInfo::read(uptime);
                render::render(Arc::new(snap), &extra, format)
            })
            .await;
            // Only a panic in the encoder fails here.
            match text {
                Ok(t) => Some(t),
                Err(e) => {
                    error!(target: "Supervisor", "metrics: building a scrape failed: {e}");
                    None
                }
            }
        })
    })
}

pub struct MetricsServer;

struct Bound {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

pub struct MetricsState {
    shared: Arc<Shared>,
    bound: Option<Bound>,
    /// The address that last failed to bind, so the error is logged once
    /// and not every second while it is retried.
    failed: Option<SocketAddr>,
    ticker: JoinHandle<()>,
}

impl Drop for MetricsState {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(b) = &self.bound {
            b.task.abort();
        }
    }
}

impl MetricsState {
    /// Make the listener match the running config: bind, rebind on a
    /// changed address, close when the section is gone. A failed bind is
    /// retried every tick (the port may be freed later).
    async fn reconcile(&mut self) {
        let want = self.shared.config().metrics.listen;
        if self.bound.as_ref().map(|b| b.addr) == want {
            return;
        }
        if let Some(old) = self.bound.take() {
            old.task.abort();
            // The listener is closed once the task is gone; waiting for
            // that lets a new listener take the same port at once.
            let _ = old.task.await;
            info!(target: "Supervisor", "metrics endpoint on {} closed", old.addr);
        }
        let Some(addr) = want else {
            self.failed = None;
            return;
        };
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                info!(target: "Supervisor", "metrics endpoint listening on http://{addr}/metrics");
                self.failed = None;
                let refused = || {
                    server_counters().refused.inc();
                };
                let task = tokio::spawn(http::serve(
                    listener,
                    scraper(self.shared.clone()),
                    Arc::new(refused),
                ));
                self.bound = Some(Bound { addr, task });
            }
            Err(e) => {
                if self.failed != Some(addr) {
                    error!(target: "Supervisor", "metrics endpoint: cannot listen on {addr}: {e}; retrying every second");
                    self.failed = Some(addr);
                }
            }
        }
    }
}

impl Actor for MetricsServer {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<MetricsMsg>,
        shared: Arc<Shared>,
    ) -> Result<MetricsState, ActorProcessingErr> {
        let ticker = spawn_ticker(myself, Duration::from_secs(1), || MetricsMsg::Tick);
        let mut st = MetricsState {
            shared,
            bound: None,
            failed: None,
            ticker,
        };
        // Listening before the daemon reports ready: a scraper started
        // with it finds the endpoint.
        st.reconcile().await;
        Ok(st)
    }

    async fn handle(
        &self,
        _me: ActorRef<MetricsMsg>,
        msg: MetricsMsg,
        st: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Tick => {
                if !st.shared.is_shutting_down() {
                    st.reconcile().await;
                }
            }
            MetricsMsg::Ops(o) => o.run("metrics").await,
            MetricsMsg::Panic => panic!("fault injection: metrics actor panic requested"),
        }
        Ok(())
    }
}
