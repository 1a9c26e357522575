//! Times sent inside JSON (`extra.identify_time`, the `event_time` of batch
//! items), turned into exact instants. Pure Rust: the time zone database is
//! the system's (`/usr/share/zoneinfo`, the one PostgreSQL uses on Debian),
//! read through `jiff`; the session's `TimeZone` is never consulted, so the
//! same event means the same instant on every pooled connection.
//!
//! Accepted forms:
//! - ISO 8601 with a zone: `2026-11-30T10:15:09Z`, `2026-11-30T17:15:09.250+07:00`,
//!   `...-0530`, `...+07` (a space may replace the `T`); fractions up to
//!   microseconds (more digits are rounded);
//! - the SDK's local form `YYYY-MM-DD HH:MM:SS[.fff]` (the browser's wall
//!   clock, no zone): read in the event's `context.timezone`, else in the
//!   default zone (`cdp.default_timezone`, UTC unless configured). A wall-clock
//!   time that does not exist in that zone (a daylight-saving gap) is refused;
//!   one that exists twice (the hour repeated when clocks go back) is the
//!   later instant, as PostgreSQL reads it;
//! - a JSON number: milliseconds since 1970-01-01 UTC (`Date.now()`).
//!
//! Keywords PostgreSQL would also accept (`now`, `epoch`, ...) are refused.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

/// Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// PostgreSQL's timestamptz range: 4713-11-24 BC to 294276-12-31 AD, in
/// microseconds since 2000-01-01.
const PG_MIN_MICROS: i64 = -211_813_488_000_000_000;
const PG_MAX_MICROS: i64 = 9_223_371_331_200_000_000;

/// A time as it arrived in a JSON document.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeValue {
    Text(String),
    /// A JSON number: milliseconds since the Unix epoch.
    EpochMillis(f64),
}

/// A wall-clock time without zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub year: i16,
    pub month: i8,
    pub day: i8,
    pub hour: i8,
    pub minute: i8,
    pub second: i8,
    pub micros: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedTime {
    /// An absolute instant, in microseconds since 2000-01-01 00:00 UTC
    /// (PostgreSQL's timestamptz representation).
    Absolute(i64),
    /// A wall-clock time without zone.
    Local(WallClock),
}

/// The zone local-form times are read in.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// An IANA zone name (`Europe/Paris`, `UTC`; case does not matter) or a
    /// fixed offset (`+07:00`, `-0530`).
    pub fn named(setting: &str, name: &str) -> CdpResult<Zone> {
        let trimmed = name.trim();
        let tz = match parse_offset(trimmed) {
            Some(seconds) => Offset::from_seconds(seconds as i32).ok().map(TimeZone::fixed),
            None if trimmed.is_empty() || trimmed.contains("..") || trimmed.starts_with('/') => None,
            None => TimeZone::get(trimmed).ok(),
        };
        match tz {
            Some(tz) => Ok(Zone { name: trimmed.to_string(), tz }),
            None => Err(CdpError::invalid(format!("{setting} \"{trimmed}\" is not a known time zone"))
                .with_hint("Use an IANA zone name such as Europe/Paris or Asia/Ho_Chi_Minh, UTC, or an offset such as +07:00.")),
        }
    }

    pub fn utc() -> Zone {
        Zone { name: "UTC".into(), tz: TimeZone::UTC }
    }
}

/// Parses a time sent as text (see the module comment).
pub fn parse(field: &str, input: &str) -> CdpResult<ParsedTime> {
    let s = input.trim();
    if ["infinity", "+infinity", "-infinity"].iter().any(|i| s.eq_ignore_ascii_case(i)) {
        return Err(CdpError::new(ErrorKind::DatetimeOverflow, format!("{field} \"{s}\" is infinite"))
            .with_hint("Send the time the event happened."));
    }
    let wall = parse_inner(s).ok_or_else(|| {
        CdpError::new(ErrorKind::InvalidDatetime, format!("{field} \"{s}\" is not a valid time")).with_hint(
            "Use ISO 8601 (2026-11-30T10:15:09Z, 2026-11-30T17:15:09.250+07:00), the SDK's local form \
             2026-11-30 17:15:09, or a number of milliseconds since 1970-01-01 UTC.",
        )
    })?;
    Ok(wall)
}

