//! Headers every response carries: no framing (clickjacking, RFC 9700 §4.16), no referrer
//! leaks (§4.2.4), nothing cached (RFC 6749 §5.1), and a CSP that allows only our own assets.

use axum::http::{header, HeaderName, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;

pub fn layers() -> Vec<SetResponseHeaderLayer<HeaderValue>> {
    const HEADERS: [(HeaderName, &str); 6] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    HEADERS
        .into_iter()
        .map(|(name, value)| {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        })
        .collect()
}
