//! The batched receiver and its accounting.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::payload::{Header, Kind, Pattern, MAX_PAYLOAD};
use super::sock::{self, MmsgReceiver};
use super::stats::{loss_pct, Tally};
use super::{RecvOpts, RecvReport};

/// How often `on_progress` is called.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// An open, bound (and joined) receiving socket with its batch buffers.
pub struct Receiver {
    sock: UdpSocket,
    opts: RecvOpts,
    local: SocketAddrV4,
    rcvbuf: usize,
    kernel_timestamps: bool,
    mmsg: MmsgReceiver,
    pattern: Pattern,
}

/// Opens a receiver, calls `on_ready` once it is bound and joined, then
/// runs it until its count, duration or idle timeout is reached or `stop`
/// is set, calling `on_progress` about once a second.
pub fn recv(
    opts: &RecvOpts,
    stop: &AtomicBool,
    on_ready: &mut dyn FnMut(),
    on_progress: &mut dyn FnMut(&RecvReport),
) -> io::Result<RecvReport> {
    let mut r = Receiver::open(opts)?;
    on_ready();
    r.run(stop, on_progress)
}

impl Receiver {
    /// Binds and joins; packets queue from here on, so a sender may start
    /// as soon as this returns.
    pub fn open(opts: &RecvOpts) -> io::Result<Receiver> {
        opts.validate()?;
        let s = sock::open_receiver(opts)?;
        Ok(Receiver {
            sock: s.sock,
            local: s.local,
            rcvbuf: s.rcvbuf,
            kernel_timestamps: s.kernel_timestamps,
            mmsg: MmsgReceiver::new(opts.batch),
            pattern: Pattern::new(MAX_PAYLOAD),
            opts: opts.clone(),
        })
    }

    /// The bound address (the actual port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The receive buffer the kernel granted.
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    pub fn run(
        &mut self,
        stop: &AtomicBool,
        on_progress: &mut dyn FnMut(&RecvReport),
    ) -> io::Result<RecvReport> {
        let mut run = Run {
            tally: Tally::default(),
            start: Instant::now(),
            first: None,
            last: None,
            drops: 0,
            self_stamped: 0,
            last_rx_ns: None,
            max_gap_ns: 0,
        };
        let deadline = self.opts.duration.map(|d| run.start + d);
        let limit = self.opts.count.unwrap_or(u64::MAX);
        let mut next_progress = run.start + PROGRESS_INTERVAL;
        let full = self.opts.verify_full;

        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| now >= d)
                || run.tally.received >= limit
            {
                break;
            }
            if let (Some(idle), Some(last)) = (self.opts.idle_timeout, run.last) {
                if now.duration_since(last) >= idle {
                    break;
                }
            }
            if now >= next_progress {
                on_progress(&run.report(None, self.kernel_timestamps, now));
                next_progress += PROGRESS_INTERVAL;
                // Do not fire a burst of stale progress calls after a stall.
                if next_progress < now {
                    next_progress = now + PROGRESS_INTERVAL;
                }
            }

            let got = match self.mmsg.recv(self.sock.as_fd()) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("receiving on {} failed: {e}", self.local),
                    ))
                }
            };
            // Only needed when the kernel gave no timestamp; taken once per
            // batch because it is the same for all of it.
            let mut batch_ns = None;
            let mut ours = false;
            for i in 0..got {
                if run.tally.received >= limit {
                    break;
                }
                let (data, meta) = self.mmsg.get(i);
                let rx_ns = match meta.kernel_ns {
                    Some(ns) => ns,
                    None => {
                        run.self_stamped += 1;
                        *batch_ns.get_or_insert_with(sock::realtime_ns)
                    }
                };
                let kind = if meta.truncated {
                    Header::decode(data).map_or(Kind::Foreign, Kind::Corrupt)
                } else {
                    self.pattern.classify(data, full)
                };
                ours |= kind != Kind::Foreign;
                if kind != Kind::Foreign {
                    if let Some(prev) = run.last_rx_ns {
                        run.max_gap_ns = run.max_gap_ns.max(rx_ns.saturating_sub(prev));
                    }
                    run.last_rx_ns = Some(rx_ns);
                }
                run.tally.record(kind, data.len(), rx_ns);
                if let Some(d) = meta.drops {
                    run.drops = run.drops.max(u64::from(d));
                }
            }
            if ours {
                let t = Instant::now();
                run.first.get_or_insert(t);
                run.last = Some(t);
            }
        }
        Ok(run.report(self.opts.expect, self.kernel_timestamps, Instant::now()))
    }
}

struct Run {
    tally: Tally,
    start: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    drops: u64,
    /// Datagrams that came without a kernel timestamp.
    self_stamped: u64,
    /// Arrival time of the last test datagram, and the longest silence
    /// between two: a relay's outage as a receiver lives it.
    last_rx_ns: Option<u64>,
    max_gap_ns: u64,
}