/// The instant a time stands for, in microseconds since 2000-01-01 UTC.
/// `zone` gives the zone of a local-form time; it is only asked for when
/// the time is local.
pub fn instant(field: &str, value: &TimeValue, zone: impl FnOnce() -> CdpResult<Zone>) -> CdpResult<i64> {
    let shown = || match value {
        TimeValue::Text(t) => t.trim().to_string(),
        TimeValue::EpochMillis(ms) => ms.to_string(),
    };
    let out_of_range = || CdpError::new(ErrorKind::DatetimeOverflow, format!("{field} \"{}\" is out of range", shown()));
    let micros = match value {
        TimeValue::EpochMillis(ms) => {
            let micros = (ms * 1000.0).round();
            if !micros.is_finite() || micros.abs() > 9.0e18 {
                return Err(out_of_range());
            }
            (micros as i64).checked_sub(UNIX_TO_PG_EPOCH_MICROS).ok_or_else(out_of_range)?
        }
        TimeValue::Text(text) => match parse(field, text)? {
            ParsedTime::Absolute(micros) => micros,
            ParsedTime::Local(wall) => {
                let zone = zone()?;
                local_to_instant(field, &shown(), wall, &zone)?
            }
        },
    };
    if !(PG_MIN_MICROS..PG_MAX_MICROS).contains(&micros) {
        return Err(out_of_range());
    }
    Ok(micros)
}

fn local_to_instant(field: &str, shown: &str, w: WallClock, zone: &Zone) -> CdpResult<i64> {
    let invalid = || CdpError::new(ErrorKind::InvalidDatetime, format!("{field} \"{shown}\" is not a valid time"));
    let civil = DateTime::new(w.year, w.month, w.day, w.hour, w.minute, w.second, 0).map_err(|_| invalid())?;
    let offset = match zone.tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        // The repeated hour when clocks go back: the later instant, as PostgreSQL reads it.
        AmbiguousOffset::Fold { after, .. } => after,
        AmbiguousOffset::Gap { .. } => {
            return Err(CdpError::new(
                ErrorKind::InvalidDatetime,
                format!("{field} \"{shown}\" does not exist in time zone {} (the clocks skip it)", zone.name),
            )
            .with_hint("A local time inside a daylight-saving gap is impossible; check the time and context.timezone."));
        }
    };
    let seconds = days_from_civil(w.year as i32, w.month as u32, w.day as u32) * 86_400
        + (w.hour as i64) * 3600
        + (w.minute as i64) * 60
        + w.second as i64
        - offset.seconds() as i64;
    Ok((seconds - UNIX_TO_PG_EPOCH_MICROS / 1_000_000) * 1_000_000 + w.micros as i64)
}

fn parse_inner(s: &str) -> Option<ParsedTime> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let part = s.get(from..to)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    // Fractions are kept exactly to the microsecond; a 7th digit rounds.
    let mut micros: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &frac[..digits.min(6)];
        micros = kept.parse::<i64>().ok()? * 10_i64.pow(6 - kept.len() as u32);
        if digits > 6 && frac.as_bytes()[6] >= b'5' {
            micros += 1;
        }
        rest = &frac[digits..];
    }
    if year == 0
        || month == 0
        || month > 12
        || day == 0
        || day > days_in_month(year as i32, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let offset_seconds = match rest {
        "" => {
            // A rounded-up fraction of .9999995 carries into the next second.
            let (second, micros) = if micros == 1_000_000 { (second + 1, 0) } else { (second, micros) };
            if second > 59 {
                return None;
            }
            let wall = WallClock {
                year: year as i16,
                month: month as i8,
                day: day as i8,
                hour: hour as i8,
                minute: minute as i8,
                second: second as i8,
                micros: micros as i32,
            };
            return Some(ParsedTime::Local(wall));
        }
        "Z" | "z" => 0,
        zone => parse_offset(zone)?,
    };
    let days = days_from_civil(year as i32, month, day) - days_from_civil(2000, 1, 1);
    let seconds = days * 86_400 + (hour as i64) * 3600 + (minute as i64) * 60 + second as i64 - offset_seconds;
    Some(ParsedTime::Absolute(seconds * 1_000_000 + micros))
}

