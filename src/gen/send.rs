//! The paced, batched sender.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::pace::{wait_for, Schedule, Wait};
use super::payload::{self, Header, Pattern};
use super::raw;
use super::sock::{self, MmsgSender};
use super::{SendOpts, SendReport};

/// Timer slack asked for while pacing: the default 50 µs would make every
/// sleep overshoot by about that much.
const PACING_SLACK_NS: libc::c_ulong = 1_000;

/// An open sending socket with its batch buffers.
pub struct Sender {
    sock: UdpSocket,
    opts: SendOpts,
    mmsg: MmsgSender,
    /// `--raw`: the packet socket that sends whole frames instead of `sock`.
    raw: Option<OwnedFd>,
    /// Bytes of Ethernet, IP and UDP header before each payload (raw only).
    hdr: usize,
    /// `batch` slots of `hdr + size` bytes back to back, headers prefilled.
    buf: Vec<u8>,
    pattern: Pattern,
    /// `seq mod 256` whose pattern each slot currently holds: the pattern
    /// only changes with that, so a slot is often already right.
    slot_pattern: Vec<Option<u8>>,
}

/// Sends as `opts` says until its count or duration is reached or `stop`
/// is set.
pub fn send(opts: &SendOpts, stop: &AtomicBool) -> io::Result<SendReport> {
    Sender::open(opts)?.run(stop)
}

