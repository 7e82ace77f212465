//! Interop with FRR (Debian `frr`, 8.4) as the real PIM/IGMP peer, through
//! the harness in `tests/common/frr.rs`: groundwork for issues 9 (IGMP) and
//! 10 (PIM-SM).
//!
//! Checks what a future MCR PIM or IGMP actor will see from FRR on the wire
//! (RFC 7761 4.9.2 Hello with its Holdtime option, RFC 3376 4.1 general
//! query with the configured Max Resp Code and QQIC, both with TTL 1, the
//! query with Router Alert per RFC 2113), and that FRR's view of a Linux
//! host's membership can be read through `vtysh ... json`.
//!
//! `tests/data/frr/` holds one Hello and one query captured by this test
//! (whole IPv4 packets, as a raw socket returns them) for codec tests; the
//! test checks the stored packets with the same rules as the live ones.
//! `MCR_UPDATE_FIXTURES=1` rewrites them from the live capture.

mod common;

use common::frr::{require_frr, require_troglobit_pimd, FrrRouter, TroglobitPimd};
use common::lab::LabSpec;
use common::{veth, Netns};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const R1: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 2);
const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const IPPROTO_IGMP: i32 = 2;
const IPPROTO_PIM: i32 = 103;

/// Non-default values, so the checks prove FRR applied our config.
const HELLO_INTERVAL: u16 = 10;
/// FRR (like RFC 7761's default) advertises 3.5 x the Hello period.
const HELLO_HOLDTIME: u16 = 35;
const QUERY_INTERVAL: u8 = 20;
/// Tenths of a second; below 128 the IGMPv3 code is the value itself.
const MAX_RESP_DECISECONDS: u8 = 50;

fn r1_config() -> String {
    format!(
        "interface r1-h\n ip pim hello {HELLO_INTERVAL}\n ip pim\n ip igmp\n \
         ip igmp query-interval {QUERY_INTERVAL}\n \
         ip igmp query-max-response-time {MAX_RESP_DECISECONDS}\n!\n"
    )
}

/// FRR r1 (not yet started) ──r1-h 10.203.1.1 / 10.203.1.2 h-r1── host.
fn lan() -> (FrrRouter, Netns) {
    let r1 = FrrRouter::new("r1");
    let host = Netns::new("frr-h");
    veth(
        &r1.ns,
        "r1-h",
        &format!("{R1}/24"),
        &host,
        "h-r1",
        &format!("{HOST}/24"),
    );
    (r1, host)
}

/// Run `f` on a thread inside `ns`: sockets it opens live there.
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

fn raw_socket(ns: &Netns, proto: i32, join: Option<Ipv4Addr>) -> Socket {
    in_ns(ns, move || {
        let s =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(proto))).expect("raw socket");
        if let Some(g) = join {
            // Link-local groups other than 224.0.0.1 reach local sockets
            // only where the host is a member.
            s.join_multicast_v4(&g, &HOST).expect("join");
        }
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        s
    })
}

/// On a thread: the first IPv4 packet from R1 on `s` whose payload starts
/// with `first_byte` (PIM version/type, IGMP type) and when it arrived, or
/// None at `deadline`. The host's own looped-back IGMP reports are skipped.
fn first_from_r1(
    s: Socket,
    first_byte: u8,
    deadline: Instant,
) -> std::thread::JoinHandle<Option<(Vec<u8>, Instant)>> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok(n) = (&s).read(&mut buf) else {
                continue;
            };
            let p = &buf[..n];
            let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
            if p.len() >= 20 && p[12..16] == R1.octets() && p.get(ihl) == Some(&first_byte) {
                return Some((p.to_vec(), Instant::now()));
            }
        }
        None
    })
}

/// Ones' complement sum over `b` (RFC 1071); 0 when a checksum inside is right.
fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 header checks shared by both packets; returns the payload.
fn ip_payload(p: &[u8], proto: u8, dst: Ipv4Addr) -> &[u8] {
    assert!(p.len() >= 20 && p[0] >> 4 == 4, "IPv4 packet: {p:02x?}");
    let ihl = usize::from(p[0] & 0x0f) * 4;
    assert!(p.len() >= ihl, "truncated IP header");
    assert_eq!(p[8], 1, "TTL of a link-local protocol packet");
    assert_eq!(p[9], proto, "IP protocol");
    assert_eq!(p[12..16], R1.octets(), "source is FRR's interface address");
    assert_eq!(p[16..20], dst.octets(), "destination group");
    &p[ihl..]
}

