//! Drops explained in the log, without letting a flood flood it.
//!
//! Owns: which facility each kind of drop logs under, the rate limiter
//! that lets the first `BURST` lines of a kind through per `WINDOW_MS`
//! and then says how many it held back, and the per-interval summary of
//! drop counters the Stats facility logs. Everything logs at debug, so
//! that raising one facility (`mcrctl log-level set --facility
//! PacketParser --level debug`) explains that facility's drops; with the
//! level off, a drop costs one cached level check and nothing else.
//!
//! The drop reasons are the pipeline's (RFC 791, RFC 768, RFC 1812
//! §5.2.2 and §5.3.1, see `pipeline`).

use tracing::{debug, Level};

use crate::ipc::WorkerCounters;
use crate::logging::Facility;

use super::trace::Peek;
use crate::ipc::trace::DropReason;

/// Lines of one kind per window before the rest are counted, not logged.
pub const BURST: u32 = 5;
/// Length of a rate-limiting window.
pub const WINDOW_MS: u64 = 10_000;

/// First `BURST` per window, then a count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limiter {
    start_ms: u64,
    printed: u32,
    suppressed: u64,
    started: bool,
}

/// What the limiter lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Log this one; `held_back` lines of the previous window were not
    /// logged (say so with it).
    Log {
        held_back: u64,
    },
    Suppress,
}

impl Limiter {
    pub fn admit(&mut self, now_ms: u64) -> Admit {
        let mut held_back = 0;
        if !self.started || now_ms.saturating_sub(self.start_ms) >= WINDOW_MS {
            held_back = self.suppressed;
            *self = Limiter {
                start_ms: now_ms,
                printed: 0,
                suppressed: 0,
                started: true,
            };
        }
        if self.printed < BURST {
            self.printed += 1;
            Admit::Log { held_back }
        } else {
            self.suppressed += 1;
            Admit::Suppress
        }
    }

    /// Once a window with held-back lines is over, how many there were
    /// (for a summary line; the flood may have stopped, so no later line
    /// would ever carry the count).
    pub fn flush(&mut self, now_ms: u64) -> Option<u64> {
        if self.suppressed == 0 || now_ms.saturating_sub(self.start_ms) < WINDOW_MS {
            return None;
        }
        let n = self.suppressed;
        *self = Limiter::default();
        Some(n)
    }
}

/// The facility a drop is explained under: malformed or corrupted
/// packets are the parser's, packets that parse but are not wanted are
/// the ingress side's, outputs that cannot take a packet egress's.
pub fn facility(r: DropReason) -> Facility {
    match r {
        DropReason::Malformed
        | DropReason::BadIpChecksum
        | DropReason::Fragment
        | DropReason::NotUdp
        | DropReason::BadUdpChecksum => Facility::PacketParser,
        DropReason::TtlZero | DropReason::NoMatch => Facility::Ingress,
        DropReason::TtlExpired | DropReason::NoOutput => Facility::Egress,
    }
}

/// Whether a facility logs at debug now. `tracing` caches the answer per
/// call site and recomputes it when the levels are reloaded, so this is a
/// load and a compare.
pub fn debug_on(f: Facility) -> bool {
    match f {
        Facility::PacketParser => tracing::enabled!(target: "PacketParser", Level::DEBUG),
        Facility::Ingress => tracing::enabled!(target: "Ingress", Level::DEBUG),
        Facility::Egress => tracing::enabled!(target: "Egress", Level::DEBUG),
        Facility::BufferPool => tracing::enabled!(target: "BufferPool", Level::DEBUG),
        Facility::Stats => tracing::enabled!(target: "Stats", Level::DEBUG),
        _ => false,
    }
}

/// A debug line under a facility chosen at run time (`tracing` wants the
/// target as a constant).
macro_rules! debug_in {
    ($f:expr, $($arg:tt)+) => {
        match $f {
            Facility::PacketParser => debug!(target: "PacketParser", $($arg)+),
            Facility::Ingress => debug!(target: "Ingress", $($arg)+),
            Facility::Egress => debug!(target: "Egress", $($arg)+),
            Facility::BufferPool => debug!(target: "BufferPool", $($arg)+),
            _ => debug!(target: "Stats", $($arg)+),
        }
    };
}

