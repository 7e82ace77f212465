//! The ingress pipeline, frame → sends: whatever arrives on the wire, it
//! must not panic, every send must lie inside the frame, and a frame it
//! forwards must have been an intact IPv4/UDP packet.
//!
//! Input: byte 0 picks the frame format (bit 0: virtio_net_hdr first,
//! bit 1: a 14-byte link header), byte 1 how many bytes more the kernel
//! claims than the buffer holds (0-3), the rest is the frame.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use mcr::dataplane::pipeline::{process, Send, Verdict};
use mcr::dataplane::table::Table;
use mcr::ipc::{rule_key, FrameFormat, TableOutput, TableRule, WorkerCounters};
use mcr::rule::OutputMode;
use mcr::wire::{Ipv4, Udp};

fn rule(id: &str, group: [u8; 4], port: u16, source: Option<[u8; 4]>, route: bool) -> TableRule {
    let out = |egress, mode| TableOutput {
        egress,
        group: Ipv4Addr::new(239, 2, 2, 2),
        port: 0,
        mode,
    };
    let mut outputs = vec![out(0, OutputMode::Republish), out(1, OutputMode::Republish)];
    if route {
        outputs.push(out(2, OutputMode::Route));
    }
    TableRule {
        key: rule_key(id),
        id: id.into(),
        group: group.into(),
        port,
        source: source.map(Ipv4Addr::from),
        outputs,
    }
}

/// Rules the seeds hit: the test groups, any port, a source filter, and
/// the link-local groups of the captured IGMP/PIM traffic.
fn table() -> Table {
    let mut t = Table::new();
    t.upsert(rule("fixed", [239, 1, 1, 1], 5000, None, true));
    t.upsert(rule("any-port", [239, 255, 255, 250], 0, None, false));
    t.upsert(rule("ssm", [232, 1, 1, 1], 0, Some([10, 0, 0, 1]), true));
    t.upsert(rule("data", [239, 9, 9, 9], 0, None, true));
    t.upsert(rule("pim", [224, 0, 0, 13], 0, None, true));
    t.upsert(rule("unicast", [10, 10, 1, 2], 7000, None, false));
    t
}

struct State {
    table: Table,
    sends: Vec<Send>,
    counters: WorkerCounters,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let [sel, slack, frame @ ..] = data else {
        return;
    };
    let fmt = FrameFormat {
        vnet: sel & 1 != 0,
        link_header: if sel & 2 != 0 { 14 } else { 0 },
    };
    let mut frame = frame.to_vec();
    let received = frame.len() + usize::from(slack % 4);
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let st = guard.get_or_insert_with(|| State {
        table: table(),
        sends: Vec::new(),
        counters: WorkerCounters::default(),
    });
    let before = frame.clone();
    let v = process(
        &mut frame,
        received,
        fmt,
        &mut st.table,
        &mut st.sends,
        &mut st.counters,
    );
    for s in &st.sends {
        assert!(
            (s.offset as usize + s.len as usize) <= frame.len(),
            "send beyond the frame: {s:?}"
        );
    }
    match v {
        Verdict::Forward { .. } => {
            assert_eq!(received, frame.len(), "forwarded a cut frame");
            let ip = Ipv4::new_checked(&before[fmt.ip_offset()..]).expect("forwarded non-IPv4");
            assert!(ip.header_checksum_ok(), "forwarded a bad header");
            assert!(ip.ttl() > 0, "forwarded TTL 0");
            assert!(!ip.is_fragment(), "forwarded a fragment");
            assert!(Udp::new_checked(ip.payload()).is_ok(), "forwarded bad UDP");
        }
        _ => assert!(st.sends.is_empty(), "sends for a dropped frame"),
    }
});
