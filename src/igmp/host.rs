//! The host side of IGMP on one interface, for the IGMP proxy's upstream
//! (RFC 4605 §4.1: the proxy reports the aggregated downstream membership
//! upstream as a host would). Implements the host parts of RFC 2236 §3
//! (unsolicited reports, delayed responses to queries, leave on the last
//! leave) and RFC 3376 §5 (state-change reports repeated robustness times,
//! current-state records answering queries) and the host compatibility
//! mode of RFC 3376 §7.2 (an older querier heard → its version's messages).
//!
//! Owns: the joined set, pending response and retransmission deadlines. A
//! proxy reports whole-group (ASM) membership: every join is EXCLUDE {}.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::codec::{
    decode, encode, GroupRecord, Message, RecordType, Version, ALL_ROUTERS, ALL_V3_ROUTERS,
};
use super::config::IgmpParams;
use crate::proto::{Protocol, Rng, Timers, Transmit};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    pub ifindex: u32,
    pub address: Ipv4Addr,
    pub params: IgmpParams,
}

/// The proxy's upstream membership changed: the groups to be a member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMemberships(pub BTreeSet<Ipv4Addr>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Repetition of an unsolicited join (count left) or leave.
    Join(Ipv4Addr, u8),
    Leave(Ipv4Addr, u8),
    /// A delayed answer to a query for one group.
    Respond(Ipv4Addr),
    /// A delayed v3 answer to a general query: all groups.
    RespondAll,
    OlderQuerier,
}

/// See the module documentation.
#[derive(Debug)]
pub struct IgmpHost {
    config: HostConfig,
    joined: BTreeSet<Ipv4Addr>,
    older_querier: Option<Version>,
    timers: Timers<Key>,
    rng: Rng,
    tx: VecDeque<Transmit>,
    pub reports_sent: u64,
    pub leaves_sent: u64,
}

impl IgmpHost {
    pub fn new(config: HostConfig, rng: Rng) -> Self {
        IgmpHost {
            config,
            joined: BTreeSet::new(),
            older_querier: None,
            timers: Timers::new(),
            rng,
            tx: VecDeque::new(),
            reports_sent: 0,
            leaves_sent: 0,
        }
    }

    pub fn joined(&self) -> &BTreeSet<Ipv4Addr> {
        &self.joined
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

    fn report(&mut self, groups: &[Ipv4Addr], kind: RecordType) {
        if groups.is_empty() {
            return;
        }
        self.reports_sent += 1;
        match self.version() {
            Version::V3 => {
                let recs = groups
                    .iter()
                    .map(|g| GroupRecord {
                        kind,
                        group: *g,
                        sources: Vec::new(),
                    })
                    .collect();
                self.send(ALL_V3_ROUTERS, Message::V3Report(recs));
            }
            Version::V2 => {
                for g in groups {
                    self.send(*g, Message::V2Report(*g));
                }
            }
            Version::V1 => {
                for g in groups {
                    self.send(*g, Message::V1Report(*g));
                }
            }
        }
    }

    fn leave(&mut self, g: Ipv4Addr) {
        match self.version() {
            Version::V3 => {
                self.leaves_sent += 1;
                let r = vec![GroupRecord {
                    kind: RecordType::ToInclude,
                    group: g,
                    sources: Vec::new(),
                }];
                self.send(ALL_V3_ROUTERS, Message::V3Report(r));
            }
            Version::V2 => {
                self.leaves_sent += 1;
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
                for g in self.joined.clone() {
                    let at = now + self.rng.jitter(max);
                    self.timers.set_min(Key::Respond(g), at);
                }
            }
        } else if self.joined.contains(&q.group) {
            self.timers.set_min(Key::Respond(q.group), at);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_due(now) {
            match k {
                Key::Join(g, n) => {
                    if self.joined.contains(&g) {
                        let kind = RecordType::ToExclude;
                        self.report(&[g], kind);
                        if n > 1 {
                            let at = self.repeat_at(now);
                            self.timers.set(Key::Join(g, n - 1), at);
                        }
                    }
                }
                Key::Leave(g, n) => {
                    if !self.joined.contains(&g) {
                        self.leave(g);
                        if n > 1 && self.version() == Version::V3 {
                            let at = self.repeat_at(now);
                            self.timers.set(Key::Leave(g, n - 1), at);
                        }
                    }
                }
                Key::Respond(g) => {
                    if self.joined.contains(&g) {
                        self.report(&[g], RecordType::IsExclude);
                    }
                }
                Key::RespondAll => {
                    let all: Vec<Ipv4Addr> = self.joined.iter().copied().collect();
                    self.report(&all, RecordType::IsExclude);
                }
                Key::OlderQuerier => self.older_querier = None,
            }
        }
    }

    fn handle_config(&mut self, _now: Instant, config: HostConfig) {
        self.config = config;
    }

    fn handle_event(&mut self, now: Instant, SetMemberships(want): SetMemberships) {
        let rv = self.config.params.robustness;
        let added: Vec<Ipv4Addr> = want.difference(&self.joined).copied().collect();
        let removed: Vec<Ipv4Addr> = self.joined.difference(&want).copied().collect();
        self.joined = want;
        for g in added {
            self.timers
                .retain(|k| !matches!(k, Key::Leave(x, _) if *x == g));
            self.timers.set(Key::Join(g, rv), now);
        }
        for g in removed {
            self.timers
                .retain(|k| !matches!(k, Key::Join(x, _) | Key::Respond(x) if *x == g));
            self.timers.set(Key::Leave(g, rv), now);
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
