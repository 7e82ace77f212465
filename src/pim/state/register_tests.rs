use super::*;
use crate::pim::codec::decode;

const REGISTER: &str = include_str!("../../../tests/data/pim/register.hex");
const NULL_REGISTER: &str = include_str!("../../../tests/data/pim/null_register.hex");

fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The inner packet of FRR's captured Register: UDP from 10.201.1.10 to
/// 238.1.1.1, TTL 8, DF set.
fn frr_inner() -> Vec<u8> {
    let Message::Register(r) = decode(&hex(REGISTER)).unwrap() else {
        panic!("not a Register");
    };
    r.packet
}

/// A UDP packet with a valid header from `src` to `dst`.
fn packet(src: &str, dst: &str, ttl: u8, df: bool, payload: usize) -> Vec<u8> {
    let len = 20 + 8 + payload;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    if df {
        p[6] = 0x40;
    }
    p[8] = ttl;
    p[9] = 17;
    p[12..16].copy_from_slice(&ip(src).octets());
    p[16..20].copy_from_slice(&ip(dst).octets());
    let sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

#[test]
fn could_register_moves_between_noinfo_and_join_only() {
    let mut r = DrRegister::new();
    assert_eq!(r.state(), RegisterState::NoInfo);
    r.set_could_register(false);
    assert_eq!(r.state(), RegisterState::NoInfo);
    r.set_could_register(true);
    assert_eq!(r.state(), RegisterState::Join);
    assert!(r.tunnel_up());
    r.set_could_register(true);
    assert_eq!(r.state(), RegisterState::Join);
    r.set_could_register(false);
    assert_eq!(r.state(), RegisterState::NoInfo);
    assert!(!r.tunnel_up());
}

#[test]
fn register_stop_suppresses_for_a_random_time_within_the_rfc_window() {
    let t0 = Instant::now();
    let mut rng = Rng::new(1);
    let (mut lo, mut hi) = (s(1000), Duration::ZERO);
    for _ in 0..2000 {
        let mut r = DrRegister::new();
        r.set_could_register(true);
        r.register_stop(t0, &mut rng);
        assert_eq!(r.state(), RegisterState::Prune);
        assert!(!r.tunnel_up());
        let d = r.stop_timer().unwrap() - t0;
        // (0.5 .. 1.5) × 60 s minus the 5 s probe time.
        assert!(d >= s(25) && d <= s(85), "{d:?}");
        lo = lo.min(d);
        hi = hi.max(d);
    }
    // Spread over the window, not one fixed value.
    assert!(lo < s(30) && hi > s(80), "{lo:?} {hi:?}");
}

#[test]
fn prune_probes_with_a_null_register_then_join_pending_resumes_without_answer() {
    let t0 = Instant::now();
    let mut rng = Rng::new(2);
    let mut r = DrRegister::new();
    r.set_could_register(true);
    r.register_stop(t0, &mut rng);
    let at = r.stop_timer().unwrap();
    assert_eq!(r.stop_timer_expired(at), DrAction::SendNullRegister);
    assert_eq!(r.state(), RegisterState::JoinPending);
    assert_eq!(r.stop_timer(), Some(at + REGISTER_PROBE_TIME));
    assert!(!r.tunnel_up(), "still silent while the probe is out");
    assert_eq!(
        r.stop_timer_expired(at + REGISTER_PROBE_TIME),
        DrAction::Nothing
    );
    assert_eq!(r.state(), RegisterState::Join);
    assert_eq!(r.stop_timer(), None);
}

#[test]
fn register_stop_answering_the_probe_suppresses_again() {
    let t0 = Instant::now();
    let mut rng = Rng::new(3);
    let mut r = DrRegister::new();
    r.set_could_register(true);
    r.register_stop(t0, &mut rng);
    let at = r.stop_timer().unwrap();
    r.stop_timer_expired(at);
    r.register_stop(at + s(1), &mut rng);
    assert_eq!(r.state(), RegisterState::Prune);
    let d = r.stop_timer().unwrap() - (at + s(1));
    assert!(d >= s(25) && d <= s(85));
    // A second Register-Stop while already in Prune does not move the timer.
    let before = r.stop_timer();
    r.register_stop(at + s(2), &mut rng);
    assert_eq!(r.stop_timer(), before);
}

#[test]
fn register_stop_in_noinfo_is_ignored_and_could_register_false_clears_everything() {
    let t0 = Instant::now();
    let mut rng = Rng::new(4);
    let mut r = DrRegister::new();
    r.register_stop(t0, &mut rng);
    assert_eq!(r, DrRegister::new());
    r.set_could_register(true);
    r.register_stop(t0, &mut rng);
    r.set_could_register(false);
    assert_eq!(r.state(), RegisterState::NoInfo);
    assert_eq!(r.stop_timer(), None);
}

#[test]
fn rp_change_restarts_registering_from_every_state_but_noinfo() {
    let t0 = Instant::now();
    let mut rng = Rng::new(5);
    let mut r = DrRegister::new();
    r.rp_changed();
    assert_eq!(r.state(), RegisterState::NoInfo);
    r.set_could_register(true);
    r.register_stop(t0, &mut rng);
    r.rp_changed();
    assert_eq!(r.state(), RegisterState::Join);
    assert_eq!(r.stop_timer(), None);
    r.register_stop(t0, &mut rng);
    let at = r.stop_timer().unwrap();
    r.stop_timer_expired(at);
    assert_eq!(r.state(), RegisterState::JoinPending);
    r.rp_changed();
    assert_eq!(r.state(), RegisterState::Join);
}

#[test]
fn encapsulating_frr_s_inner_packet_gives_frr_s_register_byte_for_byte() {
    let inner = frr_inner();
    let ours = encapsulate(&inner, 1500, false).unwrap();
    assert_eq!(ours, hex(REGISTER));
}

#[test]
fn encapsulation_refuses_bad_packets_expiring_ttl_and_oversize_df() {
    let ok = packet("10.1.1.10", "239.1.1.1", 8, true, 100);
    assert!(encapsulate(&ok, 1500, false).is_ok());
    for ttl in [0, 1] {
        let p = packet("10.1.1.10", "239.1.1.1", ttl, false, 10);
        assert_eq!(encapsulate(&p, 1500, false), Err(EncapError::TtlExpired));
    }
    let unicast = packet("10.1.1.10", "10.2.2.2", 8, false, 10);
    assert_eq!(
        encapsulate(&unicast, 1500, false),
        Err(EncapError::Malformed)
    );
    let mut cut = ok.clone();
    cut.truncate(60);
    assert_eq!(encapsulate(&cut, 1500, false), Err(EncapError::Malformed));
    let mut bad_sum = ok.clone();
    bad_sum[10] ^= 1;
    assert_eq!(
        encapsulate(&bad_sum, 1500, false),
        Err(EncapError::Malformed)
    );
    // 1472-byte packet + 28 = 1500 fits; one more byte does not.
    let fits = packet("10.1.1.10", "239.1.1.1", 8, true, 1472 - 28);
    assert!(encapsulate(&fits, 1500, false).is_ok());
    let big = packet("10.1.1.10", "239.1.1.1", 8, true, 1473 - 28);
    assert_eq!(
        encapsulate(&big, 1500, false),
        Err(EncapError::TooBig { mtu: 1472 })
    );
    // Without DF the outer packet may be fragmented on the way.
    let big_frag = packet("10.1.1.10", "239.1.1.1", 8, false, 1473 - 28);
    let reg = encapsulate(&big_frag, 1500, true).unwrap();
    let Message::Register(r) = decode(&reg).unwrap() else {
        panic!("not a Register");
    };
    assert!(r.border && !r.null);
    assert_eq!(r.packet, big_frag);
}

#[test]
fn null_register_matches_frr_s_but_for_the_dummy_header_checksum() {
    let ours = null_register(ip("10.201.1.10"), ip("238.1.1.1"), false);
    let frr = hex(NULL_REGISTER);
    assert_eq!(ours.len(), frr.len());
    // PIM header and flags are identical (same checksum too, since the
    // Register checksum does not cover the inner header).
    assert_eq!(ours[..8], frr[..8]);
    // Inner header: identical but for its checksum, which FRR leaves 0.
    assert_eq!(ours[8..18], frr[8..18]);
    assert_eq!(ours[20..], frr[20..]);
    assert_eq!(frr[18..20], [0, 0]);
    assert_eq!(checksum(&ours[8..28]), 0);
    let Message::Register(r) = decode(&ours).unwrap() else {
        panic!("not a Register");
    };
    assert!(r.null);
    let h = parse_inner(&r.packet, true).unwrap();
    assert_eq!((h.source, h.group), (ip("10.201.1.10"), ip("238.1.1.1")));
}

#[test]
fn inner_header_checks() {
    let h = parse_inner(&frr_inner(), false).unwrap();
    assert_eq!(h.source, ip("10.201.1.10"));
    assert_eq!(h.group, ip("238.1.1.1"));
    assert_eq!(h.ttl, 8);
    assert!(h.dont_fragment);
    // FRR's null-Register: checksum 0 accepted only with the N bit.
    let Message::Register(n) = decode(&hex(NULL_REGISTER)).unwrap() else {
        panic!("not a Register");
    };
    assert!(parse_inner(&n.packet, true).is_ok());
    assert_eq!(parse_inner(&n.packet, false), Err(InnerError::BadChecksum));
    let good = packet("10.1.1.10", "239.1.1.1", 8, false, 4);
    assert_eq!(parse_inner(&[], false), Err(InnerError::Truncated));
    assert_eq!(parse_inner(&good[..19], false), Err(InnerError::Truncated));
    let mut v6 = good.clone();
    v6[0] = 0x65;
    assert_eq!(parse_inner(&v6, false), Err(InnerError::BadVersion));
    let mut short_ihl = good.clone();
    short_ihl[0] = 0x44;
    assert_eq!(parse_inner(&short_ihl, false), Err(InnerError::Truncated));
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(parse_inner(&longer, false), Err(InnerError::Truncated));
    for (src, dst) in [
        ("10.1.1.10", "10.1.1.11"),
        ("239.9.9.9", "239.1.1.1"),
        ("0.0.0.0", "239.1.1.1"),
    ] {
        let p = packet(src, dst, 8, false, 4);
        assert_eq!(parse_inner(&p, false), Err(InnerError::BadAddress));
    }
}

#[test]
fn rp_forwards_and_keeps_alive_while_receivers_wait_for_the_spt() {
    let mut pmbr = None;
    let facts = RpFacts {
        spt_bit: false,
        switch_to_spt_desired: true,
        olist_empty: false,
    };
    let d = rp_decide(facts, false, false, ip("10.0.0.1"), &mut pmbr);
    assert_eq!(
        d,
        RpDecision {
            register_stop: false,
            forward: true,
            keepalive: Some(KEEPALIVE_PERIOD),
            foreign_border: false,
        }
    );
    // A null-Register is never forwarded.
    let d = rp_decide(facts, false, true, ip("10.0.0.1"), &mut pmbr);
    assert!(!d.forward && !d.register_stop);
}

#[test]
fn rp_stops_the_dr_at_once_without_receivers_and_once_native_data_arrives() {
    let mut pmbr = None;
    let none = RpFacts {
        spt_bit: false,
        switch_to_spt_desired: true,
        olist_empty: true,
    };
    let d = rp_decide(none, false, false, ip("10.0.0.1"), &mut pmbr);
    assert!(d.register_stop);
    assert_eq!(d.keepalive, Some(RP_KEEPALIVE_PERIOD));
    assert_eq!(RP_KEEPALIVE_PERIOD, s(185));
    let native = RpFacts {
        spt_bit: true,
        switch_to_spt_desired: true,
        olist_empty: false,
    };
    let d = rp_decide(native, false, false, ip("10.0.0.1"), &mut pmbr);
    assert!(d.register_stop && !d.forward);
    assert_eq!(d.keepalive, Some(RP_KEEPALIVE_PERIOD));
    // The same for the probe: the DR stays suppressed.
    let d = rp_decide(native, false, true, ip("10.0.0.1"), &mut pmbr);
    assert!(d.register_stop);
    // An RP that does not want the SPT forwards and starts no keepalive.
    let shared = RpFacts {
        spt_bit: false,
        switch_to_spt_desired: false,
        olist_empty: true,
    };
    let d = rp_decide(shared, false, false, ip("10.0.0.1"), &mut pmbr);
    assert_eq!(
        (d.register_stop, d.forward, d.keepalive),
        (false, true, None)
    );
}

#[test]
fn rp_accepts_one_border_router_per_source() {
    let mut pmbr = None;
    let facts = RpFacts {
        spt_bit: false,
        switch_to_spt_desired: true,
        olist_empty: false,
    };
    let d = rp_decide(facts, true, false, ip("10.0.0.1"), &mut pmbr);
    assert!(d.forward && !d.foreign_border);
    assert_eq!(pmbr, Some(ip("10.0.0.1")));
    let d = rp_decide(facts, true, false, ip("10.0.0.2"), &mut pmbr);
    assert!(d.foreign_border && d.register_stop && !d.forward);
    assert_eq!(d.keepalive, None);
    let d = rp_decide(facts, true, false, ip("10.0.0.1"), &mut pmbr);
    assert!(d.forward && !d.foreign_border);
}
