//! A model's version as an HTTP validator (RFC 9110): the strong entity tag
//! a response carries in `ETag`, the `If-Match` and `If-None-Match` a request
//! sends back (section 13.1), and the status each outcome of a conditional
//! write comes to.
//!
//! The tag is the version itself, quoted: opaque to clients, read back by
//! [`Version::from_text`] for every version type. A write with
//! `update_if_version` checks it in the statement, so the precondition holds
//! at the moment of the write, not at a read before it.

use core::fmt;
use core::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::OccError;
use crate::version::Version;

#[cfg(feature = "axum")]
pub mod axum;

/// The strong entity tag of `version`: `"7"` for version 7. Characters an
/// entity tag cannot hold (a timestamp's space) are percent-encoded.
pub fn etag<V: Version>(version: &V) -> HeaderValue {
    tag_of(&version.to_string())
}

/// The tag for a version as `Display` shows it.
fn tag_of(text: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", opaque_of(text)))
        .expect("an entity tag holds visible ASCII only")
}

/// The opaque part of the tag for `text`: the text, with what an entity tag
/// cannot hold (and `%`) percent-encoded.
fn opaque_of(text: &str) -> String {
    let mut opaque = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'%' => opaque.push_str("%25"),
            0x21 | 0x23..=0x7E => opaque.push(char::from(byte)),
            _ => opaque.push_str(&format!("%{byte:02X}")),
        }
    }
    opaque
}

/// The text a tag's opaque part stands for; `None` where it is not one of
/// occ's tags.
fn text_of(opaque: &str) -> Option<String> {
    let bytes = opaque.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = core::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One entity tag of a precondition: `"7"` or weak `W/"7"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    /// Whether the tag is weak (`W/"..."`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The version this tag carries, if it is one of `V`'s.
    pub fn version<V: Version>(&self) -> Option<V> {
        V::from_text(&text_of(&self.opaque)?)
    }

    /// The strong comparison (RFC 9110 section 8.8.3.2): both strong and the
    /// same opaque text. A weak tag never matches.
    fn strong_match(&self, current: &str) -> bool {
        !self.weak && self.opaque == current
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

/// The condition of an `If-Match` or `If-None-Match` header: `*`, or a list
/// of entity tags (RFC 9110 section 13.1.1 and 13.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`: any current representation.
    Any,
    /// A list of entity tags, in the order sent.
    Tags(Vec<EntityTag>),
}

impl Condition {
    /// Reads header `name` of `headers`: `Ok(None)` when the request has no
    /// such field, an error that says what is wrong when a field value is
    /// not `*` or a list of entity tags. Several fields of the name are one
    /// list, as RFC 9110 section 5.3 combines them.
    pub fn from_headers(
        headers: &HeaderMap,
        name: &'static str,
    ) -> Result<Option<Self>, BadPrecondition> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut fields = 0;
        for value in headers.get_all(name) {
            fields += 1;
            let bad = |reason: String| BadPrecondition {
                header: name,
                reason,
            };
            let text = value
                .to_str()
                .map_err(|_| bad("it holds bytes that are not visible ASCII".into()))?;
            if text.trim_matches([' ', '\t']) == "*" {
                any = true;
                continue;
            }
            parse_list(text, &mut tags).map_err(bad)?;
        }
        match (fields, any) {
            (0, _) => Ok(None),
            (1, true) => Ok(Some(Self::Any)),
            (_, true) => Err(BadPrecondition {
                header: name,
                reason: "`*` must be its only value".into(),
            }),
            (_, false) if tags.is_empty() => Err(BadPrecondition {
                header: name,
                reason: "it lists no entity tag".into(),
            }),
            _ => Ok(Some(Self::Tags(tags))),
        }
    }

    /// `If-Match` (strong comparison): whether `current` (the row's version,
    /// `None` when there is no row) satisfies the condition. `*` needs a row;
    /// a weak tag never matches.
    pub fn if_match<V: Version>(&self, current: Option<&V>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(current)) => {
                let current = tag_text(current);
                tags.iter().any(|tag| tag.strong_match(&current))
            }
        }
    }

    /// `If-None-Match` (weak comparison): whether `current` matches, which
    /// makes a GET a 304 and a write a 412.
    pub fn if_none_match_hits<V: Version>(&self, current: Option<&V>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(current)) => {
                let current = tag_text(current);
                tags.iter().any(|tag| tag.opaque == current)
            }
        }
    }

    /// The one version a write can check in its statement: the condition
    /// is a single strong tag of `V`. `None` for `*`, a list, a weak tag or a
    /// tag no version of `V` has.
    pub fn single_version<V: Version>(&self) -> Option<V> {
        match self {
            Self::Tags(tags) => match tags.as_slice() {
                [tag] if !tag.weak => tag.version(),
                _ => None,
            },
            Self::Any => None,
        }
    }
}

