//! The events `mcrd` streams to `subscribe` clients (one JSON object a
//! line, tagged by `event`) and the classes a client picks them by. Part
//! of the control protocol (see the parent module); no RFC.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::RuleState;

/// Event classes a subscriber may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Rules,
    Workers,
    Interfaces,
    Config,
    Actors,
    Pim,
    Igmp,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Rules,
        EventKind::Workers,
        EventKind::Interfaces,
        EventKind::Config,
        EventKind::Actors,
        EventKind::Pim,
        EventKind::Igmp,
    ];

    pub fn parse(s: &str) -> Result<EventKind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rules" | "rule" => Ok(EventKind::Rules),
            "workers" | "worker" => Ok(EventKind::Workers),
            "interfaces" | "interface" => Ok(EventKind::Interfaces),
            "config" => Ok(EventKind::Config),
            "actors" | "actor" => Ok(EventKind::Actors),
            "pim" => Ok(EventKind::Pim),
            "igmp" => Ok(EventKind::Igmp),
            other => Err(format!(
                "unknown event class {other:?}; classes are rules, workers, interfaces, config, actors, pim, igmp"
            )),
        }
    }
}

/// Something that happened, as streamed to subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RuleAdded {
        id: String,
        name: Option<String>,
    },
    RuleRemoved {
        id: String,
    },
    RuleChanged {
        id: String,
    },
    RuleState {
        id: String,
        state: RuleState,
        reason: Option<String>,
    },
    WorkerStarted {
        interface: String,
        index: u32,
        pid: u32,
    },
    WorkerExited {
        interface: String,
        index: u32,
        pid: u32,
        reason: String,
        restarts: u32,
    },
    WorkerResynced {
        interface: String,
        index: u32,
        reason: String,
    },
    WorkerIdleExit {
        interface: String,
    },
    InterfaceUp {
        name: String,
    },
    InterfaceDown {
        name: String,
    },
    InterfaceAdded {
        name: String,
        ifindex: u32,
    },
    InterfaceRemoved {
        name: String,
    },
    ConfigApplied {
        added: u32,
        removed: u32,
        changed: u32,
    },
    ActorRestarted {
        name: String,
        restarts: u32,
        reason: String,
    },
    /// A PIM router's first Hello on one of our PIM interfaces.
    PimNeighborUp {
        interface: String,
        neighbor: Ipv4Addr,
    },
    /// A PIM neighbor is gone: `expired`, `goodbye`, `interface_down`,
    /// `pim_disabled`.
    PimNeighborDown {
        interface: String,
        neighbor: Ipv4Addr,
        reason: String,
    },
    /// A neighbor came back with a new generation id (it restarted).
    PimNeighborRestarted {
        interface: String,
        neighbor: Ipv4Addr,
    },
    /// The Designated Router of a PIM interface changed.
    PimDrChange {
        interface: String,
        old: Option<Ipv4Addr>,
        new: Ipv4Addr,
        we_are_dr: bool,
    },
    /// PIM installed or changed a learned (*,G) (`source` null) or (S,G)
    /// route: packets from `upstream` go to `downstream`.
    PimRoute {
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        upstream: String,
        downstream: Vec<String>,
    },
    /// PIM withdrew its route for (*,G) or (S,G).
    PimRouteWithdrawn {
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    },
    /// The subscriber fell behind and `missed` events were dropped for it.
    Lagged {
        missed: u64,
    },
    /// A group got its first member on a querier interface.
    IgmpJoin {
        interface: String,
        group: Ipv4Addr,
    },
    /// The last member of a group left or stopped answering queries.
    IgmpLeave {
        interface: String,
        group: Ipv4Addr,
    },
    /// The querier of an interface changed; `local`: MCR is the querier.
    IgmpQuerier {
        interface: String,
        querier: Ipv4Addr,
        local: bool,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::RuleAdded { .. }
            | Event::RuleRemoved { .. }
            | Event::RuleChanged { .. }
            | Event::RuleState { .. } => EventKind::Rules,
            Event::WorkerStarted { .. }
            | Event::WorkerExited { .. }
            | Event::WorkerResynced { .. }
            | Event::WorkerIdleExit { .. } => EventKind::Workers,
            Event::InterfaceUp { .. }
            | Event::InterfaceDown { .. }
            | Event::InterfaceAdded { .. }
            | Event::InterfaceRemoved { .. } => EventKind::Interfaces,
            Event::ConfigApplied { .. } => EventKind::Config,
            Event::ActorRestarted { .. } | Event::Lagged { .. } => EventKind::Actors,
            Event::PimNeighborUp { .. }
            | Event::PimNeighborDown { .. }
            | Event::PimNeighborRestarted { .. }
            | Event::PimDrChange { .. }
            | Event::PimRoute { .. }
            | Event::PimRouteWithdrawn { .. } => EventKind::Pim,
            Event::IgmpJoin { .. } | Event::IgmpLeave { .. } | Event::IgmpQuerier { .. } => {
                EventKind::Igmp
            }
        }
    }
}

/// An event with its time (Unix seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedEvent {
    pub time: f64,
    /// This run of the daemon: a random UUID (v4) chosen at start, so a
    /// client can tell a restarted daemon from the one it was talking to.
    #[serde(default)]
    pub instance_id: String,
    #[serde(flatten)]
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Request;

    #[test]
    fn events_carry_their_kind_and_time() {
        let e = TimedEvent {
            time: 1.5,
            instance_id: "5f0c1d9e-8a4b-4c2e-9f7a-0b1c2d3e4f50".into(),
            event: Event::RuleAdded {
                id: "x".into(),
                name: None,
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains(r#""event":"rule-added""#), "{s}");
        assert!(
            s.contains(r#""instance_id":"5f0c1d9e-8a4b-4c2e-9f7a-0b1c2d3e4f50""#),
            "{s}"
        );
        // Events from a daemon that predates instance ids still parse.
        let old: TimedEvent =
            serde_json::from_str(r#"{"time":1.0,"event":"rule-removed","id":"x"}"#).unwrap();
        assert_eq!(old.instance_id, "");
        assert_eq!(serde_json::from_str::<TimedEvent>(&s).unwrap(), e);
        assert_eq!(e.event.kind(), EventKind::Rules);
    }

    #[test]
    fn igmp_events_are_their_own_class_and_wire_names() {
        let e = Event::IgmpQuerier {
            interface: "eth1".into(),
            querier: Ipv4Addr::new(10, 0, 0, 1),
            local: true,
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains(r#""event":"igmp-querier""#), "{s}");
        assert_eq!(e.kind(), EventKind::Igmp);
        assert_eq!(EventKind::parse("IGMP"), Ok(EventKind::Igmp));
        let join = Event::IgmpJoin {
            interface: "eth1".into(),
            group: Ipv4Addr::new(239, 1, 1, 1),
        };
        assert!(serde_json::to_string(&join)
            .unwrap()
            .contains(r#""event":"igmp-join""#));
        assert!(!Request::IgmpGroups.mutates());
    }
}