/// Kinds of trouble outside the per-packet verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// A receive found no free buffer (`buf_exhaust`).
    NoBuffer,
    /// An output's send failed in the kernel (`send_errors`).
    SendFailed,
    /// Every send slot was busy (`send_backlog_drops`).
    SendBacklog,
    /// An output's egress socket is missing (`send_errors`).
    NoEgress,
    /// An output's socket or device queue was full (`output_full_drops`).
    OutputFull,
}

impl Trouble {
    const ALL: [Trouble; 5] = [
        Trouble::NoBuffer,
        Trouble::SendFailed,
        Trouble::SendBacklog,
        Trouble::NoEgress,
        Trouble::OutputFull,
    ];

    pub fn facility(self) -> Facility {
        match self {
            Trouble::NoBuffer => Facility::BufferPool,
            _ => Facility::Egress,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Trouble::NoBuffer => {
                "no free receive buffer: the kernel dropped a packet (buf_exhaust)"
            }
            Trouble::SendFailed => "send failed (send_errors)",
            Trouble::SendBacklog => "every send slot busy: datagram dropped (send_backlog_drops)",
            Trouble::NoEgress => "output has no egress socket: datagram dropped (send_errors)",
            Trouble::OutputFull => {
                "output queue full: datagram dropped for that output (output_full_drops)"
            }
        }
    }
}

/// One worker's explainer: a limiter per kind.
#[derive(Debug, Default)]
pub struct Explainer {
    drops: [Limiter; DropReason::ALL.len()],
    trouble: [Limiter; Trouble::ALL.len()],
}

impl Explainer {
    /// Explain a dropped packet, if its facility logs at debug and the
    /// limiter allows. `peek` is what could be read of it.
    pub fn drop(&mut self, now_ms: u64, r: DropReason, peek: Option<Peek>, interface: &str) {
        let f = facility(r);
        if !debug_on(f) {
            return;
        }
        let Some(i) = DropReason::ALL.iter().position(|x| *x == r) else {
            return;
        };
        let Admit::Log { held_back } = self.drops[i].admit(now_ms) else {
            return;
        };
        let held = held_text(held_back);
        match peek {
            Some(p) => debug_in!(
                f,
                "dropped on {interface}: {r} ({}): {}:{} -> {}:{}, {} bytes, ttl {}{held}",
                r.counter(),
                p.src,
                p.sport,
                p.dst,
                p.dport,
                p.size,
                p.ttl
            ),
            None => debug_in!(
                f,
                "dropped on {interface}: {r} ({}): no IPv4 header to read{held}",
                r.counter()
            ),
        }
    }

    /// Explain trouble outside the verdict, with the errno if there is one
    /// (formatted only when the line is logged).
    pub fn trouble(&mut self, now_ms: u64, t: Trouble, interface: &str, errno: Option<i32>) {
        let f = t.facility();
        if !debug_on(f) {
            return;
        }
        let Some(i) = Trouble::ALL.iter().position(|x| *x == t) else {
            return;
        };
        let Admit::Log { held_back } = self.trouble[i].admit(now_ms) else {
            return;
        };
        let held = held_text(held_back);
        let detail = errno
            .map(|e| format!(": {}", std::io::Error::from_raw_os_error(e)))
            .unwrap_or_default();
        debug_in!(f, "{interface}: {}{detail}{held}", t.what());
    }

    /// At a timer tick: one summary line for each kind whose window ended
    /// with lines held back.
    pub fn flush(&mut self, now_ms: u64, interface: &str) {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            if let Some(n) = self.drops[i].flush(now_ms) {
                debug_in!(
                    facility(*r),
                    "dropped on {interface}: {n} more \"{r}\" drops not logged in the last {} s ({})",
                    WINDOW_MS / 1000,
                    r.counter()
                );
            }
        }
        for (i, t) in Trouble::ALL.iter().enumerate() {
            if let Some(n) = self.trouble[i].flush(now_ms) {
                debug_in!(
                    t.facility(),
                    "{interface}: {n} more \"{}\" not logged in the last {} s",
                    t.what(),
                    WINDOW_MS / 1000
                );
            }
        }
    }
}

