//! Register at the edges of the address and size space (RFC 7761 §4.4),
//! driving one `PimInstance` at a time on a virtual clock:
//!
//! - the RP address on a loopback (or any non-PIM interface), as
//!   operators configure it so that it survives link failures: MCR is the
//!   RP as soon as the address is one of its own, takes Registers sent to
//!   it, and answers them with Register-Stops from that address (the one
//!   the DR registered to), whatever interface the route back leaves by;
//!   the address going away (or arriving later) changes that at once;
//! - the first-hop DR's Registers leave from its address on the interface
//!   toward the RP;
//! - data too big for the register tunnel (§4.4.1): fragmented before
//!   encapsulation when DF is clear (every fragment a Register that fits
//!   the link, decapsulated by the RP like any other), and refused with a
//!   rate-limited ICMP Fragmentation Needed carrying the tunnel's MTU when
//!   DF is set.

#[path = "pim/facts.rs"]
mod facts;
use facts::*;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::pim::codec::{self, Message, Register};
use mcr::pim::{PimInput, PimInstance};
use mcr::proto::{Protocol, Rng, Transmit};

const SRC: &str = "10.0.1.10";
const GRP: &str = "239.1.1.1";
/// The RP address, on the RP's loopback.
const RP_LO: &str = "10.255.0.1";
/// The RP's address on the link to the DR.
const RP_LINK: &str = "10.1.0.2";
const DR_CORE: &str = "10.1.0.1";

fn up(core: &mut PimInstance, now: Instant, ifindex: u32, name: &str, addr: &str) {
    core.handle_event(
        now,
        PimInput::InterfaceUp {
            ifindex,
            name: name.into(),
            addr: ip(addr),
        },
    );
}

fn drain(core: &mut PimInstance) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

/// An RP with PIM on if20 (to the DR) and if21 (to receivers), and a
/// loopback without PIM holding 127.0.0.1 and, if `rp_on_lo`, the RP
/// address.
fn rp(now: Instant, rp_on_lo: bool) -> (PimInstance, Arc<View>) {
    let mut core = PimInstance::new(Rng::new(5));
    let view = Arc::new(View::default());
    core.set_tree_view(view.clone());
    view.set(|f| {
        f.rpf.insert(ip(DR_CORE), 20);
        f.olist_rpt = vec![21];
    });
    core.handle_config(
        now,
        config(&[("if20", 1), ("if21", 1)], &[("239.0.0.0/8", RP_LO)]),
    );
    up(&mut core, now, 20, "if20", RP_LINK);
    up(&mut core, now, 21, "if21", "10.2.0.1");
    up(&mut core, now, 1, "lo", "127.0.0.1");
    if rp_on_lo {
        set_lo(&mut core, now, &[RP_LO]);
    }
    drain(&mut core);
    (core, view)
}

fn set_lo(core: &mut PimInstance, now: Instant, addrs: &[&str]) {
    core.handle_event(
        now,
        PimInput::InterfaceAddresses {
            ifindex: 1,
            secondary: addrs.iter().map(|a| ip(a)).collect(),
        },
    );
}

fn i_am_rp(core: &PimInstance) -> bool {
    let t = core.rp_table();
    assert_eq!(t.len(), 1, "{t:?}");
    t[0].i_am_rp
}

fn register(packet: Vec<u8>) -> Vec<u8> {
    codec::encode(&Message::Register(Register {
        border: false,
        null: false,
        packet,
    }))
}

/// The Register-Stops among `t`: (interface, source, destination).
fn register_stops(t: &[Transmit]) -> Vec<(u32, Option<Ipv4Addr>, Ipv4Addr)> {
    t.iter()
        .filter(|t| matches!(codec::decode(&t.payload), Ok(Message::RegisterStop(_))))
        .map(|t| (t.ifindex, t.src, t.dst))
        .collect()
}