/// The opaque text of `version`'s tag.
fn tag_text<V: Version>(version: &V) -> String {
    opaque_of(&version.to_string())
}

/// Reads `#entity-tag` (RFC 9110 section 5.6.1: elements separated by commas
/// and optional whitespace, empty elements allowed) into `tags`.
fn parse_list(text: &str, tags: &mut Vec<EntityTag>) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(());
        }
        let start = i;
        let weak = bytes[i..].starts_with(b"W/");
        if weak {
            i += 2;
        }
        if bytes.get(i) != Some(&b'"') {
            return Err(format!(
                "expected `*` or a quoted entity tag such as \"7\" at byte {start}, found `{}`",
                &text[start..]
            ));
        }
        i += 1;
        let opaque_start = i;
        while i < bytes.len() && bytes[i] != b'"' {
            if !matches!(bytes[i], 0x21 | 0x23..=0x7E | 0x80..=0xFF) {
                return Err(format!(
                    "the entity tag starting at byte {start} holds a character an entity tag cannot"
                ));
            }
            i += 1;
        }
        if i == bytes.len() {
            return Err(format!(
                "the entity tag starting at byte {start} has no closing quote"
            ));
        }
        tags.push(EntityTag {
            weak,
            opaque: text[opaque_start..i].to_owned(),
        });
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return Err(format!(
                "expected a comma after the entity tag ending at byte {i}"
            ));
        }
    }
}

/// A malformed `If-Match` or `If-None-Match`: a 400, never taken as "no
/// precondition".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header: {reason}")]
pub struct BadPrecondition {
    header: &'static str,
    reason: String,
}

/// Why a conditional request did not succeed, and so its status: the one
/// place that maps occ's outcomes to HTTP.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Problem {
    /// 428 Precondition Required (RFC 6585): a write without `If-Match`
    /// where the service requires one.
    PreconditionRequired {
        /// What the request was for.
        resource: String,
    },
    /// 412 Precondition Failed: the tag sent is not the row's (stale, weak,
    /// or not a version), the row changed in between (`Conflict`), or
    /// `If-Match: *` found no row.
    PreconditionFailed {
        /// What the request was for.
        resource: String,
        /// The row's tag now, for `ETag`; `None` when there is no row.
        current: Option<HeaderValue>,
    },
    /// 304 Not Modified: `If-None-Match` on a GET matched the row's tag.
    NotModified {
        /// The row's tag.
        etag: HeaderValue,
    },
    /// 404 Not Found.
    NotFound {
        /// What the request was for.
        resource: String,
    },
    /// 409 Conflict (RFC 9110, 15.5.10): a guarded update's condition
    /// does not hold on the resource as it is now (not enough stock, a
    /// state it is not in). The same request fails again until the
    /// resource changes.
    GuardFailed {
        /// What the request was for.
        resource: String,
    },
    /// 400 Bad Request: a malformed precondition header.
    BadPrecondition(BadPrecondition),
    // Not named `Locked`: a second item of that name makes rustc print the
    // lock builder's full path in its messages, which then read differently
    // with this feature on.
    /// 503 Service Unavailable with `Retry-After`: the row is locked by
    /// another transaction (`NOWAIT`, a lock timeout). The request itself is
    /// fine and can be sent again as it is, which is what 503 says; a 409
    /// would ask the client to change it.
    RowLocked {
        /// What the request was for.
        resource: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 503 Service Unavailable with `Retry-After`: deadlocks, serialization
    /// failures or a busy database outlasted the retries, a statement ran
    /// out of its time limit, or the database cannot be reached.
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// 500 Internal Server Error: anything else, the outcome of a commit
    /// that is unknown included. The response says nothing of the database.
    Internal,
}

impl Problem {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::PreconditionRequired { .. } => StatusCode::PRECONDITION_REQUIRED,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::NotModified { .. } => StatusCode::NOT_MODIFIED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::GuardFailed { .. } => StatusCode::CONFLICT,
            Self::BadPrecondition(_) => StatusCode::BAD_REQUEST,
            Self::RowLocked { .. } | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a client reads in the response: what failed and what to do,
    /// nothing of the SQL or the database's own message.
    pub fn detail(&self) -> String {
        match self {
            Self::PreconditionRequired { resource } => {
                format!("writing {resource} needs an If-Match header with the ETag of a GET")
            }
            Self::PreconditionFailed {
                resource,
                current: Some(_),
            } => format!(
                "{resource} has changed since that ETag: GET it again, then retry with the new ETag"
            ),
            Self::PreconditionFailed {
                resource,
                current: None,
            } => {
                format!("{resource} does not exist")
            }
            Self::NotModified { .. } => String::new(),
            Self::NotFound { resource } => format!("{resource} does not exist"),
            Self::GuardFailed { resource } => {
                format!("{resource} is not in a state that allows this change")
            }
            Self::BadPrecondition(bad) => bad.to_string(),
            Self::RowLocked { resource, .. } => {
                format!("{resource} is being written by another request: try again shortly")
            }
            Self::Unavailable { .. } => {
                "the database is busy or unreachable: try again shortly".to_owned()
            }
            Self::Internal => "internal error".to_owned(),
        }
    }

