//! An expiration date and time zone from a request (`2030-01-31`, `2030-01-31T18:00:00+01:00`,
//! `Europe/Berlin`): an instant within the bounds, or the fields at fault, never a panic.
#![no_main]

use chrono::{Duration, TimeZone, Utc};
use identityd::domain::Expiration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (date, zone) = input;
    let now = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
    let _ = Expiration::parse(date, zone, now, Duration::days(365));
});
