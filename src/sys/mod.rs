//! What the privileged supervisor does with the kernel's network stack:
//! open and configure every socket that a worker will use (`sockets`, with
//! the ingress BPF filter in `bpf`), join input groups, and read interface
//! facts (`interfaces`). `sockopt` is the one layer of raw socket calls
//! (setsockopt, getsockopt, bind, interface ioctls) that these, the
//! worker's statistics and mcrgen share.
//!
//! Everything here runs in the supervisor, never in a worker: a worker
//! receives its sockets over IPC and drops its privileges.
//! `dataplane::sockets` re-exports these for the code that imported them
//! from there.

pub mod bpf;
pub mod interfaces;
pub mod sockets;
pub mod sockopt;

pub use bpf::{ingress_filter, SockFilter, MAX_FILTER_DESTINATIONS};
pub use interfaces::{
    has_cap_net_raw, interface_info, ipv4_addrs, list_interfaces, may_receive_gso, InterfaceInfo,
};
pub use sockets::{
    frame_format, join_fanout, open_egress, open_ingress, open_sink, raw, set_ingress_filter,
    Memberships, EGRESS_SNDBUF, INGRESS_RCVBUF, MAX_FRAME,
};
