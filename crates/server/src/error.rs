//! The one place that turns failures into responses: OAuth errors in the client's dialect
//! (CONTRACT.md "Error dialects"), store failures as a generic 500/503 that reveals nothing,
//! and the HTML error page used where redirecting would be unsafe.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use grantd_core::{Dialect, OAuthError};
use grantd_store::StoreError;
use grantd_wire::ErrorBody;

use crate::pages;

/// A failure inside a flow, before the dialect is attached.
#[derive(Debug)]
pub enum Failure {
    OAuth(OAuthError),
    Store(StoreError),
    /// A fault of this server that is neither the client's nor the store's (signing an ID
    /// token failed); logged, answered with a bare `server_error`.
    Internal(String),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Failure::OAuth(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// A JSON API error ready to render.
#[derive(Debug)]
pub struct ApiError {
    pub failure: Failure,
    pub dialect: Dialect,
    /// The client authenticated with HTTP Basic, so a 401 names that scheme (RFC 6749 §5.2).
    pub basic: bool,
}

impl ApiError {
    pub fn new(failure: impl Into<Failure>, dialect: Dialect) -> Self {
        Self {
            failure: failure.into(),
            dialect,
            basic: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.failure {
            Failure::OAuth(error) => {
                let wire = error.wire(self.dialect);
                let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::BAD_REQUEST);
                let body = ErrorBody::oauth(&error, self.dialect);
                let mut response = (status, Json(body)).into_response();
                if let OAuthError::Throttled { retry_after } = error {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                }
                if status == StatusCode::UNAUTHORIZED && self.basic {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"grantd\""),
                    );
                }
                response
            }
            Failure::Store(e) => store_failure(e),
            Failure::Internal(why) => {
                tracing::error!(error = %why, "internal failure");
                let body = ErrorBody::described(
                    "server_error",
                    "the server could not complete the request",
                );
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}

/// 503 when the database is unreachable (retry later), 500 otherwise; details go to the log
/// only (T-105).
pub fn store_failure(e: StoreError) -> Response {
    let (status, error) = match e {
        StoreError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    tracing::error!(error = %e, "store failure");
    let body = ErrorBody::described(error, "the server could not complete the request");
    (status, Json(body)).into_response()
}

/// The authorization endpoint's answer when it cannot redirect: an HTML page with status 400
/// and no `Location` (RFC 6749 §4.1.2.1).
#[derive(Debug)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
}

impl ErrorPage {
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub fn forbidden(message: &'static str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        (self.status, Html(pages::error(&self.message))).into_response()
    }
}

impl ErrorPage {
    /// `Failure::Internal` on a page: logged, and answered like a store failure, revealing
    /// nothing.
    pub fn internal(why: &str) -> Self {
        tracing::error!(error = %why, "internal failure");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "The server could not complete the request. Please try again later.".into(),
        }
    }
}

impl From<StoreError> for ErrorPage {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        let status = match e {
            StoreError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: "The server could not complete the request. Please try again later.".into(),
        }
    }
}
