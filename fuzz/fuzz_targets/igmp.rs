//! IGMP messages (RFC 1112, RFC 2236, RFC 3376) as the querier's raw
//! socket hands them over, past the IP header: never a panic, and a message
//! that decodes encodes to bytes that decode to the same message (what the
//! router sends is what it understood).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcr::igmp::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        let bytes = encode(&m);
        match decode(&bytes) {
            Ok(back) => assert_eq!(back, m, "re-encoded as {bytes:02x?}"),
            Err(e) => panic!("re-encoded message refused: {e}: {m:?} as {bytes:02x?}"),
        }
    }
});
