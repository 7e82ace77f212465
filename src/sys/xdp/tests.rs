//! The program in the kernel (`BPF_PROG_TEST_RUN`) on crafted frames.
//! Privileged: skipped loudly without, a failure under CI=true.

use super::*;

/// Map and program, or None (with a loud SKIP) without the privilege.
fn loaded() -> Option<(PressureMap, EarlyDropProgram)> {
    let map = match PressureMap::create() {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("SKIP: no privilege to create BPF maps (run as root)");
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "with CI=true a skipped test is a failure"
            );
            return None;
        }
        Err(e) => panic!("map create: {e}"),
    };
    let prog = EarlyDropProgram::load(&map).expect("the verifier accepts the program");
    Some((map, prog))
}

/// An Ethernet frame: `ethertype`, then an IPv4 header with `proto` and
/// `dst`, then 8 bytes of payload.
fn frame(ethertype: u16, proto: u8, dst: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0x01, 0x02, 0x03, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x88, 0, 16, 0, 0]);
    f.extend_from_slice(&[0u8; 8]);
    f
}

const GROUP: [u8; 4] = [239, 1, 2, 3];

/// Frames of every class the program must never drop, over the limit.
fn never_dropped() -> [(&'static str, Vec<u8>); 7] {
    let mut arp = frame(0x0806, 0, [0; 4]);
    arp.truncate(42);
    let mut truncated = frame(0x0800, 17, GROUP);
    truncated.truncate(14 + 19);
    [
        ("IGMP", frame(0x0800, 2, [224, 0, 0, 22])),
        ("PIM", frame(0x0800, 103, [224, 0, 0, 13])),
        ("unicast UDP", frame(0x0800, 17, [10, 0, 0, 2])),
        ("broadcast UDP", frame(0x0800, 17, [255, 255, 255, 255])),
        ("ARP", arp),
        ("a truncated IPv4 header", truncated),
        ("a VLAN-tagged frame", frame(0x8100, 17, GROUP)),
    ]
}

#[test]
fn ring_cost_counts_only_multicast_udp_by_its_ip_length_rounded_to_eight() {
    let udp = frame(0x0800, 17, GROUP);
    // 14 + 36 (IPv4 total length) + 92 = 142, rounded up to 144.
    assert_eq!(ring_cost(&udp), Some(144));
    // Padding after the datagram does not change the cost.
    let mut padded = udp.clone();
    padded.extend_from_slice(&[0; 20]);
    assert_eq!(ring_cost(&padded), Some(144));
    for (what, f) in &never_dropped() {
        assert_eq!(ring_cost(f), None, "{what} is not of the class");
    }
    assert_eq!(ring_cost(&[]), None);
}

#[test]
fn a_fresh_map_is_disarmed_and_the_program_passes_and_counts_the_class() {
    let Some((map, prog)) = loaded() else { return };
    assert_eq!(map.limit(), 0);
    let udp = frame(0x0800, 17, GROUP);
    for n in 1..=3 {
        assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
        assert_eq!(
            map.passed(),
            144 * n,
            "each passed frame adds its ring cost"
        );
    }
    for (what, f) in &never_dropped() {
        assert_eq!(prog.test_run(f).expect("test run"), XDP_PASS, "{what}");
    }
    assert_eq!(map.passed(), 3 * 144, "other frames are not counted");
    assert_eq!(map.drops(), 0);
}

#[test]
fn armed_it_passes_up_to_the_limit_then_drops_until_the_worker_consumes() {
    let Some((map, prog)) = loaded() else { return };
    let udp = frame(0x0800, 17, GROUP);
    let cost = ring_cost(&udp).expect("of the class");
    // A limit of three frames: the program drops once the backlog is over
    // it, so the fourth frame still passes.
    map.arm(3 * cost);
    for _ in 0..4 {
        assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    }
    assert_eq!(map.passed(), 4 * cost);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(map.drops(), 2);
    assert_eq!(map.passed(), 4 * cost, "dropped frames are not passed");

    for (what, f) in &never_dropped() {
        assert_eq!(
            prog.test_run(f).expect("test run"),
            XDP_PASS,
            "{what} must pass over the limit"
        );
    }
    assert_eq!(map.drops(), 2, "only the dropped frames are counted");

    // The worker reads two frames: the backlog falls under the limit.
    map.set_consumed(2 * cost);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    assert_eq!(map.passed(), 5 * cost);
    // A worker ahead of the count (it resynced while a frame was on its
    // way) reads as no backlog, not as a huge one.
    map.set_consumed(9 * cost);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    // Disarmed (the worker exited), everything passes whatever the count.
    map.set_consumed(0);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    map.disarm();
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    assert_eq!(map.drops(), 3);
}

#[test]
fn a_second_mapping_of_the_map_sees_the_same_words() {
    let Some((map, prog)) = loaded() else { return };
    let worker = PressureMap::map(map.dup_fd().expect("dup")).expect("mmap");
    let udp = frame(0x0800, 17, GROUP);
    worker.arm(1);
    assert_eq!(map.limit(), 1);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(worker.drops(), 1);
    worker.set_consumed(worker.passed());
    assert_eq!(map.consumed(), 144);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    map.disarm();
    assert_eq!(worker.limit(), 0);
}

#[test]
fn driver_name_is_none_for_names_that_cannot_be_interfaces_or_do_not_exist() {
    assert_eq!(driver_name(""), None);
    assert_eq!(driver_name("a-name-far-too-long-for-ifreq"), None);
    assert_eq!(driver_name("mcrnosuchif0"), None);
}
