//! Raw IP sockets read on a thread inside a lab namespace: what arrives at
//! a router or host of one IP protocol (PIM 103, ICMP 1), kept when a
//! filter says so. For checks on the wire that no daemon reports: the
//! source address of a Register-Stop, the size of each Register, the MTU
//! in an ICMP Fragmentation Needed.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{enter_netns, Netns};

/// A captured packet: its IP source and the whole IP packet.
pub type Captured = (Ipv4Addr, Vec<u8>);

/// The capturing thread; dropping it closes the socket.
pub struct Capture {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Captured>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// Open a raw socket of protocol `proto` in `ns` and keep every packet
    /// (at least an IPv4 header long) for which `keep` says yes. Returns
    /// once the socket is open, so nothing sent after it is missed.
    pub fn start(ns: &Netns, proto: i32, keep: fn(&[u8]) -> bool) -> Capture {
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            enter_netns(&name);
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(proto)),
            )
            .expect("raw socket");
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let _ = tx.send(());
            let mut buf = vec![0u8; 65536];
            while !s2.load(Ordering::Relaxed) {
                let Ok(n) = nix::sys::socket::recv(
                    s.as_raw_fd(),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                ) else {
                    continue;
                };
                let p = &buf[..n];
                if p.len() < 20 {
                    continue;
                }
                if keep(p) {
                    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                    g2.lock().unwrap().push((src, p.to_vec()));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the capture socket is open");
        Capture {
            stop,
            got,
            thread: Some(thread),
        }
    }

    /// Every packet kept so far, in arrival order.
    pub fn got(&self) -> Vec<Captured> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What an IPv4 packet carries (the PIM message, the ICMP message): the
/// bytes after its header, empty when the header length does not fit.
pub fn ip_payload(p: &[u8]) -> &[u8] {
    let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
    p.get(ihl..).unwrap_or_default()
}
