//! Opening hours: `[schedules.<name>]` blocks and the `WithinSchedule` condition.
//!
//! A schedule is weekly hours in a named IANA time zone, minus a list of holidays. The
//! interpreter never reads a clock: the call layer puts the wall time (Unix seconds) in
//! `system.now`, and [`Schedule::contains`] judges that instant in the schedule's zone, so
//! daylight-saving changes are the time zone database's business (jiff, bundled tzdb).

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

/// A `[schedules.<name>]` block as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleFile {
    /// IANA name: `Europe/Stockholm`, `America/New_York`, `UTC`.
    pub(crate) time_zone: String,
    /// `"mon-fri 08:00-18:00"`, `"sat 10:00-14:00"`, `"sun 00:00-24:00"`.
    pub(crate) hours: Vec<String>,
    /// Whole days closed, `YYYY-MM-DD` in the schedule's zone.
    #[serde(default)]
    pub(crate) holidays: Vec<String>,
}

/// A compiled `[schedules.<name>]` block: weekly hours in one time zone, minus holidays.
/// Validation builds it; the interpreter asks [`Schedule::contains`] with `system.now`.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    windows: Vec<Window>,
    holidays: BTreeSet<Date>,
}

/// Open on `days` (bit 0 = Monday) from `start` to `end`, minutes of the local day.
#[derive(Debug, Clone, Copy)]
struct Window {
    days: u8,
    start: u16,
    end: u16,
}

/// Why a schedule block does not compile; `check` shows it with the schedule's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `time_zone` is not in the time-zone database.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Stockholm\")")]
    TimeZone(String),
    /// An `hours` entry is not `days HH:MM-HH:MM`.
    #[error("hours {0:?}: write \"mon-fri 08:00-18:00\" (days mon..sun, times HH:MM, 24:00 for midnight)")]
    Hours(String),
    /// A `holidays` entry is not a date.
    #[error("holiday {0:?} is not a date YYYY-MM-DD")]
    Holiday(String),
    /// `hours` is empty.
    #[error("no opening hours: the schedule would never be open")]
    Empty,
}

