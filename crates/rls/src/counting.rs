//! Window math and counter key naming: pure functions, so the counting contract is tested without Redis.
//!
//! Windows are fixed and aligned to the Unix epoch: the window of an instant `t` for a unit of
//! `u` seconds is `floor(t / u)`, and it ends at the next multiple of `u`. Every replica that
//! agrees on the wall clock therefore agrees on the window without talking to the others.

use std::fmt;

/// Extra lifetime of a counter key past the end of its window. A replica whose clock lags by
/// less than this still counts into a live key of the window it believes current (an expiry
/// already in the past would delete the key on the spot).
pub const EXPIRY_MARGIN_MS: u64 = 5_000;

/// The RLS time units, numbered as Envoy numbers them on the wire
/// (`envoy.type.v3.RateLimitUnit` and `RateLimitResponse.RateLimit.Unit`, where WEEK is 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    /// 30 days, as the RLS protocol and tollgate's `renewal_period_s` define it.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    /// The unit for a wire value; `None` for UNKNOWN (0) and for values this build does not know.
    pub fn from_wire(value: i32) -> Option<Unit> {
        match value {
            1 => Some(Unit::Second),
            2 => Some(Unit::Minute),
            3 => Some(Unit::Hour),
            4 => Some(Unit::Day),
            5 => Some(Unit::Month),
            6 => Some(Unit::Year),
            7 => Some(Unit::Week),
            _ => None,
        }
    }

    /// The wire value, echoed back in `current_limit.unit`.
    pub fn to_wire(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// Length of one window in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 604_800,
            Unit::Month => 2_592_000,
            Unit::Year => 31_536_000,
        }
    }
}

/// The window an instant falls in, for one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// `floor(now / unit)`: part of the counter key, so a new window starts a new counter.
    pub index: u64,
    /// Unix time in milliseconds at which the window ends (the next multiple of the unit).
    pub end_ms: u64,
    /// Whole seconds until the window ends, rounded up, never 0 (`duration_until_reset`).
    pub reset_after_s: u64,
    /// Milliseconds until the window ends, from the instant it was computed for.
    pub left_ms: u64,
}

impl Window {
    /// The window of `now_ms` (Unix milliseconds, the service's clock) for `unit`.
    pub fn at(now_ms: u64, unit: Unit) -> Window {
        let unit_ms = unit.seconds().saturating_mul(1_000);
        let index = now_ms / unit_ms;
        let end_ms = index.saturating_add(1).saturating_mul(unit_ms);
        let left_ms = end_ms.saturating_sub(now_ms);
        Window {
            index,
            end_ms,
            reset_after_s: left_ms.div_ceil(1_000).max(1),
            left_ms,
        }
    }

    /// How long the counter key may live: to the end of the window plus
    /// [`EXPIRY_MARGIN_MS`]. Relative (`PEXPIRE`), so a Redis whose clock differs from the
    /// service's never drops a live counter at once (an absolute `PEXPIREAT` already in Redis'
    /// past deletes the key, and the window would count nothing).
    pub fn expire_after_ms(&self) -> u64 {
        self.left_ms.saturating_add(EXPIRY_MARGIN_MS)
    }
}

/// Prefix of every key this service writes, so its keys are easy to find and never clash with
/// other users of the same Redis database.
pub const KEY_PREFIX: &str = "tollgate-rls";

