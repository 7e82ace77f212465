//! IGMP, bytes → decoder → the router, the proxy's merge and the host
//! side: whatever arrives, nothing panics, a decoded message re-encodes
//! to one that decodes the same, and everything the router and the host
//! send is a well-formed IGMP message.
//!
//! Input: a sequence of steps, each `[op, len, payload (len bytes)]`.
//! `op & 3`: 0 a packet to the router on interface 1 or 2 (bit 2) from a
//! host address picked by the high bits, 1 time passes (payload[0] × 37
//! ms, timers run), 2 a packet to the proxy's host side, 3 a new config
//! (query interval from payload[0], version from bit 2).
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcr::igmp::codec::{decode, encode};
use mcr::igmp::{
    HostConfig, HostFilter, IgmpEvent, IgmpHost, IgmpRouter, IgmpSettings, InterfaceConfig,
    ProxyMembership, RouterConfig, SetMemberships,
};
use mcr::proto::{Protocol, Rng};

fn settings(qi: u8, v2: bool) -> IgmpSettings {
    IgmpSettings {
        query_interval: f64::from(qi.max(2)),
        query_response_interval: 1.0,
        last_member_query_interval: 0.3,
        version: if v2 { 2 } else { 3 },
        ..Default::default()
    }
}

fn config(s: &IgmpSettings) -> Option<RouterConfig> {
    let params = s.validate().ok()?;
    let iface = |ifindex, last| InterfaceConfig {
        ifindex,
        name: format!("eth{ifindex}"),
        address: Ipv4Addr::new(10, 0, 0, last),
    };
    Some(RouterConfig {
        params,
        interfaces: vec![iface(1, 5), iface(2, 5)],
    })
}

/// Everything sent decodes; the router's own messages round-trip.
fn check_sent(p: &mut impl Protocol) {
    while let Some(t) = p.poll_transmit() {
        let m = decode(&t.payload).expect("MCR sent a message it cannot decode");
        assert_eq!(decode(&encode(&m)).as_ref(), Ok(&m));
        assert_eq!(t.ttl, 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let Some(c) = config(&settings(10, false)) else {
        return;
    };
    let mut router = IgmpRouter::new(now, c.clone());
    let mut proxy = ProxyMembership::default();
    let host_cfg = HostConfig {
        ifindex: 9,
        address: Ipv4Addr::new(10, 1, 0, 2),
        params: c.params.clone(),
    };
    let mut host = IgmpHost::new(host_cfg, Rng::new(7));
    let mut rest = data;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]));
        let payload = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        match op & 3 {
            0 => {
                if let Ok(m) = decode(payload) {
                    // What decodes re-encodes to the same message.
                    assert_eq!(decode(&encode(&m)).as_ref(), Ok(&m));
                }
                let ifindex = if op & 4 == 0 { 1 } else { 2 };
                let src = Ipv4Addr::new(10, 0, 0, op >> 3);
                router.handle_packet(now, ifindex, src, Ipv4Addr::new(224, 0, 0, 22), payload);
            }
            1 => {
                let step = u64::from(payload.first().copied().unwrap_or(1)) * 37;
                now += Duration::from_millis(step);
                router.handle_timeout(now);
                host.handle_timeout(now);
            }
            2 => host.handle_packet(now, 9, Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::UNSPECIFIED, payload),
            _ => {
                let qi = payload.first().copied().unwrap_or(10);
                if let Some(c) = config(&settings(qi, op & 4 != 0)) {
                    router.handle_config(now, c);
                }
            }
        }
        // The router's events drive the proxy as in the daemon.
        let mut changed = false;
        while let Some(e) = router.poll_event() {
            match e {
                IgmpEvent::Join { ifindex, group, mode, sources }
                | IgmpEvent::Change { ifindex, group, mode, sources } => {
                    let f = HostFilter { mode, sources: sources.into_iter().collect() };
                    proxy.set(&format!("eth{ifindex}"), group, f);
                    changed = true;
                }
                IgmpEvent::Leave { ifindex, group } => {
                    proxy.leave(&format!("eth{ifindex}"), group);
                    changed = true;
                }
                IgmpEvent::QuerierChange { .. } => {}
            }
        }
        if changed {
            host.handle_event(now, SetMemberships(proxy.merged()));
        }
        check_sent(&mut router);
        check_sent(&mut host);
        if let Some(t) = router.poll_timeout() {
            assert!(t >= t0);
        }
    }
    // The merge never reports a group nobody downstream is in.
    for g in proxy.merged().keys() {
        assert!(!proxy.interfaces_of(*g).is_empty());
    }
});
