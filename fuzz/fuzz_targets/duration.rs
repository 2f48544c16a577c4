//! A duration setting (`90s`, `15m`, `12h`, `7d`): a duration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let _ = identityd::config::parse_duration_or_zero(raw);
    if let Ok(d) = identityd::config::parse_duration(raw) {
        assert!(!d.is_zero());
    }
});
