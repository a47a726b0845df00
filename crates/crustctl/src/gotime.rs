//! The Go time renderings crictl prints: `time.Time`'s `%v` (`Time.String`), RFC 3339 with
//! nanoseconds, and docker/go-units' `HumanDuration` ("2 minutes ago").
//!
//! Times are rendered in UTC. crictl renders them in the local zone, which is UTC on the
//! machines crust targets; there is no time zone database in this crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Civil {
    fn from_unix_nanos(nanos: i64) -> Self {
        let secs = nanos.div_euclid(1_000_000_000);
        let sub = nanos.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            nanos: sub,
        }
    }

    /// `2006-01-02`, then `sep`, then `15:04:05` and Go's `.999999999` (trailing zeros and a
    /// bare dot dropped).
    fn date_time(&self, sep: char) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Howard Hinnant's `days_from_civil`: the day count since 1970-01-01 of a date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time (`2006-01-02T15:04:05[.999999999](Z|±07:00)`) into nanoseconds
/// since the Unix epoch. With `zone_optional`, a time without zone (and a bare date) is
/// taken as UTC, as docker's `GetTimestamp` takes it in the local zone (UTC here).
pub fn parse_rfc3339(text: &str, zone_optional: bool) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = i64::from(num(0..4)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (month, day) = (num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return zone_optional.then_some(days * 86_400 * 1_000_000_000);
    }
    if !matches!(b.get(10), Some(b'T' | b't')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let mut second = 0;
    let mut rest = &text[16..];
    if let Some(r) = rest.strip_prefix(':') {
        second = num(17..19)?;
        rest = &r[2..];
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let frac: i64 = r[..digits].parse().ok()?;
        nanos = frac * 10i64.pow(9 - digits as u32);
        rest = &r[digits..];
    }
    let offset_secs = match rest {
        "" if zone_optional => 0,
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            let (h, m) = zone.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Go's `time.Unix(0, nanos).String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn time_string(nanos: i64) -> String {
    format!("{} +0000 UTC", Civil::from_unix_nanos(nanos).date_time(' '))
}

/// Go's `time.Unix(0, nanos).Format(time.RFC3339Nano)` in UTC: `2006-01-02T15:04:05.999999999Z`.
pub fn rfc3339_nano(nanos: i64) -> String {
    format!("{}Z", Civil::from_unix_nanos(nanos).date_time('T'))
}

/// Nanoseconds since the Unix epoch now.
pub fn now_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// docker/go-units `HumanDuration`: "Less than a second", "3 minutes", "About an hour"…
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // Go: int(d.Hours() + 0.5)
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".to_owned()
    } else if seconds == 1 {
        "1 second".to_owned()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".to_owned()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// crictl's CREATED cell: how long before `now` a time was, "… ago" (a time in the future
/// counts as now, as Go's negative durations do).
pub fn ago(created_nanos: i64, now_nanos: i64) -> String {
    let elapsed = u64::try_from(now_nanos.saturating_sub(created_nanos)).unwrap_or(0);
    format!("{} ago", human_duration(Duration::from_nanos(elapsed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_strings() {
        assert_eq!(time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        // 2023-11-14 22:13:20 UTC
        let t = 1_700_000_000_000_000_000;
        assert_eq!(time_string(t), "2023-11-14 22:13:20 +0000 UTC");
        assert_eq!(
            time_string(t + 123_456_789),
            "2023-11-14 22:13:20.123456789 +0000 UTC"
        );
        assert_eq!(
            time_string(t + 120_000_000),
            "2023-11-14 22:13:20.12 +0000 UTC"
        );
        assert_eq!(rfc3339_nano(t + 5_000), "2023-11-14T22:13:20.000005Z");
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        // leap day and before the epoch
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(rfc3339_nano(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn human_durations_like_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(999)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3599)), "59 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5399)), "About an hour");
        assert_eq!(human_duration(s(5400)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(14 * 86_400)), "2 weeks");
        assert_eq!(human_duration(s(60 * 86_400)), "2 months");
        assert_eq!(human_duration(s(800 * 86_400)), "2 years");
        assert_eq!(ago(10, 5), "Less than a second ago");
        assert_eq!(ago(0, 3_000_000_000), "3 seconds ago");
    }
    #[test]
    fn rfc3339_parses_back() {
        let t = 1_700_000_000_000_000_000;
        for nanos in [0, 5_000, 123_456_789] {
            assert_eq!(
                parse_rfc3339(&rfc3339_nano(t + nanos), false),
                Some(t + nanos)
            );
        }
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00", false), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z", false),
            Some(t + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z", false),
            Some(951_782_400_000_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20", false), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20", true), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13", true),
            Some(t - 20_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14", true),
            Some(t - 80_000_000_000_000)
        );
        for bad in [
            "",
            "x",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14 22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad, true), None, "{bad}");
        }
    }
}