/// `+07:00`, `-0530`, `+07`: seconds east of UTC.
fn parse_offset(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &zone[1..];
    let digits: String = body.chars().filter(|c| *c != ':').collect();
    let well_formed = match body.len() {
        2 | 4 => !body.contains(':'),
        5 => body.as_bytes()[2] == b':',
        _ => false,
    };
    if !well_formed || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    (hours <= 15 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// civil-days formula).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;
    const HOUR: i64 = 3600 * SECOND;

    fn at(text: &str, zone: &str) -> CdpResult<i64> {
        instant("t", &TimeValue::Text(text.into()), || Zone::named("context.timezone", zone))
    }

    /// Microseconds since 2000-01-01 UTC of a UTC wall-clock time.
    fn utc(y: i32, mo: u32, d: u32, h: i64, mi: i64, s: i64, micros: i64) -> i64 {
        ((days_from_civil(y, mo, d) - days_from_civil(2000, 1, 1)) * 86_400 + h * 3600 + mi * 60 + s) * SECOND + micros
    }

    #[test]
    fn iso_forms_keep_seconds_and_fractions() {
        assert_eq!(parse("t", "2000-01-01T00:00:00Z").unwrap(), ParsedTime::Absolute(0));
        assert_eq!(parse("t", "2000-01-01T07:00:00+07:00").unwrap(), ParsedTime::Absolute(0));
        assert_eq!(parse("t", "2000-01-01 00:00:00-0100").unwrap(), ParsedTime::Absolute(HOUR));
        assert_eq!(parse("t", "2000-01-02T00:00:00.5Z").unwrap(), ParsedTime::Absolute(24 * HOUR + 500_000));
        assert_eq!(parse("t", "2024-01-01T10:11:12Z").unwrap(), ParsedTime::Absolute(utc(2024, 1, 1, 10, 11, 12, 0)));
        assert_eq!(parse("t", "2024-01-01T10:11:12.345+02:00").unwrap(), ParsedTime::Absolute(utc(2024, 1, 1, 8, 11, 12, 345_000)));
        assert_eq!(parse("t", "2024-01-01T10:11:12.123456Z").unwrap(), ParsedTime::Absolute(utc(2024, 1, 1, 10, 11, 12, 123_456)));
        assert_eq!(parse("t", "2024-01-01T10:11:12.1234565Z").unwrap(), ParsedTime::Absolute(utc(2024, 1, 1, 10, 11, 12, 123_457)));
        assert_eq!(parse("t", "2024-01-01T23:59:59.9999999Z").unwrap(), ParsedTime::Absolute(utc(2024, 1, 2, 0, 0, 0, 0)));
        assert_eq!(parse("t", "2024-02-29T00:00:59-05").unwrap(), ParsedTime::Absolute(utc(2024, 2, 29, 5, 0, 59, 0)));
    }

    #[test]
    fn node_iso_strings_keep_their_milliseconds() {
        // What Date.prototype.toISOString() sends.
        assert_eq!(at("2026-11-30T09:08:07.654Z", "UTC").unwrap(), utc(2026, 11, 30, 9, 8, 7, 654_000));
    }

    #[test]
    fn sdk_local_form_is_read_in_the_zone_given() {
        match parse("t", "2026-11-30 17:15:09.25").unwrap() {
            ParsedTime::Local(w) => {
                assert_eq!((w.year, w.month, w.day, w.hour, w.minute, w.second, w.micros), (2026, 11, 30, 17, 15, 9, 250_000))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(at("2026-11-30 17:15:09", "Asia/Ho_Chi_Minh").unwrap(), utc(2026, 11, 30, 10, 15, 9, 0));
        assert_eq!(at("2026-11-30 17:15:09.5", "asia/ho_chi_minh").unwrap(), utc(2026, 11, 30, 10, 15, 9, 500_000));
        assert_eq!(at("2026-11-30 17:15:09", "UTC").unwrap(), utc(2026, 11, 30, 17, 15, 9, 0));
        assert_eq!(at("2026-11-30 17:15:09", "+07:00").unwrap(), utc(2026, 11, 30, 10, 15, 9, 0));
        assert_eq!(at("2026-07-01 12:00:01", "Europe/Paris").unwrap(), utc(2026, 7, 1, 10, 0, 1, 0));
        assert_eq!(at("2026-12-01 12:00:01", "Europe/Paris").unwrap(), utc(2026, 12, 1, 11, 0, 1, 0));
    }

    #[test]
    fn daylight_saving_gaps_are_refused_and_folds_take_the_later_instant() {
        // Europe/Paris skips 02:00-03:00 on 2026-03-29 and repeats 02:00-03:00 on 2026-10-25.
        let gap = at("2026-03-29 02:30:00", "Europe/Paris").unwrap_err();
        assert_eq!(gap.sqlstate(), "22007");
        assert!(gap.message.contains("Europe/Paris"), "{}", gap.message);
        assert_eq!(at("2026-10-25 02:30:00", "Europe/Paris").unwrap(), utc(2026, 10, 25, 1, 30, 0, 0));
        // An ISO time with an offset is never in a gap: it names its instant.
        assert!(at("2026-03-29T02:30:00+01:00", "Europe/Paris").is_ok());
    }

    #[test]
    fn unknown_zones_are_22023() {
        for bad in ["No/Such_Zone", "", "  ", "../../etc/passwd", "/etc/localtime", "+25:00", "GMT+7:00:00"] {
            assert_eq!(Zone::named("context.timezone", bad).unwrap_err().sqlstate(), "22023", "{bad:?}");
        }
        // The zone is only needed for local times.
        assert!(at("2026-11-30T10:00:00Z", "No/Such_Zone").is_ok());
        assert_eq!(at("2026-11-30 10:00:00", "No/Such_Zone").unwrap_err().sqlstate(), "22023");
    }

    #[test]
    fn numbers_are_epoch_milliseconds() {
        let ms = |v: f64| instant("t", &TimeValue::EpochMillis(v), || unreachable!("no zone needed"));
        assert_eq!(ms(946_684_800_000.0).unwrap(), 0);
        assert_eq!(ms(1_704_103_872_345.0).unwrap(), utc(2024, 1, 1, 10, 11, 12, 345_000));
        assert_eq!(ms(1_704_103_872_345.5).unwrap(), utc(2024, 1, 1, 10, 11, 12, 345_500));
        assert_eq!(ms(0.0).unwrap(), -UNIX_TO_PG_EPOCH_MICROS);
        for bad in [1e300, -1e300, 9.3e15] {
            assert_eq!(ms(bad).unwrap_err().sqlstate(), "22008", "{bad}");
        }
    }

    #[test]
    fn garbage_is_refused_with_22007() {
        for bad in [
            "",
            "now",
            "epoch",
            "yesterday",
            "2026-13-01 00:00:00",
            "2026-02-30 10:00:00",
            "2026-11-30",
            "2026-11-30T25:00:00Z",
            "2026-11-30T10:00:00+7",
            "2026-11-30T10:00:00 UTC",
            "30/11/2026 10:00:00",
            "2026-11-30T10:00:00.",
            "0000-01-01 00:00:00",
            "2026-11-30T10:00:60Z",
            "2026-11-30T10:00:00+07:0",
            "2026-11-30T10:00:00+0:700",
        ] {
            assert_eq!(parse("t", bad).unwrap_err().sqlstate(), "22007", "{bad:?}");
        }
    }
}
