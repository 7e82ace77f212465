//! Byte vectors are the IGMP payloads of real packets captured in the
//! interop lab (Linux hosts, FRR pimd, troglobit pimd; Nov 2026), copied
//! here so the tests need nothing outside the project.

use super::*;
use crate::proto::Rng;

/// FRR, `ip igmp version 2`: general query, Max Resp 10 s.
const V2_QUERY: [u8; 8] = [0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0];
/// FRR: group-specific query for 239.1.1.2 after a leave, Max Resp 1 s.
const V2_GROUP_QUERY: [u8; 8] = [0x11, 0x0a, 0xfe, 0xf1, 239, 1, 1, 2];
/// Linux host: v2 report for 239.1.1.1.
const V2_REPORT: [u8; 8] = [0x16, 0x00, 0xf9, 0xfc, 239, 1, 1, 1];
/// Linux host: v2 leave for 239.1.1.2.
const V2_LEAVE: [u8; 8] = [0x17, 0x00, 0xf8, 0xfb, 239, 1, 1, 2];
/// FRR: v3 general query, S set, QRV 2, QQIC 125.
const V3_QUERY: [u8; 12] = [0x11, 0x64, 0xe4, 0x1e, 0, 0, 0, 0, 0x0a, 0x7d, 0, 0];
/// FRR: v3 group-specific query for 239.9.9.9, S clear.
const V3_GROUP_QUERY: [u8; 12] = [0x11, 0x0a, 0xf4, 0x65, 239, 9, 9, 9, 0x02, 0x7d, 0, 0];
/// troglobit pimd: a v3 general query whose checksum covers only the first
/// 8 bytes (0xee9b; the right one is 0xec8f). Counted and dropped.
const V3_QUERY_TROGLOBIT: [u8; 12] = [0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0, 0x02, 0x0c, 0, 0];
/// Linux host: v3 report, CHANGE_TO_EXCLUDE {} for 239.9.9.9 (a join).
const V3_REPORT_JOIN: [u8; 16] = [0x22, 0, 0xe1, 0xeb, 0, 0, 0, 1, 4, 0, 0, 0, 239, 9, 9, 9];
/// Linux host: v3 report, CHANGE_TO_INCLUDE {} for 239.9.9.9 (a leave).
const V3_REPORT_LEAVE: [u8; 16] = [0x22, 0, 0xe2, 0xeb, 0, 0, 0, 1, 3, 0, 0, 0, 239, 9, 9, 9];

fn captures() -> Vec<&'static [u8]> {
    vec![
        &V2_QUERY,
        &V2_GROUP_QUERY,
        &V2_REPORT,
        &V2_LEAVE,
        &V3_QUERY,
        &V3_GROUP_QUERY,
        &V3_QUERY_TROGLOBIT,
        &V3_REPORT_JOIN,
        &V3_REPORT_LEAVE,
    ]
}

