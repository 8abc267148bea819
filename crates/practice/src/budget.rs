//! Budgets: limits per class and per student on tokens per day and per week,
//! runs per hour and cost per month, and the calendar periods they count over.
//!
//! A run reserves its worst case (for every model: the prompt's tokens as
//! counted by the model's profile plus the answer's maximum) in the database
//! before any model is called, and settles what it really used afterwards
//! ([`Store::reserve`](crate::Store::reserve), [`Store::settle`](crate::Store::settle)).
//! The reservation checks every limit and inserts its row in one write
//! transaction that every replica on the database serialises on (SQLite's
//! write lock, `BEGIN IMMEDIATE`; a row lock on the class in PostgreSQL), so
//! limits hold across processes: usage can pass a limit only by what a
//! provider reports beyond the reservation of a run in flight.
//!
//! Periods are calendar periods in UTC: the hour, the day, the ISO week (from
//! Monday) and the month. Time comes from a [`Clock`], which tests replace.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Where the time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The limits of one class or one student; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Tokens (prompt and answer) per UTC day.
    pub tokens_per_day: Option<i64>,
    /// Tokens per ISO week (Monday 00:00 UTC to Monday).
    pub tokens_per_week: Option<i64>,
    /// Runs (a new session or a next turn) per hour.
    pub runs_per_hour: Option<i64>,
    /// Cost per calendar month, in the unit of the models' prices.
    pub cost_per_month: Option<f64>,
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The limit of `kind`, as a number.
    pub fn get(&self, kind: LimitKind) -> Option<f64> {
        match kind {
            LimitKind::TokensPerDay => self.tokens_per_day.map(|v| v as f64),
            LimitKind::TokensPerWeek => self.tokens_per_week.map(|v| v as f64),
            LimitKind::RunsPerHour => self.runs_per_hour.map(|v| v as f64),
            LimitKind::CostPerMonth => self.cost_per_month,
        }
    }
}

/// One kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Tokens per day.
    TokensPerDay,
    /// Tokens per week.
    TokensPerWeek,
    /// Runs per hour.
    RunsPerHour,
    /// Cost per month.
    CostPerMonth,
}

impl LimitKind {
    /// Every kind, in the order they are checked and listed.
    pub const ALL: [LimitKind; 4] = [
        LimitKind::TokensPerDay,
        LimitKind::TokensPerWeek,
        LimitKind::RunsPerHour,
        LimitKind::CostPerMonth,
    ];

    /// `tokens_per_day`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::TokensPerWeek => "tokens_per_week",
            LimitKind::RunsPerHour => "runs_per_hour",
            LimitKind::CostPerMonth => "cost_per_month",
        }
    }

    /// The period the limit counts over that holds `now_ms`: `[start, end)` in ms.
    pub fn period(self, now_ms: i64) -> (i64, i64) {
        const HOUR: i64 = 3_600_000;
        const DAY: i64 = 24 * HOUR;
        match self {
            LimitKind::RunsPerHour => {
                let start = now_ms.div_euclid(HOUR) * HOUR;
                (start, start + HOUR)
            }
            LimitKind::TokensPerDay => {
                let start = now_ms.div_euclid(DAY) * DAY;
                (start, start + DAY)
            }
            LimitKind::TokensPerWeek => {
                let day = now_ms.div_euclid(DAY);
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY, (monday + 7) * DAY)
            }
            LimitKind::CostPerMonth => {
                let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY));
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m, 1) * DAY,
                    days_from_civil(ny, nm, 1) * DAY,
                )
            }
        }
    }

    /// What one run adds to this limit's usage, given its tokens and cost.
    pub(crate) fn amount(self, tokens: i64, cost: f64) -> f64 {
        match self {
            LimitKind::TokensPerDay | LimitKind::TokensPerWeek => tokens as f64,
            LimitKind::RunsPerHour => 1.0,
            LimitKind::CostPerMonth => cost,
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose limit: the class's as a whole, or one student's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The class as a whole: every member's runs count.
    Class,
    /// One student.
    Student,
}

/// Why a run was refused before any model was called: the first limit it
/// would pass, with the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// A sentence for people.
    pub msg: String,
    /// The class whose budget it is.
    pub class_id: i64,
    /// Which limit.
    pub limit: LimitKind,
    /// The class's limit or the student's.
    pub scope: Scope,
    /// The limit's value.
    pub limit_value: f64,
    /// Used so far in the period, reservations of runs in flight included.
    pub used: f64,
    /// What is left in the period.
    pub remaining: f64,
    /// What this run would need at worst.
    pub requested: f64,
    /// When the period ends and the usage starts again from zero (RFC 3339 UTC).
    pub resets_at: String,
    /// Seconds until then (at least 1): the `Retry-After`.
    pub retry_after: u64,
}

impl Refusal {
    pub(crate) fn new(
        class_id: i64,
        kind: LimitKind,
        scope: Scope,
        limit: f64,
        used: f64,
        requested: f64,
        now_ms: i64,
    ) -> Self {
        let (_, end) = kind.period(now_ms);
        let remaining = (limit - used).max(0.0);
        let who = match scope {
            Scope::Class => "the class's",
            Scope::Student => "your",
        };
        let resets_at = rfc3339_ms(end);
        Refusal {
            msg: format!(
                "over budget: {who} {kind} limit is {limit}, {remaining} left, this run needs up \
                 to {requested}; it resets at {resets_at}"
            ),
            class_id,
            limit: kind,
            scope,
            limit_value: limit,
            used,
            remaining,
            requested,
            resets_at,
            retry_after: ((end - now_ms + 999) / 1000).max(1) as u64,
        }
    }
}

