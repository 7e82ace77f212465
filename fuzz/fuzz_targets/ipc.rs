//! The supervisor ⇄ worker messages: bytes from the other process never
//! panic the decoder, and whatever decodes encodes back to the same
//! message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcr::ipc::{decode, encode, FromWorker, ToWorker};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode::<ToWorker>(data) {
        let again = encode(&m).expect("a decoded message re-encodes");
        assert_eq!(decode::<ToWorker>(&again).expect("re-decodes"), m);
    }
    if let Ok(m) = decode::<FromWorker>(data) {
        let again = encode(&m).expect("a decoded message re-encodes");
        assert_eq!(decode::<FromWorker>(&again).expect("re-decodes"), m);
    }
});
