//! The router side of IGMP on one interface, as pure transitions over
//! explicit times: querier election and queries (RFC 2236 §3, RFC 3376
//! §6.6), group and source state with its timers (RFC 3376 §6.2-§6.5, the
//! tables of §6.4.1 and §6.4.2), group-specific and group-and-source-
//! specific queries (§6.6.3), host compatibility modes (§7.3.2) and the
//! older-querier compatibility mode (§7.3.1).
//!
//! Owns: one interface's groups, its deadlines ([`Timers`]) and counters.
//! It emits [`Action`]s (messages to send, events) that the instance turns
//! into transmits and protocol outputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::codec::{GroupRecord, Message, Query, RecordType, Version, ALL_SYSTEMS};
use super::config::IgmpParams;
use crate::proto::Timers;

/// RFC 3376 filter mode. In `Include` the listed sources are wanted; in
/// `Exclude` every source but the listed ones is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    Include,
    Exclude,
}

/// What the interface tells the rest of the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IgmpEvent {
    /// A group got its first member on `ifindex`.
    Join {
        ifindex: u32,
        group: Ipv4Addr,
        mode: FilterMode,
        sources: Vec<Ipv4Addr>,
    },
    /// The filter (mode or sources forwarded/blocked) of a group changed.
    Change {
        ifindex: u32,
        group: Ipv4Addr,
        mode: FilterMode,
        sources: Vec<Ipv4Addr>,
    },
    /// The last member left or expired.
    Leave { ifindex: u32, group: Ipv4Addr },
    /// Another router (or this one, `local`) became the querier.
    QuerierChange {
        ifindex: u32,
        querier: Ipv4Addr,
        local: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Ipv4Addr, Message),
    Event(IgmpEvent),
}

/// Per-interface counters, as `igmp interfaces` and Prometheus show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub queries_sent: u64,
    pub queries_received: u64,
    pub reports_received: u64,
    pub leaves_received: u64,
    pub checksum_errors: u64,
    /// Truncated, unknown type, bad length, or a non-multicast group.
    pub malformed: u64,
    /// Host side (the proxy's upstream): reports and leaves it sent.
    #[serde(default)]
    pub reports_sent: u64,
    #[serde(default)]
    pub leaves_sent: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    GeneralQuery,
    OtherQuerier,
    OlderQuerier,
    Group(Ipv4Addr),
    Source(Ipv4Addr, Ipv4Addr),
    V1Host(Ipv4Addr),
    V2Host(Ipv4Addr),
    GroupQuery(Ipv4Addr),
    SourceQuery(Ipv4Addr),
}

#[derive(Clone, Debug)]
struct Group {
    mode: FilterMode,
    /// INCLUDE: A, every one with a timer. EXCLUDE: X (timer armed) and Y
    /// (no timer: blocked).
    sources: BTreeSet<Ipv4Addr>,
    last_reporter: Ipv4Addr,
    /// Group-specific queries still to send (§6.6.3.1).
    group_queries_left: u8,
    /// Group-and-source-specific queries still to send, per source.
    source_queries_left: BTreeMap<Ipv4Addr, u8>,
}

/// One row of `igmp groups`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group: Ipv4Addr,
    pub mode: FilterMode,
    /// Sources with the seconds left on their timer (`None`: blocked).
    pub sources: Vec<(Ipv4Addr, Option<f64>)>,
    pub last_reporter: Ipv4Addr,
    /// Seconds until the group timer expires (EXCLUDE mode only).
    pub expires: Option<f64>,
    /// Group compatibility mode: 1, 2 or 3.
    pub version: u8,
}

/// The querier half of one row of `igmp interfaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuerierSnapshot {
    pub address: Ipv4Addr,
    pub querier: bool,
    pub current_querier: Ipv4Addr,
    pub other_querier_expires: Option<f64>,
    pub version: u8,
    pub counters: Counters,
}

