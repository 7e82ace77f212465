//! The worker's data plane.
//!
//! Owns: the forwarding table (`table`), the pure per-packet pipeline
//! (`pipeline`), the sockets the supervisor opens for workers (`sockets`),
//! the provided-buffer ring (`bufring`) and the io_uring event loop of a
//! worker process (`worker`).

pub mod bufring;
pub mod egress;
pub mod pipeline;
pub mod receiver;
pub mod sockets;
pub mod table;
pub mod worker;
