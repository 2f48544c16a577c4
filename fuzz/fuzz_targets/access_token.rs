//! A user access token with its checksum: parsed or refused, never a panic; one that parses has
//! the access-token prefix.
#![no_main]

use identityd::auth::AccessTokenSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if AccessTokenSecret::parse(raw).is_some() {
        assert!(AccessTokenSecret::looks_like(raw));
    }
});
