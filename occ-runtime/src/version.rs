//! The types a version column can have, and how each one moves forward.

use core::fmt::{Debug, Display};

/// A value that identifies one state of a row: every versioned write checks the
/// old value with an equality test and stores [`Version::next`].
///
/// Implemented for `i16`, `i32`, `i64` and, with the `chrono` feature,
/// `chrono::NaiveDateTime`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an occ version column",
    label = "unsupported version type",
    note = "supported version types: i16, i32, i64, and chrono::NaiveDateTime (with occ's `chrono` feature)"
)]
pub trait Version: Clone + PartialEq + Debug + Display + Send + Sync + 'static {
    /// The version a write stores after finding `self`. It must differ from `self`
    /// and survive a round trip through the column unchanged.
    fn next(&self) -> Self;

    /// The version `text` shows, as `Display` writes it: what an entity tag
    /// carries back (`occ::http`). `None` for text no version shows.
    fn from_text(text: &str) -> Option<Self>;
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