    /// The headers the status needs: `ETag` with a 412 or 304, `Retry-After`
    /// with a 503.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match self {
            Self::PreconditionFailed {
                current: Some(tag), ..
            }
            | Self::NotModified { etag: tag } => {
                headers.insert(http::header::ETAG, tag.clone());
            }
            Self::RowLocked { retry_after, .. } | Self::Unavailable { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        headers
    }

    /// The outcome of a conditional write that failed with `error`.
    pub fn from_error(error: &OccError) -> Self {
        let resource = |table: &str, key: &str| format!("{table} {key}");
        match error {
            OccError::Conflict {
                table, key, actual, ..
            } => Self::PreconditionFailed {
                resource: resource(table, key),
                current: Some(tag_of(actual)),
            },
            OccError::NotFound { table, key } => Self::NotFound {
                resource: resource(table, key),
            },
            OccError::GuardFailed { table, key } => Self::GuardFailed {
                resource: resource(table, key),
            },
            OccError::NoRow { .. } => Self::NotFound {
                resource: "the resource".to_owned(),
            },
            OccError::LockNotAvailable(_) | OccError::LockTimeout(_) => Self::RowLocked {
                resource: "the resource".to_owned(),
                retry_after: Duration::from_secs(1),
            },
            OccError::Deadlock(_)
            | OccError::SerializationFailure(_)
            | OccError::Busy(_)
            | OccError::StatementTimeout(_)
            | OccError::ConnectionBroken(_)
            | OccError::NodeUnavailable(_)
            | OccError::ReadOnly(_) => Self::Unavailable {
                retry_after: Duration::from_secs(1),
            },
            _ => Self::Internal,
        }
    }
}

impl From<&OccError> for Problem {
    fn from(error: &OccError) -> Self {
        Self::from_error(error)
    }
}

impl From<OccError> for Problem {
    fn from(error: OccError) -> Self {
        Self::from_error(&error)
    }
}

/// So that `?` on a diesel query works in a handler: a missing row is
/// [`NotFound`](Problem::NotFound), the rest as [`OccError`] classifies it.
impl From<diesel::result::Error> for Problem {
    fn from(error: diesel::result::Error) -> Self {
        Self::from_error(&OccError::from(error))
    }
}