fn g(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[test]
fn captured_v2_messages_decode_and_reencode_byte_for_byte() {
    let Message::Query(q) = decode(&V2_QUERY).unwrap() else {
        panic!()
    };
    assert_eq!((q.version, q.is_general()), (Version::V2, true));
    assert_eq!(q.max_resp(), Duration::from_secs(10));
    let Message::Query(gq) = decode(&V2_GROUP_QUERY).unwrap() else {
        panic!()
    };
    assert_eq!(
        (gq.group, gq.max_resp()),
        (g(239, 1, 1, 2), Duration::from_secs(1))
    );
    assert_eq!(decode(&V2_REPORT), Ok(Message::V2Report(g(239, 1, 1, 1))));
    assert_eq!(decode(&V2_LEAVE), Ok(Message::V2Leave(g(239, 1, 1, 2))));
    for b in [&V2_QUERY, &V2_GROUP_QUERY, &V2_REPORT, &V2_LEAVE] {
        assert_eq!(encode(&decode(b).unwrap()), b.to_vec());
    }
}

#[test]
fn captured_v3_messages_decode_and_reencode_byte_for_byte() {
    let Message::Query(q) = decode(&V3_QUERY).unwrap() else {
        panic!()
    };
    assert_eq!(q.version, Version::V3);
    assert!(q.suppress && q.is_general() && q.sources.is_empty());
    assert_eq!(
        (q.qrv, q.qqi_secs(), q.max_resp()),
        (2, 125, Duration::from_secs(10))
    );
    let Message::Query(gq) = decode(&V3_GROUP_QUERY).unwrap() else {
        panic!()
    };
    assert_eq!((gq.group, gq.suppress), (g(239, 9, 9, 9), false));
    let join = GroupRecord {
        kind: RecordType::ToExclude,
        group: g(239, 9, 9, 9),
        sources: vec![],
    };
    assert_eq!(decode(&V3_REPORT_JOIN), Ok(Message::V3Report(vec![join])));
    let leave = GroupRecord {
        kind: RecordType::ToInclude,
        group: g(239, 9, 9, 9),
        sources: vec![],
    };
    assert_eq!(decode(&V3_REPORT_LEAVE), Ok(Message::V3Report(vec![leave])));
    for b in [
        &V3_QUERY[..],
        &V3_GROUP_QUERY,
        &V3_REPORT_JOIN,
        &V3_REPORT_LEAVE,
    ] {
        assert_eq!(encode(&decode(b).unwrap()), b.to_vec());
    }
}

#[test]
fn a_wrong_checksum_is_refused_including_troglobits_v3_query() {
    assert_eq!(decode(&V3_QUERY_TROGLOBIT), Err(DecodeError::Checksum));
    let mut fixed = V3_QUERY_TROGLOBIT;
    fixed[2..4].copy_from_slice(&[0xec, 0x8f]);
    assert!(matches!(decode(&fixed), Ok(Message::Query(q)) if q.qqi_secs() == 12 && !q.suppress));
    for b in captures() {
        for bit in 0..b.len() * 8 {
            let mut x = b.to_vec();
            x[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&x).is_err(),
                "bit {bit} flipped in {b:02x?} still decodes"
            );
        }
    }
}

#[test]
fn every_truncation_of_every_capture_is_an_error() {
    for b in captures() {
        for n in 0..b.len() {
            if b == V3_QUERY_TROGLOBIT && n == 8 {
                // Its checksum was computed over these 8 bytes: they are a
                // well-formed v2 general query.
                assert!(
                    matches!(decode(&b[..n]), Ok(Message::Query(q)) if q.version == Version::V2)
                );
                continue;
            }
            assert!(decode(&b[..n]).is_err(), "{n} bytes of {b:02x?} decoded");
        }
    }
}

#[test]
fn random_bytes_never_panic_even_with_a_valid_checksum() {
    let mut rng = Rng::new(99);
    for i in 0..200_000 {
        let len = (rng.next_u32() % 80) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        if len >= 8 {
            // Steer half the inputs past the checksum into the parsers,
            // with a type they know.
            if i % 2 == 0 {
                b[0] = [0x11, 0x12, 0x16, 0x17, 0x22][(i / 2) % 5];
                b[2] = 0;
                b[3] = 0;
                let c = checksum(&b);
                b[2..4].copy_from_slice(&c.to_be_bytes());
            }
        }
        let _ = decode(&b);
    }
}

#[test]
fn v1_and_v2_queries_are_told_apart_by_the_code_and_odd_lengths_refused() {
    let v1 = encode(&Message::Query(Query {
        version: Version::V1,
        max_resp_code: 0,
        group: Ipv4Addr::UNSPECIFIED,
        suppress: false,
        qrv: 0,
        qqic: 0,
        sources: vec![],
    }));
    assert!(matches!(decode(&v1), Ok(Message::Query(q)) if q.version == Version::V1));
    assert_eq!(
        decode(&encode(&Message::V1Report(g(239, 1, 2, 3)))),
        Ok(Message::V1Report(g(239, 1, 2, 3)))
    );
    let mut ten = V2_QUERY.to_vec();
    ten.extend_from_slice(&[0, 0]);
    ten[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&ten);
    ten[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decode(&ten), Err(DecodeError::BadLength(10)));
    let mut unknown = V2_REPORT;
    unknown[0] = 0x13;
    unknown[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&unknown);
    unknown[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decode(&unknown), Err(DecodeError::UnknownType(0x13)));
}