#[test]
fn an_rp_address_on_the_loopback_makes_mcr_the_rp_and_register_stops_leave_from_it() {
    let now = Instant::now();
    let (mut core, view) = rp(now, true);
    assert!(i_am_rp(&core), "the loopback's address is ours");

    // Receivers on if21: the data comes out of the Register.
    let reg = register(udp(SRC, GRP, 16, b"first"));
    core.handle_packet(now, 20, ip(DR_CORE), ip(RP_LO), &reg);
    let d: Vec<_> = std::iter::from_fn(|| core.poll_decapsulated()).collect();
    assert_eq!(d.len(), 1, "decapsulated toward the receivers");
    assert_eq!(d[0].oifs, vec![21]);
    assert!(register_stops(&drain(&mut core)).is_empty());

    // Native data arrives: the RP stops the DR, from the RP address (not
    // the link's 10.1.0.2, which the kernel would pick), out of the
    // interface toward the DR.
    view.set(|f| f.spt_bit = true);
    let t = now + Duration::from_secs(2);
    core.handle_packet(t, 20, ip(DR_CORE), ip(RP_LO), &reg);
    assert_eq!(
        register_stops(&drain(&mut core)),
        vec![(20, Some(ip(RP_LO)), ip(DR_CORE))]
    );
    let c = core.register_assert_counters();
    assert_eq!((c.register_dropped, c.register_stop_tx), (0, 1));
}

#[test]
fn the_rp_address_added_to_the_loopback_later_makes_mcr_the_rp_then_and_not_before() {
    let now = Instant::now();
    let (mut core, _view) = rp(now, false);
    assert!(!i_am_rp(&core));
    let reg = register(udp(SRC, GRP, 16, b"early"));
    core.handle_packet(now, 20, ip(DR_CORE), ip(RP_LO), &reg);
    assert_eq!(core.poll_decapsulated(), None, "not our address yet");
    assert_eq!(core.register_assert_counters().register_dropped, 1);
    assert!(register_stops(&drain(&mut core)).is_empty());

    set_lo(&mut core, now, &[RP_LO]);
    assert!(i_am_rp(&core), "address event: now the RP");
    core.handle_packet(now, 20, ip(DR_CORE), ip(RP_LO), &reg);
    assert!(core.poll_decapsulated().is_some());

    set_lo(&mut core, now, &[]);
    assert!(!i_am_rp(&core), "the address left the loopback");
    core.handle_packet(now, 20, ip(DR_CORE), ip(RP_LO), &reg);
    assert_eq!(core.poll_decapsulated(), None);
    assert_eq!(core.register_assert_counters().register_dropped, 2);
}

#[test]
fn an_rp_address_as_the_only_address_of_a_dummy_interface_counts_too() {
    let now = Instant::now();
    let (mut core, _view) = rp(now, false);
    up(&mut core, now, 7, "dummy0", RP_LO);
    assert!(i_am_rp(&core));
    core.handle_event(now, PimInput::InterfaceDown { ifindex: 7 });
    assert!(!i_am_rp(&core));
}

/// A first-hop DR: source LAN if10, core link if11 toward the RP.
fn dr(now: Instant) -> PimInstance {
    let mut core = PimInstance::new(Rng::new(9));
    let view = Arc::new(View::default());
    core.set_tree_view(view.clone());
    view.set(|f| {
        f.rpf.insert(ip(RP_LO), 11);
        f.connected.push((ip(SRC), 10));
    });
    core.handle_config(
        now,
        config(&[("if10", 1), ("if11", 1)], &[("239.0.0.0/8", RP_LO)]),
    );
    up(&mut core, now, 10, "if10", "10.0.1.1");
    up(&mut core, now, 11, "if11", DR_CORE);
    core.set_link_mtus(BTreeMap::from([(10, 1500), (11, 1500)]));
    drain(&mut core);
    core
}

/// A UDP packet of `total` bytes from the source, DF as given.
fn sized(total: usize, df: bool) -> Vec<u8> {
    let mut p = udp(SRC, GRP, 16, &vec![0x5a; total - 28]);
    if df {
        p[6] |= 0x40;
        p[10] = 0;
        p[11] = 0;
        let sum = mcr::wire::checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The data Registers among `t`: (transmit, inner packet).
fn registers(t: Vec<Transmit>) -> Vec<(Transmit, Vec<u8>)> {
    t.into_iter()
        .filter_map(|t| match codec::decode(&t.payload) {
            Ok(Message::Register(r)) if !r.null => Some((t, r.packet)),
            _ => None,
        })
        .collect()
}

fn data(core: &mut PimInstance, now: Instant, packet: Vec<u8>) -> Vec<(Transmit, Vec<u8>)> {
    core.handle_event(
        now,
        PimInput::RegisterData {
            ifindex: 10,
            packet,
        },
    );
    registers(drain(core))
}

#[test]
fn the_drs_registers_leave_from_its_address_toward_the_rp() {
    let now = Instant::now();
    let mut core = dr(now);
    let r = data(&mut core, now, udp(SRC, GRP, 16, b"hello"));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0.ifindex, r[0].0.src, r[0].0.dst),
        (11, Some(ip(DR_CORE)), ip(RP_LO))
    );
}

