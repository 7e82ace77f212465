//! PIM messages (RFC 7761 section 4.9) past the IP header, as a neighbor
//! sends them: never a panic, and the codec round trip of `codec.rs`.
#![no_main]

#[path = "codec.rs"]
mod codec;

use libfuzzer_sys::fuzz_target;
use mcr::pim::codec::{decode, encode};

fuzz_target!(|data: &[u8]| codec::round_trip(data, decode, encode));
