//! The worker's own socket call: the kernel's counters of its AF_PACKET
//! socket. Every socket a worker uses is opened by the supervisor in
//! `crate::sys` and passed over IPC; the names below are re-exported from
//! there for the code that imported them from this module.

use std::io;
use std::os::fd::BorrowedFd;

pub use crate::sys::{
    frame_format, has_cap_net_raw, ingress_filter, ingress_protocol, interface_info, ipv4_addrs,
    join_fanout, list_interfaces, may_receive_gso, open_egress, open_ingress, open_ingress_bound,
    open_sink, raw, set_ingress_filter, InterfaceInfo, Memberships, SockFilter, EGRESS_SNDBUF,
    INGRESS_RCVBUF, MAX_FILTER_DESTINATIONS, MAX_FRAME,
};

/// Kernel counters of an AF_PACKET socket: (packets, drops) since the last
/// read (reading resets them).
pub fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let st = crate::sys::sockopt::getsockopt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_STATISTICS,
        libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        },
    )?;
    Ok((st.tp_packets, st.tp_drops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn statistics_of_a_socket_that_is_not_a_packet_socket_are_refused() {
        let udp = crate::sys::sockopt::new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        assert!(packet_statistics(udp.as_fd()).is_err());
    }
}
