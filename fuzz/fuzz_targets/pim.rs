//! PIM messages (RFC 7761 section 4.9) past the IP header, as a neighbor
//! sends them: never a panic, and a message that decodes encodes to bytes
//! that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcr::pim::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        let bytes = encode(&m);
        match decode(&bytes) {
            Ok(back) => assert_eq!(back, m, "re-encoded as {bytes:02x?}"),
            Err(e) => panic!("re-encoded message refused: {e}: {m:?} as {bytes:02x?}"),
        }
    }
});
