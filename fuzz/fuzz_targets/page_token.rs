//! A page size and page token from a list request: a page within the bounds, or a violation.
#![no_main]

use identityd::domain::PageRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (i32, &str)| {
    let (size, token) = input;
    if let Ok(page) = PageRequest::parse(size, token) {
        assert!(page.size >= 1);
    }
});
