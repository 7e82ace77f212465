//! Decoding and folding of typed events on hand-built messages, and the
//! subscription and route lookup against real namespaces (root only).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::stream::StreamExt;
use mcr::dataplane::sockets::InterfaceInfo;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::events::{apply, decode, NlEvent};
use super::route::{RouteError, RouteInfo, RouteLookup};

use mcr::iface::{scan as scan_interfaces, Ifaces};

/// A lookup on a connection of its own, as `ip route get` makes.
async fn route_get(dst: Ipv4Addr) -> Result<RouteInfo, RouteError> {
    RouteLookup::open()?.get(dst).await
}

fn link_msg(index: u32, name: &str, flags: LinkFlags, mtu: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = flags;
    m.header.link_layer_type = 1u16.into();
    m.attributes = vec![LinkAttribute::IfName(name.into()), LinkAttribute::Mtu(mtu)];
    m
}

fn addr_msg(family: AddressFamily, index: u32, addr: IpAddr, len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family;
    m.header.index = index;
    m.header.prefix_len = len;
    m.attributes = vec![
        AddressAttribute::Address(addr),
        AddressAttribute::Local(addr),
    ];
    m
}

fn feed(ifaces: &mut Ifaces, msgs: Vec<RouteNetlinkMessage>) -> Vec<NlEvent> {
    let mut out = Vec::new();
    for m in msgs {
        if let Some(ev) = decode(&m, ifaces) {
            apply(ifaces, &ev);
            out.push(ev);
        }
    }
    out
}

const UP_RUNNING: LinkFlags = LinkFlags::Up.union(LinkFlags::Running);

#[test]
fn netlink_events_build_the_snapshot_a_rescan_would() {
    let mut ifs = Ifaces::new();
    let a = Ipv4Addr::new(10, 1, 0, 1);
    let evs = feed(
        &mut ifs,
        vec![
            RouteNetlinkMessage::NewLink(link_msg(7, "eth7", LinkFlags::empty(), 1500)),
            RouteNetlinkMessage::NewAddress(addr_msg(AddressFamily::Inet, 7, a.into(), 24)),
            // IPv6 addresses are not part of the snapshot.
            RouteNetlinkMessage::NewAddress(addr_msg(
                AddressFamily::Inet6,
                7,
                "fe80::1".parse().unwrap(),
                64,
            )),
            RouteNetlinkMessage::NewLink(link_msg(7, "eth7", UP_RUNNING, 9000)),
        ],
    );
    assert!(matches!(evs[0], NlEvent::LinkAdded(ref l) if l.index == 7 && !l.up));
    assert_eq!(evs.len(), 3, "the IPv6 address yields no event: {evs:?}");
    assert!(matches!(evs[2], NlEvent::LinkChanged { renamed_from: None, ref link } if link.up));
    assert_eq!(
        ifs.get("eth7"),
        Some(&InterfaceInfo {
            name: "eth7".into(),
            ifindex: 7,
            mtu: 9000,
            up: true,
            running: true,
            addrs: vec![a],
            link_type: 1,
        })
    );
}

#[test]
fn netlink_rename_moves_the_interface_and_keeps_its_addresses() {
    let mut ifs = Ifaces::new();
    let a = Ipv4Addr::new(10, 1, 0, 1);
    feed(
        &mut ifs,
        vec![
            RouteNetlinkMessage::NewLink(link_msg(3, "r0", UP_RUNNING, 1500)),
            RouteNetlinkMessage::NewAddress(addr_msg(AddressFamily::Inet, 3, a.into(), 24)),
        ],
    );
    let evs = feed(
        &mut ifs,
        vec![RouteNetlinkMessage::NewLink(link_msg(
            3,
            "r0x",
            LinkFlags::empty(),
            1500,
        ))],
    );
    assert_eq!(
        evs,
        vec![NlEvent::LinkChanged {
            link: super::events::Link {
                index: 3,
                name: "r0x".into(),
                up: false,
                running: false,
                mtu: Some(1500),
                link_type: 1,
            },
            renamed_from: Some("r0".into()),
        }]
    );
    assert!(!ifs.contains_key("r0"), "the old name is gone: {ifs:?}");
    assert_eq!(ifs["r0x"].addrs, vec![a]);
    assert_eq!(ifs["r0x"].ifindex, 3);
}

