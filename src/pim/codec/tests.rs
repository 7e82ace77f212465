use super::*;
use crate::proto::Rng;

/// Hex dumps of real packets (`tests/data/pim/*.hex`): `#` lines are
/// comments, the rest is whitespace-separated bytes.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).expect("test data is hex"))
        .collect()
}

const HELLO_FRR: &str = include_str!("../../../tests/data/pim/hello_frr.hex");
const HELLO_TROGLOBIT: &str = include_str!("../../../tests/data/pim/hello_troglobit.hex");
const JOIN_FRR: &str = include_str!("../../../tests/data/pim/join_frr.hex");
const PRUNE_FRR: &str = include_str!("../../../tests/data/pim/prune_frr.hex");
const REGISTER: &str = include_str!("../../../tests/data/pim/register.hex");
const NULL_REGISTER: &str = include_str!("../../../tests/data/pim/null_register.hex");
const REGISTER_STOP: &str = include_str!("../../../tests/data/pim/register_stop.hex");

const ALL: [&str; 7] = [
    HELLO_FRR,
    HELLO_TROGLOBIT,
    JOIN_FRR,
    PRUNE_FRR,
    REGISTER,
    NULL_REGISTER,
    REGISTER_STOP,
];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn frr_hello_decodes_with_every_option_and_reencodes_byte_for_byte() {
    let bytes = hex(HELLO_FRR);
    let Message::Hello(h) = decode(&bytes).unwrap() else {
        panic!("not a Hello");
    };
    assert_eq!(h.holdtime, Some(105));
    assert_eq!(
        h.lan_prune_delay,
        Some(LanPruneDelay {
            tracking: false,
            propagation_delay_ms: 500,
            override_interval_ms: 2500
        })
    );
    assert_eq!(h.dr_priority, Some(1));
    assert_eq!(h.generation_id, Some(1_751_230_293));
    assert!(h.address_list.is_empty() && h.unknown.is_empty());
    assert_eq!(encode(&Message::Hello(h)), bytes);
}

#[test]
fn troglobit_hello_has_no_lan_prune_delay() {
    let bytes = hex(HELLO_TROGLOBIT);
    let Message::Hello(h) = decode(&bytes).unwrap() else {
        panic!("not a Hello");
    };
    assert_eq!(h.holdtime, Some(105));
    assert_eq!(h.lan_prune_delay, None);
    assert_eq!(h.dr_priority, Some(1));
    assert_eq!(h.generation_id, Some(0x2598_2bc1));
    assert_eq!(encode(&Message::Hello(h)), bytes);
}

#[test]
fn frr_star_g_join_and_prune() {
    for (text, joining) in [(JOIN_FRR, true), (PRUNE_FRR, false)] {
        let bytes = hex(text);
        let Message::JoinPrune(jp) = decode(&bytes).unwrap() else {
            panic!("not a Join/Prune");
        };
        assert_eq!(jp.upstream_neighbor, ip("10.201.12.1"));
        assert_eq!(jp.holdtime, 210);
        assert_eq!(jp.groups.len(), 1);
        let g = &jp.groups[0];
        assert_eq!(g.group.mask_len, 32);
        let want_group = if joining { "239.1.1.1" } else { "239.1.1.2" };
        assert_eq!(g.group.addr, ip(want_group));
        let (list, other) = if joining {
            (&g.joins, &g.prunes)
        } else {
            (&g.prunes, &g.joins)
        };
        assert!(other.is_empty());
        assert_eq!(list, &vec![EncodedSource::star_g(ip("10.201.255.1"))]);
        assert_eq!(encode(&Message::JoinPrune(jp)), bytes);
    }
}

#[test]
fn register_checksum_covers_only_the_header() {
    let bytes = hex(REGISTER);
    let Message::Register(reg) = decode(&bytes).unwrap() else {
        panic!("not a Register");
    };
    assert!(!reg.border && !reg.null);
    // The inner packet: UDP 10.201.1.10 -> 238.1.1.1 with its payload.
    assert_eq!(reg.packet.len(), bytes.len() - 8);
    assert_eq!(reg.packet[0], 0x45);
    assert_eq!(&reg.packet[12..20], &[10, 201, 1, 10, 238, 1, 1, 1]);
    assert!(reg.packet.ends_with(b"seq=0 t=1795283499.689039"));
    assert_eq!(encode(&Message::Register(reg)), bytes);

    // Changing the data packet leaves the checksum valid...
    let mut changed = bytes.clone();
    *changed.last_mut().unwrap() ^= 0xff;
    assert!(decode(&changed).is_ok());
    // ...changing the flags word does not.
    let mut changed = bytes.clone();
    changed[4] ^= 0x80;
    assert_eq!(decode(&changed), Err(DecodeError::BadChecksum));
}

