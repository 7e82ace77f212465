//! The read loop of the daemon's IGMP packet sockets: the IGMP querier's
//! and proxy's (`protocols::igmp`, `protocols::igmp_proxy`) and the input
//! groups' IGMP hosts (`workers::input_igmp`). Each socket is read by a
//! task on the supervisor's runtime, woken by the socket's readiness
//! ([`AsyncFd`]): a thread per socket meant one supervisor thread per
//! input interface (256 inputs, 256 threads) for sockets that carry a few
//! packets a minute. What a packet becomes is the consumer's business: a
//! [`PacketSink`].
//!
//! The task also wakes every `poll` to ask its sink whether to stop, so a
//! consumer that is dropped ends its reader within `poll` even on a quiet
//! link. A flood is read in turns of [`TURN`] packets with a yield between
//! them: the runtime is shared with every actor, and one busy socket must
//! not hold a worker thread; what the sink cannot queue it drops (each
//! sink bounds its own queue).
//!
//! A receive error (the interface went down, a buffer overran) is
//! transient: ending the task would leave nothing reading until its owner
//! noticed. The sink hears of the first one; reading goes on, paced by
//! `poll` so an error that repeats does not spin.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mcr::sys::sockopt::recv_nonblocking;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Packets read in a row before the task yields to the rest of the runtime.
pub const TURN: usize = 64;

/// Where a reader's packets go.
pub trait PacketSink: Send + 'static {
    /// Whether the reader should end (its consumer is gone or asked).
    fn stopped(&self) -> bool;
    /// One packet; `false` ends the reader (its consumer is gone).
    fn deliver(&mut self, packet: &[u8]) -> bool;
    /// The first receive error of this reader's life.
    fn receive_error(&self, e: &io::Error);
}

/// Read the non-blocking socket `rx` on a task of the current runtime into
/// `sink` until it stops: packets up to `max_packet` bytes (longer ones
/// are cut), looking every `poll` whether to stop. `name` names the
/// reader in the error returned when it cannot start (no runtime, or the
/// socket cannot be registered with it).
pub fn spawn(
    rx: OwnedFd,
    name: String,
    max_packet: usize,
    poll: Duration,
    mut sink: impl PacketSink,
) -> io::Result<()> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|e| io::Error::other(format!("{name}: no runtime to read on: {e}")))?;
    // Registered here rather than in the task so that a socket the
    // reactor refuses is the caller's error, not a silent end.
    let fd = {
        let _enter = rt.enter();
        // SAFETY: the `AsyncFd` owns `rx`, an `OwnedFd`: the descriptor
        // stays open and the same for the `AsyncFd`'s whole life, and
        // `as_raw_fd` always returns it.
        unsafe { AsyncFd::register_with_interest(rx, Interest::READABLE) }.map_err(|e| {
            let (_, e) = e.into_parts();
            io::Error::new(e.kind(), format!("{name}: {e}"))
        })?
    };
    rt.spawn(async move { read_loop(fd, max_packet, poll, &mut sink).await });
    Ok(())
}

