//! When a service-account session expires, as the CloudBees calls give it: an `expiration_date`
//! read in a `time_zone`. Zone rules come from the IANA database bundled with `jiff`, never from
//! code of ours.
//!
//! The answers, as the contract documents them:
//! - `time_zone` is an IANA name ("Europe/Berlin"); empty means UTC. An unknown name is refused
//!   even when the date carries an offset: it is a mistake either way.
//! - `2030-01-31T18:00:00+01:00` (or `…Z`): the offset wins over `time_zone`.
//! - `2030-01-31T18:00:00`: a local time in `time_zone`. A local time that does not exist (the
//!   hour skipped when clocks go forward) is refused; one that exists twice (the hour repeated when
//!   clocks go back) is the earlier of the two instants.
//! - `2030-01-31`: the session lasts through that whole day in `time_zone` and expires at the first
//!   instant of the next day.
//! - The expiry must lie in the future, and no further ahead than the server's maximum.

use chrono::{DateTime, Duration, Utc};
use jiff::civil;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::FieldViolation;

const DATE_FIELD: &str = "expiration_date";
const ZONE_FIELD: &str = "time_zone";

const FORMS: &str = "must be an ISO 8601 date (2030-01-31), local date-time (2030-01-31T18:00:00) \
                     or date-time with an offset (2030-01-31T18:00:00+01:00)";

/// An expiry read from `expiration_date` and `time_zone`, checked against the present and the
/// longest lifetime allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiration(DateTime<Utc>);

impl Expiration {
    /// Reads `date` in `zone` and checks that the instant lies after `now` and at most `max_ahead`
    /// after it. Every field at fault is named.
    pub fn parse(date: &str, zone: &str, now: DateTime<Utc>, max_ahead: Duration) -> Result<Self, Vec<FieldViolation>> {
        let zone = parse_zone(zone);
        let instant = match &zone {
            Ok(tz) => parse_instant(date.trim(), tz),
            // The offset form needs no zone: say what is wrong with the date too, if anything.
            Err(_) => parse_instant(date.trim(), &TimeZone::UTC),
        };
        let mut violations = Vec::new();
        violations.extend(zone.err());
        match instant {
            Err(v) => violations.push(v),
            Ok(at) if violations.is_empty() => {
                if at <= now {
                    violations.push(FieldViolation::new(DATE_FIELD, "must be in the future"));
                } else if at > now + max_ahead {
                    violations.push(FieldViolation::new(
                        DATE_FIELD,
                        format!("must be at most {} days from now", max_ahead.num_days()),
                    ));
                } else {
                    return Ok(Self(at));
                }
            }
            Ok(_) => {}
        }
        Err(violations)
    }

    /// The exact instant the session expires.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

fn parse_zone(name: &str) -> Result<TimeZone, FieldViolation> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        FieldViolation::new(
            ZONE_FIELD,
            "must be an IANA time zone name such as Europe/Berlin, or empty for UTC",
        )
    })
}

fn parse_instant(date: &str, tz: &TimeZone) -> Result<DateTime<Utc>, FieldViolation> {
    if date.is_empty() {
        return Err(FieldViolation::new(DATE_FIELD, "must not be empty"));
    }
    // An offset (or Z) makes it an exact instant, whatever the zone says.
    if let Ok(ts) = date.parse::<jiff::Timestamp>() {
        return to_chrono(ts);
    }
    let zoned = if date.contains(['T', 't', ' ']) {
        let local: civil::DateTime = date.parse().map_err(|_| FieldViolation::new(DATE_FIELD, FORMS))?;
        let ambiguous = tz.to_ambiguous_zoned(local);
        if let AmbiguousOffset::Gap { .. } = ambiguous.offset() {
            return Err(FieldViolation::new(
                DATE_FIELD,
                format!(
                    "names a local time that does not exist in {}: the clocks skip it",
                    tz_name(tz)
                ),
            ));
        }
        // In a fold (clocks going back) the earlier of the two instants.
        ambiguous.earlier()
    } else {
        let day: civil::Date = date.parse().map_err(|_| FieldViolation::new(DATE_FIELD, FORMS))?;
        // Through the whole day: the first instant of the next one (not always midnight, when
        // the clocks go forward at midnight).
        day.tomorrow()
            .and_then(|next| next.to_zoned(tz.clone()))
            .and_then(|z| z.start_of_day())
    }
    .map_err(|_| FieldViolation::new(DATE_FIELD, FORMS))?;
    to_chrono(zoned.timestamp())
}

fn tz_name(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

fn to_chrono(ts: jiff::Timestamp) -> Result<DateTime<Utc>, FieldViolation> {
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
        .ok_or_else(|| FieldViolation::new(DATE_FIELD, FORMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn at(date: &str, zone: &str) -> Result<String, Vec<String>> {
        Expiration::parse(date, zone, now(), Duration::days(3650))
            .map(|e| e.instant().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .map_err(|v| v.into_iter().map(|v| v.field).collect())
    }

    #[test]
    fn a_local_time_is_read_in_its_zone() {
        assert_eq!(
            at("2030-07-01T12:00:00", "Europe/Berlin"),
            Ok("2030-07-01T10:00:00Z".into())
        );
        assert_eq!(
            at("2030-07-01 12:00", "America/New_York"),
            Ok("2030-07-01T16:00:00Z".into())
        );
        assert_eq!(at("2030-07-01T12:00:00", ""), Ok("2030-07-01T12:00:00Z".into()));
    }

    #[test]
    fn an_offset_wins_over_the_zone() {
        assert_eq!(
            at("2030-07-01T12:00:00+05:00", "Europe/Berlin"),
            Ok("2030-07-01T07:00:00Z".into())
        );
        assert_eq!(
            at("2030-07-01T12:00:00Z", "Europe/Berlin"),
            Ok("2030-07-01T12:00:00Z".into())
        );
    }

    #[test]
    fn a_date_lasts_through_that_day() {
        assert_eq!(at("2030-07-01", "Europe/Berlin"), Ok("2030-07-01T22:00:00Z".into()));
    }

    #[test]
    fn the_skipped_hour_is_refused_and_the_repeated_one_is_the_earlier() {
        // Berlin: 2030-03-31 02:00 → 03:00; 2030-10-27 03:00 → 02:00.
        assert_eq!(at("2030-03-31T02:30:00", "Europe/Berlin"), Err(vec![DATE_FIELD.into()]));
        assert_eq!(
            at("2030-10-27T02:30:00", "Europe/Berlin"),
            Ok("2030-10-27T00:30:00Z".into())
        );
    }

    #[test]
    fn bad_input_names_its_fields() {
        assert_eq!(at("yesterday", ""), Err(vec![DATE_FIELD.into()]));
        assert_eq!(at("2030-02-30", ""), Err(vec![DATE_FIELD.into()]));
        assert_eq!(at("", ""), Err(vec![DATE_FIELD.into()]));
        assert_eq!(at("2030-07-01", "Mars/Olympus"), Err(vec![ZONE_FIELD.into()]));
        assert_eq!(
            at("junk", "Mars/Olympus"),
            Err(vec![ZONE_FIELD.into(), DATE_FIELD.into()])
        );
        assert_eq!(at("2029-12-31", ""), Err(vec![DATE_FIELD.into()]), "the past");
        assert_eq!(at("2045-01-01", ""), Err(vec![DATE_FIELD.into()]), "beyond the maximum");
    }
}
