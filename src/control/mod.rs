//! The control protocol between `mcrctl` (or any client) and `mcrd`.
//!
//! Owns: the request and response types, their framing, the protocol
//! version, and a blocking client.
//!
//! Framing is newline-delimited JSON over a Unix stream socket: a client
//! writes one request object per line and reads one response object per
//! line; a connection may carry many requests. `subscribe` turns the
//! connection into a stream of event lines. A line longer than
//! `MAX_REQUEST` (32 MiB and a little: a 16 MiB config, escaped) is
//! refused. Every request carries `version`; a daemon refuses a version it
//! does not speak, naming both.
//!
//! ```text
//! → {"version":1,"cmd":"add","input":{"interface":"eth0","group":"239.1.1.1","port":5000},"outputs":[...]}
//! ← {"ok":true,"result":{"id":"3f2a…","message":"rule 3f2a… added"}}
//! ← {"ok":false,"error":"outputs[0].group: \"239.x\" is not an IPv4 address"}
//! ```

pub mod client;
mod events;
pub mod trace;

pub use events::{Event, EventKind, TimedEvent};

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::ipc::WorkerCounters;
use crate::logging::{Facility, Severity};
use crate::rule::{Rule, RuleInput, RuleOutput};

/// Bump when a request or response changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line: room for `config load` of the largest
/// configuration a file may hold (`MAX_CONFIG_BYTES`, 16 MiB) with every
/// byte escaped once in the JSON string (a newline or a quote becomes two
/// bytes), plus the request around it. A daemon holds a line this long for
/// at most a few clients at once (see `LARGE_REQUEST`).
pub const MAX_REQUEST: usize = 2 * crate::config::MAX_CONFIG_BYTES + 64 * 1024;
/// Request lines up to this size are read by every connection at once;
/// only `config load` / `config check` of a big file need more, and a
/// daemon reads at most a few of those at a time, so that many clients
/// sending long lines cannot make it hold `MAX_REQUEST` each.
pub const LARGE_REQUEST: usize = 1 << 20;
/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/mcr/control.sock";

/// A request and the protocol version it speaks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// Fault injection kinds (`mcrctl fault`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultRequest {
    KillWorker {
        #[serde(default)]
        interface: Option<String>,
    },
    StallWorker {
        #[serde(default)]
        interface: Option<String>,
    },
    CorruptTable {
        #[serde(default)]
        interface: Option<String>,
    },
    DropIpc {
        count: u32,
        #[serde(default)]
        interface: Option<String>,
    },
    PanicActor {
        name: String,
    },
    /// The actor's handler blocks for `secs` seconds (a stuck actor).
    WedgeActor {
        name: String,
        secs: u64,
    },
    DeleteSocket,
    /// The worker panics right after each of its next `count` starts.
    CrashLoop {
        count: u32,
        #[serde(default)]
        interface: Option<String>,
    },
}

/// Every command. One request, one actor message in the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Ping,
    Version,
    Add {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        input: RuleInput,
        outputs: Vec<RuleOutput>,
    },
    Remove {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
    },
    List,
    Stats,
    Workers,
    Status,
    Mroute,
    /// PIM neighbors on every PIM interface (`pim::instance::NeighborSnapshot`).
    PimNeighbors,
    /// PIM interfaces with DR and counters (`pim::instance::InterfaceSnapshot`).
    PimInterfaces,
    /// PIM (*,G)/(S,G) upstream state and routes (`pim::instance::UpstreamSnapshot`).
    PimRoutes,
    /// The static RP table (`pim::instance::RpSnapshot`).
    PimRp,
    /// Register state at the DR and the RP (`pim::instance::RegisterReport`).
    PimRegister,
    /// Assert state per interface and (S,G)/(*,G) (`pim::instance::AssertSnapshot`).
    PimAssert,
    ConfigShow,
    /// Validate a config file's text.
    ConfigCheck {
        text: String,
    },
    /// Apply a config file's text: merge by rule id, or replace all rules.
    ConfigLoad {
        text: String,
        replace: bool,
    },
    /// Write the running config to the startup config file.
    ConfigSave,
    /// Re-read the startup config file (same as SIGHUP).
    ConfigReload,
    LogLevelGet,
    LogLevelSet {
        #[serde(default)]
        facility: Option<Facility>,
        level: Severity,
    },
    Subscribe {
        #[serde(default)]
        events: Vec<EventKind>,
    },
    Fault(FaultRequest),
    /// IGMP groups on the querier interfaces (`Vec<igmp::instance::GroupRow>`).
    IgmpGroups,
    /// IGMP querier state per interface (`Vec<igmp::instance::InterfaceRow>`).
    IgmpInterfaces,
    /// Keep the last `count` packets of a rule (`trace::check_count`).
    TraceEnable {
        rule_id: String,
        #[serde(default)]
        count: Option<u32>,
    },
    TraceDisable {
        rule_id: String,
    },
    /// The traces (`trace::TraceReport`), of one rule or all.
    TraceShow {
        #[serde(default)]
        rule_id: Option<String>,
    },
}