impl Schedule {
    pub(crate) fn compile(file: &ScheduleFile) -> Result<Self, ScheduleError> {
        let tz = TimeZone::get(&file.time_zone)
            .map_err(|_| ScheduleError::TimeZone(file.time_zone.clone()))?;
        if file.hours.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let windows = file
            .hours
            .iter()
            .map(|h| parse_window(h).ok_or_else(|| ScheduleError::Hours(h.clone())))
            .collect::<Result<_, _>>()?;
        let holidays = file
            .holidays
            .iter()
            .map(|d| {
                d.trim()
                    .parse::<Date>()
                    .map_err(|_| ScheduleError::Holiday(d.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tz,
            windows,
            holidays,
        })
    }

    /// Whether the schedule is open at `unix_s` (seconds since the Unix epoch, UTC).
    pub fn contains(&self, unix_s: i64) -> bool {
        let Ok(ts) = Timestamp::from_second(unix_s) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        let date = local.date();
        if self.holidays.contains(&date) {
            return false;
        }
        let day = 1u8 << (local.weekday().to_monday_zero_offset() as u8);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.windows
            .iter()
            .any(|w| w.days & day != 0 && (w.start..w.end).contains(&minute))
    }
}

/// `"mon-fri 08:00-18:00"`, `"sat 10:00-14:00"`, `"mon,wed 09:00-12:00"`.
fn parse_window(s: &str) -> Option<Window> {
    let (days, times) = s.trim().split_once(char::is_whitespace)?;
    let mut mask = 0u8;
    for part in days.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (weekday(a)?, weekday(b)?);
                let (a, b) = (a.to_monday_zero_offset(), b.to_monday_zero_offset());
                if a > b {
                    return None;
                }
                for d in a..=b {
                    mask |= 1 << d;
                }
            }
            None => mask |= 1 << weekday(part)?.to_monday_zero_offset(),
        }
    }
    let (start, end) = times.trim().split_once('-')?;
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < end).then_some(Window {
        days: mask,
        start,
        end,
    })
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// `HH:MM` as minutes of the day; `24:00` is the end of the day.
fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stockholm() -> Schedule {
        Schedule::compile(&ScheduleFile {
            time_zone: "Europe/Stockholm".into(),
            hours: vec!["mon-fri 08:00-18:00".into(), "sat 10:00-14:00".into()],
            holidays: vec!["2026-12-24".into(), "2026-12-25".into()],
        })
        .expect("a valid schedule")
    }

    /// Unix seconds of a UTC wall time, for readable tests.
    fn utc(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("a timestamp").as_second()
    }

    #[test]
    fn weekday_hours_and_weekend() {
        let s = stockholm();
        // Tuesday 1 December 2026; Stockholm is UTC+1 in winter.
        assert!(s.contains(utc("2026-12-01T07:00:00Z")), "08:00 local opens");
        assert!(
            !s.contains(utc("2026-12-01T06:59:59Z")),
            "07:59 local is closed"
        );
        assert!(
            s.contains(utc("2026-12-01T16:59:00Z")),
            "17:59 local is open"
        );
        assert!(
            !s.contains(utc("2026-12-01T17:00:00Z")),
            "18:00 local closes"
        );
        // Saturday 5 and Sunday 6 December.
        assert!(s.contains(utc("2026-12-05T10:00:00Z")));
        assert!(
            !s.contains(utc("2026-12-05T13:00:00Z")),
            "14:00 local Saturday"
        );
        assert!(!s.contains(utc("2026-12-06T10:00:00Z")), "Sunday is closed");
    }

    #[test]
    fn holidays_close_the_whole_local_day() {
        let s = stockholm();
        // Thursday 24 December 2026, noon local.
        assert!(!s.contains(utc("2026-12-24T11:00:00Z")));
        // Wednesday 23 December is an ordinary day.
        assert!(s.contains(utc("2026-12-23T11:00:00Z")));
    }

    #[test]
    fn opening_follows_the_local_clock_across_daylight_saving() {
        let s = stockholm();
        // Sweden moves to summer time on Sunday 29 March 2026 (UTC+1 → UTC+2). On
        // Friday 27 March 08:00 local is 07:00 UTC; on Monday 30 March it is 06:00 UTC.
        assert!(s.contains(utc("2026-03-27T07:00:00Z")));
        assert!(!s.contains(utc("2026-03-27T06:30:00Z")));
        assert!(s.contains(utc("2026-03-30T06:00:00Z")), "08:00 CEST opens");
        assert!(
            !s.contains(utc("2026-03-30T05:30:00Z")),
            "07:30 CEST is closed"
        );
        assert!(
            !s.contains(utc("2026-03-30T16:00:00Z")),
            "18:00 CEST closes"
        );
        // And back on Sunday 25 October 2026 (UTC+2 → UTC+1).
        assert!(s.contains(utc("2026-10-23T06:00:00Z")), "Friday 08:00 CEST");
        assert!(!s.contains(utc("2026-10-26T06:30:00Z")), "Monday 07:30 CET");
        assert!(s.contains(utc("2026-10-26T07:00:00Z")), "Monday 08:00 CET");
    }

    #[test]
    fn bad_blocks_are_named() {
        let mut f = ScheduleFile {
            time_zone: "Mars/Olympus".into(),
            hours: vec!["mon-fri 08:00-18:00".into()],
            holidays: vec![],
        };
        assert!(matches!(
            Schedule::compile(&f),
            Err(ScheduleError::TimeZone(_))
        ));
        f.time_zone = "UTC".into();
        for bad in [
            "mon-fri 8-18",
            "fri-mon 08:00-18:00",
            "mon 18:00-08:00",
            "xyz 08:00-09:00",
            "mon 24:30-25:00",
        ] {
            f.hours = vec![bad.into()];
            assert!(
                matches!(Schedule::compile(&f), Err(ScheduleError::Hours(_))),
                "{bad}"
            );
        }
        f.hours = vec!["sun 00:00-24:00".into()];
        f.holidays = vec!["24 Dec".into()];
        assert!(matches!(
            Schedule::compile(&f),
            Err(ScheduleError::Holiday(_))
        ));
    }
}