impl Run {
    fn report(&self, expect: Option<u64>, kernel_timestamps: bool, now: Instant) -> RecvReport {
        let t = &self.tally;
        let unique = t.unique();
        let lost = t.lost(expect);
        let active = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        RecvReport {
            received: t.received,
            unique,
            duplicates: t.duplicates(),
            reordered: t.reordered(),
            lost,
            loss_pct: loss_pct(lost, unique),
            foreign: t.foreign,
            corrupt: t.corrupt,
            bytes: t.bytes,
            first_seq: t.first_seq(),
            last_seq: t.last_seq(),
            latency_us: t.latency.summary_us(),
            elapsed: now.duration_since(self.start),
            streams: t.streams().len() as u32,
            rate_pps: if active > 0.0 {
                unique as f64 / active
            } else {
                0.0
            },
            socket_drops: self.drops,
            kernel_timestamps: kernel_timestamps && self.self_stamped == 0,
            per_stream: t.streams().iter().map(|s| s.summary(expect)).collect(),
            max_gap_us: self.max_gap_ns as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{send, SendOpts};
    use std::net::Ipv4Addr;

    fn local_opts() -> RecvOpts {
        let mut o = RecvOpts::new(Ipv4Addr::LOCALHOST, 0);
        o.rcvbuf = 1 << 20;
        o
    }

    #[test]
    fn send_and_recv_through_loopback_with_threads() {
        let mut o = local_opts();
        o.expect = Some(3_000);
        o.idle_timeout = Some(Duration::from_millis(300));
        let mut rx = Receiver::open(&o).expect("open receiver");
        let port = rx.local_addr().port();
        let stop = AtomicBool::new(false);

        let mut so = SendOpts::new(Ipv4Addr::LOCALHOST, port);
        so.count = Some(3_000);
        so.rate = 30_000.0;
        so.size = 300;
        so.stream_id = 4;

        let (srep, rrep) = std::thread::scope(|s| {
            let rx_thread = s.spawn(|| rx.run(&stop, &mut |_| {}));
            let srep = send(&so, &stop).expect("send");
            (srep, rx_thread.join().expect("receiver thread"))
        });
        let rrep = rrep.expect("recv");
        assert_eq!(srep.sent, 3_000);
        assert_eq!(rrep.received, 3_000, "{rrep:?}");
        assert_eq!((rrep.unique, rrep.lost, rrep.duplicates), (3_000, 0, 0));
        assert_eq!((rrep.foreign, rrep.corrupt), (0, 0));
        assert_eq!((rrep.first_seq, rrep.last_seq), (Some(0), Some(2_999)));
        assert_eq!(rrep.streams, 1);
        assert_eq!(rrep.per_stream[0].stream_id, 4);
        assert_eq!(rrep.bytes, 900_000);
        assert_eq!(rrep.latency_us.samples, 3_000);
        assert!(rrep.latency_us.p99 > 0.0);
        // SO_TIMESTAMPNS works on loopback; the cmsg path must have run.
        assert!(rrep.kernel_timestamps);
        assert!(rrep.latency_us.max < 1_000_000.0, "{:?}", rrep.latency_us);
    }

    #[test]
    fn stop_flag_ends_recv_promptly_and_ready_comes_first() {
        let o = local_opts();
        let stop = AtomicBool::new(false);
        let mut ready_at = None;
        let t0 = Instant::now();
        let rep = std::thread::scope(|s| {
            let h = s.spawn(|| {
                recv(
                    &o,
                    &stop,
                    &mut || ready_at = Some(Instant::now()),
                    &mut |_| {},
                )
            });
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            let stopped = Instant::now();
            let rep = h.join().expect("receiver thread");
            assert!(stopped.elapsed() < Duration::from_millis(250));
            rep
        })
        .expect("recv");
        assert!(ready_at.is_some_and(|t| t.duration_since(t0) < Duration::from_millis(300)));
        assert_eq!(rep.received, 0);
        assert_eq!(rep.lost, 0);
        assert_eq!(rep.latency_us.samples, 0);
    }

    #[test]
    fn foreign_datagrams_and_count_limit() {
        let mut o = local_opts();
        o.count = Some(5);
        o.duration = Some(Duration::from_secs(5));
        let mut rx = Receiver::open(&o).expect("open");
        let dest = rx.local_addr();
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.send_to(b"hello, not mcrgen", dest).expect("send");
        let p = Pattern::new(100);
        for seq in [0u64, 2, 1, 1, 7, 8] {
            let mut b = vec![0u8; 64];
            Header {
                flags: 0,
                stream_id: 1,
                seq,
                timestamp_ns: sock::realtime_ns(),
            }
            .encode(&mut b);
            p.fill(seq, &mut b);
            tx.send_to(&b, dest).expect("send");
        }
        let mut progress = 0;
        let rep = rx
            .run(&AtomicBool::new(false), &mut |_| progress += 1)
            .expect("run");
        // Stopped at 5 mcrgen datagrams: 0, 2, 1, 1(dup), 7.
        assert_eq!(rep.received, 5);
        assert_eq!(rep.foreign, 1);
        assert_eq!((rep.unique, rep.duplicates, rep.reordered), (4, 1, 1));
        assert_eq!(rep.lost, 4); // 3..=6 between 0 and 7
        assert!(rep.elapsed < Duration::from_secs(1));
        assert_eq!(progress, 0);
    }

    #[test]
    fn progress_is_reported_about_once_a_second() {
        let mut o = local_opts();
        o.duration = Some(Duration::from_millis(2_300));
        let mut calls = Vec::new();
        let rep = recv(&o, &AtomicBool::new(false), &mut || {}, &mut |r| {
            calls.push(r.elapsed)
        })
        .expect("recv");
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(rep.elapsed >= Duration::from_millis(2_300));
        assert!(rep.elapsed < Duration::from_millis(2_500));
    }
}
