//! Parsing of times sent as text (`extra.identify_time`, the `event_time` of
//! batch items): ISO 8601 with a zone
//! (`2026-11-30T10:15:00Z`, `...+07:00`) or the SDK's local form
//! `YYYY-MM-DD HH:MM:SS` (no zone: the browser's wall clock).
//! Keywords PostgreSQL would also accept (`now`, `epoch`, ...) are refused.

use crate::errors::{CdpError, CdpResult, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WallClock {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParsedTime {
    /// An absolute instant, in microseconds since 2000-01-01 00:00 UTC
    /// (PostgreSQL's timestamptz representation).
    Absolute(i64),
    /// A wall-clock time without zone.
    Local(WallClock),
}

pub fn parse(field: &str, input: &str) -> CdpResult<ParsedTime> {
    let s = input.trim();
    parse_inner(s).ok_or_else(|| {
        CdpError::new(
            ErrorKind::InvalidDatetime,
            format!("{field} \"{s}\" is not a valid time"),
        )
        .with_hint("Use ISO 8601 (2026-11-30T10:15:00Z, 2026-11-30T17:15:00+07:00) or the SDK's local form 2026-11-30 17:15:00.")
    })
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
    let (hour, minute, whole_second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut second = whole_second as f64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        second += format!("0.{}", &frac[..digits]).parse::<f64>().ok()?;
        rest = &frac[digits..];
    }
    if month == 0 || month > 12 || day == 0 || day > days_in_month(year as i32, month) || hour > 23 || minute > 59 || whole_second > 59 {
        return None;
    }
    let wall = WallClock { year: year as i32, month: month as u8, day: day as u8, hour: hour as u8, minute: minute as u8, second };
    let offset_seconds = match rest {
        "" => return Some(ParsedTime::Local(wall)),
        "Z" | "z" => 0,
        zone => parse_offset(zone)?,
    };
    let days = days_from_civil(wall.year, wall.month as u32, wall.day as u32) - days_from_civil(2000, 1, 1);
    let seconds = days * 86_400 + (hour as i64) * 3600 + (minute as i64) * 60 - offset_seconds;
    Some(ParsedTime::Absolute(seconds * 1_000_000 + ((second - whole_second as f64) * 1e6).round() as i64))
}

/// `+07:00`, `-0530`, `+07`: seconds east of UTC.
fn parse_offset(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) || zone[1..].len() > 5 {
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

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn iso_forms_are_absolute() {
        assert_eq!(parse("identify_time", "2000-01-01T00:00:00Z").unwrap(), ParsedTime::Absolute(0));
        assert_eq!(parse("identify_time", "2000-01-01T07:00:00+07:00").unwrap(), ParsedTime::Absolute(0));
        assert_eq!(parse("identify_time", "2000-01-01 00:00:00-0100").unwrap(), ParsedTime::Absolute(HOUR));
        assert_eq!(parse("identify_time", "2000-01-02T00:00:00.5Z").unwrap(), ParsedTime::Absolute(24 * HOUR + 500_000));
        assert_eq!(parse("identify_time", "2024-02-29T00:00:00Z").unwrap(), ParsedTime::Absolute(days_from_civil(2024, 2, 29) * 24 * HOUR - days_from_civil(2000, 1, 1) * 24 * HOUR));
    }

    #[test]
    fn sdk_local_form_is_wall_clock() {
        match parse("identify_time", "2026-11-30 17:15:09").unwrap() {
            ParsedTime::Local(w) => assert_eq!((w.year, w.month, w.day, w.hour, w.minute, w.second), (2026, 11, 30, 17, 15, 9.0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_refused_with_22007() {
        for bad in ["", "now", "epoch", "yesterday", "2026-13-01 00:00:00", "2026-02-30 10:00:00",
                    "2026-11-30", "2026-11-30T25:00:00Z", "2026-11-30T10:00:00+7", "2026-11-30T10:00:00 UTC",
                    "30/11/2026 10:00:00", "2026-11-30T10:00:00."] {
            assert_eq!(parse("identify_time", bad).unwrap_err().sqlstate(), "22007", "{bad:?}");
        }
    }
}