impl Request {
    /// Whether the request changes daemon state (and so needs the control
    /// group or root).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Request::Add { .. }
                | Request::Remove { .. }
                | Request::ConfigLoad { .. }
                | Request::ConfigSave
                | Request::ConfigReload
                | Request::LogLevelSet { .. }
                | Request::Fault(_)
                | Request::TraceEnable { .. }
                | Request::TraceDisable { .. }
        )
    }
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::err(format!("internal error encoding the response: {e}")),
        }
    }

    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(msg.into()),
        }
    }
}

/// Result of a mutating command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Done, but worth a look (e.g. a forwarding loop among the rules);
    /// `mcrctl` prints each to stderr and still exits 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Done {
    pub fn new(message: impl Into<String>, id: Option<String>) -> Done {
        Done {
            message: message.into(),
            id,
            warnings: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub daemon: String,
    pub protocol: u32,
    pub ipc: u32,
    /// This run of the daemon: a random UUID (v4) chosen at start, so a
    /// client can tell a restarted daemon from the one it was talking to.
    #[serde(default)]
    pub instance_id: String,
}

/// State of a rule as the daemon sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleState {
    /// Installed in a running worker.
    Active,
    /// Its input interface does not exist (yet).
    Pending,
    /// Its input interface exists but is down.
    InterfaceDown,
    /// Its worker is starting or restarting.
    Starting,
    /// Something prevents it from forwarding; see `reason`.
    Error,
}

impl RuleState {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Active => "active",
            RuleState::Pending => "pending",
            RuleState::InterfaceDown => "interface down",
            RuleState::Starting => "starting",
            RuleState::Error => "error",
        }
    }
}

/// One output of a listed rule, with its own state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputInfo {
    #[serde(flatten)]
    pub output: RuleOutput,
    /// `None` when it is ready; otherwise why it cannot send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// A members-only output whose interface has no IGMP member of its
    /// group: left out of the table until one joins.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_members: bool,
}