/// RFC 7761 4.9.1/4.9.2: PIMv2 Hello with a valid checksum, a Holdtime
/// option equal to 3.5 x the configured Hello period, and the DR Priority
/// (19) and Generation ID (20) options a neighbor state machine relies on.
/// FRR adds LAN Prune Delay (2) and, in some Hellos sent while it is still
/// learning the interface's addresses, an Address List (24).
fn check_hello(p: &[u8]) {
    let pim = ip_payload(p, IPPROTO_PIM as u8, ALL_PIM_ROUTERS);
    assert!(pim.len() >= 4, "PIM header");
    assert_eq!(pim[0], 0x20, "PIM version 2, type 0 (Hello)");
    assert_eq!(inet_checksum(pim), 0, "PIM checksum");
    let mut types = Vec::new();
    let mut holdtime = None;
    let mut rest = &pim[4..];
    while rest.len() >= 4 {
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        assert!(rest.len() >= 4 + len, "option {ty} overruns the Hello");
        let val = &rest[4..4 + len];
        if ty == 1 {
            assert_eq!(len, 2, "Holdtime option length");
            holdtime = Some(u16::from_be_bytes([val[0], val[1]]));
        }
        types.push(ty);
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last option");
    assert_eq!(holdtime, Some(HELLO_HOLDTIME), "Holdtime option");
    for want in [19u16, 20] {
        assert!(types.contains(&want), "Hello option {want} in {types:?}");
    }
    assert!(
        types.iter().all(|t| [1, 2, 19, 20, 24].contains(t)),
        "only options FRR 8.4 is known to send: {types:?}"
    );
}

/// RFC 3376 4.1: IGMPv3 general query with the configured Max Resp Code
/// and QQIC, a valid checksum, sent with Router Alert (RFC 2113).
fn check_query(p: &[u8]) {
    let igmp = ip_payload(p, IPPROTO_IGMP as u8, ALL_SYSTEMS);
    let options = &p[20..p.len() - igmp.len()];
    assert!(
        options.windows(4).any(|o| o == [0x94, 0x04, 0, 0]),
        "IP Router Alert option in {options:02x?}"
    );
    assert!(igmp.len() >= 12, "IGMPv3 query is at least 12 bytes");
    assert_eq!(igmp[0], 0x11, "Membership Query");
    assert_eq!(igmp[1], MAX_RESP_DECISECONDS, "Max Resp Code");
    assert_eq!(inet_checksum(igmp), 0, "IGMP checksum");
    assert_eq!(igmp[4..8], [0, 0, 0, 0], "general query: group 0.0.0.0");
    assert_eq!(igmp[8] & 0x07, 2, "QRV (FRR's default robustness)");
    assert_eq!(igmp[9], QUERY_INTERVAL, "QQIC");
    assert_eq!(u16::from_be_bytes([igmp[10], igmp[11]]), 0, "no sources");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/frr")
        .join(name)
}

#[test]
fn frr_hello_and_query_reach_a_raw_socket() {
    if !require_frr("frr_hello_and_query_reach_a_raw_socket") {
        return;
    }
    let (mut r1, host) = lan();
    let pim = raw_socket(&host, IPPROTO_PIM, Some(ALL_PIM_ROUTERS));
    let igmp = raw_socket(&host, IPPROTO_IGMP, None);

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(15);
    let hello = first_from_r1(pim, 0x20, deadline);
    let query = first_from_r1(igmp, 0x11, deadline);
    r1.start(&r1_config());
    let started = t0.elapsed();
    let Some((hello, t_hello)) = hello.join().expect("PIM reader") else {
        panic!("no PIM Hello from FRR within 15 s{}", r1.log_tail("pimd"));
    };
    let Some((query, t_query)) = query.join().expect("IGMP reader") else {
        panic!("no IGMP query from FRR within 15 s{}", r1.log_tail("pimd"));
    };
    println!(
        "FRR daemons up and configured {started:?} after starting them; first PIM Hello after {:?}, \
         first IGMP general query after {:?}",
        t_hello - t0,
        t_query - t0
    );

    check_hello(&hello);
    check_query(&query);

    if std::env::var("MCR_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(fixture("")).expect("fixture dir");
        std::fs::write(fixture("pim_hello.ipv4"), &hello).expect("write fixture");
        std::fs::write(fixture("igmp_v3_query.ipv4"), &query).expect("write fixture");
    }
    check_hello(&std::fs::read(fixture("pim_hello.ipv4")).expect("pim_hello fixture"));
    check_query(&std::fs::read(fixture("igmp_v3_query.ipv4")).expect("igmp query fixture"));
}

fn igmp_groups_on(v: &serde_json::Value, ifname: &str) -> Vec<(String, u64)> {
    v.get(ifname)
        .and_then(|i| i.get("groups"))
        .and_then(|g| g.as_array())
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| {
                    Some((
                        g.get("group")?.as_str()?.to_string(),
                        g.get("version")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn frr_lists_a_linux_hosts_membership_in_vtysh_json() {
    if !require_frr("frr_lists_a_linux_hosts_membership_in_vtysh_json") {
        return;
    }
    let (mut r1, host) = lan();
    r1.start(&r1_config());
    let group = Ipv4Addr::new(239, 7, 7, 7);
    let member = in_ns(&host, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        // The kernel sends the IGMPv3 report (CHANGE_TO_EXCLUDE {}).
        s.join_multicast_v4(&group, &HOST).expect("join");
        s
    });
    let t = Instant::now();
    let version = r1.wait_json("show ip igmp groups", Duration::from_secs(20), |v| {
        igmp_groups_on(v, "r1-h")
            .into_iter()
            .find(|(g, _)| *g == group.to_string())
            .map(|(_, version)| version)
    });
    println!("FRR listed {group} after {:?}", t.elapsed());
    assert_eq!(version, 3, "FRR's default IGMP version on the interface");
    let iface = r1.json("show ip igmp interface");
    assert_eq!(iface["r1-h"]["address"], R1.to_string());
    assert_eq!(iface["r1-h"]["querier"], true, "FRR is the only querier");

    // Closing the socket makes the kernel send a leave (TO_INCLUDE {});
    // FRR removes the group after its last-member queries.
    drop(member);
    r1.wait_json("show ip igmp groups", Duration::from_secs(20), |v| {
        (!igmp_groups_on(v, "r1-h")
            .iter()
            .any(|(g, _)| *g == group.to_string()))
        .then_some(())
    });
}

#[test]
fn a_bad_frr_config_is_reported_with_the_offending_line() {
    if !require_frr("a_bad_frr_config_is_reported_with_the_offending_line") {
        return;
    }
    let mut r1 = FrrRouter::new("bad");
    let err = r1
        .try_start("interface lo\n ip pim frobnicate\n")
        .expect_err("FRR accepted a bogus command");
    assert!(err.contains("frobnicate"), "error names the line: {err}");
}

/// Two independent PIM implementations on one link (issue 10, test 5 needs
/// the same peer): FRR r1 10.203.3.1 and troglobit pimd r3 10.203.3.3
/// become neighbors both ways, and FRR elects the higher address as DR
/// (RFC 7761 4.3.2, equal priorities).
#[test]
fn frr_and_troglobit_pimd_become_pim_neighbors() {
    if !require_troglobit_pimd("frr_and_troglobit_pimd_become_pim_neighbors") {
        return;
    }
    let lab = LabSpec::new("tp")
        .frr("r1")
        .host("r3")
        .link(
            ("r1", "r1-r3", Ipv4Addr::new(10, 203, 3, 1)),
            ("r3", "r3-r1", Ipv4Addr::new(10, 203, 3, 3)),
        )
        .frr_pim("r1", "r1-r3")
        .build();
    let r1 = lab.frr("r1");
    let pimd = TroglobitPimd::start(lab.ns("r3"), "phyint r3-r1 enable\n");
    let t = Instant::now();
    let nbr = r1.wait_json("show ip pim neighbor", Duration::from_secs(20), |v| {
        v.get("r1-r3").and_then(|i| i.get("10.203.3.3")).cloned()
    });
    println!(
        "FRR lists troglobit pimd as neighbor after {:?}",
        t.elapsed()
    );
    assert_eq!(nbr["interface"], "r1-r3");
    let dr = r1.wait_json(
        "show ip pim interface r1-r3",
        Duration::from_secs(10),
        |v| {
            v.get("r1-r3")
                .and_then(|i| i.get("drAddress"))
                .and_then(|d| d.as_str())
                .filter(|d| *d == "10.203.3.3")
                .map(str::to_string)
        },
    );
    assert_eq!(dr, "10.203.3.3");
    // pimd's vif table row for its link: "0  10.203.3.3  10.203.3/24  1
    // DR PIM  10.203.3.1": it agrees it is DR and lists FRR.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let view = pimd.show();
        let row_ok = view.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"10.203.3.3") && f.contains(&"DR") && f.contains(&"10.203.3.1")
        });
        if row_ok {
            break;
        }
        assert!(
            Instant::now() < end,
            "troglobit pimd does not list FRR (10.203.3.1) as neighbor with itself as DR:\n{view}{}",
            pimd.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
