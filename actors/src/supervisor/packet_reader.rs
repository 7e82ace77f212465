//! The read loop of the daemon's IGMP packet sockets: the IGMP querier's
//! and proxy's (`protocols::igmp`, `protocols::igmp_proxy`) and the input
//! groups' IGMP hosts (`workers::input_igmp`). Each socket is read on a
//! thread of its own with blocking, timed reads (the socket layer then
//! needs no async registration and no `unsafe` here); the timeout is how
//! often the thread notices that it should stop. What a packet becomes is
//! the consumer's business: a [`PacketSink`].
//!
//! A receive error (the interface went down, a buffer overran) is
//! transient: ending the thread would leave nothing reading until its
//! owner noticed. The sink hears of the first one; reading goes on, paced
//! by the timeout so an error that repeats does not spin.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mcr::sys::igmp::recv_within;

/// Where a reader's packets go.
pub trait PacketSink: Send + 'static {
    /// Whether the reader should end (its consumer is gone or asked).
    fn stopped(&self) -> bool;
    /// One packet; `false` ends the reader (its consumer is gone).
    fn deliver(&mut self, packet: &[u8]) -> bool;
    /// The first receive error of this reader's life.
    fn receive_error(&self, e: &io::Error);
}

/// Read `rx` on a thread named `name` into `sink` until it stops: packets
/// up to `max_packet` bytes (longer ones are cut), looking every `poll`
/// whether to stop.
pub fn spawn(
    rx: OwnedFd,
    name: String,
    max_packet: usize,
    poll: Duration,
    mut sink: impl PacketSink,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || read_loop(&rx, max_packet, poll, &mut sink))?;
    Ok(())
}

fn read_loop(rx: &OwnedFd, max_packet: usize, poll: Duration, sink: &mut impl PacketSink) {
    let mut buf = vec![0u8; max_packet];
    let mut warned = false;
    while !sink.stopped() {
        match recv_within(rx.as_fd(), &mut buf, poll) {
            Ok(Some(n)) => {
                let Some(p) = buf.get(..n) else {
                    continue;
                };
                if !sink.deliver(p) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                if !warned {
                    sink.receive_error(&e);
                    warned = true;
                }
                std::thread::sleep(poll);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    struct Collect {
        tx: mpsc::Sender<Vec<u8>>,
        stop: Arc<AtomicBool>,
        /// Deliveries accepted before the sink says its consumer is gone.
        room: usize,
    }

    impl PacketSink for Collect {
        fn stopped(&self) -> bool {
            self.stop.load(Ordering::Relaxed)
        }
        fn deliver(&mut self, packet: &[u8]) -> bool {
            let _ = self.tx.send(packet.to_vec());
            self.room -= 1;
            self.room > 0
        }
        fn receive_error(&self, _: &io::Error) {}
    }

    fn reader(room: usize) -> (UnixDatagram, mpsc::Receiver<Vec<u8>>, Arc<AtomicBool>) {
        let (a, b) = UnixDatagram::pair().expect("socketpair");
        b.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let sink = Collect {
            tx,
            stop: stop.clone(),
            room,
        };
        spawn(
            b.into(),
            "test-reader".into(),
            4,
            Duration::from_millis(10),
            sink,
        )
        .expect("spawn");
        (a, rx, stop)
    }

    /// Packets arrive in order, cut to the buffer; the thread ends when
    /// its sink says stop (the channel then closes).
    #[test]
    fn delivers_until_stopped() {
        let (a, rx, stop) = reader(100);
        a.send(b"one").unwrap();
        a.send(b"longer").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(rx.recv_timeout(t).unwrap(), b"one");
        assert_eq!(rx.recv_timeout(t).unwrap(), b"long");
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            rx.recv_timeout(t),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    /// A sink whose consumer is gone ends the reader at once.
    #[test]
    fn ends_when_the_consumer_is_gone() {
        let (a, rx, _stop) = reader(1);
        a.send(b"x").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(rx.recv_timeout(t).unwrap(), b"x");
        assert_eq!(
            rx.recv_timeout(t),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
