//! Every route of the server, and the layers around them.

use axum::extract::DefaultBodyLimit;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use grantd_wire::ErrorBody;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::app::App;
use crate::console::{account, admin_pages, clients};
use crate::headers;
use crate::login;
use crate::oauth::{
    authorize, device, device_page, discovery, enhance, enhance_page, resource, revoke, token,
};
use crate::pages::{SCRIPT, STYLESHEET};
use crate::password;
use crate::peers;

/// Far above any OAuth request, far below anything that costs memory (T-082).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// RFC 6749 §3.2: POST only; answered in JSON like every other token-endpoint error, and
/// without reading the request, so a code in a GET's query is never consumed (T-091).
async fn post_only() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(ALLOW, "POST")],
        Json(ErrorBody::described("invalid_request", "use POST")),
    )
}

pub fn router(app: App) -> Router {
    // Routes that check or set a password take a place in the bounded password queue first.
    let password_queue = from_fn_with_state(app.clone(), password::admission);
    let mut routes = Router::new()
        .route("/", get(login::home))
        .route(
            "/signin",
            post(login::sign_in).layer(password_queue.clone()),
        )
        .route("/signout", post(login::sign_out))
        .route(
            "/oauth/v2/auth",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/oauth/v2/auth/consent", post(authorize::decide))
        .route("/oauth/v2/token", post(token::token).fallback(post_only))
        .route(
            "/oauth/v2/token/revoke",
            post(revoke::revoke).fallback(post_only),
        )
        .route(
            "/oauth/v2/token/scopeenhance",
            post(enhance::scope_enhance).fallback(post_only),
        )
        .route(enhance_page::ADD_EXTRA_SCOPE_PATH, get(enhance_page::show))
        .route(enhance_page::DECISION_PATH, post(enhance_page::decide))
        .route(
            "/oauth/v2/device_authorization",
            post(device::authorization).fallback(post_only),
        )
        .route(
            "/oauth/v3/device/code",
            post(device::zoho_code).fallback(post_only),
        )
        .route(
            "/oauth/v3/device/token",
            post(device::zoho_token).fallback(post_only),
        )
        .route(
            "/oauth/v3/device",
            get(device_page::show).post(device_page::submit),
        )
        .route("/oauth/v3/device/consent", post(device_page::decide))
        .route(
            "/oauth/v2/revoke/token",
            post(revoke::revoke_newer).fallback(post_only),
        )
        .route(
            "/oauth/v2/introspect",
            post(resource::introspect).fallback(post_only),
        )
        .route("/oauth/user/info", get(resource::user_info))
        .route(
            "/oauth/v2/userinfo",
            get(resource::openid_user_info).post(resource::openid_user_info),
        )
        .route("/oauth/v2/keys", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/oauth/serverinfo", get(discovery::server_info))
        .route("/healthz", get(discovery::health))
        .route("/console", get(clients::list))
        .route("/console/clients", post(clients::create))
        .route("/console/clients/new", get(clients::new_form))
        .route("/console/clients/{id}", get(clients::show))
        .route(
            "/console/clients/{id}/secret",
            post(clients::regenerate_secret),
        )
        .route(
            "/console/clients/{id}/settings",
            post(clients::update_settings),
        )
        .route(
            "/console/clients/{id}/id-token-alg",
            post(clients::id_token_alg),
        )
        .route("/console/clients/{id}/delete", post(clients::delete))
        .route(
            "/console/clients/{id}/datacenters",
            post(clients::datacenter),
        )
        .route("/console/clients/{id}/codes", post(clients::generate_code))
        .route(
            "/console/scopes",
            get(admin_pages::scopes).post(admin_pages::add_scope),
        )
        .route(
            "/console/users",
            get(admin_pages::users)
                .merge(post(admin_pages::add_user).layer(password_queue.clone())),
        )
        .route("/console/users/unlock", post(admin_pages::unlock_user))
        .route("/console/keys", get(admin_pages::keys))
        .route("/account", get(account::show))
        .route("/account/profile", post(account::update_profile))
        .route(
            "/account/password",
            post(account::change_password).layer(password_queue),
        )
        .route("/account/apps/{id}/revoke", post(account::revoke_app))
        .route("/account/sessions/{handle}/end", post(account::end_session))
        .route(
            "/static/console.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }),
        )
        .route(
            "/static/grantd.css",
            get(|| async { ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET) }),
        );
    // Without a dc secret there is no server-to-server API: `/dc/v1/*` is 404 like any path.
    if app.settings.dc_secret.is_some() {
        routes = routes.merge(peers::routes());
    }
    let mut router = routes
        .with_state(app)
        // Enforced where bodies are read (`Params`), so an oversized body is answered in the
        // endpoint's own format: JSON on the API, the error page on the browser routes.
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    for layer in headers::layers() {
        router = router.layer(layer);
    }
    // Logs method, path and status only: query strings can carry tokens and codes (Zoho's
    // docs put them there), so they never reach a log line.
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(|request: &axum::http::Request<_>| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}
