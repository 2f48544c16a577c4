//! A session token as a caller sends it: parsed or refused, never a panic; one that parses keeps
//! its text and hashes.
#![no_main]

use identityd::auth::SessionToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Some(token) = SessionToken::parse(raw) {
        assert_eq!(token.expose(), raw);
        let _ = token.hash();
    }
});
