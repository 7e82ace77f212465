//! Attaching to a tun device: the L3 link type (no Ethernet header) that
//! VPNs such as WireGuard and OpenVPN present. The relay itself only reads
//! and writes such links through its ordinary sockets; this is for the
//! programs that play the VPN's part (the end-to-end tests, a traffic
//! injector), which write IP packets into the device and read what the
//! host sends out of it.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
use std::os::fd::AsRawFd;

/// Create (or attach to) tun device `name` in the calling thread's network
/// namespace, without the packet-information prefix: each read returns one
/// IP packet the host sent on the device, each write injects one as if it
/// arrived on it. The device exists as long as the file is open, unless it
/// was made persistent (`ip tuntap add`).
pub fn open_tun(name: &str) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain old data (integers, arrays and unions of
    // them); all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tun name empty, too long or with a NUL",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: `f` is an open /dev/net/tun descriptor and `ifr` a live,
    // NUL-terminated ifreq whose flags member is set, which is what
    // TUNSETIFF reads (and writes the final name back into).
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            libc::TUNSETIFF as _,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}