#[test]
fn netlink_address_change_and_link_removal() {
    let mut ifs = Ifaces::new();
    let (a, b) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 9, 0, 1));
    feed(
        &mut ifs,
        vec![
            RouteNetlinkMessage::NewLink(link_msg(4, "r1", UP_RUNNING, 1500)),
            RouteNetlinkMessage::NewAddress(addr_msg(AddressFamily::Inet, 4, a.into(), 24)),
            RouteNetlinkMessage::NewAddress(addr_msg(AddressFamily::Inet, 4, a.into(), 24)),
            RouteNetlinkMessage::NewAddress(addr_msg(AddressFamily::Inet, 4, b.into(), 24)),
            RouteNetlinkMessage::DelAddress(addr_msg(AddressFamily::Inet, 4, a.into(), 24)),
        ],
    );
    assert_eq!(
        ifs["r1"].addrs,
        vec![b],
        "a repeated add is not a second address"
    );
    // A DELLINK without a name (never seen in practice) still finds it by index.
    let mut del = LinkMessage::default();
    del.header.index = 4;
    let evs = feed(&mut ifs, vec![RouteNetlinkMessage::DelLink(del)]);
    assert_eq!(
        evs,
        vec![NlEvent::LinkRemoved {
            index: 4,
            name: "r1".into()
        }]
    );
    assert!(ifs.is_empty());
    // A link message without a name cannot be placed: no event, no panic.
    let mut nameless = LinkMessage::default();
    nameless.header.index = 5;
    assert!(feed(&mut ifs, vec![RouteNetlinkMessage::NewLink(nameless)]).is_empty());
}

// ---- against the kernel, in throw-away namespaces ----

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace deleted on drop, so a failing test leaves nothing behind.
/// Names carry the pid so parallel test runs never collide.
struct TestNs(String);

impl TestNs {
    fn new(tag: &str) -> Option<TestNs> {
        if !nix::unistd::geteuid().is_root() {
            // As in tests/common: under CI a skip would hide a regression.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "needs root (network namespaces); with CI=true a skip is a failure"
            );
            eprintln!("SKIP: needs root (network namespaces)");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("mcru-{}-{n}-{tag}", std::process::id());
        run(&["netns", "add", &name]);
        Some(TestNs(name))
    }

    fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", &self.0];
        a.extend_from_slice(args);
        run(&a);
    }

    /// Run `f` on a fresh thread inside the namespace, with its own tokio
    /// runtime, so that the netlink sockets it opens belong there.
    fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn netlink_route_get_answers_like_ip_route_get() {
    let Some(ns) = TestNs::new("rget") else {
        return;
    };
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    ns.ip(&["addr", "add", "10.77.1.1/24", "dev", "up0"]);
    ns.ip(&["link", "set", "up0", "up"]);
    ns.ip(&["link", "set", "up0p", "up"]);
    ns.ip(&[
        "route",
        "add",
        "10.88.0.0/16",
        "via",
        "10.77.1.2",
        "metric",
        "50",
    ]);
    ns.ip(&["route", "add", "unreachable", "10.99.0.0/16"]);
    // What an OSPF daemon would install: Assert metrics need its distance.
    ns.ip(&[
        "route",
        "add",
        "10.55.0.0/16",
        "via",
        "10.77.1.2",
        "proto",
        "ospf",
        "metric",
        "20",
    ]);
    // Policy routing: the answer names the table the route was found in.
    ns.ip(&[
        "route",
        "add",
        "10.66.0.0/16",
        "via",
        "10.77.1.3",
        "table",
        "100",
    ]);
    ns.ip(&["rule", "add", "to", "10.66.0.0/16", "table", "100"]);
    let (ospf, (via, onlink, none, unreachable, policy)) = ns.within(|| {
        Box::pin(async {
            // One connection answers many lookups, concurrently.
            let shared = RouteLookup::open().expect("a netlink socket");
            let (a, b) = tokio::join!(
                shared.get(Ipv4Addr::new(10, 55, 1, 1)),
                shared.get(Ipv4Addr::new(10, 88, 3, 4))
            );
            assert!(shared.is_alive());
            assert_eq!(b.ok().map(|r| r.metric), Some(Some(50)));
            (
                a,
                (
                    route_get(Ipv4Addr::new(10, 88, 3, 4)).await,
                    route_get(Ipv4Addr::new(10, 77, 1, 9)).await,
                    route_get(Ipv4Addr::new(192, 0, 2, 1)).await,
                    route_get(Ipv4Addr::new(10, 99, 0, 1)).await,
                    route_get(Ipv4Addr::new(10, 66, 1, 1)).await,
                ),
            )
        })
    });
    let ospf = ospf.expect("the OSPF route");
    assert_eq!(
        (ospf.preference, ospf.metric),
        (Some(110), Some(20)),
        "OSPF's default distance and the route's priority: {ospf:?}"
    );
    let policy = policy.expect("a route in table 100");
    assert_eq!(
        (policy.table, policy.gateway),
        (100, Some(Ipv4Addr::new(10, 77, 1, 3))),
        "{policy:?}"
    );
    assert_eq!(policy.metric, None, "no metric was given: {policy:?}");
    let via = via.expect("a route via the gateway");
    assert_eq!(via.oif_name.as_deref(), Some("up0"), "{via:?}");
    assert_ne!(via.oif, 0);
    assert_eq!(via.gateway, Some(Ipv4Addr::new(10, 77, 1, 2)), "{via:?}");
    assert_eq!(via.prefsrc, Some(Ipv4Addr::new(10, 77, 1, 1)), "{via:?}");
    assert_eq!(via.table, 254, "found in main: {via:?}");
    assert_eq!(via.metric, Some(50), "{via:?}");
    assert_eq!(
        via.preference,
        Some(0),
        "ip route add is a kernel route: {via:?}"
    );
    let onlink = onlink.expect("a connected route");
    assert_eq!(onlink.oif, via.oif);
    assert_eq!(onlink.gateway, None, "a connected subnet has no gateway");
    assert!(
        matches!(none, Err(RouteError::NoRoute(_))),
        "no default route: {none:?}"
    );
    assert!(
        matches!(
            unreachable,
            Err(RouteError::NoRoute(_) | RouteError::NotUnicast(..))
        ),
        "an unreachable route is no unicast path: {unreachable:?}"
    );
}