/// A rule in `list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub input: RuleInput,
    pub outputs: Vec<OutputInfo>,
    pub state: RuleState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RuleInfo {
    /// The rule without its runtime state.
    pub fn rule(&self) -> Rule {
        Rule {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.clone(),
            outputs: self.outputs.iter().map(|o| o.output.clone()).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputStats {
    pub interface: String,
    pub group: Ipv4Addr,
    pub port: u16,
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    pub pps: f64,
    pub bps: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleStats {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub interface: String,
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    pub pps: f64,
    pub bps: f64,
    pub outputs: Vec<OutputStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub interface: String,
    pub index: u32,
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub counters: WorkerCounters,
    /// Frames received per second.
    pub recv_pps: f64,
    /// Datagrams sent per second.
    pub sent_pps: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub rules: Vec<RuleStats>,
    pub workers: Vec<WorkerStats>,
}

/// A worker in `workers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub interface: String,
    pub index: u32,
    pub pid: Option<u32>,
    pub core: Option<u32>,
    /// starting, running, restarting, stopping, idle.
    pub state: String,
    pub uptime_secs: f64,
    pub restarts: u32,
    pub rules: u32,
    pub table_hash: String,
    pub expected_hash: String,
    /// Full table resyncs since start (drift repairs).
    pub resyncs: u32,
    pub last_heartbeat_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Time until the next restart attempt, while restarting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

/// An actor in `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorInfo {
    /// Path in the tree, e.g. `root/workers`.
    pub name: String,
    pub state: String,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    /// This run of the daemon: a random UUID (v4) chosen at start, so a
    /// client can tell a restarted daemon from the one it was talking to.
    #[serde(default)]
    pub instance_id: String,
    pub pid: u32,
    pub uptime_secs: f64,
    pub config_file: Option<String>,
    pub fault_injection: bool,
    pub rules: u32,
    pub workers: u32,
    pub actors: Vec<ActorInfo>,
}

/// An entry of the compiled forwarding table (`mroute`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MrouteEntry {
    pub interface: String,
    pub group: Ipv4Addr,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    pub outputs: Vec<String>,
    /// Where the entry came from: `static` (a rule), or the protocol that
    /// learned it: `igmp`, `pim`, `msdp` (`rib::Origin`). An output that
    /// only an IGMP membership added ends in `(igmp member)`.
    pub origin: String,
    pub rule_id: String,
    /// Every origin that contributed to the entry, `origin` first (a PIM
    /// route with IGMP members: `pim`, `igmp`). Empty from a daemon that
    /// predates it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    /// A learned entry that a static rule keeps out of the table: that
    /// rule's id. Such an entry is listed but forwards nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadowed_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigCheckResult {
    pub valid: bool,
    pub rules: u32,
    pub errors: Vec<crate::config::ConfigError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigText {
    pub text: String,
}

/// Parse one request line. The error text is what the client is told.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: not JSON ({e})"))?;
    let version = v.get("version").and_then(|x| x.as_u64());
    match version {
        Some(x) if x == u64::from(PROTOCOL_VERSION) => {}
        Some(x) => {
            return Err(format!(
            "protocol version {x} is not supported; this daemon speaks version {PROTOCOL_VERSION}"
        ))
        }
        None => return Err("malformed request: missing \"version\"".into()),
    }
    let cmd = v.get("cmd").and_then(|c| c.as_str()).map(str::to_string);
    let given: Vec<String> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    match serde_json::from_value::<Envelope>(v) {
        Ok(env) => {
            // serde ignores unknown fields on commands without arguments;
            // a field we would silently drop may change what the client
            // meant (e.g. a path), so refuse it.
            let back = serde_json::to_value(&env).unwrap_or_default();
            if let Some(extra) = given.iter().find(|k| back.get(k.as_str()).is_none()) {
                return Err(format!(
                    "bad {:?} request: unknown field `{extra}`",
                    cmd.unwrap_or_default()
                ));
            }
            Ok(env.request)
        }
        Err(e) => Err(match cmd {
            None => "malformed request: missing \"cmd\"".to_string(),
            Some(c) if e.to_string().contains("unknown variant") => {
                format!("unknown command {c:?}")
            }
            Some(c) => format!("bad {c:?} request: {e}"),
        }),
    }
}

/// Encode a request line (with its newline).
pub fn encode_request(req: &Request) -> Vec<u8> {
    let env = Envelope {
        version: PROTOCOL_VERSION,
        request: req.clone(),
    };
    let mut v = serde_json::to_vec(&env).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = vec![
            Request::Ping,
            Request::Add {
                id: None,
                name: Some("video".into()),
                input: RuleInput {
                    interface: "eth0".into(),
                    group: "239.1.1.1".parse().unwrap(),
                    port: 5000,
                    source: None,
                },
                outputs: vec![crate::rule::parse_output_spec("239.2.2.2:6000:eth1").unwrap()],
            },
            Request::Remove {
                id: Some("abc".into()),
                name: None,
            },
            Request::ConfigLoad {
                text: "{rules: []}".into(),
                replace: true,
            },
            Request::LogLevelSet {
                facility: Some(Facility::Ingress),
                level: Severity::Debug,
            },
            Request::Subscribe {
                events: vec![EventKind::Rules],
            },
            Request::Fault(FaultRequest::DropIpc {
                count: 3,
                interface: None,
            }),
            Request::IgmpGroups,
            Request::IgmpInterfaces,
        ];
        for r in reqs {
            let line = encode_request(&r);
            assert_eq!(*line.last().unwrap(), b'\n');
            assert_eq!(parse_request(&line[..line.len() - 1]).unwrap(), r);
        }
    }

    #[test]
    fn bad_requests_name_the_problem() {
        assert!(parse_request(b"{nope").unwrap_err().contains("not JSON"));
        assert!(parse_request(br#"{"cmd":"ping"}"#)
            .unwrap_err()
            .contains("version"));
        assert!(parse_request(br#"{"version":99,"cmd":"ping"}"#)
            .unwrap_err()
            .contains("version 99"));
        assert_eq!(
            parse_request(br#"{"version":1,"cmd":"launch-missiles"}"#).unwrap_err(),
            "unknown command \"launch-missiles\""
        );
        assert!(parse_request(br#"{"version":1}"#)
            .unwrap_err()
            .contains("cmd"));
        let e = parse_request(br#"{"version":1,"cmd":"config-save","file":"/tmp/x"}"#).unwrap_err();
        assert!(e.contains("unknown field `file`"), "{e}");
        assert!(parse_request(br#"{"version":1,"cmd":"list","filter":"x"}"#).is_err());
        assert!(parse_request(br#"{"version":1,"cmd":"remove","id":"a","name":null}"#).is_ok());
        let e = parse_request(br#"{"version":1,"cmd":"add","input":{"interface":"eth0","group":"239.1.1.x","port":1},"outputs":[]}"#)
            .unwrap_err();
        assert!(e.contains("add"), "{e}");
    }
}
