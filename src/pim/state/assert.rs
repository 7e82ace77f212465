//! Assert state per interface for (S,G) and (*,G), as pure transitions over
//! explicit times (RFC 7761 §4.6).
//!
//! Owns: [`AssertMetric`] and its ordering (§4.6.1: RPT bit, then metric
//! preference, then route metric, then the higher address), the infinite
//! metric of an AssertCancel (§4.6.3), and [`AssertEntry`], one
//! interface's NoInfo / I am Assert Winner / I am Assert Loser machine
//! with its Assert Timer deadline (§4.6.2 for (S,G), §4.6.3 for (*,G);
//! both share one table, the [`AssertKind`] picks the few rows that
//! differ). CouldAssert, AssertTrackingDesired and my_assert_metric are
//! inputs ([`AssertFacts`]) the caller evaluates from its tree state; the
//! instance keeps the timers, sends the messages the actions ask for, and
//! turns Winner/Loser into forwarding effects (lost_assert, §4.6.5).

use std::cmp::Ordering;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::pim::codec::{Assert, EncodedGroup};

/// Assert_Time (§4.11): how long a loser stays quiet without hearing the
/// winner again.
pub const ASSERT_TIME: Duration = Duration::from_secs(180);
/// Assert_Override_Interval (§4.11): the winner refreshes this much before
/// the losers' Assert Timers run out.
pub const ASSERT_OVERRIDE_INTERVAL: Duration = Duration::from_secs(3);

/// How long data seen on an interface while we could not assert there
/// still counts as arriving once we can: the shell reports an (S,G) on an
/// interface at most once a second (`dataplane::upcall`), and the other
/// router forwards in between.
pub const RECENT_DATA: Duration = Duration::from_millis(2500);

/// The largest metric preference the 31-bit field holds: "infinity".
pub const INFINITE_PREFERENCE: u32 = 0x7fff_ffff;
pub const INFINITE_METRIC: u32 = u32::MAX;

/// An assert metric (§4.6.1). `addr` is the sender's address on the LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertMetric {
    /// Set for (*,G) asserts: any (S,G) assert beats any (*,G) assert.
    pub rpt: bool,
    pub preference: u32,
    pub metric: u32,
    pub addr: Ipv4Addr,
}

impl AssertMetric {
    /// infinite_assert_metric(): what a router that cannot assert has.
    pub fn infinite() -> Self {
        AssertMetric {
            rpt: true,
            preference: INFINITE_PREFERENCE,
            metric: INFINITE_METRIC,
            addr: Ipv4Addr::UNSPECIFIED,
        }
    }

    /// The metric a received Assert carries, from `sender`.
    pub fn of(msg: &Assert, sender: Ipv4Addr) -> Self {
        AssertMetric {
            rpt: msg.rpt,
            preference: msg.preference & INFINITE_PREFERENCE,
            metric: msg.metric,
            addr: sender,
        }
    }

    /// An AssertCancel carries the infinite preference and metric: it
    /// says "I no longer forward", and is inferior to every real assert.
    pub fn is_cancel(&self) -> bool {
        self.preference == INFINITE_PREFERENCE && self.metric == INFINITE_METRIC
    }

    /// §4.6.1's comparison: `Greater` means `self` wins. The lower RPT bit,
    /// then the lower preference, then the lower metric win; the higher
    /// address breaks a tie.
    pub fn compare(&self, other: &Self) -> Ordering {
        other
            .rpt
            .cmp(&self.rpt)
            .then(other.preference.cmp(&self.preference))
            .then(other.metric.cmp(&self.metric))
            .then(self.addr.cmp(&other.addr))
    }

    pub fn better_than(&self, other: &Self) -> bool {
        self.compare(other) == Ordering::Greater
    }
}

/// Which machine: (S,G) (§4.6.2) or (*,G) (§4.6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertKind {
    SourceGroup,
    AnySource,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertState {
    #[default]
    NoInfo,
    Winner,
    Loser,
}

