use super::*;
use crate::pim::codec::{decode, encode, Message};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn m(rpt: bool, preference: u32, metric: u32, addr: &str) -> AssertMetric {
    AssertMetric {
        rpt,
        preference,
        metric,
        addr: ip(addr),
    }
}

/// A router at 10.0.0.5 with an SPT route of preference 110, metric 20.
fn able() -> AssertFacts {
    AssertFacts {
        could_assert: true,
        tracking_desired: true,
        my_metric: m(false, 110, 20, "10.0.0.5"),
    }
}

fn unable(tracking: bool) -> AssertFacts {
    AssertFacts {
        could_assert: false,
        tracking_desired: tracking,
        my_metric: AssertMetric::infinite(),
    }
}

const SG: AssertKind = AssertKind::SourceGroup;
const STAR: AssertKind = AssertKind::AnySource;

#[test]
fn metric_order_is_rpt_then_preference_then_metric_then_higher_address() {
    let base = m(false, 110, 20, "10.0.0.5");
    assert!(
        base.better_than(&m(true, 0, 0, "10.0.0.9")),
        "SPT beats RPT"
    );
    assert!(base.better_than(&m(false, 120, 0, "10.0.0.9")));
    assert!(m(false, 100, 99, "10.0.0.1").better_than(&base));
    assert!(base.better_than(&m(false, 110, 21, "10.0.0.9")));
    assert!(m(false, 110, 19, "10.0.0.1").better_than(&base));
    assert!(m(false, 110, 20, "10.0.0.6").better_than(&base));
    assert!(base.better_than(&m(false, 110, 20, "10.0.0.4")));
    assert_eq!(base.compare(&base), Ordering::Equal);
    assert!(base.better_than(&AssertMetric::infinite()));
    assert!(AssertMetric::infinite().is_cancel());
    assert!(!base.is_cancel());
}

#[test]
fn cancel_and_assert_messages_round_trip_on_the_wire() {
    let c = cancel_message(ip("10.1.1.10"), ip("239.1.1.1"));
    assert!(c.rpt);
    assert_eq!(
        (c.preference, c.metric),
        (INFINITE_PREFERENCE, INFINITE_METRIC)
    );
    let Message::Assert(back) = decode(&encode(&Message::Assert(c))).unwrap() else {
        panic!("not an Assert");
    };
    assert!(AssertMetric::of(&back, ip("10.0.0.5")).is_cancel());
    let a = assert_message(ip("10.1.1.10"), ip("239.1.1.1"), &able().my_metric);
    assert!(!a.rpt);
    assert_eq!((a.preference, a.metric), (110, 20));
    assert_eq!(a.group.mask_len, 32);
}

#[test]
fn data_makes_a_router_that_could_assert_the_winner_and_nothing_else() {
    let t0 = Instant::now();
    let mut e = AssertEntry::new();
    assert_eq!(e.data_arrived(t0, &unable(true)), AssertAction::Nothing);
    assert_eq!(e.state(), AssertState::NoInfo);
    assert_eq!(e.data_arrived(t0, &able()), AssertAction::SendAssert);
    assert_eq!(e.state(), AssertState::Winner);
    assert_eq!(e.timer(), Some(t0 + Duration::from_secs(177)));
    assert_eq!(e.winner(), Some(able().my_metric));
    // More data while winning sends nothing more.
    assert_eq!(
        e.data_arrived(t0 + Duration::from_secs(1), &able()),
        AssertAction::Nothing
    );
    assert_eq!(e.timer(), Some(t0 + Duration::from_secs(177)));
}

#[test]
fn noinfo_answers_inferior_asserts_and_follows_acceptable_ones() {
    let t0 = Instant::now();
    let worse = m(false, 120, 0, "10.0.0.9");
    let better = m(false, 100, 0, "10.0.0.1");
    let mut e = AssertEntry::new();
    assert_eq!(e.receive(t0, SG, &able(), worse), AssertAction::SendAssert);
    assert_eq!(e.state(), AssertState::Winner);

    let mut e = AssertEntry::new();
    assert_eq!(e.receive(t0, SG, &able(), better), AssertAction::Nothing);
    assert_eq!(e.state(), AssertState::Loser);
    assert_eq!(e.winner(), Some(better));
    assert_eq!(e.timer(), Some(t0 + ASSERT_TIME));

    // Not tracking: an acceptable assert is none of our business.
    let mut e = AssertEntry::new();
    e.receive(t0, SG, &unable(false), better);
    assert_eq!(e.state(), AssertState::NoInfo);
    // Not able to assert: an inferior assert is not answered.
    let mut e = AssertEntry::new();
    let f = AssertFacts {
        could_assert: false,
        tracking_desired: false,
        my_metric: m(false, 110, 20, "10.0.0.5"),
    };
    e.receive(t0, SG, &f, worse);
    assert_eq!(e.state(), AssertState::NoInfo);
    // A cancel is never acceptable.
    let mut e = AssertEntry::new();
    let c = AssertMetric::of(
        &cancel_message(ip("1.1.1.1"), ip("239.1.1.1")),
        ip("10.0.0.9"),
    );
    e.receive(t0, STAR, &unable(true), c);
    assert_eq!(e.state(), AssertState::NoInfo);
}

