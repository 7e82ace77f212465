//! Secondary addresses (RFC 7761 §4.3.1 Address List): a router announces
//! the other IPv4 addresses of an interface in its Hellos and treats each
//! of them as its own — as the upstream neighbor of a Join, as the
//! destination of a Register, as an RP address, and as the source of its
//! own looped-back packets. Driven by hand on a virtual clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr::pim::codec::{
    self, EncodedGroup, EncodedSource, Hello, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use mcr::pim::{PimConfig, PimInput, PimInstance, PimInterfaceConfig};
use mcr::proto::{Protocol, Rng};

const SEC: Duration = Duration::from_secs(1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// The address lists of every Hello `pim` has queued.
fn hello_lists(pim: &mut PimInstance) -> Vec<Vec<Ipv4Addr>> {
    std::iter::from_fn(|| pim.poll_transmit())
        .filter_map(|t| match codec::decode(&t.payload) {
            Ok(Message::Hello(h)) => Some(h.address_list),
            _ => None,
        })
        .collect()
}

/// Run the core's timers until `until`.
fn run_until(pim: &mut PimInstance, until: Instant) {
    while let Some(at) = pim.poll_timeout().filter(|at| *at <= until) {
        pim.handle_timeout(at);
    }
}

/// MCR at 10.201.255.9 on `r1-m` (ifindex 4) with `secondary`, RP for
/// 238/8 at `rp`; FRR's r1 10.201.1.1 is a neighbor there.
fn router(secondary: &[&str], rp: &str) -> (PimInstance, Instant) {
    let t0 = Instant::now();
    let mut pim = PimInstance::new(Rng::new(9));
    let cfg = PimConfig {
        enabled: true,
        interfaces: vec![PimInterfaceConfig::named("r1-m")],
        static_rp: vec![mcr::pim::config::StaticRp {
            group: "238.0.0.0/8".parse().unwrap(),
            rp: ip(rp),
        }],
        ..PimConfig::default()
    };
    pim.handle_config(t0, cfg);
    pim.handle_event(
        t0,
        PimInput::InterfaceUp {
            ifindex: 4,
            name: "r1-m".into(),
            addr: ip("10.201.255.9"),
        },
    );
    pim.handle_event(
        t0,
        PimInput::InterfaceAddresses {
            ifindex: 4,
            secondary: secondary.iter().map(|s| ip(s)).collect(),
        },
    );
    let hello = codec::encode(&Message::Hello(Hello {
        holdtime: Some(105),
        dr_priority: Some(1),
        generation_id: Some(5),
        ..Hello::default()
    }));
    pim.handle_packet(t0, 4, ip("10.201.1.1"), ALL_PIM_ROUTERS, &hello);
    (pim, t0)
}

#[test]
fn hellos_list_the_secondary_addresses_and_follow_their_changes() {
    // The primary address and a duplicate in the input are not listed.
    let (mut pim, t0) = router(
        &[
            "10.201.255.2",
            "10.201.255.9",
            "10.201.254.1",
            "10.201.255.2",
        ],
        "10.201.255.2",
    );
    run_until(&mut pim, t0 + 6 * SEC);
    let lists = hello_lists(&mut pim);
    assert!(!lists.is_empty());
    for l in &lists {
        assert_eq!(l, &[ip("10.201.254.1"), ip("10.201.255.2")]);
    }
    // An address goes: the next Hello comes within Triggered_Hello_Delay
    // (5 s), not a Hello period (30 s) later, without it.
    let t1 = t0 + 10 * SEC;
    pim.handle_event(
        t1,
        PimInput::InterfaceAddresses {
            ifindex: 4,
            secondary: vec![ip("10.201.254.1")],
        },
    );
    run_until(&mut pim, t1 + 5 * SEC);
    assert_eq!(hello_lists(&mut pim), [vec![ip("10.201.254.1")]]);
    // No secondary left: no Address List option at all.
    let t2 = t1 + 10 * SEC;
    pim.handle_event(
        t2,
        PimInput::InterfaceAddresses {
            ifindex: 4,
            secondary: vec![],
        },
    );
    run_until(&mut pim, t2 + 5 * SEC);
    assert_eq!(hello_lists(&mut pim), [Vec::<Ipv4Addr>::new()]);
}

#[test]
fn a_join_naming_a_secondary_address_is_for_us_and_one_naming_another_router_is_not() {
    let (mut pim, t0) = router(&["10.201.255.2"], "10.201.255.2");
    let join = |upstream: &str| {
        codec::encode(&Message::JoinPrune(JoinPrune {
            upstream_neighbor: ip(upstream),
            holdtime: 210,
            groups: vec![JoinPruneGroup {
                group: EncodedGroup::host(ip("238.1.1.1")),
                joins: vec![EncodedSource::star_g(ip("10.201.255.2"))],
                prunes: vec![],
            }],
        }))
    };
    let r1 = ip("10.201.1.1");
    pim.handle_packet(t0, 4, r1, ALL_PIM_ROUTERS, &join("10.201.255.7"));
    assert!(pim.downstream(t0).is_empty());
    assert_eq!(pim.counters(4).unwrap().join_prune_not_for_us, 1);
    pim.handle_packet(t0, 4, r1, ALL_PIM_ROUTERS, &join("10.201.255.2"));
    let d = pim.downstream(t0);
    assert_eq!(d.len(), 1, "the secondary address is ours");
    assert_eq!(d[0].group, ip("238.1.1.1"));
    assert_eq!(pim.counters(4).unwrap().join_prune_not_for_us, 1);
}

#[test]
fn an_rp_on_a_secondary_address_takes_registers_and_ignores_its_own_looped_hellos() {
    // FRR's captured Register goes to 10.201.255.2: here a secondary.
    let (mut pim, t0) = router(&["10.201.255.2"], "10.201.255.2");
    let rp = pim.rp_table();
    assert!(rp[0].i_am_rp, "{rp:?}");
    let register = hex(include_str!("data/pim/register.hex"));
    pim.handle_packet(t0, 4, ip("10.201.1.1"), ip("10.201.255.2"), &register);
    let c = pim.register_assert_counters();
    assert_eq!((c.register_dropped, c.register_not_rp), (0, 0));
    let report = pim.register_report(t0);
    assert_eq!(report.rp.len(), 1);
    assert_eq!(report.rp[0].dr, ip("10.201.1.1"));
    // Without the secondary, the same Register is not for us.
    let (mut other, t0) = router(&[], "10.201.255.2");
    other.handle_packet(t0, 4, ip("10.201.1.1"), ip("10.201.255.2"), &register);
    assert_eq!(other.register_assert_counters().register_dropped, 1);
    assert!(!other.rp_table()[0].i_am_rp);
    // A Hello from one of our own addresses is our own, looped back.
    let before = pim.counters(4).unwrap().hello_rx;
    let hello = codec::encode(&Message::Hello(Hello {
        holdtime: Some(105),
        ..Hello::default()
    }));
    pim.handle_packet(t0, 4, ip("10.201.255.2"), ALL_PIM_ROUTERS, &hello);
    assert_eq!(pim.counters(4).unwrap().hello_rx, before);
    assert_eq!(pim.neighbors(t0).len(), 1);
}
