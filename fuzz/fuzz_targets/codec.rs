//! The property every protocol codec target checks, written once: a
//! message that decodes encodes to bytes that decode to the same message
//! (what the router sends is what it understood). Included by the `pim`
//! target; the `igmp` step target checks the same inside its steps.

use std::fmt::{Debug, Display};

pub fn round_trip<M: PartialEq + Debug, E: Display>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<M, E>,
    encode: fn(&M) -> Vec<u8>,
) {
    if let Ok(m) = decode(data) {
        let bytes = encode(&m);
        match decode(&bytes) {
            Ok(back) => assert_eq!(back, m, "re-encoded as {bytes:02x?}"),
            Err(e) => panic!("re-encoded message refused: {e}: {m:?} as {bytes:02x?}"),
        }
    }
}