#[test]
fn register_summed_over_everything_is_accepted_too() {
    let Message::Register(reg) = decode(&hex(REGISTER)).unwrap() else {
        panic!("not a Register");
    };
    let mut whole = encode(&Message::Register(reg.clone()));
    whole[2] = 0;
    whole[3] = 0;
    let sum = checksum(&whole);
    whole[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(decode(&whole), Ok(Message::Register(reg)));
}

#[test]
fn null_register_and_register_stop() {
    let bytes = hex(NULL_REGISTER);
    let Message::Register(reg) = decode(&bytes).unwrap() else {
        panic!("not a Register");
    };
    assert!(reg.null && !reg.border);
    assert_eq!(
        reg.packet.len(),
        20,
        "a null-Register carries only the IP header"
    );
    assert_eq!(&reg.packet[12..20], &[10, 201, 1, 10, 238, 1, 1, 1]);
    assert_eq!(encode(&Message::Register(reg)), bytes);

    let bytes = hex(REGISTER_STOP);
    let msg = decode(&bytes).unwrap();
    assert_eq!(
        msg,
        Message::RegisterStop(RegisterStop {
            group: EncodedGroup::host(ip("238.1.1.1")),
            source: ip("10.201.1.10"),
        })
    );
    assert_eq!(encode(&msg), bytes);
}

#[test]
fn bad_checksum_wrong_version_unknown_type_are_told_apart() {
    let mut bytes = hex(HELLO_FRR);
    bytes[10] ^= 1;
    assert_eq!(decode(&bytes), Err(DecodeError::BadChecksum));

    let mut bytes = hex(HELLO_FRR);
    bytes[0] = 0x10; // PIMv1 in the version nibble
    assert_eq!(decode(&bytes), Err(DecodeError::WrongVersion(1)));

    // Graft (PIM-DM) with a correct checksum.
    let mut graft = vec![0x26, 0, 0, 0];
    let sum = checksum(&graft);
    graft[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(decode(&graft), Err(DecodeError::UnknownType(6)));
}

fn resum(mut b: Vec<u8>) -> Vec<u8> {
    b[2] = 0;
    b[3] = 0;
    let sum = checksum(&b);
    b[2..4].copy_from_slice(&sum.to_be_bytes());
    b
}

#[test]
fn unknown_hello_options_are_skipped_and_bad_lengths_refused() {
    let mut bytes = hex(HELLO_TROGLOBIT);
    // Option 65001 (old address list) with 3 bytes, then option 21.
    bytes.extend_from_slice(&[0xfd, 0xe9, 0, 3, 1, 2, 3, 0, 21, 0, 0]);
    let Message::Hello(h) = decode(&resum(bytes)).unwrap() else {
        panic!("not a Hello");
    };
    assert_eq!(h.holdtime, Some(105));
    assert_eq!(h.unknown, vec![(65001, vec![1, 2, 3]), (21, vec![])]);

    let mut bytes = hex(HELLO_TROGLOBIT);
    bytes.extend_from_slice(&[0, 1, 0, 3, 0, 0, 0]); // holdtime with 3 bytes
    assert_eq!(
        decode(&resum(bytes)),
        Err(DecodeError::BadOption(OPT_HOLDTIME))
    );

    let mut bytes = hex(HELLO_TROGLOBIT);
    bytes.extend_from_slice(&[0, 2, 0, 8, 0]); // option runs past the end
    assert_eq!(decode(&resum(bytes)), Err(DecodeError::Truncated));
}

#[test]
fn address_list_and_lan_prune_delay_t_bit_round_trip() {
    let h = Hello {
        holdtime: Some(0),
        lan_prune_delay: Some(LanPruneDelay {
            tracking: true,
            propagation_delay_ms: 0x7fff,
            override_interval_ms: 1,
        }),
        dr_priority: Some(u32::MAX),
        generation_id: Some(7),
        address_list: vec![ip("192.0.2.1"), ip("198.51.100.7")],
        unknown: vec![(1000, vec![9])],
    };
    let bytes = encode(&Message::Hello(h.clone()));
    // T bit is the top bit of the propagation delay field.
    assert_eq!(&bytes[10..18], &[0, 2, 0, 4, 0xff, 0xff, 0, 1]);
    assert_eq!(decode(&bytes), Ok(Message::Hello(h)));
}

#[test]
fn ipv6_entries_of_an_address_list_are_skipped_not_fatal() {
    // Holdtime, then an Address List with one IPv6 entry (as FRR sends
    // its link-local address) and one IPv4 entry.
    let mut b = vec![0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105, 0, 24, 0, 24];
    b.extend_from_slice(&[2, 0, 0xfe, 0x80]);
    b.extend_from_slice(&[0; 13]);
    b.push(1);
    b.extend_from_slice(&[1, 0, 192, 0, 2, 9]);
    let Ok(Message::Hello(h)) = decode(&resum(b.clone())) else {
        panic!("{:?}", decode(&resum(b)));
    };
    assert_eq!(h.address_list, vec![ip("192.0.2.9")]);
    assert_eq!(h.holdtime, Some(105));
    // An unknown family is still refused.
    let mut bad = b.clone();
    bad[14] = 7;
    assert_eq!(
        decode(&resum(bad)),
        Err(DecodeError::BadOption(OPT_ADDRESS_LIST))
    );
}

fn samples() -> Vec<Message> {
    let g = EncodedGroup {
        bidir: false,
        zone: true,
        mask_len: 24,
        addr: ip("239.2.3.0"),
    };
    vec![
        Message::Hello(Hello::default()),
        Message::JoinPrune(JoinPrune {
            upstream_neighbor: ip("10.0.0.1"),
            holdtime: 0xffff,
            groups: vec![
                JoinPruneGroup {
                    group: EncodedGroup::host(ip("232.1.1.1")),
                    joins: vec![EncodedSource::s_g(ip("10.1.1.1"))],
                    prunes: vec![EncodedSource {
                        sparse: true,
                        wildcard: false,
                        rpt: true,
                        mask_len: 32,
                        addr: ip("10.1.1.2"),
                    }],
                },
                JoinPruneGroup {
                    group: g,
                    joins: vec![],
                    prunes: vec![],
                },
            ],
        }),
        Message::Register(Register {
            border: true,
            null: false,
            packet: vec![0x45, 1, 2, 3, 4],
        }),
        Message::Assert(Assert {
            group: EncodedGroup::host(ip("239.1.1.1")),
            source: ip("10.1.1.1"),
            rpt: true,
            preference: 0x7fff_ffff,
            metric: 0xffff_ffff,
        }),
        Message::Assert(Assert {
            group: EncodedGroup::host(ip("239.1.1.1")),
            source: ip("0.0.0.0"),
            rpt: false,
            preference: 110,
            metric: 20,
        }),
        Message::Bootstrap(Bootstrap {
            fragment_tag: 0xbeef,
            hash_mask_len: 30,
            bsr_priority: 64,
            bsr: ip("10.9.9.9"),
            rest: vec![1, 0, 0, 8, 239, 1, 2, 3],
        }),
        Message::CandRpAdv(CandRpAdv {
            priority: 192,
            holdtime: 150,
            rp: ip("10.9.9.8"),
            groups: vec![g, EncodedGroup::host(ip("239.9.9.9"))],
        }),
    ]
}

#[test]
fn every_message_type_round_trips() {
    for m in samples() {
        let bytes = encode(&m);
        let covered = if m.msg_type() == MsgType::Register {
            &bytes[..8]
        } else {
            &bytes[..]
        };
        assert_eq!(checksum(covered), 0, "{m:?}");
        assert_eq!(decode(&bytes), Ok(m.clone()), "{m:?}");
    }
    // Assert wire layout: RPT bit is the top bit of the preference word.
    let a = encode(&samples()[3]);
    assert_eq!(&a[4 + 8 + 6..], &[0xff; 8]);
}

#[test]
fn every_truncation_of_every_packet_is_an_error_not_a_panic() {
    let mut all: Vec<Vec<u8>> = ALL.iter().map(|t| hex(t)).collect();
    all.extend(samples().iter().map(encode));
    for bytes in all {
        for n in 0..bytes.len() {
            // A cut Register is still a Register as long as the header is
            // there: its data packet is opaque here.
            let cut = &bytes[..n];
            let res = decode(cut);
            if bytes[0] & 0x0f == MsgType::Register as u8 && n >= 8 {
                assert!(res.is_ok(), "{n} {cut:02x?}");
            } else {
                assert!(res.is_err(), "{n} {cut:02x?}");
            }
            // With the checksum fixed up, a cut message must still be refused.
            if n >= 4 && bytes[0] & 0x0f != MsgType::Register as u8 && n < bytes.len() {
                let fixed = resum(cut.to_vec());
                if let Ok(m) = decode(&fixed) {
                    // Only a Hello can end at an option boundary, and a
                    // Bootstrap's entries are opaque at this layer.
                    assert!(
                        matches!(m.msg_type(), MsgType::Hello | MsgType::Bootstrap),
                        "{n} {fixed:02x?}"
                    );
                }
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(42);
    let mut ok = 0;
    for i in 0..200_000 {
        let len = (rng.next_u32() % 64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        if i % 2 == 0 && len >= 4 {
            // Make most of them pass the version and checksum so the
            // message decoders themselves see random bodies.
            b[0] = 0x20 | ((b[0] & 0x0f) % 9);
            b = resum(b);
        }
        if let Ok(m) = decode(&b) {
            // Whatever decodes must survive a trip through encode.
            assert_eq!(decode(&encode(&m)), Ok(m));
            ok += 1;
        }
    }
    assert!(ok > 0, "the fuzz loop never reached a successful decode");
}