/// The caller's view of this (S,G) or (*,G) on this interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssertFacts {
    /// CouldAssert(S,G,I) or CouldAssert(*,G,I).
    pub could_assert: bool,
    /// AssertTrackingDesired(S,G,I) or (*,G,I).
    pub tracking_desired: bool,
    /// my_assert_metric: spt_assert_metric (S,G) or rpt_assert_metric
    /// (*,G) when we could assert, infinite otherwise.
    pub my_metric: AssertMetric,
}

/// What a transition asks the instance to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertAction {
    Nothing,
    /// An Assert with our metric (actions A1, A3).
    SendAssert,
    /// An AssertCancel (action A4): we stop forwarding, losers take over.
    SendCancel,
}

/// One interface's assert machine for one (S,G) or (*,G).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssertEntry {
    state: AssertState,
    winner: Option<AssertMetric>,
    timer: Option<Instant>,
    /// In NoInfo: when data last arrived that we could not assert on.
    data_seen: Option<Instant>,
}

impl AssertEntry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> AssertState {
        self.state
    }

    /// AssertWinner and AssertWinnerMetric (the winner's address is the
    /// metric's `addr`); ours while we win.
    pub fn winner(&self) -> Option<AssertMetric> {
        self.winner
    }

    /// The Assert Timer deadline.
    pub fn timer(&self) -> Option<Instant> {
        self.timer
    }

    /// When data last arrived in NoInfo without CouldAssert (see
    /// [`AssertEntry::recent_data`]).
    pub fn data_seen(&self) -> Option<Instant> {
        self.data_seen
    }

    /// Actions A1/A3: (re)assert and refresh before the losers time out.
    fn win(&mut self, now: Instant, f: &AssertFacts) -> AssertAction {
        self.data_seen = None;
        self.state = AssertState::Winner;
        self.winner = Some(f.my_metric);
        self.timer = Some(now + ASSERT_TIME - ASSERT_OVERRIDE_INTERVAL);
        AssertAction::SendAssert
    }

    /// Actions A2/A6: someone better forwards; follow them for Assert_Time.
    fn lose(&mut self, now: Instant, to: AssertMetric) -> AssertAction {
        self.data_seen = None;
        self.state = AssertState::Loser;
        self.winner = Some(to);
        self.timer = Some(now + ASSERT_TIME);
        AssertAction::Nothing
    }

    /// Action A5 (and A4's bookkeeping): forget the winner.
    fn clear(&mut self) {
        *self = AssertEntry::default();
    }

    /// A data packet for this entry arrived on the interface (it is in
    /// our outgoing list, so someone else forwards onto it too). From
    /// NoInfo, a router that could assert does (A1); one that cannot yet
    /// remembers when, for [`AssertEntry::recent_data`]. In the other
    /// states data changes nothing.
    pub fn data_arrived(&mut self, now: Instant, f: &AssertFacts) -> AssertAction {
        if self.state == AssertState::NoInfo {
            if f.could_assert {
                return self.win(now, f);
            }
            self.data_seen = Some(now);
        }
        AssertAction::Nothing
    }

    /// CouldAssert may have become true (we started forwarding onto the
    /// interface) after another router's data was seen there: that
    /// router still forwards, so the data is still arriving and we assert
    /// now (A1) rather than at the shell's next report, up to a second of
    /// duplicates later. Sightings older than [`RECENT_DATA`] are dropped.
    pub fn recent_data(&mut self, now: Instant, f: &AssertFacts) -> AssertAction {
        if self.state != AssertState::NoInfo {
            return AssertAction::Nothing;
        }
        match self.data_seen {
            Some(t) if now.saturating_duration_since(t) <= RECENT_DATA => {
                if f.could_assert {
                    self.win(now, f)
                } else {
                    AssertAction::Nothing
                }
            }
            _ => {
                self.data_seen = None;
                AssertAction::Nothing
            }
        }
    }

    /// An Assert with metric `m` arrived (from `m.addr`).
    pub fn receive(
        &mut self,
        now: Instant,
        kind: AssertKind,
        f: &AssertFacts,
        m: AssertMetric,
    ) -> AssertAction {
        // Acceptable: better than what we could offer; a cancel never is.
        let acceptable = !m.is_cancel() && m.better_than(&f.my_metric);
        match self.state {
            AssertState::NoInfo => match kind {
                // §4.6.2: any (*,G) assert meets an (S,G) assert from a
                // router that could send one, since (S,G) always wins.
                AssertKind::SourceGroup if m.rpt && f.could_assert => self.win(now, f),
                AssertKind::SourceGroup if m.rpt => AssertAction::Nothing,
                _ if !acceptable && f.could_assert => self.win(now, f),
                _ if acceptable && f.tracking_desired => self.lose(now, m),
                _ => AssertAction::Nothing,
            },
            AssertState::Winner => {
                if acceptable {
                    self.lose(now, m)
                } else {
                    // An inferior assert: remind the LAN who forwards (A3).
                    self.win(now, f)
                }
            }
            AssertState::Loser => {
                let current = self.winner.unwrap_or_else(AssertMetric::infinite);
                if m.addr == current.addr {
                    if acceptable {
                        self.lose(now, m)
                    } else {
                        // The winner got worse than us or cancelled.
                        self.clear();
                        AssertAction::Nothing
                    }
                } else if !m.is_cancel() && m.better_than(&current) {
                    self.lose(now, m)
                } else {
                    AssertAction::Nothing
                }
            }
        }
    }

    /// The Assert Timer fired: a winner refreshes (A3), a loser forgets
    /// the silent winner and may forward again (A5).
    pub fn timer_expired(&mut self, now: Instant, f: &AssertFacts) -> AssertAction {
        match self.state {
            AssertState::Winner => self.win(now, f),
            AssertState::Loser => {
                self.clear();
                AssertAction::Nothing
            }
            AssertState::NoInfo => {
                self.timer = None;
                AssertAction::Nothing
            }
        }
    }

    /// The facts changed: a winner that can no longer assert cancels (A4);
    /// a loser that no longer tracks, or whose own metric became better
    /// than the winner's, forgets the winner (A5).
    pub fn reevaluate(&mut self, f: &AssertFacts) -> AssertAction {
        match self.state {
            AssertState::Winner if !f.could_assert => {
                self.clear();
                AssertAction::SendCancel
            }
            AssertState::Loser => {
                let better = self.winner.is_some_and(|w| f.my_metric.better_than(&w));
                if !f.tracking_desired || better {
                    self.clear();
                }
                AssertAction::Nothing
            }
            _ => AssertAction::Nothing,
        }
    }

    /// The winner `addr` is gone (neighbor timer expired) or restarted
    /// (new generation id): a loser forgets it (A5). Returns whether it did.
    pub fn neighbor_gone(&mut self, addr: Ipv4Addr) -> bool {
        let ours = self.winner.is_some_and(|w| w.addr == addr);
        if self.state == AssertState::Loser && ours {
            self.clear();
            return true;
        }
        false
    }

    /// A Join for this entry arrived on the interface, or its RPF
    /// interface moved away: a downstream router chose us, so a loser
    /// forgets the winner (A5). Returns whether it did.
    pub fn loser_reset(&mut self) -> bool {
        if self.state == AssertState::Loser {
            self.clear();
            return true;
        }
        false
    }
}

/// The Assert message for `group` with `source` and `metric`. (*,G)
/// asserts carry the RPT bit and the source of the packet that triggered
/// them (§4.6.3, §4.9.6).
pub fn assert_message(source: Ipv4Addr, group: Ipv4Addr, metric: &AssertMetric) -> Assert {
    Assert {
        group: EncodedGroup::host(group),
        source,
        rpt: metric.rpt,
        preference: metric.preference & INFINITE_PREFERENCE,
        metric: metric.metric,
    }
}

/// AssertCancel (§4.6.3): the infinite metric with the RPT bit set.
pub fn cancel_message(source: Ipv4Addr, group: Ipv4Addr) -> Assert {
    assert_message(source, group, &AssertMetric::infinite())
}

#[cfg(test)]
#[path = "assert_tests.rs"]
mod tests;
