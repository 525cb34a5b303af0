//! Schedule phrases ("every 5 minutes", "every Monday at 8am", "daily at 17:30 in
//! Europe/Paris") to the 5-field cron expressions `trigger.schedule` takes.
//!
//! A day-level schedule without a time fires at 09:00, and the planner says so in a
//! warning: a silent midnight would surprise more people than a stated morning.

use aos_domain::workflow::validate_definition;
use serde_json::json;

use super::text::Word;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Schedule {
    pub cron: String,
    pub timezone: String,
    /// "every day at 09:00 (UTC)".
    pub description: String,
    /// Whether the time of day was not said and [`DEFAULT_TIME`] was used.
    pub defaulted_time: bool,
}

pub(super) const DEFAULT_TIME: (u32, u32) = (9, 0);

const DAYS: [(&str, &str, u32); 7] = [
    ("sunday", "sun", 0),
    ("monday", "mon", 1),
    ("tuesday", "tue", 2),
    ("wednesday", "wed", 3),
    ("thursday", "thu", 4),
    ("friday", "fri", 5),
    ("saturday", "sat", 6),
];

enum Period {
    Minutes(u32),
    Hours(u32),
    Day,
    Weekdays,
    Weekday(u32),
    Month,
}

/// A schedule phrase at the start of `words`, with the number of words it took.
pub(super) fn parse(words: &[Word]) -> Option<(Schedule, usize)> {
    let lower = |i: usize| words.get(i).map_or("", |w| w.lower.as_str());
    let (period, mut used, default_time) = match lower(0) {
        "daily" => (Period::Day, 1, None),
        "hourly" => (Period::Hours(1), 1, None),
        "weekly" => (Period::Weekday(1), 1, None),
        "monthly" => (Period::Month, 1, None),
        "every" | "each" => every(lower(1), lower(2))?,
        "on" => match lower(1) {
            "weekdays" => (Period::Weekdays, 2, None),
            day => (Period::Weekday(day_number(day)?), 2, None),
        },
        _ => return None,
    };
    let mut time = None;
    if matches!(
        period,
        Period::Day | Period::Weekdays | Period::Weekday(_) | Period::Month
    ) {
        let at = usize::from(lower(used) == "at");
        if let Some((found, taken)) = parse_time(words.get(used + at..).unwrap_or_default()) {
            time = Some(found);
            used += at + taken;
        }
    }
    let mut timezone = "UTC".to_owned();
    if lower(used) == "in" {
        if let Some(zone) = words.get(used + 1).filter(|w| is_timezone(&w.bare)) {
            timezone = zone.bare.clone();
            used += 2;
        }
    } else if matches!(lower(used), "utc" | "gmt") {
        used += 1;
    }
    let defaulted_time = time.is_none() && default_time.is_none();
    let (hour, minute) = time.or(default_time).unwrap_or(DEFAULT_TIME);
    let (cron, what) = match period {
        Period::Minutes(1) => ("* * * * *".to_owned(), "every minute".to_owned()),
        Period::Minutes(n) => (format!("*/{n} * * * *"), format!("every {n} minutes")),
        Period::Hours(1) => ("0 * * * *".to_owned(), "every hour".to_owned()),
        Period::Hours(n) => (format!("0 */{n} * * *"), format!("every {n} hours")),
        Period::Day => (
            format!("{minute} {hour} * * *"),
            format!("every day at {hour:02}:{minute:02}"),
        ),
        Period::Weekdays => (
            format!("{minute} {hour} * * 1-5"),
            format!("every weekday at {hour:02}:{minute:02}"),
        ),
        Period::Weekday(day) => (
            format!("{minute} {hour} * * {day}"),
            format!("every {} at {hour:02}:{minute:02}", day_name(day)),
        ),
        Period::Month => (
            format!("{minute} {hour} 1 * *"),
            format!("on the 1st of every month at {hour:02}:{minute:02}"),
        ),
    };
    let by_the_clock = !cron.starts_with('*') && !cron.starts_with("0 *");
    let schedule = Schedule {
        description: format!("{what} ({timezone})"),
        cron,
        timezone,
        defaulted_time: defaulted_time && by_the_clock,
    };
    Some((schedule, used))
}

/// A period, the words its phrase took, and the time of day it implies ("every morning").
type Phrase = (Period, usize, Option<(u32, u32)>);

/// What follows "every".
fn every(first: &str, second: &str) -> Option<Phrase> {
    if let Ok(n) = first.parse::<u32>() {
        let period = match second {
            "minute" | "minutes" | "min" | "mins" if (1..=59).contains(&n) => Period::Minutes(n),
            "hour" | "hours" | "hr" | "hrs" if (1..=23).contains(&n) => Period::Hours(n),
            _ => return None,
        };
        return Some((period, 3, None));
    }
    let found = match first {
        "minute" => (Period::Minutes(1), None),
        "hour" => (Period::Hours(1), None),
        "day" | "night" => (Period::Day, None),
        "morning" => (Period::Day, Some(DEFAULT_TIME)),
        "evening" => (Period::Day, Some((18, 0))),
        "weekday" | "weekdays" | "workday" => (Period::Weekdays, None),
        "week" => (Period::Weekday(1), None),
        "month" => (Period::Month, None),
        day => (Period::Weekday(day_number(day)?), None),
    };
    Some((found.0, 2, found.1))
}

