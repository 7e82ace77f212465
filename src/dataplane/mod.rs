//! The worker's data plane.
//!
//! Owns: the forwarding table (`table`) and the sans-I/O receiver of the
//! supervisor's table messages (`receiver`), the pure per-packet pipeline
//! (`pipeline`), egress batching (`egress`), the provided-buffer ring
//! (`bufring`), the worker's packet statistics (`sockets`), the per-rule
//! packet trace (`trace`), rate-limited explanations of drops in the log
//! (`explain`), what a worker on a PIM interface reports to PIM and
//! how often (`upcall`), and the io_uring event loop of a worker process
//! (`worker`). The sockets the supervisor opens for workers are in
//! `crate::sys`.

pub mod bufring;
pub mod egress;
pub mod explain;
pub mod pipeline;
pub mod receiver;
pub mod sockets;
pub mod table;
pub mod trace;
pub mod upcall;
pub mod worker;
