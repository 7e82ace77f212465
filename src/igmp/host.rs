//! The host side of IGMP on one interface, for the IGMP proxy's upstream
//! (RFC 4605 §4.1: the proxy reports the aggregated downstream membership
//! upstream as a host would). Implements the host parts of RFC 2236 §3
//! (unsolicited reports, delayed responses to queries, leave on the last
//! leave) and RFC 3376 §5 (state-change reports repeated robustness times,
//! current-state records answering queries, source lists) and the host
//! compatibility mode of RFC 3376 §7.2 (an older querier heard → its
//! version's messages, which carry no sources).
//!
//! Owns: the membership per group with its source filter (RFC 3376 §3.2
//! interface state), the state-change records waiting to be repeated, and
//! the pending response deadlines with the sources each pending answer is
//! about (RFC 3376 §5.2: a group-and-source-specific query is answered
//! about the sources it asked for, accumulated over the queries that
//! arrive before the answer is due).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::codec::{
    decode, encode, GroupRecord, Message, RecordType, Version, ALL_ROUTERS, ALL_V3_ROUTERS,
};
use super::config::IgmpParams;
use super::state::FilterMode;
use crate::proto::{Protocol, Rng, Timers, Transmit};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    pub ifindex: u32,
    pub address: Ipv4Addr,
    pub params: IgmpParams,
}

/// The source filter of one membership (RFC 3376 §3.2). INCLUDE {} is
/// no membership at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFilter {
    pub mode: FilterMode,
    pub sources: BTreeSet<Ipv4Addr>,
}

impl HostFilter {
    /// Any-source membership: EXCLUDE {}.
    pub fn any() -> Self {
        HostFilter {
            mode: FilterMode::Exclude,
            sources: BTreeSet::new(),
        }
    }

    fn none() -> Self {
        HostFilter {
            mode: FilterMode::Include,
            sources: BTreeSet::new(),
        }
    }

    pub fn is_none(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }
}

/// The proxy's upstream membership changed: every group to be a member
/// of, with its filter. A group left out is left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMemberships(pub BTreeMap<Ipv4Addr, HostFilter>);

impl SetMemberships {
    /// Any-source membership of each of `groups`.
    pub fn any(groups: BTreeSet<Ipv4Addr>) -> Self {
        SetMemberships(groups.into_iter().map(|g| (g, HostFilter::any())).collect())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// The next (re)transmission of a group's state-change report.
    Change(Ipv4Addr),
    /// A delayed answer to a query for one group.
    Respond(Ipv4Addr),
    /// A delayed v3 answer to a general query: all groups.
    RespondAll,
    OlderQuerier,
}

/// A state-change report still to be (re)sent.
#[derive(Debug)]
struct Pending {
    /// The v3 records; in v1/v2 the current membership decides instead.
    records: Vec<GroupRecord>,
    left: u8,
}

/// What `mcrctl igmp interfaces` shows for the proxy's upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    pub reports_sent: u64,
    pub leaves_sent: u64,
    pub queries_received: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct IgmpHost {
    config: HostConfig,
    joined: BTreeMap<Ipv4Addr, HostFilter>,
    pending: BTreeMap<Ipv4Addr, Pending>,
    /// The sources a pending `Respond(g)` answers about: `None` for the
    /// whole group (a group-specific query), `Some` for the union of the
    /// sources of the group-and-source-specific queries it answers.
    asked: BTreeMap<Ipv4Addr, Option<BTreeSet<Ipv4Addr>>>,
    older_querier: Option<Version>,
    timers: Timers<Key>,
    rng: Rng,
    tx: VecDeque<Transmit>,
    pub counters: HostCounters,
}

/// The records that tell a router about the change from `old` to `new`
/// (RFC 3376 §5.1): a filter-mode change is TO_IN/TO_EX of the new list,
/// a source-list change ALLOW and BLOCK of the difference.
fn change_records(g: Ipv4Addr, old: &HostFilter, new: &HostFilter) -> Vec<GroupRecord> {
    let rec = |kind, s: &BTreeSet<Ipv4Addr>| GroupRecord {
        kind,
        group: g,
        sources: s.iter().copied().collect(),
    };
    if old.mode != new.mode {
        let kind = match new.mode {
            FilterMode::Include => RecordType::ToInclude,
            FilterMode::Exclude => RecordType::ToExclude,
        };
        return vec![rec(kind, &new.sources)];
    }
    let added: BTreeSet<Ipv4Addr> = new.sources.difference(&old.sources).copied().collect();
    let removed: BTreeSet<Ipv4Addr> = old.sources.difference(&new.sources).copied().collect();
    // In EXCLUDE mode a newly listed source is one no longer wanted.
    let (allow, block) = match new.mode {
        FilterMode::Include => (added, removed),
        FilterMode::Exclude => (removed, added),
    };
    let mut v = Vec::new();
    if !allow.is_empty() {
        v.push(rec(RecordType::AllowNew, &allow));
    }
    if !block.is_empty() {
        v.push(rec(RecordType::BlockOld, &block));
    }
    v
}

impl IgmpHost {
    pub fn new(config: HostConfig, rng: Rng) -> Self {
        IgmpHost {
            config,
            joined: BTreeMap::new(),
            pending: BTreeMap::new(),
            asked: BTreeMap::new(),
            older_querier: None,
            timers: Timers::new(),
            rng,
            tx: VecDeque::new(),
            counters: HostCounters::default(),
        }
    }

