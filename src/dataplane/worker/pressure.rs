//! The worker's half of early drop (`sys::xdp`): after each turn's drain
//! of the receive ring it looks how far the kernel has filled the ring
//! ahead of it and sets or clears the input's pressure flag, which the XDP
//! program on the input reads. Hysteresis keeps the flag from flapping per
//! block: on when at least `ON_NUM/DEN` of the ring's blocks wait for the
//! worker, off again when fewer than `OFF_NUM/DEN` do. While it is on the
//! program drops the multicast UDP the worker would relay before the
//! kernel's receive path pays for it, so the worker's core spends itself
//! on draining the backlog instead of on filling a ring that has no room.
//!
//! The flag is a plain store into the map's shared mapping: no system
//! call. A new worker clears it at start (its predecessor may have died
//! with it set); the supervisor clears it when a worker exits.

use crate::sys::packet_ring::RxRing;
use crate::sys::xdp::PressureMap;

/// Flag on from three quarters of the blocks waiting, off below a
/// quarter: wide enough that one on/off cycle spans thousands of frames
/// (the ring is 64 blocks of 256 KiB by default), so the cost of a flip
/// (one store, one cache line) is nothing per frame.
const ON_NUM: usize = 3;
const OFF_NUM: usize = 1;
const DEN: usize = 4;

pub(super) struct EarlyDrop {
    map: PressureMap,
    on: bool,
    /// The map's drop counter when this worker started: the counter lives
    /// as long as the map (the supervisor's), the worker reports its own.
    base: u64,
}

/// Block distances from the reader at which the flag turns on and off, for
/// a ring of `blocks` blocks (both at least 1 and below `blocks`).
fn thresholds(blocks: usize) -> (usize, usize) {
    let last = blocks.saturating_sub(1).max(1);
    let on = (blocks * ON_NUM / DEN).clamp(1, last);
    let off = (blocks * OFF_NUM / DEN).clamp(1, on);
    (on, off)
}

/// The next state of the flag: `full_on` says whether the block at the
/// "on" distance is waiting, `full_off` the one at the "off" distance.
fn next(on: bool, full_on: bool, full_off: bool) -> bool {
    if on {
        full_off
    } else {
        full_on
    }
}

impl EarlyDrop {
    pub(super) fn new(map: PressureMap) -> Self {
        map.set_pressure(false);
        let base = map.drops();
        EarlyDrop {
            map,
            on: false,
            base,
        }
    }

    /// After a drain: two loads of block status words at most.
    pub(super) fn update(&mut self, rx: &RxRing) {
        let (on_at, off_at) = thresholds(rx.geometry().blocks as usize);
        let now = if self.on {
            next(true, true, rx.waiting_ahead(off_at))
        } else {
            next(false, rx.waiting_ahead(on_at), false)
        };
        if now != self.on {
            self.on = now;
            self.map.set_pressure(now);
        }
    }

    /// Frames the program dropped while this worker ran.
    pub(super) fn drops(&self) -> u64 {
        self.map.drops().saturating_sub(self.base)
    }
}

impl Drop for EarlyDrop {
    /// On the way out (an unwinding panic included): never leave the input
    /// dropping. A killed worker cannot; the supervisor clears it then.
    fn drop(&mut self) {
        self.map.set_pressure(false);
    }
}

#[cfg(test)]
mod tests {
    use super::{next, thresholds};

    #[test]
    fn thresholds_are_three_quarters_and_a_quarter_and_stay_inside_the_ring() {
        assert_eq!(thresholds(64), (48, 16));
        assert_eq!(thresholds(4), (3, 1));
        // A ring too small for a gap still gets distances the reader can
        // look at (never the block it is reading).
        assert_eq!(thresholds(2), (1, 1));
        assert_eq!(thresholds(1), (1, 1));
    }

    #[test]
    fn the_flag_turns_on_only_when_full_and_off_only_when_drained() {
        // Off: a ring between the thresholds does not turn it on.
        assert!(!next(false, false, true));
        assert!(next(false, true, true));
        // On: still above the low mark keeps it on, below turns it off.
        assert!(next(true, false, true));
        assert!(!next(true, false, false));
    }
}
