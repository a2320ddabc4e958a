//! The types a version column can have, and how each one moves forward.

use core::fmt::{Debug, Display};

/// A value that identifies one state of a row: every versioned write checks the
/// old value with an equality test and stores [`Version::next`].
///
/// Implemented for `i16`, `i32`, `i64`; with the `chrono` feature
/// `chrono::NaiveDateTime` and `chrono::DateTime<Utc>`; with `time`,
/// `time::PrimitiveDateTime` and `time::OffsetDateTime`; with `uuid`,
/// `uuid::Uuid` (a fresh random token per write).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an occ version column",
    label = "unsupported version type",
    note = "supported version types: i16, i32, i64, chrono::NaiveDateTime and chrono::DateTime<Utc> (occ's `chrono` feature), time::PrimitiveDateTime and time::OffsetDateTime (`time`), uuid::Uuid (`uuid`)"
)]
pub trait Version: Clone + PartialEq + Debug + Display + Send + Sync + 'static {
    /// The version a write stores after finding `self`. It must differ from `self`
    /// and survive a round trip through the column unchanged.
    fn next(&self) -> Self;

    /// The version `text` shows, as `Display` writes it: what an entity tag
    /// carries back (`occ::http`). `None` for text no version shows.
    fn from_text(text: &str) -> Option<Self>;

    /// How a write that has not read the row (a guarded update) moves the
    /// version forward.
    #[doc(hidden)]
    fn unread_next() -> NextUnread<Self>;
}

/// How a write moves forward a version it has not read: in SQL, or to a
/// fresh value that must differ from whatever the row holds.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum NextUnread<V> {
    /// `version + 1`, wrapping from `max` to `min` as [`Version::next`] does.
    Increment {
        /// The type's largest value.
        max: V,
        /// The type's smallest value, after `max`.
        min: V,
    },
    /// This value, written only where the row holds another one.
    Fresh(V),
}

// Integers wrap at their maximum: the check compares for equality only, so the
// wrapped value is as good as any other, and a row at `MAX` stays writable.
macro_rules! integer_version {
    ($($t:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl Version for $t {
            fn next(&self) -> Self {
                self.wrapping_add(1)
            }

            fn from_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }

            fn unread_next() -> NextUnread<Self> {
                NextUnread::Increment { max: <$t>::MAX, min: <$t>::MIN }
            }
        }
    )*};
}
integer_version!(i16, i32, i64);

/// A timestamp version is the current time, truncated to microseconds (the
/// finest precision PostgreSQL, MySQL's `DATETIME(6)` and diesel's SQLite text
/// keep, so the value read back equals the value written), and always strictly
/// later than the old one: two writes within one clock tick, or a clock that
/// stepped back, still produce a new version.
#[cfg(feature = "chrono")]
#[diagnostic::do_not_recommend]
impl Version for chrono::NaiveDateTime {
    fn next(&self) -> Self {
        use chrono::{Duration, DurationRound, Utc};
        let micro = Duration::microseconds(1);
        let now = Utc::now().naive_utc();
        let now = now.duration_trunc(micro).unwrap_or(now);
        let floor = self.duration_trunc(micro).unwrap_or(*self) + micro;
        now.max(floor)
    }

    fn from_text(text: &str) -> Option<Self> {
        Self::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()
    }

    fn unread_next() -> NextUnread<Self> {
        NextUnread::Fresh(chrono::DateTime::UNIX_EPOCH.naive_utc().next())
    }
}

/// The same as a `NaiveDateTime` in UTC (PostgreSQL's `timestamptz`).
#[cfg(feature = "chrono")]
#[diagnostic::do_not_recommend]
impl Version for chrono::DateTime<chrono::Utc> {
    fn next(&self) -> Self {
        self.naive_utc().next().and_utc()
    }

    fn from_text(text: &str) -> Option<Self> {
        chrono::NaiveDateTime::from_text(text.strip_suffix(" UTC")?).map(|t| t.and_utc())
    }

    fn unread_next() -> NextUnread<Self> {
        NextUnread::Fresh(chrono::DateTime::UNIX_EPOCH.next())
    }
}