impl Sender {
    pub fn open(opts: &SendOpts) -> io::Result<Sender> {
        opts.validate()?;
        let sock::SenderSocket { sock, connected } = sock::open_sender(opts)?;
        let (raw, hdr) = if opts.raw {
            let name = opts.interface.as_deref().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "--raw needs --interface")
            })?;
            (Some(raw::open(name)?.0), raw::HEADERS)
        } else {
            (None, 0)
        };
        let slot_len = hdr + opts.size;
        let mut buf = vec![0u8; opts.batch * slot_len];
        // The connected UDP socket knows the source address and port the
        // kernel would use; raw frames carry the same.
        let from = match sock.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
        };
        let mac = opts
            .interface
            .as_deref()
            .map(raw::mac_of)
            .unwrap_or_default();
        for slot in buf.chunks_exact_mut(slot_len) {
            if hdr > 0 {
                raw::write_headers(
                    &mut slot[..hdr],
                    mac,
                    *from.ip(),
                    from.port(),
                    opts.group,
                    opts.port,
                    opts.ttl,
                    opts.size,
                );
            }
            Header {
                flags: 0,
                stream_id: opts.stream_id,
                seq: 0,
                timestamp_ns: 0,
            }
            .encode(&mut slot[hdr..]);
        }
        Ok(Sender {
            sock,
            mmsg: MmsgSender::new(
                opts.batch,
                (!connected && raw.is_none()).then(|| SocketAddrV4::new(opts.group, opts.port)),
            ),
            raw,
            hdr,
            buf,
            pattern: Pattern::new(opts.size),
            slot_pattern: vec![None; opts.batch],
            opts: opts.clone(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// One run; sequence numbers start at 0 each time.
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<SendReport> {
        let schedule = Schedule::new(self.opts.rate);
        let _slack = schedule.map(|_| SlackGuard::set(PACING_SLACK_NS));
        let limit = self.opts.count.unwrap_or(u64::MAX);
        let start = Instant::now();
        let deadline = self.opts.duration.map(|d| start + d);
        let mut report = SendReport::default();
        let mut first: Option<u64> = None;
        let mut next = 0u64;

        while next < limit && !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            let mut n = self.opts.batch as u64;
            if let Some(s) = &schedule {
                let elapsed = now - start;
                let due = s.due_by(elapsed);
                if due <= next {
                    let ahead = s.due_at(next).saturating_sub(elapsed);
                    if let Some(t) = self.opts.tick {
                        let left = deadline.map_or(t, |dl| dl.saturating_duration_since(now));
                        std::thread::sleep(t.min(left));
                        continue;
                    }
                    match wait_for(ahead) {
                        Wait::Sleep(d) => {
                            let left = deadline.map_or(d, |dl| dl.saturating_duration_since(now));
                            std::thread::sleep(d.min(left));
                        }
                        Wait::Yield => std::thread::yield_now(),
                        Wait::Spin => std::hint::spin_loop(),
                    }
                    continue;
                }
                n = n.min(due - next);
            }
            let n = n.min(limit - next) as usize;
            self.fill(next, n);
            let out = self.transmit(n, stop)?;
            if let Some(off) = out.first_ok {
                first.get_or_insert(next + off as u64);
                report.last_seq = next + out.last_ok as u64;
            }
            report.sent += out.sent;
            report.errors += out.errors;
            if out.error.is_some() {
                report.last_error = out.error;
            }
            next += n as u64;
        }

        report.elapsed = start.elapsed();
        report.first_seq = first.unwrap_or(0);
        report.bytes = report.sent * self.opts.size as u64;
        let secs = report.elapsed.as_secs_f64();
        report.achieved_pps = if secs > 0.0 {
            report.sent as f64 / secs
        } else {
            0.0
        };
        Ok(report)
    }

    /// Prepares slots `0..n` for seqs `seq..seq + n`.
    fn fill(&mut self, seq: u64, n: usize) {
        let (hdr, slot_len) = (self.hdr, self.hdr + self.opts.size);
        for (i, slot) in self.buf.chunks_exact_mut(slot_len).take(n).enumerate() {
            let slot = &mut slot[hdr..];
            let s = seq + i as u64;
            payload::set_seq(slot, s);
            if self.slot_pattern[i] != Some(s as u8) {
                self.pattern.fill(s, slot);
                self.slot_pattern[i] = Some(s as u8);
            }
        }
    }

    /// Hands slots `0..n` to the kernel, restamping whatever is left after
    /// a partial send so the timestamp stays "just before the kernel".
    /// A refused packet is counted and skipped; a dead socket is an error.
    fn transmit(&mut self, n: usize, stop: &AtomicBool) -> io::Result<Outcome> {
        let (hdr, size) = (self.hdr, self.hdr + self.opts.size);
        let mut out = Outcome::default();
        let mut off = 0;
        while off < n {
            let ts = sock::realtime_ns();
            for slot in self.buf[off * size..n * size].chunks_exact_mut(size) {
                payload::set_timestamp(&mut slot[hdr..], ts);
            }
            let fd = match &self.raw {
                Some(r) => r.as_fd(),
                None => self.sock.as_fd(),
            };
            match self.mmsg.send(fd, &self.buf[off * size..], size, n - off) {
                Ok(0) => break,
                Ok(k) => {
                    out.first_ok.get_or_insert(off);
                    out.last_ok = off + k - 1;
                    out.sent += k as u64;
                    off += k;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    // The send timeout or a signal: only give up if asked to.
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err(e) if sock::is_fatal_send_error(&e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "sending to {}:{} failed: {e}",
                            self.opts.group, self.opts.port
                        ),
                    ))
                }
                Err(e) => {
                    out.errors += 1;
                    out.error = Some(e.to_string());
                    off += 1;
                }
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Outcome {
    sent: u64,
    errors: u64,
    first_ok: Option<usize>,
    last_ok: usize,
    error: Option<String>,
}

/// Sets this thread's timer slack and puts the old value back on drop.
struct SlackGuard(Option<libc::c_ulong>);

impl SlackGuard {
    fn set(ns: libc::c_ulong) -> SlackGuard {
        use nix::sys::prctl;
        let old = prctl::get_timerslack()
            .ok()
            .and_then(|v| libc::c_ulong::try_from(v).ok());
        if old.is_some() && prctl::set_timerslack(ns).is_err() {
            return SlackGuard(None);
        }
        SlackGuard(old)
    }
}

impl Drop for SlackGuard {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = nix::sys::prctl::set_timerslack(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    /// The last of `count` packets at `rate` is due at `(count - 1) / rate`.
    fn expected_duration(count: u64, rate: f64) -> Option<Duration> {
        Schedule::new(rate).map(|s| s.due_at(count.saturating_sub(1)))
    }

    fn local_receiver() -> (UdpSocket, u16) {
        let r = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = r.local_addr().expect("addr").port();
        r.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (r, port)
    }

    #[test]
    fn sends_count_with_valid_payloads() {
        let (r, port) = local_receiver();
        let mut o = SendOpts::new(Ipv4Addr::LOCALHOST, port);
        o.count = Some(10);
        o.size = 100;
        o.batch = 4;
        o.stream_id = 9;
        let stop = AtomicBool::new(false);
        let rep = send(&o, &stop).expect("send");
        assert_eq!((rep.sent, rep.errors), (10, 0));
        assert_eq!((rep.first_seq, rep.last_seq), (0, 9));
        assert_eq!(rep.bytes, 1000);

        let p = Pattern::new(100);
        let mut buf = [0u8; 200];
        for want in 0..10 {
            let n = r.recv(&mut buf).expect("recv");
            assert_eq!(n, 100);
            match p.classify(&buf[..n], true) {
                payload::Kind::Valid(h) => {
                    assert_eq!((h.seq, h.stream_id), (want, 9));
                    assert!(h.timestamp_ns > 0);
                }
                k => panic!("packet {want}: {k:?}"),
            }
        }
    }

    #[test]
    fn paced_rate_is_tracked() {
        let (_r, port) = local_receiver();
        let mut o = SendOpts::new(Ipv4Addr::LOCALHOST, port);
        o.rate = 20_000.0;
        o.count = Some(4_000);
        o.size = 64;
        let stop = AtomicBool::new(false);
        let rep = send(&o, &stop).expect("send");
        assert_eq!(rep.sent, 4_000);
        let want = expected_duration(4_000, 20_000.0).expect("paced");
        let got = rep.elapsed.as_secs_f64();
        // Never early; late only by scheduling noise.
        assert!(got >= want.as_secs_f64() * 0.999, "{got} s");
        assert!(got < want.as_secs_f64() * 1.05 + 0.01, "{got} s");
    }

    #[test]
    fn stop_flag_ends_an_endless_run() {
        let (_r, port) = local_receiver();
        let mut o = SendOpts::new(Ipv4Addr::LOCALHOST, port);
        o.rate = 1_000.0;
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let rep = std::thread::scope(|s| {
            let h = s.spawn(|| send(&o, &stop));
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            h.join().expect("sender thread")
        })
        .expect("send");
        assert!(t0.elapsed() < Duration::from_millis(200 + 150));
        assert!((150..=260).contains(&rep.sent), "{}", rep.sent);
    }

    #[test]
    fn duration_ends_a_run() {
        let (_r, port) = local_receiver();
        let mut o = SendOpts::new(Ipv4Addr::LOCALHOST, port);
        o.rate = 10_000.0;
        o.duration = Some(Duration::from_millis(100));
        let rep = send(&o, &AtomicBool::new(false)).expect("send");
        assert!((900..=1_001).contains(&rep.sent), "{}", rep.sent);
        assert!(rep.elapsed < Duration::from_millis(150));
    }

    #[test]
    fn open_rejects_bad_options_and_interfaces() {
        let o = SendOpts {
            size: 3,
            ..SendOpts::default()
        };
        assert!(Sender::open(&o).is_err());
        let mut o = SendOpts::new(Ipv4Addr::new(239, 9, 9, 9), 5000);
        o.interface = Some("nosuchif0".into());
        let e = Sender::open(&o).err().expect("must fail").to_string();
        assert!(e.contains("nosuchif0"), "{e}");
    }
}
