//! axum integration: extractors for the preconditions, a response that
//! carries the `ETag`, and occ's errors as problem details (RFC 9457).

use core::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{etag, Condition, Problem};
use crate::error::OccError;
use crate::version::Version;

/// The `If-Match` precondition of a write: required (a request without it
/// is rejected with 428), parsed (a malformed one is rejected with 400).
/// `V` is the model's version type.
#[derive(Debug, Clone)]
pub struct IfMatch<V> {
    condition: Condition,
    resource: String,
    version: PhantomData<fn() -> V>,
}

impl<V: Version> IfMatch<V> {
    /// The condition as sent.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// The version the write must find, when the header is one strong tag
    /// of `V`: pass it to `update_if_version`, which checks it in the
    /// statement itself. `None` for `*`, a list, a weak tag or a tag that is
    /// no version: then read the row and [`check`](Self::check) it, or let
    /// [`expected`](Self::expected) do both.
    pub fn version(&self) -> Option<V> {
        self.condition.single_version()
    }

    /// The version the write must find, for every form of the header: the
    /// one strong tag sent ([`version`](Self::version)), without reading
    /// anything; for `If-Match: *`, a list or a weak tag, the row's version
    /// read by `current` (`None`: no row) after [`check`](Self::check)ing the
    /// condition against it. `current` is a future, awaited only when it is
    /// needed. Either way the write's own `WHERE` then checks the version,
    /// so a write between the read and the write is still a 412.
    ///
    /// `examples/http_service.rs` uses it in every write handler: `current`
    /// there is `async { Ok(find(conn, id).await?.map(|p| p.version)) }`.
    pub async fn expected<E>(
        &self,
        current: impl core::future::Future<Output = Result<Option<V>, E>>,
    ) -> Result<V, Problem>
    where
        Problem: From<E>,
    {
        match self.version() {
            Some(version) => Ok(version),
            None => self.check(current.await?.as_ref()),
        }
    }

    /// Evaluates the condition against the row's version now (`None`: no
    /// row), and returns the version a write must then find: 412 with the
    /// current `ETag` when it does not match, 412 for `If-Match: *` on a
    /// missing row, 404 for a tag on a missing row (RFC 9110 section 13.2.2:
    /// a response that would be an error without the precondition wins).
    pub fn check(&self, current: Option<&V>) -> Result<V, Problem> {
        match current {
            Some(current) if self.condition.if_match(Some(current)) => Ok(current.clone()),
            Some(current) => Err(Problem::PreconditionFailed {
                resource: self.resource.clone(),
                current: Some(etag(current)),
            }),
            None if self.condition == Condition::Any => Err(Problem::PreconditionFailed {
                resource: self.resource.clone(),
                current: None,
            }),
            None => Err(Problem::NotFound {
                resource: self.resource.clone(),
            }),
        }
    }
}

impl<S: Send + Sync, V: Version> FromRequestParts<S> for IfMatch<V> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let resource = parts.uri.path().to_owned();
        match Condition::from_headers(&parts.headers, "if-match")? {
            Some(condition) => Ok(Self {
                condition,
                resource,
                version: PhantomData,
            }),
            None => Err(Problem::PreconditionRequired { resource }),
        }
    }
}

/// The `If-None-Match` precondition of a read, if sent; a malformed one is
/// rejected with 400.
#[derive(Debug, Clone)]
pub struct IfNoneMatch(pub Option<Condition>);

impl IfNoneMatch {
    /// 304 Not Modified when the client's tag is the row's (weak
    /// comparison); `Ok` when the row is to be sent.
    pub fn check<V: Version>(&self, current: &V) -> Result<(), Problem> {
        match &self.0 {
            Some(condition) if condition.if_none_match_hits(Some(current)) => {
                Err(Problem::NotModified {
                    etag: etag(current),
                })
            }
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(Self(Condition::from_headers(
            &parts.headers,
            "if-none-match",
        )?))
    }
}

/// A response with the `ETag` of a version: `Tagged::new(product.version,
/// Json(product))`. The version is taken by value, so the body can take the
/// model in the same call; a version that is not `Copy` (a `String`) is
/// cloned first: `Tagged::new(product.version.clone(), Json(product))`.
#[derive(Debug, Clone)]
pub struct Tagged<T> {
    etag: HeaderValue,
    body: T,
}

impl<T> Tagged<T> {
    /// `body`, with the strong tag of `version`.
    pub fn new<V: Version>(version: V, body: T) -> Self {
        Self {
            etag: etag(&version),
            body,
        }
    }
}

impl<T: IntoResponse> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        response.headers_mut().insert(header::ETAG, self.etag);
        response
    }
}

/// The status and headers of [`Problem::status`] and [`Problem::headers`],
/// and a problem-details body (`application/problem+json`, RFC 9457) naming
/// the resource and, for a 412, its current `ETag`. A 304 has no body.
impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = if let Self::NotModified { .. } = self {
            status.into_response()
        } else {
            let mut body = serde_json::json!({
                "type": "about:blank",
                "title": status.canonical_reason().unwrap_or_default(),
                "status": status.as_u16(),
                "detail": self.detail(),
            });
            match &self {
                Self::PreconditionRequired { resource }
                | Self::NotFound { resource }
                | Self::GuardFailed { resource }
                | Self::RowLocked { resource, .. } => {
                    body["resource"] = resource.as_str().into();
                }
                Self::PreconditionFailed { resource, current } => {
                    body["resource"] = resource.as_str().into();
                    if let Some(tag) = current.as_ref().and_then(|tag| tag.to_str().ok()) {
                        body["current_etag"] = tag.into();
                    }
                }
                _ => {}
            }
            let mut response = (status, body.to_string()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            response
        };
        response.headers_mut().extend(self.headers());
        response
    }
}

/// An error of occ as the response [`Problem::from_error`] says.
impl IntoResponse for OccError {
    fn into_response(self) -> Response {
        Problem::from_error(&self).into_response()
    }
}