async fn read_loop(
    fd: AsyncFd<OwnedFd>,
    max_packet: usize,
    poll: Duration,
    sink: &mut impl PacketSink,
) {
    let mut buf = vec![0u8; max_packet];
    let mut warned = false;
    while !sink.stopped() {
        let Ok(ready) = tokio::time::timeout(poll, fd.readable()).await else {
            continue;
        };
        let mut guard = match ready {
            Ok(g) => g,
            Err(e) => {
                // The reactor itself failed us; pace and try again.
                if !warned {
                    sink.receive_error(&e);
                    warned = true;
                }
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        for _ in 0..TURN {
            match recv_nonblocking(guard.get_inner().as_fd(), &mut buf) {
                Ok(n) => {
                    let Some(p) = buf.get(..n.min(max_packet)) else {
                        continue;
                    };
                    if !sink.deliver(p) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Drained: wait for the next edge.
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !warned {
                        sink.receive_error(&e);
                        warned = true;
                    }
                    // The readiness is kept: whatever is queued behind
                    // the error is read after the pause.
                    drop(guard);
                    tokio::time::sleep(poll).await;
                    break;
                }
            }
        }
        // A full turn leaves the readiness set, so the next round reads
        // on at once, after the other tasks had their turn.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    struct Collect {
        tx: mpsc::Sender<Vec<u8>>,
        stop: Arc<AtomicBool>,
        /// Deliveries accepted before the sink says its consumer is gone.
        room: usize,
        seen: Arc<AtomicUsize>,
    }

    impl PacketSink for Collect {
        fn stopped(&self) -> bool {
            self.stop.load(Ordering::Relaxed)
        }
        fn deliver(&mut self, packet: &[u8]) -> bool {
            let _ = self.tx.send(packet.to_vec());
            self.seen.fetch_add(1, Ordering::Relaxed);
            self.room -= 1;
            self.room > 0
        }
        fn receive_error(&self, _: &io::Error) {}
    }

    struct Reader {
        /// Sends to the socket read.
        peer: UdpSocket,
        rx: mpsc::Receiver<Vec<u8>>,
        stop: Arc<AtomicBool>,
        seen: Arc<AtomicUsize>,
    }

    /// A reader of a loopback UDP socket (room for a few hundred small
    /// datagrams, unlike a Unix socket pair's short queue), spawned on `rt`.
    fn reader(rt: &tokio::runtime::Runtime, room: usize) -> Reader {
        let me = UdpSocket::bind("127.0.0.1:0").expect("bind");
        me.set_nonblocking(true).expect("nonblocking");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind");
        peer.connect(me.local_addr().expect("addr"))
            .expect("connect");
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let sink = Collect {
            tx,
            stop: stop.clone(),
            room,
            seen: seen.clone(),
        };
        let _enter = rt.enter();
        spawn(
            me.into(),
            "test-reader".into(),
            4,
            Duration::from_millis(10),
            sink,
        )
        .expect("spawn");
        Reader {
            peer,
            rx,
            stop,
            seen,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Packets arrive in order, cut to the buffer; the task ends when its
    /// sink says stop (the channel then closes).
    #[test]
    fn delivers_until_stopped() {
        let rt = runtime();
        let r = reader(&rt, 100);
        r.peer.send(b"one").unwrap();
        r.peer.send(b"longer").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(r.rx.recv_timeout(t).unwrap(), b"one");
        assert_eq!(r.rx.recv_timeout(t).unwrap(), b"long");
        r.stop.store(true, Ordering::Relaxed);
        assert_eq!(
            r.rx.recv_timeout(t),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    /// A sink whose consumer is gone ends the reader at once.
    #[test]
    fn ends_when_the_consumer_is_gone() {
        let rt = runtime();
        let r = reader(&rt, 1);
        r.peer.send(b"x").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(r.rx.recv_timeout(t).unwrap(), b"x");
        assert_eq!(
            r.rx.recv_timeout(t),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    /// Readers are tasks: a hundred of them start no thread (the
    /// supervisor had one per input interface before), and each still
    /// gets its packets.
    #[test]
    fn readers_start_no_threads() {
        let threads = || {
            std::fs::read_dir("/proc/self/task")
                .map(|d| d.count())
                .unwrap_or(0)
        };
        let rt = runtime();
        let _first = reader(&rt, 100);
        let before = threads();
        let readers: Vec<Reader> = (0..100).map(|_| reader(&rt, 100)).collect();
        for (i, r) in readers.iter().enumerate() {
            r.peer.send(&[i as u8]).unwrap();
        }
        for (i, r) in readers.iter().enumerate() {
            let got = r.rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(got, [i as u8]);
        }
        // Other tests of this binary run on threads of their own: count
        // what this one could have added, with room for them.
        assert!(threads() < before + 50, "threads {before} -> {}", threads());
    }

    /// A flood is read in turns: another task on the same one-thread
    /// runtime runs before the backlog is drained.
    #[test]
    fn a_flood_does_not_hold_the_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        const SENT: usize = 3 * TURN;
        let r = reader(&rt, SENT + 1);
        for i in 0..SENT {
            r.peer.send(&(i as u32).to_be_bytes()).unwrap();
        }
        let seen = r.seen.clone();
        // Once the reader has begun, this task runs at its first yield.
        let at_other = rt.block_on(async move {
            tokio::spawn(async move {
                loop {
                    let n = seen.load(Ordering::Relaxed);
                    if n > 0 {
                        return n;
                    }
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("task")
        });
        assert!(
            (1..SENT).contains(&at_other),
            "the other task ran after {at_other} of {SENT} packets"
        );
        rt.block_on(async {
            let end = tokio::time::Instant::now() + Duration::from_secs(5);
            while r.seen.load(Ordering::Relaxed) < SENT && tokio::time::Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        assert_eq!(r.seen.load(Ordering::Relaxed), SENT, "all read in the end");
    }
}
