use super::*;
use std::os::fd::{AsFd, OwnedFd};

#[test]
fn geometry_holds_the_largest_frame() {
    let g = Geometry::for_frames(2048, 16 << 20, 1);
    assert_eq!(g.block_size, 256 * 1024);
    assert_eq!(g.blocks, 64);
    let g = Geometry::for_frames(65536 + 1024, 16 << 20, 0);
    assert!(g.block_size as usize >= 65536 + 1024 + PKT_HDR + 64);
    assert_eq!(g.timeout_ms, 1);
    assert_eq!(Geometry::for_frames(2048, 0, 5).blocks, 4);
}

/// In a new network namespace (on a thread of its own), a ring on a
/// packet socket bound to `lo` and an unconnected UDP socket to send
/// with (a connected one would fail on the port-unreachable replies). None
/// without the privilege to make a namespace: the test is skipped, loudly,
/// and under CI=true that is a failure.
fn ring_on_loopback() -> Option<(RxRing, OwnedFd, std::net::UdpSocket)> {
    if !crate::sys::own_netns_for_test() {
        return None;
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let pkt =
        super::super::sockopt::new_socket(libc::AF_PACKET, libc::SOCK_RAW, proto.into()).unwrap();
    let lo = nix::net::if_::if_nametoindex("lo").unwrap();
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: proto,
        sll_ifindex: lo as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: binds the socket made above to a sockaddr_ll that lives
    // through the call.
    let r = unsafe {
        libc::bind(
            pkt.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0);
    let ring = RxRing::open(pkt.as_fd(), Geometry::for_frames(2048, 1 << 20, 1), 0).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    Some((ring, pkt, udp))
}

/// Read every frame handed over so far in place; returns each frame's
/// block and whether a frame carried `tag`.
fn read_all(ring: &mut RxRing, tag: &[u8], hold: bool) -> (Vec<u16>, bool) {
    let mut blocks = Vec::new();
    let mut found = false;
    std::thread::sleep(std::time::Duration::from_millis(30));
    ring.resync();
    while let Some((b, frame, len)) = ring.next_in_place() {
        assert!(len >= frame.len());
        found |= frame.windows(tag.len()).any(|w| w == tag);
        if hold {
            ring.hold(b, 1);
        }
        ring.release(b);
        blocks.push(b);
    }
    (blocks, found)
}

#[test]
fn a_block_read_in_place_stays_ours_until_its_sends_release_it() {
    std::thread::spawn(|| {
        let Some((mut ring, _pkt, udp)) = ring_on_loopback() else {
            return;
        };
        udp.send_to(b"first-datagram", "127.0.0.1:9").unwrap();
        let (held, found) = read_all(&mut ring, b"first-datagram", true);
        assert!(found, "the datagram is read where the kernel wrote it");
        // Read to the end, but held by "sends": not the kernel's yet,
        // and not read again.
        let mut blocks = held.clone();
        blocks.dedup();
        assert_eq!(ring.held_blocks(), blocks.len());
        for &b in &blocks {
            assert!(ring.user(usize::from(b)));
        }
        udp.send_to(b"second-datagram", "127.0.0.1:9").unwrap();
        let (later, found) = read_all(&mut ring, b"first-datagram", false);
        assert!(!found, "a held block is not read twice");
        assert!(!later.is_empty());
        assert!(later.iter().all(|b| !held.contains(b)));
        // Each send completing lets go; the last one hands it back.
        let (last, rest) = held.split_last().unwrap();
        for &b in rest {
            ring.release(b);
        }
        assert_eq!(ring.held_blocks(), 1);
        assert!(ring.user(usize::from(*last)));
        ring.release(*last);
        assert_eq!(ring.held_blocks(), 0);
        for &b in &blocks {
            assert!(!ring.user(usize::from(b)));
        }
    })
    .join()
    .unwrap();
}

/// The UDP payload of a loopback frame (Ethernet, IPv4 without
/// options, UDP), or None for anything else (the ICMP replies).
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    (frame.len() > 42 && frame[23] == 17).then(|| &frame[42..])
}

/// Every frame a successor reads from the ring, as bytes.
fn successor_reads(pkt: &OwnedFd, geo: Geometry) -> Vec<Vec<u8>> {
    let mut next = RxRing::open(pkt.as_fd(), geo, 0).unwrap();
    next.resync();
    let mut seen = Vec::new();
    while let Some((b, frame, _)) = next.next_in_place() {
        seen.push(frame.to_vec());
        next.release(b);
    }
    seen
}

fn carries(frames: &[Vec<u8>], tag: &[u8]) -> usize {
    frames
        .iter()
        .filter(|f| udp_payload(f) == Some(tag))
        .count()
}

#[test]
fn a_successor_starts_after_the_last_frame_whose_sends_were_handed_over() {
    std::thread::spawn(|| {
        let Some((mut ring, pkt, udp)) = ring_on_loopback() else {
            return;
        };
        for tag in [&b"sent-one"[..], b"sent-two", b"queued", b"unread"] {
            udp.send_to(tag, "127.0.0.1:9").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        ring.resync();
        // As the worker does: each frame's sends go to the kernel (marked
        // just before) before the next is read; the sends of "sent-two"
        // have not completed when the reader dies, and those of "queued"
        // were never handed over. (Loopback shows each datagram twice,
        // going out and coming in, and the ICMP replies.)
        let mut read: Vec<Vec<u8>> = Vec::new();
        let mut queued = false;
        loop {
            ring.mark_sent();
            let Some((b, frame, _)) = ring.next_in_place() else {
                break;
            };
            read.push(frame.to_vec());
            let tag = udp_payload(frame).map(<[u8]>::to_vec);
            if tag.as_deref() != Some(&b"sent-one"[..]) {
                ring.hold(b, 1);
            }
            ring.release(b);
            if tag.as_deref() == Some(&b"queued"[..]) {
                queued = true;
                break;
            }
        }
        assert!(queued);
        let geo = ring.geometry();
        // SIGKILL: no Drop, nothing handed back, the mapping stays.
        std::mem::forget(ring);
        let seen = successor_reads(&pkt, geo);
        // It resumes at the frame whose sends never reached the kernel,
        // not at the block's first frame, nor at the frame whose send was
        // still in flight: those went out already.
        assert_eq!(seen.first(), read.last(), "{} frames", seen.len());
        assert_eq!(carries(&seen, b"sent-one"), 0);
        assert_eq!(carries(&seen, b"sent-two"), 0);
        assert!(carries(&seen, b"unread") > 0);
    })
    .join()
    .unwrap();
}

#[test]
fn a_block_whose_sends_went_out_is_empty_to_a_successor_before_they_complete() {
    std::thread::spawn(|| {
        let Some((mut ring, pkt, udp)) = ring_on_loopback() else {
            return;
        };
        udp.send_to(b"handed-over", "127.0.0.1:9").unwrap();
        // Read to its end and held by sends that have gone to the kernel
        // but whose completions were never reaped.
        let (held, found) = read_all(&mut ring, b"handed-over", true);
        assert!(found);
        assert!(ring.held_blocks() > 0);
        ring.mark_sent();
        // A later block, read but its sends not handed over yet.
        udp.send_to(b"not-yet-sent", "127.0.0.1:9").unwrap();
        let (later, found) = read_all(&mut ring, b"not-yet-sent", true);
        assert!(found);
        assert!(later.iter().all(|b| !held.contains(b)));
        let geo = ring.geometry();
        std::mem::forget(ring);
        let seen = successor_reads(&pkt, geo);
        assert_eq!(carries(&seen, b"handed-over"), 0, "sent twice");
        assert!(carries(&seen, b"not-yet-sent") > 0, "lost");
    })
    .join()
    .unwrap();
}

#[test]
fn a_copied_frame_matches_the_one_read_in_place() {
    std::thread::spawn(|| {
        let Some((mut ring, _pkt, udp)) = ring_on_loopback() else {
            return;
        };
        udp.send_to(b"copy-me-please", "127.0.0.1:9").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        ring.resync();
        let mut buf = [0u8; 2048];
        let f = ring.next_into(&mut buf).unwrap();
        assert_eq!(f.copied, f.len);
        // IPv4 over loopback's Ethernet header: 14 + 20 + 8 + payload.
        assert_eq!(f.len, 14 + 20 + 8 + 14);
        assert_eq!(&buf[42..56], b"copy-me-please");
        // A destination too small: the length says so.
        let mut small = [0u8; 20];
        udp.send_to(b"copy-me-please", "127.0.0.1:9").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        ring.resync();
        let f = ring.next_into(&mut small).unwrap();
        assert_eq!(f.copied, 20);
        assert!(f.len > 20);
    })
    .join()
    .unwrap();
}

#[test]
fn a_socket_that_is_not_a_packet_socket_has_no_ring() {
    let udp = super::super::sockopt::new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
    let g = Geometry::for_frames(2048, 1 << 20, 1);
    assert!(RxRing::open(udp.as_fd(), g, 0).is_err());
}

#[test]
fn a_removed_ring_gives_frames_back_to_recv_and_is_refused_while_mapped() {
    std::thread::spawn(|| {
        let Some((ring, pkt, udp)) = ring_on_loopback() else {
            return;
        };
        // Still mapped: the kernel keeps the ring.
        let busy = remove_ring(pkt.as_fd()).unwrap_err();
        assert_eq!(busy.raw_os_error(), Some(libc::EBUSY));
        drop(ring);
        assert!(remove_ring(pkt.as_fd()).unwrap(), "the socket had a ring");
        // A new ring of another shape can be set: the old one is gone.
        let other = Geometry::for_frames(2048, 2 << 20, 7);
        set_ring(pkt.as_fd(), other).unwrap();
        assert!(remove_ring(pkt.as_fd()).unwrap());
        // With no ring, frames reach recv again.
        udp.send_to(b"after-the-ring", "127.0.0.1:9").unwrap();
        let mut buf = [0u8; 2048];
        let mut found = false;
        for _ in 0..20 {
            // SAFETY: receives into a buffer that lives through the call.
            let n = unsafe {
                libc::recv(
                    pkt.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0
                && buf[..n as usize]
                    .windows(14)
                    .any(|w| w == b"after-the-ring")
            {
                found = true;
                break;
            }
            if n < 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        assert!(found, "recv got the datagram once the ring was removed");
    })
    .join()
    .unwrap();
}

#[test]
fn a_successor_of_a_wrapped_ring_starts_at_the_oldest_block_not_at_block_0() {
    std::thread::spawn(|| {
        let Some((mut ring, pkt, udp)) = ring_on_loopback() else {
            return;
        };
        // Blocks 0..=2 read and handed back, one per datagram (each block
        // is retired by its 1 ms timeout), so the kernel fills block 3.
        for _ in 0..8 {
            udp.send_to(b"fill", "127.0.0.1:9").unwrap();
            let (blocks, _) = read_all(&mut ring, b"fill", false);
            if blocks.last() == Some(&2) {
                break;
            }
        }
        // Block 3 is handed over and not read; the kernel wraps to 0.
        udp.send_to(b"older", "127.0.0.1:9").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        udp.send_to(b"newer", "127.0.0.1:9").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let geo = ring.geometry();
        std::mem::forget(ring);
        let seen = successor_reads(&pkt, geo);
        let at = |tag: &[u8]| seen.iter().position(|f| udp_payload(f) == Some(tag));
        assert!(
            at(b"older").is_some() && at(b"older") < at(b"newer"),
            "the successor read {:?}",
            seen.iter()
                .filter_map(|f| udp_payload(f))
                .collect::<Vec<_>>()
        );
    })
    .join()
    .unwrap();
}