#[test]
fn source_group_machine_answers_any_rpt_assert_when_it_could_assert() {
    let t0 = Instant::now();
    // Even a (*,G) assert with a better preference loses to an (S,G) one.
    let rpt = m(true, 1, 1, "10.0.0.9");
    let mut e = AssertEntry::new();
    assert_eq!(e.receive(t0, SG, &able(), rpt), AssertAction::SendAssert);
    assert_eq!(e.state(), AssertState::Winner);
    // Without the ability the (S,G) machine ignores it.
    let mut e = AssertEntry::new();
    assert_eq!(e.receive(t0, SG, &unable(true), rpt), AssertAction::Nothing);
    assert_eq!(e.state(), AssertState::NoInfo);
    // The (*,G) machine follows it when tracking.
    let mut e = AssertEntry::new();
    e.receive(t0, STAR, &unable(true), rpt);
    assert_eq!(e.state(), AssertState::Loser);
}

#[test]
fn winner_reasserts_on_inferior_yields_to_preferred_and_refreshes_on_timer() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut e = AssertEntry::new();
    e.data_arrived(t0, &able());
    let worse = m(false, 110, 30, "10.0.0.9");
    assert_eq!(
        e.receive(t0 + s(10), SG, &able(), worse),
        AssertAction::SendAssert
    );
    assert_eq!(e.state(), AssertState::Winner);
    assert_eq!(e.timer(), Some(t0 + s(10) + s(177)));
    assert_eq!(
        e.timer_expired(t0 + s(187), &able()),
        AssertAction::SendAssert
    );
    assert_eq!(e.timer(), Some(t0 + s(187) + s(177)));
    let better = m(false, 110, 20, "10.0.0.6");
    assert_eq!(
        e.receive(t0 + s(200), SG, &able(), better),
        AssertAction::Nothing
    );
    assert_eq!(e.state(), AssertState::Loser);
    assert_eq!(e.winner(), Some(better));
    assert_eq!(e.timer(), Some(t0 + s(200) + ASSERT_TIME));
}

#[test]
fn winner_that_can_no_longer_assert_cancels() {
    let t0 = Instant::now();
    let mut e = AssertEntry::new();
    e.data_arrived(t0, &able());
    assert_eq!(e.reevaluate(&able()), AssertAction::Nothing);
    assert_eq!(e.reevaluate(&unable(true)), AssertAction::SendCancel);
    assert_eq!(e, AssertEntry::new());
}

#[test]
fn loser_follows_refreshes_and_better_routers_and_forgets_on_cancel() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let w = m(false, 100, 0, "10.0.0.1");
    let mut e = AssertEntry::new();
    e.receive(t0, SG, &able(), w);
    // The winner's refresh restarts the timer.
    e.receive(t0 + s(100), SG, &able(), w);
    assert_eq!(e.timer(), Some(t0 + s(100) + ASSERT_TIME));
    // A third router, worse than the winner: ignored.
    e.receive(t0 + s(101), SG, &able(), m(false, 105, 0, "10.0.0.7"));
    assert_eq!(e.winner(), Some(w));
    assert_eq!(e.timer(), Some(t0 + s(100) + ASSERT_TIME));
    // Better than the winner: followed.
    let w2 = m(false, 90, 0, "10.0.0.2");
    e.receive(t0 + s(102), SG, &able(), w2);
    assert_eq!(e.winner(), Some(w2));
    // The new winner cancels: we may forward again.
    let c = AssertMetric {
        addr: w2.addr,
        ..AssertMetric::infinite()
    };
    assert_eq!(
        e.receive(t0 + s(103), SG, &able(), c),
        AssertAction::Nothing
    );
    assert_eq!(e.state(), AssertState::NoInfo);
    assert_eq!(e.winner(), None);
}