/// `t` with its nanoseconds cut to whole microseconds.
#[cfg(feature = "time")]
fn whole_micros(t: time::PrimitiveDateTime) -> time::PrimitiveDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Now in UTC, to whole microseconds, and at least a microsecond after
/// `old` (as for `NaiveDateTime`).
#[cfg(feature = "time")]
fn next_utc(old: time::PrimitiveDateTime) -> time::PrimitiveDateTime {
    let now = time::OffsetDateTime::now_utc();
    let now = whole_micros(time::PrimitiveDateTime::new(now.date(), now.time()));
    let floor = whole_micros(old)
        .checked_add(time::Duration::microseconds(1))
        .unwrap_or(old);
    now.max(floor)
}

/// Reads what `time`'s `Display` writes: `2026-11-29 3:04:05.123456`,
/// then ` +01:00:00` for an offset.
#[cfg(feature = "time")]
fn time_from_text(text: &str) -> Option<(time::PrimitiveDateTime, Option<time::UtcOffset>)> {
    fn numbers<const N: usize>(text: &str, sep: char) -> Option<[i32; N]> {
        let mut out = [0; N];
        let mut parts = text.split(sep);
        for slot in &mut out {
            let part = parts.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        parts.next().is_none().then_some(out)
    }
    let mut parts = text.split(' ');
    let (date, clock, offset) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() {
        return None;
    }
    let [year, month, day] = numbers::<3>(date, '-')?;
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let [hour, minute, second] = numbers::<3>(clock, ':')?;
    if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    let clock = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = match offset {
        None => None,
        Some(offset) => {
            let (sign, hms) = match offset.split_at_checked(1)? {
                ("+", hms) => (1, hms),
                ("-", hms) => (-1, hms),
                _ => return None,
            };
            let [h, m, s] = numbers::<3>(hms, ':')?.map(|n| i8::try_from(n).map(|n| sign * n));
            Some(time::UtcOffset::from_hms(h.ok()?, m.ok()?, s.ok()?).ok()?)
        }
    };
    Some((time::PrimitiveDateTime::new(date, clock), offset))
}

/// A timestamp in UTC, as for `chrono::NaiveDateTime`.
#[cfg(feature = "time")]
#[diagnostic::do_not_recommend]
impl Version for time::PrimitiveDateTime {
    fn next(&self) -> Self {
        next_utc(*self)
    }

    fn from_text(text: &str) -> Option<Self> {
        match time_from_text(text)? {
            (t, None) => Some(t),
            (_, Some(_)) => None,
        }
    }

    fn unread_next() -> NextUnread<Self> {
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        NextUnread::Fresh(time::PrimitiveDateTime::new(epoch.date(), epoch.time()).next())
    }
}

/// A timestamp with an offset: the next one is in UTC. Versions compare as
/// instants, so the offset the column hands back does not matter.
#[cfg(feature = "time")]
#[diagnostic::do_not_recommend]
impl Version for time::OffsetDateTime {
    fn next(&self) -> Self {
        let utc = self.to_offset(time::UtcOffset::UTC);
        next_utc(time::PrimitiveDateTime::new(utc.date(), utc.time())).assume_utc()
    }

    fn from_text(text: &str) -> Option<Self> {
        match time_from_text(text)? {
            (t, Some(offset)) => Some(t.assume_offset(offset)),
            (_, None) => None,
        }
    }

    fn unread_next() -> NextUnread<Self> {
        NextUnread::Fresh(time::OffsetDateTime::UNIX_EPOCH.next())
    }
}

/// A random token (version 4), new on every write, as EF Core's `Guid`
/// concurrency token: nothing about it is ordered, and a repeat is as likely
/// as guessing 122 random bits.
#[cfg(feature = "uuid")]
#[diagnostic::do_not_recommend]
impl Version for uuid::Uuid {
    fn next(&self) -> Self {
        loop {
            let next = uuid::Uuid::new_v4();
            if next != *self {
                return next;
            }
        }
    }

    fn from_text(text: &str) -> Option<Self> {
        uuid::Uuid::try_parse(text).ok()
    }

    fn unread_next() -> NextUnread<Self> {
        NextUnread::Fresh(uuid::Uuid::new_v4())
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn versions_read_back_what_they_show() {
        for v in [0_i64, -7, i64::MAX, i64::MIN] {
            assert_eq!(i64::from_text(&v.to_string()), Some(v));
        }
        assert_eq!(i16::from_text("70000"), None);
        assert_eq!(i32::from_text(" 1"), None);
        #[cfg(feature = "chrono")]
        {
            let t = chrono::Utc::now().naive_utc().next();
            assert_eq!(chrono::NaiveDateTime::from_text(&t.to_string()), Some(t));
        }
    }

    #[test]
    fn integers_count_up_and_wrap() {
        assert_eq!(41_i32.next(), 42);
        assert_eq!(i16::MAX.next(), i16::MIN);
        assert_eq!(i32::MAX.next(), i32::MIN);
        assert_eq!(i64::MAX.next(), i64::MIN);
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn utc_timestamps_read_back_and_move_forward() {
        let a = chrono::Utc::now();
        let (b, c) = (a.next(), a.next().next());
        assert!(a < b && b < c);
        assert_eq!(
            chrono::DateTime::<chrono::Utc>::from_text(&b.to_string()),
            Some(b)
        );
        assert_eq!(
            chrono::DateTime::<chrono::Utc>::from_text("2026-01-01 00:00:00"),
            None
        );
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_versions_read_back_and_move_forward() {
        use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
        let now = OffsetDateTime::now_utc();
        let a = PrimitiveDateTime::new(now.date(), now.time());
        let (b, c) = (a.next(), a.next().next());
        assert!(a < b && b < c);
        assert_eq!(b.nanosecond() % 1_000, 0);
        let far = PrimitiveDateTime::from_text("2999-12-31 23:59:59.999999").unwrap();
        assert_eq!(far.next().to_string(), "3000-01-01 0:00:00.0");
        for t in [a, b, far] {
            assert_eq!(PrimitiveDateTime::from_text(&t.to_string()), Some(t), "{t}");
        }
        let east = now.to_offset(UtcOffset::from_hms(5, 30, 0).unwrap());
        let (b, c) = (east.next(), east.next().next());
        assert!(east < b && b < c);
        assert_eq!(b.offset(), UtcOffset::UTC);
        for t in [
            east,
            b,
            now.to_offset(UtcOffset::from_hms(-3, 0, 0).unwrap()),
        ] {
            assert_eq!(OffsetDateTime::from_text(&t.to_string()), Some(t), "{t}");
        }
        assert_eq!(PrimitiveDateTime::from_text(&east.to_string()), None);
        assert_eq!(OffsetDateTime::from_text(&a.to_string()), None);
        for bad in [
            "",
            "2026-13-01 0:00:00",
            "2026-01-01 24:00:00",
            "2026-01-01 0:00:00.",
            "2026-01-01 0:0:00 x",
        ] {
            assert_eq!(PrimitiveDateTime::from_text(bad), None, "{bad}");
        }
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_new_on_every_write() {
        let a = uuid::Uuid::nil();
        let (b, c) = (a.next(), a.next());
        assert!(a != b && b != c);
        assert_eq!(uuid::Uuid::from_text(&b.to_string()), Some(b));
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn timestamps_move_forward_within_one_tick_and_keep_microseconds() {
        use chrono::{NaiveDateTime, Timelike};
        let far_future =
            NaiveDateTime::parse_from_str("2999-01-01 00:00:00.123456", "%Y-%m-%d %H:%M:%S%.f")
                .unwrap();
        let next = far_future.next();
        assert!(next > far_future);
        assert_eq!(next.nanosecond() % 1_000, 0);
        let a = chrono::Utc::now().naive_utc();
        let (b, c) = (a.next(), a.next().next());
        assert!(a < b && b < c);
        assert_eq!(b.nanosecond() % 1_000, 0);
    }
}
