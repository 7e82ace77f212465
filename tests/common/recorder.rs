//! A host's group socket read on a thread of its own inside the host's
//! namespace: every datagram's arrival time, source address, IP TTL and
//! mcrgen sequence number (when it is mcrgen's). [`super::pim_lab::Member`]
//! and [`super::pim_lab::SeqReceiver`] are views of it; a test that needs
//! another join (source-specific, several groups) passes its own.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Netns;
use mcr::gen::payload::Header;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};

/// One datagram as the host's socket got it.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub at: Instant,
    pub source: Ipv4Addr,
    /// The IP TTL it arrived with, which tells which tree (how many
    /// routers) it came down.
    pub ttl: Option<u8>,
    /// The mcrgen sequence number, for counting losses and duplicates;
    /// `None` for a datagram that is not mcrgen's.
    pub seq: Option<u64>,
    /// The UDP payload's size in bytes (a datagram that came in fragments
    /// counts whole, as the socket got it).
    pub len: usize,
}

/// The recording thread of one socket; dropping it (or [`Recorder::stop`])
/// closes the socket, which makes the host leave what it joined.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Datagram>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When the join was sent.
    pub joined_at: Instant,
}

impl Recorder {
    /// Bind UDP `port` in `ns`, call `join` on the socket (the kernel
    /// sends the host's report then), and record until stopped.
    pub fn start(
        ns: &Netns,
        port: u16,
        join: impl FnOnce(&socket2::Socket) -> std::io::Result<()> + Send + 'static,
    ) -> Recorder {
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let s = udp_bound_in(&name, port);
            mcr::sys::sockopt::set_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
                .expect("IP_RECVTTL");
            // A tree switch should cost a handful of packets; a deep buffer
            // keeps a slow test thread from adding losses of its own.
            let _ = s.set_recv_buffer_size(1 << 20);
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            join(&s).expect("join");
            let _ = tx.send(Instant::now());
            record(&s, &s2, &g2);
        });
        let joined_at = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the recording thread joined");
        Recorder {
            stop,
            got,
            thread: Some(thread),
            joined_at,
        }
    }

    /// Every datagram so far, in arrival order.
    pub fn received(&self) -> Vec<Datagram> {
        self.got.lock().unwrap().clone()
    }

    /// Close the socket; returns when it is closed (the leave sent).
    pub fn stop(&mut self) -> Instant {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Instant::now()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn record(s: &socket2::Socket, stop: &AtomicBool, got: &Mutex<Vec<Datagram>>) {
    let mut buf = [0u8; 2048];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    while !stop.load(Ordering::Relaxed) {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(m) =
            recvmsg::<SockaddrIn>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
        else {
            continue;
        };
        let Some(source) = m.address.map(|a| a.ip()) else {
            continue;
        };
        let ttl = m.cmsgs().ok().into_iter().flatten().find_map(|c| match c {
            ControlMessageOwned::Ipv4Ttl(t) => u8::try_from(t).ok(),
            _ => None,
        });
        let n = m.bytes;
        let seq = buf.get(..n).and_then(Header::decode).map(|h| h.seq);
        got.lock().unwrap().push(Datagram {
            at: Instant::now(),
            source,
            ttl,
            seq,
            len: n,
        });
    }
}

/// Moves the calling thread into namespace `ns_name` for good and returns
/// a UDP socket bound to `port` on any address there. Call it on a thread
/// of the test's own, never on the test thread.
pub fn udp_bound_in(ns_name: &str, port: u16) -> socket2::Socket {
    let file = std::fs::File::open(format!("/run/netns/{ns_name}")).expect("open netns");
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .expect("udp socket");
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .expect("bind");
    s
}