/// The Redis key of one counter:
/// `tollgate-rls:<domain>:<k1>=<v1>|<k2>=<v2>:<unit seconds>:<window index>`.
///
/// Every `\`, `|`, `=` and `:` inside the domain, a key or a value is escaped with `\`, so two
/// different (domain, entries) pairs can never produce the same key.
pub fn counter_key<'a, I>(domain: &str, entries: I, unit: Unit, window: &Window) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut key = String::with_capacity(64);
    key.push_str(KEY_PREFIX);
    key.push(':');
    push_escaped(&mut key, domain);
    key.push(':');
    for (position, (name, value)) in entries.into_iter().enumerate() {
        if position > 0 {
            key.push('|');
        }
        push_escaped(&mut key, name);
        key.push('=');
        push_escaped(&mut key, value);
    }
    key.push(':');
    key.push_str(&unit.seconds().to_string());
    key.push(':');
    key.push_str(&window.index.to_string());
    key
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | '|' | '=' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Unit::Second => "SECOND",
            Unit::Minute => "MINUTE",
            Unit::Hour => "HOUR",
            Unit::Day => "DAY",
            Unit::Week => "WEEK",
            Unit::Month => "MONTH",
            Unit::Year => "YEAR",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Unit; 7] = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];

    #[test]
    fn wire_values_round_trip_and_unknown_is_refused() {
        for unit in ALL {
            assert_eq!(Unit::from_wire(unit.to_wire()), Some(unit));
        }
        assert_eq!(Unit::from_wire(0), None);
        assert_eq!(Unit::from_wire(8), None);
        assert_eq!(Unit::from_wire(-1), None);
    }

    #[test]
    fn unit_lengths_match_the_spec() {
        let seconds: Vec<u64> = ALL.iter().map(|u| u.seconds()).collect();
        assert_eq!(
            seconds,
            vec![1, 60, 3_600, 86_400, 604_800, 2_592_000, 31_536_000]
        );
    }

    #[test]
    fn window_is_aligned_to_the_epoch() {
        // 2026-11-28T05:41:45.250Z
        let now_ms = 1_795_844_505_250;
        let w = Window::at(now_ms, Unit::Minute);
        assert_eq!(w.index, 1_795_844_505 / 60);
        assert_eq!(w.end_ms % 60_000, 0);
        assert!(w.end_ms > now_ms && w.end_ms - now_ms <= 60_000);
        // 14.75 s left, rounded up.
        assert_eq!(w.reset_after_s, 15);
        assert_eq!(w.expire_after_ms(), w.end_ms - now_ms + EXPIRY_MARGIN_MS);
    }

    #[test]
    fn reset_is_rounded_up_and_never_zero() {
        // Exactly on a boundary: a full window is left.
        assert_eq!(Window::at(120_000, Unit::Minute).reset_after_s, 60);
        assert_eq!(Window::at(120_000, Unit::Minute).index, 2);
        // One millisecond before the end: 1 s, not 0.
        assert_eq!(Window::at(179_999, Unit::Minute).reset_after_s, 1);
        assert_eq!(Window::at(179_999, Unit::Minute).index, 2);
        assert_eq!(Window::at(5_500, Unit::Second).reset_after_s, 1);
        for unit in ALL {
            for now in [0, 1, 999, 1_000, 86_399_999, 1_795_844_505_250] {
                let w = Window::at(now, unit);
                assert!(w.reset_after_s >= 1);
                assert!(w.reset_after_s <= unit.seconds());
            }
        }
    }

    #[test]
    fn month_and_year_are_fixed_lengths_not_calendar() {
        let w = Window::at(2_592_000_000 * 3 + 1, Unit::Month);
        assert_eq!(w.index, 3);
        assert_eq!(w.end_ms, 2_592_000_000 * 4);
        let y = Window::at(31_536_000_000 - 1, Unit::Year);
        assert_eq!(y.index, 0);
        assert_eq!(y.reset_after_s, 1);
    }

    #[test]
    fn key_layout() {
        let w = Window::at(61_000, Unit::Minute);
        let key = counter_key(
            "tollgate",
            [("consumer", "acme"), ("limit", "rate_limit")],
            Unit::Minute,
            &w,
        );
        assert_eq!(
            key,
            "tollgate-rls:tollgate:consumer=acme|limit=rate_limit:60:1"
        );
    }

    #[test]
    fn separators_are_escaped() {
        let w = Window::at(0, Unit::Second);
        let key = counter_key("d:x", [("a|b", "c=d"), ("e\\", ":")], Unit::Second, &w);
        assert_eq!(key, "tollgate-rls:d\\:x:a\\|b=c\\=d|e\\\\=\\::1:0");
    }

    #[test]
    fn distinct_descriptors_never_share_a_key() {
        let w = Window::at(0, Unit::Hour);
        type Case = (&'static str, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            ("d", vec![("a", "b|c=d")]),
            ("d", vec![("a", "b"), ("c", "d")]),
            ("d", vec![("a=b", "c")]),
            ("d", vec![("a", "b=c")]),
            ("d:a", vec![("b", "c")]),
            ("d", vec![("a:b", "c")]),
            ("d", vec![("a", "b\\"), ("c", "d")]),
            ("d", vec![("a", "b\\|c=d")]),
            ("d", vec![("a", "")]),
            ("d", vec![("", "a")]),
            ("d", vec![("a", ""), ("", "")]),
            ("d", vec![("a", "=")]),
        ];
        let keys: Vec<String> = cases
            .iter()
            .map(|(domain, entries)| counter_key(domain, entries.iter().copied(), Unit::Hour, &w))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn unit_and_window_are_part_of_the_key() {
        let entries = [("consumer", "acme")];
        let a = counter_key("d", entries, Unit::Second, &Window::at(1_000, Unit::Second));
        let b = counter_key("d", entries, Unit::Second, &Window::at(2_000, Unit::Second));
        let c = counter_key("d", entries, Unit::Minute, &Window::at(1_000, Unit::Minute));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.ends_with(":1:1"));
        assert!(c.ends_with(":60:0"));
    }
}
