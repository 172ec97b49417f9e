//! The source a request came from, for sign-in throttling: the TCP peer address (which
//! `serve` puts in every request's extensions as `ConnectInfo`), or the client address a
//! trusted proxy reports in `X-Forwarded-For` (`Settings::trusted_proxies`). The rules of which
//! hop to believe are core's (`grantd_core::source`); this only reads them off the request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use grantd_core::source::Source;

use crate::app::App;
use crate::error::ErrorPage;

/// The request's source, as sign-in throttling counts it.
pub struct RequestSource(pub Source);

impl FromRequestParts<App> for RequestSource {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            // Counting every such request under one made-up source would let anyone throttle
            // everyone; refuse instead, loudly, since it means `serve` was changed.
            tracing::error!("a request without its peer address (ConnectInfo); see serve_until");
            return Err(ErrorPage {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "The server could not complete the request. Please try again later."
                    .into(),
            }
            .into_response());
        };
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        let client = app
            .settings
            .trusted_proxies
            .client_address(peer.ip(), forwarded);
        Ok(RequestSource(Source::of(client)))
    }
}