fn held_text(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it not logged before this)")
    }
}

/// The drop counters that grew between two stats reports, by name, for
/// the Stats facility's per-interval line.
pub fn drop_deltas(prev: &WorkerCounters, now: &WorkerCounters) -> Vec<(&'static str, u64)> {
    let pairs = [
        ("malformed", prev.malformed, now.malformed),
        (
            "ip_checksum_errors",
            prev.ip_checksum_errors,
            now.ip_checksum_errors,
        ),
        (
            "udp_checksum_errors",
            prev.udp_checksum_errors,
            now.udp_checksum_errors,
        ),
        ("fragments", prev.fragments, now.fragments),
        ("not_udp", prev.not_udp, now.not_udp),
        ("ttl_zero", prev.ttl_zero, now.ttl_zero),
        ("no_match", prev.no_match, now.no_match),
        ("ttl_expired", prev.ttl_expired, now.ttl_expired),
        (
            "route_gso_skipped",
            prev.route_gso_skipped,
            now.route_gso_skipped,
        ),
        ("buf_exhaust", prev.buf_exhaust, now.buf_exhaust),
        ("kernel_drops", prev.kernel_drops, now.kernel_drops),
        ("early_drops", prev.early_drops, now.early_drops),
        ("send_errors", prev.send_errors, now.send_errors),
        (
            "send_backlog_drops",
            prev.send_backlog_drops,
            now.send_backlog_drops,
        ),
        (
            "output_full_drops",
            prev.output_full_drops,
            now.output_full_drops,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| b > a)
        .map(|(n, a, b)| (n, b - a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_yields_a_burst_then_one_count_per_window() {
        let mut l = Limiter::default();
        let mut logged = 0;
        // 100 000 drops over 25 s, 4 per millisecond.
        let mut held_total = 0;
        for i in 0..100_000u64 {
            let now = i / 4;
            if let Admit::Log { held_back } = l.admit(now) {
                logged += 1;
                held_total += held_back;
            }
        }
        // Windows start at 0, 10 s and 20 s: BURST lines each.
        assert_eq!(logged, 3 * BURST as u64);
        // The first two windows' remainders rode on the next line; the
        // last one's comes from flush.
        let last = l.flush(35_000).unwrap();
        assert_eq!(held_total + last + logged, 100_000);
        assert_eq!(l.flush(50_000), None, "counted once");
    }

    #[test]
    fn a_quiet_limiter_owes_no_summary_and_logs_again() {
        let mut l = Limiter::default();
        for _ in 0..BURST {
            assert_eq!(l.admit(0), Admit::Log { held_back: 0 });
        }
        assert_eq!(l.admit(1), Admit::Suppress);
        assert_eq!(l.flush(WINDOW_MS - 1), None, "window not over");
        assert_eq!(l.flush(WINDOW_MS), Some(1));
        assert_eq!(l.admit(WINDOW_MS + 1), Admit::Log { held_back: 0 });
    }

    #[test]
    fn every_drop_reason_has_a_data_plane_facility() {
        for r in DropReason::ALL {
            assert!(matches!(
                facility(r),
                Facility::PacketParser | Facility::Ingress | Facility::Egress
            ));
        }
    }

    #[test]
    fn deltas_name_only_the_counters_that_grew() {
        let a = WorkerCounters::default();
        let mut b = a.clone();
        b.ttl_zero = 3;
        b.matched = 100;
        b.ip_checksum_errors = 1;
        assert_eq!(
            drop_deltas(&a, &b),
            vec![("ip_checksum_errors", 1), ("ttl_zero", 3)]
        );
        assert!(drop_deltas(&b, &b).is_empty());
    }
}