#[test]
fn loser_forgets_a_winner_that_got_worse_than_us() {
    let t0 = Instant::now();
    let mut e = AssertEntry::new();
    e.receive(t0, SG, &able(), m(false, 100, 0, "10.0.0.1"));
    e.receive(t0, SG, &able(), m(false, 200, 0, "10.0.0.1"));
    assert_eq!(e.state(), AssertState::NoInfo);
}

#[test]
fn loser_times_out_and_every_a5_event_resets_it() {
    let t0 = Instant::now();
    let w = m(false, 100, 0, "10.0.0.1");
    let lose = || {
        let mut e = AssertEntry::new();
        e.receive(t0, SG, &able(), w);
        assert_eq!(e.state(), AssertState::Loser);
        e
    };
    let mut e = lose();
    assert_eq!(
        e.timer_expired(t0 + ASSERT_TIME, &able()),
        AssertAction::Nothing
    );
    assert_eq!(e.state(), AssertState::NoInfo);

    let mut e = lose();
    assert!(!e.neighbor_gone(ip("10.0.0.7")));
    assert!(e.neighbor_gone(w.addr));
    assert_eq!(e.state(), AssertState::NoInfo);

    let mut e = lose();
    assert!(e.loser_reset());
    assert_eq!(e.state(), AssertState::NoInfo);
    assert!(!e.loser_reset());

    let mut e = lose();
    e.reevaluate(&AssertFacts {
        tracking_desired: false,
        ..able()
    });
    assert_eq!(e.state(), AssertState::NoInfo);

    // Our route improved past the winner's.
    let mut e = lose();
    e.reevaluate(&AssertFacts {
        my_metric: m(false, 50, 0, "10.0.0.5"),
        ..able()
    });
    assert_eq!(e.state(), AssertState::NoInfo);

    let mut e = lose();
    e.reevaluate(&able());
    assert_eq!(e.state(), AssertState::Loser);
}

#[test]
fn star_g_machine_follows_the_same_table() {
    let t0 = Instant::now();
    let mine = AssertFacts {
        could_assert: true,
        tracking_desired: true,
        my_metric: m(true, 110, 20, "10.0.0.5"),
    };
    let mut e = AssertEntry::new();
    assert_eq!(e.data_arrived(t0, &mine), AssertAction::SendAssert);
    let better = m(true, 110, 10, "10.0.0.1");
    e.receive(t0, STAR, &mine, better);
    assert_eq!(e.state(), AssertState::Loser);
    let mut e = AssertEntry::new();
    assert_eq!(
        e.receive(t0, STAR, &mine, m(true, 110, 30, "10.0.0.9")),
        AssertAction::SendAssert
    );
    assert_eq!(e.state(), AssertState::Winner);
}

#[test]
fn data_seen_before_we_could_assert_makes_us_assert_once_we_can() {
    let t0 = Instant::now();
    let mut e = AssertEntry::new();
    assert_eq!(e.data_arrived(t0, &unable(true)), AssertAction::Nothing);
    assert_eq!(e.state(), AssertState::NoInfo);
    assert_eq!(e.data_seen(), Some(t0));
    // Still unable: nothing, the sighting is kept.
    let t1 = t0 + Duration::from_millis(500);
    assert_eq!(e.recent_data(t1, &unable(true)), AssertAction::Nothing);
    assert_eq!(e.data_seen(), Some(t0));
    // We start forwarding: assert at once (A1).
    let t2 = t0 + Duration::from_secs(1);
    assert_eq!(e.recent_data(t2, &able()), AssertAction::SendAssert);
    assert_eq!(e.state(), AssertState::Winner);
    assert_eq!(e.data_seen(), None);
}

#[test]
fn an_old_sighting_is_forgotten_and_asserts_nothing() {
    let t0 = Instant::now();
    let mut e = AssertEntry::new();
    e.data_arrived(t0, &unable(true));
    let late = t0 + RECENT_DATA + Duration::from_millis(1);
    assert_eq!(e.recent_data(late, &able()), AssertAction::Nothing);
    assert_eq!(e.state(), AssertState::NoInfo);
    assert_eq!(e.data_seen(), None);
    assert_eq!(e, AssertEntry::new(), "nothing left to keep");
}
