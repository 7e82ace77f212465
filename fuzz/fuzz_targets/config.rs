//! The config reader and writer: any text is either a config or errors,
//! never a panic; a config that reads also yields its rule set or field
//! errors; and what `mcrctl config save` would write of it reads back to
//! the same config, written the same way again (emit → read → emit is a
//! fixed point), so a saved file never changes what the daemon does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = mcr::config::parse(text) else {
        return;
    };
    let _ = cfg.rule_set();
    let saved = cfg.to_json5();
    match mcr::config::parse(&saved) {
        Ok(back) => {
            assert_eq!(back, cfg, "saved config reads back different:\n{saved}");
            assert_eq!(back.to_json5(), saved, "emit -> read -> emit moved");
        }
        Err(e) => panic!("saved config does not read:\n{e}\n--- saved:\n{saved}"),
    }
});
