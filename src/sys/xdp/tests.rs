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

#[test]
fn passes_multicast_udp_while_the_flag_is_clear() {
    let Some((map, prog)) = loaded() else { return };
    assert!(!map.pressure());
    let udp = frame(0x0800, 17, GROUP);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    assert_eq!(map.drops(), 0);
}

#[test]
fn drops_only_multicast_udp_while_the_flag_is_set_and_counts_each_drop() {
    let Some((map, prog)) = loaded() else { return };
    map.set_pressure(true);
    let udp = frame(0x0800, 17, GROUP);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(map.drops(), 1);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(map.drops(), 2);

    let mut arp = frame(0x0806, 0, [0; 4]);
    arp.truncate(42);
    let mut truncated = frame(0x0800, 17, GROUP);
    truncated.truncate(14 + 19);
    let passes: [(&str, Vec<u8>); 7] = [
        ("IGMP", frame(0x0800, 2, [224, 0, 0, 22])),
        ("PIM", frame(0x0800, 103, [224, 0, 0, 13])),
        ("unicast UDP", frame(0x0800, 17, [10, 0, 0, 2])),
        ("broadcast UDP", frame(0x0800, 17, [255, 255, 255, 255])),
        ("ARP", arp),
        ("a truncated IPv4 header", truncated),
        ("a VLAN-tagged frame", frame(0x8100, 17, GROUP)),
    ];
    for (what, f) in &passes {
        assert_eq!(
            prog.test_run(f).expect("test run"),
            XDP_PASS,
            "{what} must pass under pressure"
        );
    }
    assert_eq!(map.drops(), 2, "only the dropped frames are counted");

    map.set_pressure(false);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_PASS);
    assert_eq!(map.drops(), 2);
}

#[test]
fn a_second_mapping_of_the_map_sees_the_same_flag_and_counter() {
    let Some((map, prog)) = loaded() else { return };
    let worker = PressureMap::map(map.dup_fd().expect("dup")).expect("mmap");
    worker.set_pressure(true);
    assert!(map.pressure());
    let udp = frame(0x0800, 17, GROUP);
    assert_eq!(prog.test_run(&udp).expect("test run"), XDP_DROP);
    assert_eq!(worker.drops(), 1);
    map.set_pressure(false);
    assert!(!worker.pressure());
}

#[test]
fn driver_name_is_none_for_names_that_cannot_be_interfaces_or_do_not_exist() {
    assert_eq!(driver_name(""), None);
    assert_eq!(driver_name("a-name-far-too-long-for-ifreq"), None);
    assert_eq!(driver_name("mcrnosuchif0"), None);
}
