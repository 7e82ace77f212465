//! IGMP, versions 1 to 3 (RFC 1112, RFC 2236, RFC 3376), as a sans-I/O
//! core (see `proto` for the template).
//!
//! Owns so far: the wire format (`codec`).
pub mod codec;
