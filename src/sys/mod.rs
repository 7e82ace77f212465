//! What the privileged supervisor does with the kernel's network stack:
//! open and configure every socket that a worker will use (`sockets`, with
//! the ingress BPF filter in `bpf`), join input groups (`membership`),
//! read interface facts (`interfaces`), return freed heap memory to the
//! kernel after large shrinks (`memory`), raise the descriptor limit for
//! many workers (`limits`), and open the IGMP querier's sockets (`igmp`)
//! and the PIM router's raw socket (`pim`). `pidfd` watches and kills
//! worker processes through process descriptors. `tun` attaches to a tun device
//! for programs that stand in for a VPN. `sockopt` is the one layer of raw socket calls
//! (setsockopt, getsockopt, bind, interface ioctls) that these, the
//! worker's statistics and mcrgen share.
//!
//! Everything here runs in the supervisor, never in a worker: a worker
//! receives its sockets over IPC and drops its privileges. The exception is
//! `packet_ring`, the memory-mapped receive ring a worker maps on the
//! socket it was given (no privilege needed).
//! `dataplane::sockets` re-exports these for the code that imported them
//! from there.

pub mod bpf;
pub mod igmp;
pub mod interfaces;
pub mod limits;
pub mod membership;
pub mod memory;
pub mod packet_ring;
pub mod pidfd;
pub mod pim;
pub mod sockets;
pub mod sockopt;
pub mod tun;
pub mod xdp;

pub use bpf::{ingress_filter, SockFilter, MAX_FILTER_DESTINATIONS};
pub use interfaces::{
    has_cap_net_raw, interface_info, ipv4_addrs, list_interfaces, may_receive_gso, InterfaceInfo,
};
pub use membership::{JoinMode, Memberships};
pub use sockets::{
    frame_format, ingress_protocol, join_fanout, open_egress, open_ingress, open_ingress_bound,
    open_sink, raw, set_ingress_filter, EGRESS_SNDBUF, INGRESS_RCVBUF, MAX_FRAME,
};

/// For privileged unit tests: move this thread into a network namespace
/// of its own. False without the privilege (the test is then skipped
/// loudly, and under CI=true that is a failure).
#[cfg(test)]
pub(crate) fn own_netns_for_test() -> bool {
    match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => {
            eprintln!("SKIP: no privilege for a network namespace (run as root)");
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "with CI=true a skipped test is a failure"
            );
            false
        }
        Err(e) => panic!("unshare: {e}"),
    }
}
