//! Working-hours schedules for routes: days of the week, hours, holidays, in
//! an IANA time zone. Time is passed in (no clock here), so tests are exact.

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA zone of the branch, e.g. "Europe/Kyiv" or "Asia/Omsk".
    pub timezone: String,
    /// Open days: "mon".."sun" or ranges "mon-fri"; default every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Open hours "HH:MM-HH:MM" (end exclusive; "22:00-06:00" wraps midnight);
    /// default all day.
    #[serde(default)]
    pub hours: Vec<String>,
    /// Closed dates: "YYYY-MM-DD" once, or "MM-DD" every year.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn weekday(s: &str) -> Option<u8> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    days.iter()
        .position(|d| s.trim().eq_ignore_ascii_case(d))
        .map(|i| i as u8 + 1)
}

fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

impl Schedule {
    /// Checks every field; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        TimeZone::get(&self.timezone).map_err(|e| format!("timezone {:?}: {e}", self.timezone))?;
        for d in &self.days {
            self.day_range(d)
                .ok_or_else(|| format!("day {d:?} (expected mon..sun or mon-fri)"))?;
        }
        for h in &self.hours {
            self.hour_range(h)
                .ok_or_else(|| format!("hours {h:?} (expected HH:MM-HH:MM)"))?;
        }
        for d in &self.holidays {
            let ok = match d.len() {
                10 => d.parse::<jiff::civil::Date>().is_ok(),
                5 => format!("2000-{d}").parse::<jiff::civil::Date>().is_ok(),
                _ => false,
            };
            if !ok {
                return Err(format!("holiday {d:?} (expected YYYY-MM-DD or MM-DD)"));
            }
        }
        Ok(())
    }

    fn day_range(&self, d: &str) -> Option<(u8, u8)> {
        match d.split_once('-') {
            Some((a, b)) => Some((weekday(a)?, weekday(b)?)),
            None => weekday(d).map(|w| (w, w)),
        }
    }

    fn hour_range(&self, h: &str) -> Option<(u32, u32)> {
        let (a, b) = h.split_once('-')?;
        Some((minutes(a)?, minutes(b)?))
    }

    /// Whether the schedule is open at Unix time `now_s`. An invalid schedule
    /// (refused at config load) is closed.
    pub fn is_open(&self, now_s: i64) -> bool {
        let Ok(tz) = TimeZone::get(&self.timezone) else {
            return false;
        };
        let Ok(ts) = jiff::Timestamp::from_second(now_s) else {
            return false;
        };
        let dt = ts.to_zoned(tz).datetime();
        let wd = dt.weekday().to_monday_one_offset() as u8;
        let in_days = self.days.is_empty()
            || self.days.iter().any(|d| {
                self.day_range(d).is_some_and(|(a, b)| {
                    if a <= b {
                        (a..=b).contains(&wd)
                    } else {
                        wd >= a || wd <= b
                    }
                })
            });
        let mins = dt.hour() as u32 * 60 + dt.minute() as u32;
        let in_hours = self.hours.is_empty()
            || self.hours.iter().any(|h| {
                self.hour_range(h).is_some_and(|(a, b)| {
                    if a <= b {
                        mins >= a && mins < b
                    } else {
                        mins >= a || mins < b
                    }
                })
            });
        let date = format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
        let holiday = self
            .holidays
            .iter()
            .any(|h| *h == date || (h.len() == 5 && date.ends_with(h.as_str())));
        in_days && in_hours && !holiday
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn office() -> Schedule {
        Schedule {
            timezone: "Asia/Omsk".into(), // UTC+6, no DST
            days: vec!["mon-fri".into()],
            hours: vec!["09:00-18:00".into()],
            holidays: vec!["12-31".into(), "2026-11-27".into()],
        }
    }

    #[test]
    fn open_in_working_hours_of_the_branch_zone() {
        let s = office();
        s.validate().unwrap();
        // Monday 2026-11-23 09:30 in Omsk = 03:30 UTC.
        assert!(s.is_open(at("2026-11-23T03:30:00Z")));
        // 08:59 Omsk: closed; 18:00 Omsk: closed (end exclusive).
        assert!(!s.is_open(at("2026-11-23T02:59:00Z")));
        assert!(!s.is_open(at("2026-11-23T12:00:00Z")));
        // Saturday.
        assert!(!s.is_open(at("2026-11-28T05:00:00Z")));
        // Friday 2026-11-27 is a one-off holiday; 12-31 every year.
        assert!(!s.is_open(at("2026-11-27T05:00:00Z")));
        assert!(!s.is_open(at("2027-12-31T05:00:00Z")));
    }

    #[test]
    fn night_shifts_wrap_midnight_and_bad_fields_are_named() {
        let s = Schedule {
            timezone: "UTC".into(),
            days: vec![],
            hours: vec!["22:00-06:00".into()],
            holidays: vec![],
        };
        assert!(s.is_open(at("2026-11-23T23:00:00Z")));
        assert!(s.is_open(at("2026-11-23T05:59:00Z")));
        assert!(!s.is_open(at("2026-11-23T12:00:00Z")));
        let bad = Schedule {
            timezone: "Mars/Olympus".into(),
            ..s.clone()
        };
        assert!(bad.validate().unwrap_err().contains("Mars/Olympus"));
        let bad = Schedule {
            hours: vec!["9-5".into()],
            ..s
        };
        assert!(bad.validate().unwrap_err().contains("9-5"));
    }
}