/// `ms` since the epoch as RFC 3339 UTC with seconds, clamped to the years
/// 0000 to 9999 so that the text always sorts as the time does.
pub fn rfc3339_ms(ms: i64) -> String {
    let lowest = days_from_civil(0, 1, 1) * 86_400_000;
    let highest = days_from_civil(10_000, 1, 1) * 86_400_000 - 1000;
    let ms = ms.clamp(lowest, highest);
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD` of the UTC day holding `ms`.
pub fn day_of(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01: (year, month 1..=12, day 1..=31).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The cost of `prompt` and `completion` tokens at prices per million tokens;
/// `None` when the model has no prices.
pub fn cost(
    prices: (Option<f64>, Option<f64>),
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Option<f64> {
    match prices {
        (None, None) => None,
        (input, output) => Some(
            input.unwrap_or(0.0) * prompt_tokens as f64 / 1e6
                + output.unwrap_or(0.0) * completion_tokens as f64 / 1e6,
        ),
    }
}

/// Parses `YYYY-MM-DD` (the start of that UTC day) or an RFC 3339 time
/// (`2026-12-09T10:00:00Z`, `T` or a space, optional fraction, `Z` or an
/// offset `+09:00`) into ms since the epoch. `None` for anything else,
/// impossible dates (`2026-02-30`) included.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    if civil_from_days(day) != (y, m, d) {
        return None;
    }
    let mut ms = day * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    // 60: a leap second, read as the last second of its minute.
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ms += ((hh * 60 + mm) * 60 + ss.min(59)) * 1000;
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let millis: String = fraction[..n].chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().ok()?;
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let both = [*h1, *h2, *m1, *m2];
            if !both.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let oh = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let om = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = (oh * 60 + om) * 60_000;
            Some(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_time(text).unwrap()
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        let now = ms("2026-12-09T13:45:10Z"); // a Wednesday
        let p = |kind: LimitKind| {
            let (a, b) = kind.period(now);
            (rfc3339_ms(a), rfc3339_ms(b))
        };
        assert_eq!(
            p(LimitKind::RunsPerHour),
            ("2026-12-09T13:00:00Z".into(), "2026-12-09T14:00:00Z".into())
        );
        assert_eq!(
            p(LimitKind::TokensPerDay),
            ("2026-12-09T00:00:00Z".into(), "2026-12-10T00:00:00Z".into())
        );
        assert_eq!(
            p(LimitKind::TokensPerWeek),
            ("2026-12-07T00:00:00Z".into(), "2026-12-14T00:00:00Z".into())
        );
        assert_eq!(
            p(LimitKind::CostPerMonth),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        // A Monday at midnight starts its own week; a Sunday belongs to the week before.
        let monday = ms("2026-12-07");
        assert_eq!(LimitKind::TokensPerWeek.period(monday).0, monday);
        assert_eq!(
            LimitKind::TokensPerWeek.period(monday - 1).0,
            ms("2026-11-30")
        );
        assert_eq!(
            LimitKind::CostPerMonth.period(ms("2028-02-29T23:59:59Z")),
            (ms("2028-02-01"), ms("2028-03-01"))
        );
    }

    #[test]
    fn dates_round_trip() {
        for day in [-800_000, -1, 0, 1, 19_000, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(day_of(ms("2026-12-09T23:59:59Z")), "2026-12-09");
        assert_eq!(parse_time("2026-02-30"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(
            parse_time("2026-12-09T10:00:00"),
            None,
            "a time needs its offset"
        );
        assert_eq!(parse_time("2026-12-09T24:00:00Z"), None);
        let utc = ms("2026-12-09T10:00:00Z");
        assert_eq!(ms("2026-12-09 19:00:00+09:00"), utc);
        assert_eq!(ms("2026-12-09t09:30:00.250-00:30"), utc + 250);
        assert_eq!(ms(" 2026-12-09T10:00:00.1234567z "), utc + 123);
        assert_eq!(ms("0001-01-01"), days_from_civil(1, 1, 1) * 86_400_000);
        assert_eq!(rfc3339_ms(ms("0001-01-01")), "0001-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_ms(ms("9999-12-31") + 86_400_000),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339_ms(ms("2026-12-09T10:11:12.999Z")),
            "2026-12-09T10:11:12Z"
        );
    }

    #[test]
    fn refusals_carry_the_numbers() {
        let now = ms("2026-12-09T13:59:50Z");
        let r = Refusal::new(
            1,
            LimitKind::RunsPerHour,
            Scope::Student,
            3.0,
            3.0,
            1.0,
            now,
        );
        assert_eq!(r.remaining, 0.0);
        assert_eq!(r.resets_at, "2026-12-09T14:00:00Z");
        assert_eq!(r.retry_after, 10);
        assert!(r.msg.contains("runs_per_hour"), "{}", r.msg);
    }

    #[test]
    fn costs_use_prices_per_million() {
        assert_eq!(cost((None, None), 10, 10), None);
        assert_eq!(cost((Some(2.0), Some(8.0)), 500_000, 250_000), Some(3.0));
        assert_eq!(cost((Some(2.0), None), 1_000_000, 5), Some(2.0));
    }
}