fn left(at: Option<Instant>, now: Instant) -> Option<f64> {
    at.map(|t| t.saturating_duration_since(now).as_secs_f64())
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Interface {
    pub ifindex: u32,
    address: Ipv4Addr,
    params: IgmpParams,
    querier: bool,
    current_querier: Ipv4Addr,
    startup_left: u8,
    older_querier: Option<Version>,
    /// QRV and QQI adopted from the current querier (RFC 3376 §4.1.6,
    /// §4.1.7) while this router is not querier.
    learned: Option<(u8, Duration)>,
    groups: BTreeMap<Ipv4Addr, Group>,
    timers: Timers<Key>,
    pub counters: Counters,
    actions: VecDeque<Action>,
}

impl Interface {
    /// Start as querier and send the startup queries (RFC 3376 §6.6.2:
    /// every router starts as querier).
    pub fn new(now: Instant, ifindex: u32, address: Ipv4Addr, params: IgmpParams) -> Self {
        let mut i = Interface {
            ifindex,
            address,
            startup_left: params.startup_query_count,
            params,
            querier: true,
            current_querier: address,
            older_querier: None,
            learned: None,
            groups: BTreeMap::new(),
            timers: Timers::new(),
            counters: Counters::default(),
            actions: VecDeque::new(),
        };
        i.emit(IgmpEvent::QuerierChange {
            ifindex,
            querier: address,
            local: true,
        });
        i.send_general_query(now);
        i
    }

    /// New parameters (hot reload). Groups and timers keep running; the
    /// next query uses the new values.
    /// New timers from a reload. Groups, sources and the election stay;
    /// a shorter query interval (or startup interval) takes effect at
    /// once instead of after the query already scheduled with the old
    /// one, so an operator who shortens QI sees it within the new QI.
    /// Longer timers apply from the next query on.
    pub fn set_params(&mut self, now: Instant, params: IgmpParams) {
        let next = if self.startup_left > 0 {
            params.startup_query_interval
        } else {
            params.query_interval
        };
        self.params = params;
        if self.querier && self.timers.get(&Key::GeneralQuery).is_some() {
            self.timers.set_min(Key::GeneralQuery, now + next);
        }
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub fn is_querier(&self) -> bool {
        self.querier
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The IGMP version the interface runs now: the configured one, or an
    /// older querier's (RFC 3376 §7.3.1).
    pub fn version(&self) -> Version {
        match self.older_querier {
            Some(v) if v < self.params.version => v,
            _ => self.params.version,
        }
    }

    fn rv_qi(&self) -> (u8, Duration) {
        self.learned
            .unwrap_or((self.params.robustness, self.params.query_interval))
    }

    fn gmi(&self) -> Duration {
        let (rv, qi) = self.rv_qi();
        self.params.gmi(rv, qi)
    }

    fn emit(&mut self, e: IgmpEvent) {
        self.actions.push_back(Action::Event(e));
    }

    fn group_version(&self, g: Ipv4Addr) -> Version {
        if self.timers.is_armed(&Key::V1Host(g)) {
            Version::V1
        } else if self.timers.is_armed(&Key::V2Host(g)) {
            Version::V2.min(self.version())
        } else {
            self.version()
        }
    }

    /// What forwarding needs of a group: the mode and, in INCLUDE, the
    /// wanted sources, in EXCLUDE the blocked ones.
    fn view(&self, g: Ipv4Addr) -> Option<(FilterMode, Vec<Ipv4Addr>)> {
        let grp = self.groups.get(&g)?;
        let sources = match grp.mode {
            FilterMode::Include => grp.sources.iter().copied().collect(),
            FilterMode::Exclude => grp
                .sources
                .iter()
                .copied()
                .filter(|s| !self.timers.is_armed(&Key::Source(g, *s)))
                .collect(),
        };
        Some((grp.mode, sources))
    }

    fn announce(&mut self, g: Ipv4Addr, before: Option<(FilterMode, Vec<Ipv4Addr>)>) {
        let ifindex = self.ifindex;
        let after = self.view(g);
        if before == after {
            return;
        }
        let e = match (before, after) {
            (None, Some((mode, sources))) => IgmpEvent::Join {
                ifindex,
                group: g,
                mode,
                sources,
            },
            (Some(_), Some((mode, sources))) => IgmpEvent::Change {
                ifindex,
                group: g,
                mode,
                sources,
            },
            (Some(_), None) => IgmpEvent::Leave { ifindex, group: g },
            (None, None) => return,
        };
        self.emit(e);
    }

    fn remove_group(&mut self, g: Ipv4Addr) {
        self.groups.remove(&g);
        self.timers.retain(|k| match k {
            Key::Group(x)
            | Key::V1Host(x)
            | Key::V2Host(x)
            | Key::GroupQuery(x)
            | Key::SourceQuery(x)
            | Key::Source(x, _) => *x != g,
            _ => true,
        });
    }

    // ---- queries ------------------------------------------------------

    fn query(
        &self,
        group: Ipv4Addr,
        max_resp: Duration,
        suppress: bool,
        sources: Vec<Ipv4Addr>,
    ) -> Message {
        let (rv, _) = self.rv_qi();
        Message::Query(Query {
            version: self.version(),
            max_resp_code: self.params.resp_code(max_resp),
            group,
            suppress,
            qrv: rv,
            qqic: self.params.qqic(),
            sources,
        })
    }

    fn send_query(&mut self, dst: Ipv4Addr, m: Message) {
        self.counters.queries_sent += 1;
        self.actions.push_back(Action::Send(dst, m));
    }

    fn send_general_query(&mut self, now: Instant) {
        let m = self.query(
            Ipv4Addr::UNSPECIFIED,
            self.params.query_response_interval,
            false,
            Vec::new(),
        );
        self.send_query(ALL_SYSTEMS, m);
        self.startup_left = self.startup_left.saturating_sub(1);
        let next = if self.startup_left > 0 {
            self.params.startup_query_interval
        } else {
            self.params.query_interval
        };
        self.timers.set(Key::GeneralQuery, now + next);
    }

    /// Q(G) of the §6.4.2 tables: lower the group timer to LMQT and send
    /// LMQC group-specific queries LMQI apart. Only the querier sends.
    fn query_group(&mut self, now: Instant, g: Ipv4Addr) {
        if !self.querier {
            return;
        }
        self.timers.set_min(Key::Group(g), now + self.params.lmqt());
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.group_queries_left = self.params.last_member_query_count;
        }
        self.send_group_query(now, g);
    }

    fn send_group_query(&mut self, now: Instant, g: Ipv4Addr) {
        // A router that lost the election mid-way leaves the rest to the
        // new querier.
        let Some(grp) = self.groups.get_mut(&g).filter(|_| self.querier) else {
            return;
        };
        if grp.group_queries_left == 0 {
            return;
        }
        grp.group_queries_left -= 1;
        let more = grp.group_queries_left > 0;
        // §6.6.3.1: a retransmission sets S when a report has raised the
        // group timer above LMQT since the first query.
        let suppress = self
            .timers
            .get(&Key::Group(g))
            .is_some_and(|t| t > now + self.params.lmqt());
        let m = self.query(
            g,
            self.params.last_member_query_interval,
            suppress,
            Vec::new(),
        );
        self.send_query(g, m);
        if more {
            self.timers.set(
                Key::GroupQuery(g),
                now + self.params.last_member_query_interval,
            );
        }
    }

    /// Q(G,A) of the §6.4.2 tables: lower the sources' timers to LMQT and
    /// query them LMQC times (§6.6.3.2).
    fn query_sources(&mut self, now: Instant, g: Ipv4Addr, a: &BTreeSet<Ipv4Addr>) {
        if !self.querier || a.is_empty() {
            return;
        }
        let lmqt = now + self.params.lmqt();
        let lmqc = self.params.last_member_query_count;
        for s in a {
            self.timers.set_min(Key::Source(g, *s), lmqt);
            if let Some(grp) = self.groups.get_mut(&g) {
                grp.source_queries_left.insert(*s, lmqc);
            }
        }
        self.send_source_query(now, g);
    }

    fn send_source_query(&mut self, now: Instant, g: Ipv4Addr) {
        let lmqt = now + self.params.lmqt();
        // Source lists exist only in v3 queries.
        let v3 = self.version() == Version::V3;
        let Some(grp) = self.groups.get_mut(&g).filter(|_| self.querier && v3) else {
            return;
        };
        let timers = &self.timers;
        grp.source_queries_left
            .retain(|s, n| *n > 0 && timers.is_armed(&Key::Source(g, *s)));
        // §6.6.3.2: sources a report has refreshed since (timer above
        // LMQT) go in a query with S set, so that routers keep them; the
        // others in one with S clear.
        let (mut clear, mut set) = (Vec::new(), Vec::new());
        for (s, n) in grp.source_queries_left.iter_mut() {
            *n -= 1;
            if timers.get(&Key::Source(g, *s)).is_some_and(|t| t > lmqt) {
                set.push(*s);
            } else {
                clear.push(*s);
            }
        }
        let more = grp.source_queries_left.values().any(|n| *n > 0);
        let lmqi = self.params.last_member_query_interval;
        for (suppress, sources) in [(false, clear), (true, set)] {
            if !sources.is_empty() {
                let m = self.query(g, lmqi, suppress, sources);
                self.send_query(g, m);
            }
        }
        if more {
            self.timers.set(Key::SourceQuery(g), now + lmqi);
        }
    }

    /// A query heard on the link (never our own: the shell filters those).
    pub fn on_query(&mut self, now: Instant, src: Ipv4Addr, q: &Query) {
        self.counters.queries_received += 1;
        if q.version < Version::V3 {
            // §7.3.1: an older querier on the link pulls us down to its version.
            let (rv, qi) = self.rv_qi();
            self.older_querier = Some(q.version);
            self.timers
                .set(Key::OlderQuerier, now + self.params.oqpi(rv, qi));
        }
        // §6.6.2: the lowest address is querier; 0.0.0.0 (snooping
        // switches' proxy queries) takes no part in the election.
        if src.is_unspecified() || src >= self.address {
            return;
        }
        if q.version == Version::V3 {
            let qi = match q.qqi_secs() {
                0 => self.params.query_interval,
                s => Duration::from_secs(s as u64),
            };
            let rv = if q.qrv == 0 {
                self.params.robustness
            } else {
                q.qrv
            };
            self.learned = Some((rv, qi));
        }
        let was_querier = self.querier;
        self.querier = false;
        self.timers.cancel(&Key::GeneralQuery);
        self.startup_left = 0;
        let (rv, qi) = self.rv_qi();
        self.timers
            .set(Key::OtherQuerier, now + self.params.oqpi(rv, qi));
        if was_querier || self.current_querier != src {
            self.current_querier = src;
            self.emit(IgmpEvent::QuerierChange {
                ifindex: self.ifindex,
                querier: src,
                local: false,
            });
        }
        // §6.6.1: a non-querier lowers its timers on the querier's
        // group-specific queries unless told to suppress.
        if q.is_general() || q.suppress {
            return;
        }
        let g = q.group;
        let before = self.view(g);
        if !self.groups.contains_key(&g) {
            return;
        }
        let lmqt = now + self.params.lmqt();
        if q.sources.is_empty() {
            self.timers.set_min(Key::Group(g), lmqt);
        } else {
            for s in &q.sources {
                if self.timers.is_armed(&Key::Source(g, *s)) {
                    self.timers.set_min(Key::Source(g, *s), lmqt);
                }
            }
        }
        self.announce(g, before);
    }

    // ---- reports ------------------------------------------------------

    /// A v1 or v2 report: IS_EX({}) with the host compatibility timer
    /// (RFC 3376 §7.3.2).
    pub fn on_old_report(&mut self, now: Instant, src: Ipv4Addr, v: Version, g: Ipv4Addr) {
        self.counters.reports_received += 1;
        let key = if v == Version::V1 {
            Key::V1Host(g)
        } else {
            Key::V2Host(g)
        };
        let ohpi = self.gmi();
        self.timers.set(key, now + ohpi);
        self.record(now, src, RecordType::IsExclude, g, &[]);
    }

    /// A v2 leave: TO_IN({}) (§7.3.2), ignored while a v1 host is present.
    pub fn on_leave(&mut self, now: Instant, src: Ipv4Addr, g: Ipv4Addr) {
        self.counters.leaves_received += 1;
        self.record(now, src, RecordType::ToInclude, g, &[]);
    }

    pub fn on_v3_report(&mut self, now: Instant, src: Ipv4Addr, records: &[GroupRecord]) {
        self.counters.reports_received += 1;
        for r in records {
            self.record(now, src, r.kind, r.group, &r.sources);
        }
    }

    fn record(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        kind: RecordType,
        g: Ipv4Addr,
        sources: &[Ipv4Addr],
    ) {
        use FilterMode::*;
        use RecordType::*;
        let compat = self.group_version(g);
        let mut b: BTreeSet<Ipv4Addr> = sources.iter().copied().collect();
        // §7.3.2: in v2/v1 compatibility BLOCK is ignored and exclude
        // lists are read as empty; in v1 leaves (TO_IN) are ignored too.
        if compat < Version::V3 {
            match kind {
                BlockOld => return,
                IsExclude | ToExclude => b.clear(),
                ToInclude if compat == Version::V1 => return,
                _ => {}
            }
        }
        let before = self.view(g);
        let grp = self.groups.entry(g).or_insert_with(|| Group {
            mode: Include,
            sources: BTreeSet::new(),
            last_reporter: src,
            group_queries_left: 0,
            source_queries_left: BTreeMap::new(),
        });
        grp.last_reporter = src;
        let mode = grp.mode;
        let a = grp.sources.clone();
        let gmi = now + self.gmi();
        let x: BTreeSet<Ipv4Addr> = a
            .iter()
            .copied()
            .filter(|s| self.timers.is_armed(&Key::Source(g, *s)))
            .collect();
        let y: BTreeSet<Ipv4Addr> = a.difference(&x).copied().collect();
        let gt = self.timers.get(&Key::Group(g)).unwrap_or(gmi);
        match (mode, kind) {
            (Include, IsInclude | AllowNew) | (Exclude, IsInclude | AllowNew) => {
                self.add_sources(g, &b, Some(gmi));
            }
            (Include, IsExclude | ToExclude) => {
                // EXCLUDE(A*B, B-A): (B-A)=0, Delete(A-B), GT=GMI
                self.set_mode(g, Exclude);
                self.delete_sources(g, &a.difference(&b).copied().collect());
                self.add_sources(g, &b.difference(&a).copied().collect(), None);
                self.timers.set(Key::Group(g), gmi);
                if kind == ToExclude {
                    self.query_sources(now, g, &a.intersection(&b).copied().collect());
                }
            }
            (Include, ToInclude) => {
                self.add_sources(g, &b, Some(gmi));
                self.query_sources(now, g, &a.difference(&b).copied().collect());
            }
            (Include, BlockOld) => {
                self.query_sources(now, g, &a.intersection(&b).copied().collect());
            }
            (Exclude, IsExclude | ToExclude) => {
                // EXCLUDE(A-Y, Y*A): (A-X-Y)=GMI or GT, Delete(X-A), Delete(Y-A)
                let new: BTreeSet<Ipv4Addr> = b.difference(&a).copied().collect();
                self.delete_sources(g, &a.difference(&b).copied().collect());
                let t = if kind == IsExclude { gmi } else { gt };
                self.add_sources(g, &new, Some(t));
                if kind == ToExclude {
                    self.query_sources(now, g, &b.difference(&y).copied().collect());
                }
                self.timers.set(Key::Group(g), gmi);
            }
            (Exclude, ToInclude) => {
                self.add_sources(g, &b, Some(gmi));
                self.query_sources(now, g, &x.difference(&b).copied().collect());
                self.query_group(now, g);
            }
            (Exclude, BlockOld) => {
                // EXCLUDE(X+(A-X-Y), Y): (A-X-Y)=Group Timer, Send Q(G,A-Y)
                let new: BTreeSet<Ipv4Addr> = b.difference(&a).copied().collect();
                self.add_sources(g, &new, Some(gt));
                self.query_sources(now, g, &b.difference(&y).copied().collect());
            }
        }
        self.drop_if_empty(g);
        self.announce(g, before);
    }

    fn set_mode(&mut self, g: Ipv4Addr, mode: FilterMode) {
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.mode = mode;
        }
        if mode == FilterMode::Include {
            self.timers.cancel(&Key::Group(g));
        }
    }

    /// Add sources; `Some(t)` arms (or re-arms) their timers, `None` adds
    /// them blocked (EXCLUDE's Y).
    fn add_sources(&mut self, g: Ipv4Addr, s: &BTreeSet<Ipv4Addr>, at: Option<Instant>) {
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.sources.extend(s.iter().copied());
        }
        for src in s {
            match at {
                Some(t) => self.timers.set(Key::Source(g, *src), t),
                None => {
                    self.timers.cancel(&Key::Source(g, *src));
                }
            }
        }
    }

    fn delete_sources(&mut self, g: Ipv4Addr, s: &BTreeSet<Ipv4Addr>) {
        if let Some(grp) = self.groups.get_mut(&g) {
            for src in s {
                grp.sources.remove(src);
                grp.source_queries_left.remove(src);
            }
        }
        for src in s {
            self.timers.cancel(&Key::Source(g, *src));
        }
    }

    /// An INCLUDE group with no sources has no members (§6.2.1).
    fn drop_if_empty(&mut self, g: Ipv4Addr) {
        let empty = self
            .groups
            .get(&g)
            .is_some_and(|grp| grp.mode == FilterMode::Include && grp.sources.is_empty());
        if empty {
            self.remove_group(g);
        }
    }

    // ---- timers -------------------------------------------------------

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_due(now) {
            match k {
                Key::GeneralQuery => {
                    if self.querier {
                        self.send_general_query(now);
                    }
                }
                Key::OtherQuerier => {
                    // §6.6.2 / RFC 2236 §3: no querier heard: take over.
                    self.querier = true;
                    self.learned = None;
                    self.current_querier = self.address;
                    self.emit(IgmpEvent::QuerierChange {
                        ifindex: self.ifindex,
                        querier: self.address,
                        local: true,
                    });
                    self.send_general_query(now);
                }
                Key::OlderQuerier => self.older_querier = None,
                Key::V1Host(_) | Key::V2Host(_) => {}
                Key::GroupQuery(g) => self.send_group_query(now, g),
                Key::SourceQuery(g) => self.send_source_query(now, g),
                Key::Group(g) => {
                    // §6.5: EXCLUDE falls back to INCLUDE of the sources
                    // still timed, or the group goes.
                    let before = self.view(g);
                    if let Some(grp) = self.groups.get(&g) {
                        // A source timer ending at this same instant has
                        // ended: the group must not flap to INCLUDE of it.
                        let timed: BTreeSet<Ipv4Addr> = grp
                            .sources
                            .iter()
                            .copied()
                            .filter(|s| {
                                self.timers
                                    .get(&Key::Source(g, *s))
                                    .is_some_and(|t| t > now)
                            })
                            .collect();
                        let blocked: BTreeSet<Ipv4Addr> =
                            grp.sources.difference(&timed).copied().collect();
                        self.delete_sources(g, &blocked);
                        self.set_mode(g, FilterMode::Include);
                        self.drop_if_empty(g);
                    }
                    self.announce(g, before);
                }
                Key::Source(g, s) => {
                    // The timer is already popped; before it was, an
                    // EXCLUDE group forwarded this source.
                    let mut before = self.view(g);
                    if let Some((FilterMode::Exclude, blocked)) = before.as_mut() {
                        blocked.retain(|x| *x != s);
                    }
                    if self
                        .groups
                        .get(&g)
                        .is_some_and(|grp| grp.mode == FilterMode::Include)
                    {
                        self.delete_sources(g, &BTreeSet::from([s]));
                        self.drop_if_empty(g);
                    }
                    // In EXCLUDE an expired source stays, blocked (§6.3).
                    self.announce(g, before);
                }
            }
        }
    }

    // ---- views --------------------------------------------------------

    pub fn groups(&self, now: Instant) -> Vec<GroupSnapshot> {
        self.groups
            .iter()
            .map(|(g, grp)| GroupSnapshot {
                group: *g,
                mode: grp.mode,
                sources: grp
                    .sources
                    .iter()
                    .map(|s| (*s, left(self.timers.get(&Key::Source(*g, *s)), now)))
                    .collect(),
                last_reporter: grp.last_reporter,
                expires: left(self.timers.get(&Key::Group(*g)), now),
                version: self.group_version(*g) as u8,
            })
            .collect()
    }

    pub fn querier(&self, now: Instant) -> QuerierSnapshot {
        QuerierSnapshot {
            address: self.address,
            querier: self.querier,
            current_querier: self.current_querier,
            other_querier_expires: left(self.timers.get(&Key::OtherQuerier), now),
            version: self.version() as u8,
            counters: self.counters.clone(),
        }
    }

    /// Every group with members now, for a restarted shell to re-announce.
    pub fn members(&self) -> Vec<(Ipv4Addr, FilterMode, Vec<Ipv4Addr>)> {
        self.groups
            .keys()
            .filter_map(|g| self.view(*g).map(|(m, s)| (*g, m, s)))
            .collect()
    }
}
