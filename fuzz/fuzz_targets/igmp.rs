//! IGMP messages (RFC 1112, RFC 2236, RFC 3376) as the querier's raw
//! socket hands them over, past the IP header: never a panic, and the
//! codec round trip of `codec.rs`.
#![no_main]

#[path = "codec.rs"]
mod codec;

use libfuzzer_sys::fuzz_target;
use mcr::igmp::codec::{decode, encode};

fuzz_target!(|data: &[u8]| codec::round_trip(data, decode, encode));