#[test]
fn netlink_subscription_follows_the_kernel() {
    let Some(ns) = TestNs::new("sub") else {
        return;
    };
    let name = ns.0.clone();
    let ip = move |args: &[&str]| {
        let mut a = vec!["-n", name.as_str()];
        a.extend_from_slice(args);
        run(&a);
    };
    let (seen, events_view, scan_view) = ns.within(move || {
        Box::pin(async move {
            let (_conn, _h, mut rx) = super::subscribe().expect("subscribe");
            let mut ifs = scan_interfaces();
            ip(&["link", "add", "ev0", "type", "veth", "peer", "name", "evp"]);
            ip(&["addr", "add", "10.55.0.1/24", "dev", "ev0"]);
            ip(&["link", "set", "ev0", "up"]);
            ip(&["link", "set", "ev0", "down"]);
            ip(&["link", "set", "ev0", "name", "ev1"]);
            ip(&["link", "set", "ev1", "up", "mtu", "1400"]);
            ip(&["addr", "add", "10.56.0.1/24", "dev", "ev1"]);
            ip(&["addr", "del", "10.55.0.1/24", "dev", "ev1"]);
            ip(&["route", "add", "10.57.0.0/16", "via", "10.56.0.2"]);
            let mut seen = Vec::new();
            let done = |seen: &Vec<NlEvent>| {
                seen.iter().any(|e| {
                    matches!(e, NlEvent::RouteChanged { dst, gateway: Some(_), .. }
                        if *dst == Ipv4Addr::new(10, 57, 0, 0))
                })
            };
            while !done(&seen) {
                let next = tokio::time::timeout(Duration::from_secs(5), rx.next()).await;
                let Ok(Some((m, _))) = next else {
                    panic!("events stopped before the route arrived: {seen:?}");
                };
                if let NetlinkPayload::InnerMessage(m) = m.payload {
                    if let Some(ev) = decode(&m, &ifs) {
                        apply(&mut ifs, &ev);
                        seen.push(ev);
                    }
                }
            }
            (seen, ifs, scan_interfaces())
        })
    });
    assert!(
        seen.iter()
            .any(|e| matches!(e, NlEvent::LinkAdded(l) if l.name == "ev0")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e,
            NlEvent::LinkChanged { link, renamed_from: Some(old) } if old == "ev0" && link.name == "ev1")),
        "the rename is one typed event: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, NlEvent::AddrRemoved { addr, .. }
            if *addr == Ipv4Addr::new(10, 55, 0, 1))),
        "{seen:?}"
    );
    assert_eq!(
        events_view, scan_view,
        "the snapshot built from events equals a fresh scan"
    );
    assert_eq!(scan_view["ev1"].mtu, 1400);
    assert_eq!(scan_view["ev1"].addrs, vec![Ipv4Addr::new(10, 56, 0, 1)]);
}

#[test]
fn netlink_overrun_trusts_only_a_rescan() {
    let mut known = Ifaces::new();
    feed(
        &mut known,
        vec![RouteNetlinkMessage::NewLink(link_msg(
            3, "r0", UP_RUNNING, 1500,
        ))],
    );
    let batch = vec![RouteNetlinkMessage::NewLink(link_msg(
        9, "r9", UP_RUNNING, 1500,
    ))];
    let mut scanned = Ifaces::new();
    feed(
        &mut scanned,
        vec![RouteNetlinkMessage::NewLink(link_msg(
            4, "r4", UP_RUNNING, 1500,
        ))],
    );
    let after = super::next_snapshot(&known, &batch, true, || scanned.clone());
    assert_eq!(
        after, scanned,
        "after an overrun the scan replaces everything"
    );
    let after = super::next_snapshot(&known, &batch, false, || panic!("no rescan needed"));
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(names, ["r0", "r9"], "without one the events apply");
}

#[test]
fn netlink_overrun_reaches_the_monitor() {
    let Some(ns) = TestNs::new("ovr") else {
        return;
    };
    ns.ip(&["link", "add", "ov0", "type", "veth", "peer", "name", "ov1"]);
    let name = ns.0.clone();
    let batches = ns.within(move || {
        Box::pin(async move {
            let (_conn, _h, mut rx) = super::subscribe_with(Some(1)).expect("subscribe");
            // The runtime is blocked while `ip` runs, so nothing reads the
            // socket and its tiny buffer overflows.
            let script: String = (0..300)
                .map(|i| format!("addr add 10.60.{}.{}/32 dev ov0\n", i / 200, i % 200 + 1))
                .collect();
            let mut child = Command::new("ip")
                .args(["-n", &name, "-batch", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("ip -batch");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())
                .expect("write batch");
            assert!(child.wait().expect("ip -batch").success());
            let mut batches = Vec::new();
            let got = tokio::time::timeout(
                Duration::from_secs(5),
                super::forward(&mut rx, |msgs, overrun| {
                    batches.push((msgs.len(), overrun));
                    !overrun
                }),
            )
            .await;
            assert_eq!(got.ok(), Some(false), "stopped at the overrun: {batches:?}");
            batches
        })
    });
    assert!(
        batches.iter().any(|(_, o)| *o),
        "the overrun is reported: {batches:?}"
    );
}
