use super::*;

#[test]
fn child_names_round_trip_and_are_distinct() {
    for c in Child::ALL {
        assert_eq!(Child::from_name(c.name()), Some(c));
        assert_ne!(c.name(), ROOT);
    }
    assert_eq!(Child::from_name("worker/eth0/0"), None);
    let k = WorkerKey {
        interface: "eth0".into(),
        index: 2,
    };
    assert_eq!(k.actor_name(), "worker/eth0/2");
    assert_eq!(k.to_string(), "eth0#2");
}

#[tokio::test]
async fn unknown_actor_names_list_the_real_ones() {
    let e = panic_actor("bogus").await.unwrap_err();
    assert!(
        e.contains(
            "root, loglevel, config, stats, workers, rib, netlink, protocols, metrics, control"
        ),
        "{e}"
    );
    // Nothing is running in this test: a known name is "not running".
    assert_eq!(panic_actor("rib").await, Ok(false));
    assert_eq!(panic_actor("pim").await, Ok(false));
    assert_eq!(panic_actor("igmp/eth0").await, Ok(false));
    assert!(Rib::list().await.unwrap_err().contains("restarting"));
}

#[tokio::test]
async fn a_tree_that_is_not_there_is_not_healthy_and_cannot_be_wedged() {
    let e = tree_answers(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        e.contains(
            "root, loglevel, config, stats, workers, rib, netlink, protocols, metrics, control"
        ),
        "{e}"
    );
    assert_eq!(wedge_actor("rib", Duration::from_secs(1)), Ok(false));
    assert!(wedge_actor("bogus", Duration::from_secs(1))
        .unwrap_err()
        .contains("unknown actor"));
}