impl From<BadPrecondition> for Problem {
    fn from(bad: BadPrecondition) -> Self {
        Self::BadPrecondition(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(values: &[&str]) -> Result<Option<Condition>, BadPrecondition> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::header::IF_MATCH,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Condition::from_headers(&headers, "if-match")
    }

    #[test]
    fn a_diesel_no_row_is_404_through_question_mark() {
        fn handler() -> Result<(), Problem> {
            Err(diesel::result::Error::NotFound)?;
            Ok(())
        }
        let problem = handler().unwrap_err();
        assert_eq!(problem.status(), StatusCode::NOT_FOUND, "{problem:?}");
        let through_occ = Problem::from(OccError::from(diesel::result::Error::NotFound));
        assert_eq!(through_occ.status(), StatusCode::NOT_FOUND);
        // Anything else diesel says stays a 500.
        let other = Problem::from(diesel::result::Error::AlreadyInTransaction);
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn tags_round_trip_for_every_version_type() {
        assert_eq!(etag(&7_i64), "\"7\"");
        assert_eq!(etag(&-3_i16), "\"-3\"");
        let tags = condition(&[etag(&i64::MIN).to_str().unwrap()])
            .unwrap()
            .unwrap();
        assert_eq!(tags.single_version::<i64>(), Some(i64::MIN));
        #[cfg(feature = "chrono")]
        {
            let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
                .unwrap()
                .and_hms_micro_opt(1, 2, 3, 456_789)
                .unwrap();
            let tag = etag(&t);
            assert_eq!(tag, "\"2026-11-29%2001:02:03.456789\"");
            let parsed = condition(&[tag.to_str().unwrap()]).unwrap().unwrap();
            assert_eq!(parsed.single_version::<chrono::NaiveDateTime>(), Some(t));
            assert!(parsed.if_match(Some(&t)));
            let utc = t.and_utc();
            let parsed = condition(&[etag(&utc).to_str().unwrap()]).unwrap().unwrap();
            assert_eq!(
                parsed.single_version::<chrono::DateTime<chrono::Utc>>(),
                Some(utc)
            );
        }
        #[cfg(feature = "time")]
        {
            let t = time::OffsetDateTime::now_utc()
                .to_offset(time::UtcOffset::from_hms(-3, 30, 0).unwrap())
                .next();
            let parsed = condition(&[etag(&t).to_str().unwrap()]).unwrap().unwrap();
            assert_eq!(parsed.single_version::<time::OffsetDateTime>(), Some(t));
        }
        #[cfg(feature = "uuid")]
        {
            let u = uuid::Uuid::nil().next();
            assert_eq!(etag(&u), format!("\"{u}\"").as_str());
            let parsed = condition(&[etag(&u).to_str().unwrap()]).unwrap().unwrap();
            assert_eq!(parsed.single_version::<uuid::Uuid>(), Some(u));
        }
    }

    // RFC 9110 section 8.8.3.2's table: W/"1" and W/"1" match weakly only,
    // W/"1" and "1" weakly only, "1" and "1" both ways.
    #[test]
    fn if_match_compares_strongly_and_if_none_match_weakly() {
        let strong = condition(&["\"1\""]).unwrap().unwrap();
        let weak = condition(&["W/\"1\""]).unwrap().unwrap();
        assert!(strong.if_match(Some(&1_i32)));
        assert!(!weak.if_match(Some(&1_i32)));
        assert!(weak.if_none_match_hits(Some(&1_i32)));
        assert!(strong.if_none_match_hits(Some(&1_i32)));
        assert!(!strong.if_match(Some(&2_i32)));
        assert_eq!(weak.single_version::<i32>(), None);
    }

    #[test]
    fn star_lists_and_several_fields() {
        let any = condition(&["*"]).unwrap().unwrap();
        assert_eq!(any, Condition::Any);
        assert!(any.if_match(Some(&1_i32)));
        assert!(!any.if_match::<i32>(None));
        let list = condition(&["\"1\", W/\"2\",,\"3\"", " \"4\" "])
            .unwrap()
            .unwrap();
        let Condition::Tags(tags) = &list else {
            panic!("{list:?}")
        };
        assert_eq!(tags.len(), 4);
        assert!(list.if_match(Some(&4_i32)));
        assert!(!list.if_match(Some(&2_i32)));
        assert_eq!(list.single_version::<i32>(), None);
        // A comma may be inside an entity tag.
        let comma = condition(&["\"a,b\""]).unwrap().unwrap();
        assert_eq!(
            comma,
            Condition::Tags(vec![EntityTag {
                weak: false,
                opaque: "a,b".into()
            }])
        );
        assert_eq!(condition(&[]).unwrap(), None);
    }

    #[test]
    fn malformed_headers_are_errors_never_no_precondition() {
        for bad in [
            "7",
            "\"7",
            "W/7",
            "\"7\" \"8\"",
            "*, \"7\"",
            "",
            "  ,  ",
            "\"a b\"",
        ] {
            let error = condition(&[bad]).expect_err(bad);
            assert!(
                error.to_string().starts_with("malformed if-match header: "),
                "{error}"
            );
        }
        assert!(condition(&["*", "\"1\""]).is_err());
    }

    #[test]
    fn each_outcome_has_its_status() {
        let conflict = OccError::Conflict {
            table: "products",
            key: "id = 1".into(),
            expected: "1".into(),
            actual: "2".into(),
        };
        let problem = Problem::from(&conflict);
        assert_eq!(problem.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(problem.headers()[http::header::ETAG], "\"2\"");
        let missing = OccError::NotFound {
            table: "products",
            key: "id = 1".into(),
        };
        assert_eq!(Problem::from(&missing).status(), StatusCode::NOT_FOUND);
        let lock = OccError::LockNotAvailable(diesel::result::Error::NotFound);
        assert_eq!(
            Problem::from(&lock).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Problem::from(&lock).headers()[http::header::RETRY_AFTER],
            "1"
        );
        let deadlock = OccError::Deadlock(diesel::result::Error::NotFound);
        assert_eq!(
            Problem::from(&deadlock).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let database = OccError::Database(diesel::result::Error::NotFound);
        let refused = OccError::GuardFailed {
            table: "products",
            key: "id = 7".into(),
        };
        let problem = Problem::from(&refused);
        assert_eq!(problem.status(), StatusCode::CONFLICT);
        assert_eq!(
            problem.detail(),
            "products id = 7 is not in a state that allows this change"
        );
        let internal = Problem::from(&database);
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(internal.detail(), "internal error");
    }
}
