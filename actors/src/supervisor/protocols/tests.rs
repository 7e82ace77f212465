//! The ProtocolSupervisor with probe children: one-for-one restarts,
//! starts and stops that follow the config, escalation past the budget.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::config::Config;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};

use super::*;

/// A protocol actor that does nothing but panic on request.
struct Probe;

enum ProbeMsg {
    Panic,
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<ProbeMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Panic => panic!("probe asked to panic"),
        }
    }
}

struct ProbeChild(String);

impl ProtocolChild for ProbeChild {
    fn key(&self) -> String {
        self.0.clone()
    }

    fn spawn(&self, name: String, _: Arc<Shared>, supervisor: ActorCell) -> SpawnFuture {
        Box::pin(async move {
            Ok(Actor::spawn_linked(Some(name), Probe, (), supervisor)
                .await?
                .0
                .get_cell())
        })
    }
}

/// The test config's pinned interfaces stand for configured protocols:
/// one probe per interface.
fn probes(cfg: &Config) -> Wanted {
    cfg.pinning
        .keys()
        .map(|k| {
            let c: Arc<dyn ProtocolChild> = Arc::new(ProbeChild(k.clone()));
            (k.clone(), c)
        })
        .collect()
}

fn shared(keys: &[&str]) -> Arc<Shared> {
    let s = Shared::for_test(true);
    set_wanted(&s, keys);
    s
}

/// A ProtocolSupervisor running one probe per key, with the shared state
/// its config comes from, and its join handle.
async fn supervise(
    keys: &[&str],
) -> (
    Arc<Shared>,
    ActorRef<ProtocolsMsg>,
    tokio::task::JoinHandle<()>,
) {
    let s = shared(keys);
    let (sup, h) = Actor::spawn(
        None,
        ProtocolSupervisor,
        ProtocolsArgs {
            shared: s.clone(),
            wanted: probes,
        },
    )
    .await
    .expect("the supervisor starts");
    (s, sup, h)
}

fn set_wanted(s: &Shared, keys: &[&str]) {
    s.set_config(Config {
        pinning: keys.iter().map(|k| (k.to_string(), vec![0])).collect(),
        ..Config::default()
    });
}

fn cell_of(key: &str) -> Option<ActorCell> {
    ractor::registry::where_is(key)
}

async fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn panic_child(key: &str) {
    let a: ActorRef<ProbeMsg> = cell_of(key).expect("running").into();
    a.cast(ProbeMsg::Panic).expect("delivered");
}

#[test]
fn plan_stops_the_unwanted_and_starts_the_missing() {
    let wanted: BTreeMap<String, ()> = [("igmp/eth1".to_string(), ()), ("pim".to_string(), ())]
        .into_iter()
        .collect();
    let running = ["igmp/eth0".to_string(), "pim".to_string()];
    assert_eq!(
        plan(running.iter(), &wanted),
        Plan {
            stop: vec!["igmp/eth0".into()],
            start: vec!["igmp/eth1".into()],
        }
    );
    assert_eq!(
        plan([].iter(), &BTreeMap::<String, ()>::new()),
        Plan::default()
    );
}

#[tokio::test]
async fn a_panicking_child_is_restarted_alone_and_children_follow_the_config() {
    let (a, b) = ("probe-t1/a", "probe-t1/b");
    let (s, sup, _h) = supervise(&[a, b]).await;
    let (a0, b0) = wait_until(|| Some((cell_of(a)?.get_id(), cell_of(b)?.get_id()))).await;

    panic_child(a);
    let a1 = wait_until(|| cell_of(a).map(|c| c.get_id()).filter(|id| *id != a0)).await;
    assert_ne!(a1, a0);
    assert_eq!(cell_of(b).unwrap().get_id(), b0, "the sibling is untouched");
    let infos = s.actor_infos();
    let rec = infos.iter().find(|i| i.name == actor_name(a)).unwrap();
    assert_eq!((rec.restarts, rec.state.as_str()), (1, "running"));

    // The config drops b and adds c.
    let c = "probe-t1/c";
    set_wanted(&s, &[a, c]);
    sup.cast(ProtocolsMsg::Reconcile).unwrap();
    wait_until(|| (cell_of(b).is_none() && cell_of(c).is_some()).then_some(())).await;
    assert_eq!(cell_of(a).unwrap().get_id(), a1);
    assert!(!s.actor_infos().iter().any(|i| i.name == actor_name(b)));

    sup.stop(None);
    wait_until(|| (cell_of(a).is_none() && cell_of(c).is_none()).then_some(())).await;
}

#[tokio::test]
async fn past_its_budget_the_supervisor_fails_and_takes_its_children_down() {
    let (a, b) = ("probe-t2/a", "probe-t2/b");
    let (_s, sup, h) = supervise(&[a, b]).await;
    let mut last = wait_until(|| Some(cell_of(a)?.get_id())).await;
    wait_until(|| cell_of(b)).await;
    for _ in 0..PROTOCOL_RESTART_BUDGET {
        panic_child(a);
        last = wait_until(|| cell_of(a).map(|c| c.get_id()).filter(|id| *id != last)).await;
    }
    assert_eq!(sup.get_status(), ActorStatus::Running);
    panic_child(a);
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .expect("the supervisor stops")
        .unwrap();
    assert!(cell_of(a).is_none() && cell_of(b).is_none(), "no orphans");
}

#[test]
fn the_config_asks_for_a_querier_per_interface_and_pim_only_when_enabled() {
    let keys = |cfg: &Config| wanted(cfg).into_keys().collect::<Vec<_>>();
    assert!(keys(&Config::default()).is_empty());
    let mut cfg = Config {
        igmp: Some(mcr::config::IgmpConfig {
            querier_interfaces: vec!["eth1".into(), "eth0".into()],
            ..Default::default()
        }),
        pim: Some(mcr::pim::PimConfig {
            enabled: false,
            ..Default::default()
        }),
        ..Config::default()
    };
    assert_eq!(keys(&cfg), ["igmp/eth0", "igmp/eth1"]);
    if let Some(p) = cfg.pim.as_mut() {
        p.enabled = true;
    }
    assert_eq!(keys(&cfg), ["igmp/eth0", "igmp/eth1", "pim"]);
    // The registry names are the ones handles.rs and mcrctl use.
    assert_eq!(
        crate::supervisor::handles::Igmp::actor_name("eth0"),
        "igmp/eth0"
    );
    assert_eq!(actor_name("pim"), "protocols/pim");
}