    /// The groups this host is a member of, with their filters.
    pub fn joined(&self) -> &BTreeMap<Ipv4Addr, HostFilter> {
        &self.joined
    }

    pub fn address(&self) -> Ipv4Addr {
        self.config.address
    }

    /// The version this host speaks now (RFC 3376 §7.2.1).
    pub fn version(&self) -> Version {
        self.older_querier
            .unwrap_or(self.config.params.version)
            .min(self.config.params.version)
    }

    fn send(&mut self, dst: Ipv4Addr, m: Message) {
        self.tx.push_back(Transmit {
            ifindex: self.config.ifindex,
            src: Some(self.config.address),
            dst,
            ttl: 1,
            router_alert: true,
            payload: encode(&m),
        });
    }

    /// Current-state answer for `groups` (RFC 3376 §5.2; RFC 2236 §3).
    fn report_current(&mut self, groups: &[Ipv4Addr]) {
        let cur: Vec<(Ipv4Addr, HostFilter)> = groups
            .iter()
            .filter_map(|g| Some((*g, self.joined.get(g)?.clone())))
            .collect();
        if cur.is_empty() {
            return;
        }
        self.counters.reports_sent += 1;
        match self.version() {
            Version::V3 => {
                let recs = cur
                    .into_iter()
                    .map(|(group, f)| GroupRecord {
                        kind: match f.mode {
                            FilterMode::Include => RecordType::IsInclude,
                            FilterMode::Exclude => RecordType::IsExclude,
                        },
                        group,
                        sources: f.sources.into_iter().collect(),
                    })
                    .collect();
                self.send(ALL_V3_ROUTERS, Message::V3Report(recs));
            }
            v => {
                for (g, _) in cur {
                    let m = if v == Version::V1 {
                        Message::V1Report(g)
                    } else {
                        Message::V2Report(g)
                    };
                    self.send(g, m);
                }
            }
        }
    }

    /// The answer to the group-and-source-specific queries about `g` that
    /// asked for `q` (RFC 3376 §5.2): INCLUDE(A) → IS_IN(A ∩ Q), EXCLUDE(A)
    /// → IS_IN(Q − A); nothing when that list is empty. Only v3 queries
    /// carry sources, so this is only ever sent in v3.
    fn report_sources(&mut self, g: Ipv4Addr, q: &BTreeSet<Ipv4Addr>) {
        let Some(f) = self.joined.get(&g) else {
            return;
        };
        let sources: Vec<Ipv4Addr> = match f.mode {
            FilterMode::Include => f.sources.intersection(q).copied().collect(),
            FilterMode::Exclude => q.difference(&f.sources).copied().collect(),
        };
        if sources.is_empty() || self.version() != Version::V3 {
            return;
        }
        self.counters.reports_sent += 1;
        let rec = GroupRecord {
            kind: RecordType::IsInclude,
            group: g,
            sources,
        };
        self.send(ALL_V3_ROUTERS, Message::V3Report(vec![rec]));
    }

    /// One transmission of a pending state change of `g`.
    fn send_change(&mut self, g: Ipv4Addr, records: Vec<GroupRecord>) {
        let member = self.joined.contains_key(&g);
        match self.version() {
            Version::V3 => {
                if records.is_empty() {
                    return;
                }
                let leave = !member;
                if leave {
                    self.counters.leaves_sent += 1;
                } else {
                    self.counters.reports_sent += 1;
                }
                self.send(ALL_V3_ROUTERS, Message::V3Report(records));
            }
            // v1/v2 carry no sources: a member reports the group.
            Version::V2 | Version::V1 if member => {
                self.counters.reports_sent += 1;
                let m = if self.version() == Version::V1 {
                    Message::V1Report(g)
                } else {
                    Message::V2Report(g)
                };
                self.send(g, m);
            }
            Version::V2 => {
                self.counters.leaves_sent += 1;
                self.send(ALL_ROUTERS, Message::V2Leave(g));
            }
            // v1 has no leave: the router times the group out.
            Version::V1 => {}
        }
    }

    /// RFC 3376 §5.1: a state change is sent at once and repeated
    /// robustness − 1 times at random within the unsolicited report
    /// interval; RFC 2236 §3 repeats the v2 report the same way.
    fn repeat_at(&mut self, now: Instant) -> Instant {
        now + self
            .rng
            .jitter(self.config.params.unsolicited_report_interval)
    }
}

impl Protocol for IgmpHost {
    type Config = HostConfig;
    type Input = SetMemberships;
    type Output = Infallible;

    fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        _src: Ipv4Addr,
        _dst: Ipv4Addr,
        p: &[u8],
    ) {
        if ifindex != self.config.ifindex {
            return;
        }
        let Ok(Message::Query(q)) = decode(p) else {
            return;
        };
        self.counters.queries_received += 1;
        if q.version < Version::V3 {
            let pr = &self.config.params;
            let timeout = pr.gmi(pr.robustness, pr.query_interval);
            self.older_querier = Some(q.version);
            self.timers.set(Key::OlderQuerier, now + timeout);
        }
        // A v1 query carries no time: RFC 2236 §4 reads it as 10 s.
        let max = match q.version {
            Version::V1 => std::time::Duration::from_secs(10),
            _ => q.max_resp(),
        };
        let at = now + self.rng.jitter(max);
        if q.is_general() {
            if self.version() == Version::V3 {
                self.timers.set_min(Key::RespondAll, at);
            } else {
                for g in self.joined.keys().copied().collect::<Vec<_>>() {
                    let at = now + self.rng.jitter(max);
                    self.timers.set_min(Key::Respond(g), at);
                    self.asked.insert(g, None);
                }
            }
        } else if self.timers.get(&Key::RespondAll).is_some_and(|t| t <= at) {
            // RFC 3376 §5.2 rule 1: the pending answer to a general query
            // comes first and states the whole group.
        } else if self.joined.contains_key(&q.group) {
            // RFC 3376 §5.2 rules 3 to 5: one pending answer per group, at
            // the earlier deadline; a group-specific query (or one already
            // pending) widens it to the whole group, source lists add up.
            let g = q.group;
            let asked: Option<BTreeSet<Ipv4Addr>> = (q.version == Version::V3
                && !q.sources.is_empty())
            .then(|| q.sources.iter().copied().collect());
            let merged = if self.timers.is_armed(&Key::Respond(g)) {
                match (self.asked.remove(&g).flatten(), asked) {
                    (Some(mut before), Some(now)) => {
                        before.extend(now);
                        Some(before)
                    }
                    _ => None,
                }
            } else {
                asked
            };
            self.asked.insert(g, merged);
            self.timers.set_min(Key::Respond(g), at);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_due(now) {
            match k {
                Key::Change(g) => {
                    let Some(p) = self.pending.get_mut(&g) else {
                        continue;
                    };
                    p.left = p.left.saturating_sub(1);
                    let (records, left) = (p.records.clone(), p.left);
                    if left == 0 {
                        self.pending.remove(&g);
                    }
                    let v3 = self.version() == Version::V3;
                    let member = self.joined.contains_key(&g);
                    self.send_change(g, records);
                    // A v2 leave is sent once (RFC 2236 §3).
                    if left > 0 && (v3 || member) {
                        let at = self.repeat_at(now);
                        self.timers.set(Key::Change(g), at);
                    } else {
                        self.pending.remove(&g);
                    }
                }
                Key::Respond(g) => match self.asked.remove(&g).flatten() {
                    Some(q) => self.report_sources(g, &q),
                    None => self.report_current(&[g]),
                },
                Key::RespondAll => {
                    let all: Vec<Ipv4Addr> = self.joined.keys().copied().collect();
                    self.report_current(&all);
                }
                Key::OlderQuerier => self.older_querier = None,
            }
        }
    }

    fn handle_config(&mut self, _now: Instant, config: HostConfig) {
        self.config = config;
    }

    fn handle_event(&mut self, now: Instant, SetMemberships(want): SetMemberships) {
        let want: BTreeMap<Ipv4Addr, HostFilter> =
            want.into_iter().filter(|(_, f)| !f.is_none()).collect();
        let groups: BTreeSet<Ipv4Addr> = want.keys().chain(self.joined.keys()).copied().collect();
        let rv = self.config.params.robustness.max(1);
        for g in groups {
            let old = self
                .joined
                .get(&g)
                .cloned()
                .unwrap_or_else(HostFilter::none);
            let new = want.get(&g).cloned().unwrap_or_else(HostFilter::none);
            if old == new {
                continue;
            }
            // A change on top of one still being repeated: a filter-mode
            // record states the whole new filter, so the earlier change
            // cannot be lost with its remaining repetitions.
            let records = if self.pending.contains_key(&g) {
                let base = HostFilter {
                    mode: match new.mode {
                        FilterMode::Include => FilterMode::Exclude,
                        FilterMode::Exclude => FilterMode::Include,
                    },
                    sources: BTreeSet::new(),
                };
                change_records(g, &base, &new)
            } else {
                change_records(g, &old, &new)
            };
            if new.is_none() {
                self.joined.remove(&g);
                self.timers.cancel(&Key::Respond(g));
                self.asked.remove(&g);
            } else {
                self.joined.insert(g, new);
            }
            self.pending.insert(g, Pending { records, left: rv });
            self.timers.set(Key::Change(g), now);
        }
        self.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    fn poll_event(&mut self) -> Option<Infallible> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

#[cfg(test)]
mod tests;