fn day_number(word: &str) -> Option<u32> {
    let word = word
        .strip_suffix('s')
        .filter(|w| w.len() > 3)
        .unwrap_or(word);
    DAYS.iter()
        .find(|(name, short, _)| word == *name || word == *short)
        .map(|(_, _, n)| *n)
}

fn day_name(day: u32) -> String {
    DAYS.iter()
        .find(|(_, _, n)| *n == day)
        .map(|(name, _, _)| super::text::capitalised(name))
        .unwrap_or_default()
}

/// A time of day: "9am", "9 am", "9:30pm", "17:30", "noon", "midnight", "9".
pub(super) fn parse_time(words: &[Word]) -> Option<((u32, u32), usize)> {
    let first = words.first()?.lower.as_str();
    match first {
        "noon" | "midday" => return Some(((12, 0), 1)),
        "midnight" => return Some(((0, 0), 1)),
        _ => {}
    }
    let digits_end = first
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(first.len());
    let (clock, suffix) = first.split_at(digits_end);
    let (mut suffix, mut used) = (suffix.to_owned(), 1);
    if suffix.is_empty()
        && let Some(next) = words
            .get(1)
            .filter(|w| w.is_any(&["am", "pm", "a.m", "p.m"]))
    {
        suffix = next.lower.clone();
        used = 2;
    }
    let (hour, minute) = match clock.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        Some(_) => return None,
        None => (clock.parse::<u32>().ok()?, 0),
    };
    if minute > 59 {
        return None;
    }
    let hour = match suffix.as_str() {
        "am" | "a.m" if (1..=12).contains(&hour) => hour % 12,
        "pm" | "p.m" if (1..=12).contains(&hour) => hour % 12 + 12,
        "" | "h" if hour <= 23 => hour,
        _ => return None,
    };
    Some(((hour, minute), used))
}

/// Whether the validator knows `name` as an IANA time zone: asking it keeps the planner
/// and the engine agreeing on the list.
fn is_timezone(name: &str) -> bool {
    let trial = json!({
        "nodes": [{"id": "t", "type": "trigger.schedule", "config": {"cron": "0 0 * * *", "timezone": name}}],
        "edges": []
    });
    validate_definition(&trial).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(phrase: &str) -> Option<(String, String, usize, bool)> {
        let words: Vec<Word> = super::super::text::split_clauses(phrase)
            .into_iter()
            .flatten()
            .collect();
        parse(&words).map(|(s, used)| (s.cron, s.timezone, used, s.defaulted_time))
    }

    fn cron(phrase: &str) -> Option<String> {
        schedule(phrase).map(|s| s.0)
    }

    #[test]
    fn intervals() {
        assert_eq!(cron("every 5 minutes").as_deref(), Some("*/5 * * * *"));
        assert_eq!(cron("every minute").as_deref(), Some("* * * * *"));
        assert_eq!(cron("every hour").as_deref(), Some("0 * * * *"));
        assert_eq!(cron("hourly").as_deref(), Some("0 * * * *"));
        assert_eq!(cron("every 2 hours").as_deref(), Some("0 */2 * * *"));
        assert_eq!(cron("every 90 minutes"), None);
        assert_eq!(cron("every 30 seconds"), None);
    }

    #[test]
    fn days_and_times() {
        assert_eq!(cron("every day at 9am").as_deref(), Some("0 9 * * *"));
        assert_eq!(cron("every day at 17:30").as_deref(), Some("30 17 * * *"));
        assert_eq!(cron("daily at 9:15 pm").as_deref(), Some("15 21 * * *"));
        assert_eq!(cron("every day at noon").as_deref(), Some("0 12 * * *"));
        assert_eq!(cron("every day at 12am").as_deref(), Some("0 0 * * *"));
        assert_eq!(cron("every Monday at 8am").as_deref(), Some("0 8 * * 1"));
        assert_eq!(cron("every friday").as_deref(), Some("0 9 * * 5"));
        assert_eq!(cron("on Sundays at 10").as_deref(), Some("0 10 * * 0"));
        assert_eq!(
            cron("every weekday at 8:30").as_deref(),
            Some("30 8 * * 1-5")
        );
        assert_eq!(cron("every month").as_deref(), Some("0 9 1 * *"));
        assert_eq!(cron("every evening").as_deref(), Some("0 18 * * *"));
        assert_eq!(cron("every day at 25:00").as_deref(), Some("0 9 * * *"));
    }

    #[test]
    fn a_missing_time_is_reported_as_defaulted() {
        assert_eq!(schedule("daily").map(|s| s.3), Some(true));
        assert_eq!(schedule("daily at 7am").map(|s| s.3), Some(false));
        assert_eq!(schedule("every morning").map(|s| s.3), Some(false));
        assert_eq!(schedule("every 5 minutes").map(|s| s.3), Some(false));
    }

    #[test]
    fn time_zones_are_checked() {
        assert_eq!(
            schedule("every day at 9am in Europe/Paris"),
            Some(("0 9 * * *".into(), "Europe/Paris".into(), 6, false))
        );
        assert_eq!(
            schedule("every day at 9am in Mars/Olympus"),
            Some(("0 9 * * *".into(), "UTC".into(), 4, false))
        );
    }

    #[test]
    fn other_phrases_are_not_schedules() {
        assert_eq!(cron("every time a webhook arrives"), None);
        assert_eq!(cron("on slack"), None);
        assert_eq!(cron("post to slack"), None);
    }
}
