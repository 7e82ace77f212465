//! Arbitrary and hostile input: no panic, no stack overflow, a message.

use super::*;

// ---------------------------------------------------------------- robustness

#[test]
fn no_input_makes_the_parser_panic() {
    let seeds: [&str; 4] = [
        include_str!("../../../examples/full.json5"),
        include_str!("../../../examples/mdns-ssdp.json5"),
        "{ rules: [{ input: { interface: 'eth0', group: '239.1.1.1', port: 0x1388 }, outputs: [{ interface: \"eth1\", group: \"239.2.2.2\", port: 6000, ttl: +1.6e1 }] }], workers: { heartbeat_timeout: .5 } }",
        "{a:'\\u00e9\\x41\\\n',b:[1,-Infinity,NaN,.5,5.,0x1F],/* c */\"d\":{}}",
    ];
    const PALETTE: &[u8] =
        b"{}[]:,'\"\\/*\n\r\t 0123456789xXeE.+-_$aAuU\x00\x7f\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98";
    let mut rng = Lcg(42);
    let mut parsed_ok = 0;
    for case in 0..4000 {
        let mut bytes = seeds[case % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(7) {
                0 if at < bytes.len() => bytes[at] = rng.pick(PALETTE),
                1 => bytes.insert(at, rng.pick(PALETTE)),
                2 => {
                    let end = (at + 1 + rng.below(16)).min(bytes.len());
                    bytes.drain(at.min(end)..end);
                }
                3 => {
                    let end = (at + rng.below(32)).min(bytes.len());
                    let chunk = bytes[at.min(end)..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, chunk);
                }
                4 => bytes.truncate(at),
                5 => bytes.insert(at, rng.next() as u8),
                _ => {
                    let open = rng.pick(&[&b"["[..], b"{a:", b"/*", b"'", b"\\u"]);
                    for _ in 0..rng.below(100) {
                        bytes.splice(at..at, open.iter().copied());
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Ok(c) => {
                parsed_ok += 1;
                // Whatever parses must also survive the writer.
                round_trip(&c);
            }
            Err(e) => {
                assert!(!e.0.is_empty());
                assert!(e.0.len() <= read::MAX_REPORTED_ERRORS + 1);
                for err in e.0.iter().take(read::MAX_REPORTED_ERRORS) {
                    assert!(err.line >= 1 && err.column >= 1, "no position: {err:?}");
                    assert!(!err.message.is_empty());
                }
            }
        }
    }
    // Some mutations (inside comments, say) leave the file valid: the
    // round trip above was exercised.
    assert!(parsed_ok > 0);
}

/// Run `f` on a thread with a small stack: the parser recurses once per
/// level of nesting, so only a pre-scan that refuses deep nesting without
/// recursing itself keeps hostile files from overflowing a stack this size.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new().stack_size(128 * 1024).spawn(f);
    match thread.map(|t| t.join()) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => panic!("the parser panicked"),
        Err(e) => panic!("cannot start a thread: {e}"),
    }
}

#[test]
fn hostile_nesting_is_refused_with_a_message() {
    let hostile: [(&str, String, usize); 3] = [
        ("arrays", "[".repeat(100_000), 65),
        ("objects", "{a:[".repeat(200_000), 129),
        (
            "inside a config",
            format!("{{\n  rules: {}", "[".repeat(100_000)),
            "  rules: ".len() + 64,
        ),
    ];
    for (what, text, column) in hostile {
        let e = on_small_stack(move || errs(&text));
        assert_eq!(e.len(), 1, "{what}: {e:?}");
        assert_eq!(e[0].column, column, "{what}: {}", e[0]);
        assert!(
            e[0].message.ends_with(
                "is nested too deeply: at most 64 levels of objects and arrays are allowed"
            ),
            "{what}: {}",
            e[0]
        );
    }
    // The same file from disk.
    let deep = "[".repeat(100_000);
    let parsed = with_file("deep.json5", deep, |p| {
        on_small_stack(move || parse_file(&p))
    });
    let e = refused(parsed, "100,000 nested arrays");
    assert_eq!(
        e[0].to_string(),
        "line 1, column 65: this array is nested too deeply: at most 64 levels of objects and arrays are allowed"
    );
}

#[test]
fn brackets_in_strings_and_comments_do_not_count_as_nesting() {
    let many = "[".repeat(100_000);
    let c = ok(&format!(
        "{{ /* {many} */ control: {{ group: '{many}' }}, // {many}\n}}"
    ));
    assert_eq!(c.control.group.map(|g| g.len()), Some(100_000));
}

#[test]
fn a_twenty_megabyte_file_is_refused_with_a_message() {
    let text = "[".repeat(20 << 20);
    let parsed = with_file("huge.json5", &text, |p| {
        on_small_stack(move || parse_file(&p))
    });
    let e = refused(parsed, "a 20 MB file");
    assert_eq!(
        e[0].message,
        format!(
            "{} is larger than 16777216 bytes; is this really a configuration file?",
            temp_path("huge.json5").display()
        )
    );
    // Text that does not come from a file (a control request) meets the
    // same limit.
    let e = on_small_stack(move || errs(&text));
    assert_eq!(
        e[0].to_string(),
        "the configuration is 20971520 bytes, larger than 16777216 bytes; is this really a configuration file?"
    );
}