#[test]
fn data_too_big_for_the_tunnel_without_df_is_fragmented_then_registered_and_decapsulated() {
    let now = Instant::now();
    let mut core = dr(now);
    // 1480 + 28 of Register overhead > 1500.
    let big = sized(1480, false);
    let r = data(&mut core, now, big.clone());
    assert_eq!(r.len(), 2, "two fragments, two Registers");
    for (t, inner) in &r {
        assert!(
            20 + t.payload.len() <= 1500,
            "each Register fits the link: {}",
            t.payload.len()
        );
        assert_eq!(t.src, Some(ip(DR_CORE)));
        assert_eq!(
            &inner[12..20],
            &big[12..20],
            "fragments keep source and group"
        );
    }
    let c = core.register_assert_counters();
    assert_eq!(
        (c.register_fragmented, c.register_tx, c.frag_needed_tx),
        (1, 2, 0)
    );
    // The fragments carry the whole packet.
    let mut joined = Vec::new();
    for (_, inner) in &r {
        joined.extend_from_slice(&inner[20..]);
    }
    assert_eq!(joined, big[20..]);

    // The RP takes each fragment out of its Register and forwards it.
    let (mut rp, _) = rp(now, true);
    for (t, _) in &r {
        rp.handle_packet(now, 20, ip(DR_CORE), t.dst, &t.payload);
    }
    let d: Vec<_> = std::iter::from_fn(|| rp.poll_decapsulated()).collect();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].packet, r[0].1);

    // A packet that fits is not cut.
    let fits = sized(1472, false);
    let r = data(&mut core, now, fits.clone());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, fits);
}

#[test]
fn data_too_big_with_df_gets_a_rate_limited_fragmentation_needed_with_the_tunnel_mtu() {
    let now = Instant::now();
    let mut core = dr(now);
    let big = sized(1480, true);
    assert!(
        data(&mut core, now, big.clone()).is_empty(),
        "not registered"
    );
    let (to, icmp) = core.poll_icmp().expect("an ICMP for the source");
    assert_eq!(to, ip(SRC));
    assert_eq!(
        &icmp[..2],
        &[3, 4],
        "Destination Unreachable, Fragmentation Needed"
    );
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1472, "1500 - 28");
    assert_eq!(&icmp[8..36], &big[..28], "quotes the packet's start");
    assert_eq!(core.poll_icmp(), None);

    // The next oversized packets within the interval get none; later ones do.
    for _ in 0..5 {
        data(&mut core, now + Duration::from_millis(100), big.clone());
    }
    assert_eq!(core.poll_icmp(), None);
    data(&mut core, now + Duration::from_secs(1), big.clone());
    assert!(core.poll_icmp().is_some());
    let c = core.register_assert_counters();
    assert_eq!(
        (
            c.register_too_big,
            c.frag_needed_tx,
            c.frag_needed_suppressed,
            c.register_tx
        ),
        (7, 2, 5, 0)
    );

    // A smaller MTU toward the RP shrinks the tunnel with it.
    core.set_link_mtus(BTreeMap::from([(11, 1400)]));
    data(&mut core, now + Duration::from_secs(3), sized(1400, true));
    let (_, icmp) = core.poll_icmp().expect("ICMP");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1372);

    // A TTL-1 packet (the multicast default) would never be registered, so
    // its sender gets no Fragmentation Needed for it either.
    let mut ttl1 = sized(1480, true);
    ttl1[8] = 1;
    ttl1[10] = 0;
    ttl1[11] = 0;
    let sum = mcr::wire::checksum(&ttl1[..20]);
    ttl1[10..12].copy_from_slice(&sum.to_be_bytes());
    assert!(data(&mut core, now + Duration::from_secs(10), ttl1).is_empty());
    assert_eq!(core.poll_icmp(), None, "no ICMP about a TTL-1 packet");
}
