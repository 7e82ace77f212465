//! Control requests, one line from any local client: never a panic, and a
//! request that parses survives the client's encoding unchanged (what
//! `mcrctl` sends is what the daemon acts on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcr::control::{encode_request, parse_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        let line = encode_request(&req);
        match parse_request(&line) {
            Ok(back) => assert_eq!(back, req, "round trip of {line:?}"),
            Err(e) => panic!("re-encoded request refused: {e}: {line:?}"),
        }
    }
});
