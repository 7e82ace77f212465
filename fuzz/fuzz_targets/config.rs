//! The config reader, through its public entry point only (its internals
//! are being replaced): any text is either a config or errors, never a
//! panic, and a config that reads also yields its rule set or field errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = mcr::config::parse(text) {
        let _ = cfg.rule_set();
    }
});