#[test]
fn v3_query_with_sources_and_large_codes_round_trips() {
    let q = Query {
        version: Version::V3,
        max_resp_code: encode_float_code(1000),
        group: g(232, 1, 1, 1),
        suppress: true,
        qrv: 7,
        qqic: encode_float_code(300),
        sources: vec![g(10, 0, 0, 1), g(10, 0, 0, 2)],
    };
    let b = encode(&Message::Query(q.clone()));
    assert_eq!(b.len(), 12 + 8);
    assert_eq!(checksum(&b), 0);
    assert_eq!(decode(&b), Ok(Message::Query(q.clone())));
    // 1000 tenths = (0x1f << 5) = 992, the nearest code at or below.
    assert_eq!(q.max_resp(), Duration::from_millis(99_200));
    assert_eq!(q.qqi_secs(), 288);
}

#[test]
fn v3_report_with_every_record_type_skips_aux_data_and_unknown_records() {
    let s1 = g(10, 1, 1, 1);
    let s2 = g(10, 1, 1, 2);
    let mut b = vec![0x22, 0, 0, 0, 0, 0, 0, 8];
    for kind in 1..=7u8 {
        let aux = if kind == 2 { 2u8 } else { 0 };
        b.extend_from_slice(&[kind, aux, 0, 2, 239, 0, 0, kind]);
        b.extend_from_slice(&s1.octets());
        b.extend_from_slice(&s2.octets());
        b.extend(std::iter::repeat_n(0xAA, aux as usize * 4));
    }
    b.extend_from_slice(&[3, 0, 0, 0, 239, 0, 0, 8]);
    let c = checksum(&b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    let Ok(Message::V3Report(recs)) = decode(&b) else {
        panic!("{:?}", decode(&b))
    };
    let kinds: Vec<_> = recs.iter().map(|r| (r.kind, r.group.octets()[3])).collect();
    use RecordType::*;
    assert_eq!(
        kinds,
        vec![
            (IsInclude, 1),
            (IsExclude, 2),
            (ToInclude, 3),
            (ToExclude, 4),
            (AllowNew, 5),
            (BlockOld, 6),
            (ToInclude, 8)
        ]
    );
    assert!(recs[..6].iter().all(|r| r.sources == vec![s1, s2]));
    assert!(recs[6].sources.is_empty());
    // Encoding drops the aux data and the unknown record; decoding that
    // gives the same records back.
    assert_eq!(
        decode(&encode(&Message::V3Report(recs.clone()))),
        Ok(Message::V3Report(recs))
    );
    // A record count larger than the records present is a truncation.
    let mut short = b.clone();
    short[7] = 9;
    short[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&short);
    short[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decode(&short), Err(DecodeError::Truncated));
}

#[test]
fn float_codes_follow_rfc3376_and_encoding_never_rounds_up() {
    assert_eq!(decode_float_code(0), 0);
    assert_eq!(decode_float_code(127), 127);
    assert_eq!(decode_float_code(0x80), 128);
    assert_eq!(decode_float_code(0xff), 31744);
    for c in 0..=255u8 {
        assert_eq!(encode_float_code(decode_float_code(c)), c);
    }
    for v in 0..40_000u32 {
        let d = decode_float_code(encode_float_code(v));
        assert!(d <= v || v > 31744, "{v} encoded as {d}");
        assert!(
            v > 31744 || v - d < v / 16 + 1,
            "{v} encoded as {d}: too coarse"
        );
    }
    assert_eq!(decode_float_code(encode_float_code(100_000)), 31744);
}
