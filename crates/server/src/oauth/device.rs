//! The device flow's API (RFC 8628; CONTRACT.md "Device flow"), in both dialects: Zoho's
//! `POST /oauth/v3/device/code` and `POST /oauth/v3/device/token`, and RFC 8628's
//! `POST /oauth/v2/device_authorization` with the `device_code` grant at `/oauth/v2/token`
//! (whose arm in `token.rs` calls `poll` here). The rules (user codes, pacing, who may) are
//! `grantd_core::device`'s; the verification page where the user answers is `device_page.rs`.
//!
//! Zoho's two endpoints always answer in the Zoho dialect (200, Zoho's names: `expired`,
//! `other_dc` with `user_location`), whatever the client's setting: no standard library calls
//! them, and Zoho's docs define their answers. The RFC grant at `/oauth/v2/token` answers in
//! the client's dialect, like every grant there.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use grantd_core::datacenter::unknown_here;
use grantd_core::device::{self, DeviceGrant, PollAnswer, UserCode};
use grantd_core::grant::{AccessType, SignIn};
use grantd_core::secret::{AccessToken, DeviceCode, RefreshToken};
use grantd_core::{Client, Dialect, OAuthError, Timestamp};
use grantd_store::{DevicePoll, DeviceVerbs, NewAccess, NewDeviceCode, NewTokens, StoreError};
use grantd_wire::{DeviceAuthorization, ZohoDeviceCode};

use super::client_auth::Caller;
use super::registered_scopes;
use super::token::{id_token, Issued};
use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::params::Params;

/// RFC 8628 §3.4's grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The verification page (`device_page.rs`), Zoho's path for it.
pub const VERIFICATION_PATH: &str = "/oauth/v3/device";

/// A user code collides with a live one about once in 10^9 draws per live code; a few draws
/// are plenty, and a store that keeps refusing is failing for another reason.
const USER_CODE_DRAWS: usize = 5;

/// `POST /oauth/v3/device/code` (Zoho): `client_id`, `scope`, `grant_type=device_request`,
/// `access_type`, `prompt`.
pub async fn zoho_code(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match zoho_caller(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let started = match params.require("grant_type") {
        Ok("device_request") => start(&app, &caller, &params, now).await,
        Ok(_) => Err(OAuthError::UnsupportedGrantType.into()),
        Err(e) => Err(e.into()),
    };
    match started {
        Ok(started) => Json(ZohoDeviceCode {
            user_code: started.user_code.display(),
            device_code: started.device_code.expose().to_owned(),
            verification_url: verification_uri(&app),
            expires_in: started.expires_in(now),
            interval: started.grant.interval_secs,
        })
        .into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// `POST /oauth/v3/device/token` (Zoho): `client_id`, `client_secret`,
/// `grant_type=device_token`, `code` (the device code).
pub async fn zoho_token(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match zoho_caller(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let issued =
        match zoho_poll_request(&params).and_then(|code| Ok((caller.authenticated()?, code))) {
            Ok((client, code)) => poll(&app, client, code, now).await,
            Err(e) => Err(e.into()),
        };
    match issued {
        Ok(issued) => Json(issued.render(&app)).into_response(),
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// `POST /oauth/v2/device_authorization` (RFC 8628 §3.1): `client_id` (and the secret, by
/// Basic or in the body, for a confidential client that sends it), `scope`; `access_type`
/// as at `/oauth/v2/auth`.
pub async fn authorization(State(app): State<App>, headers: HeaderMap, params: Params) -> Response {
    let now = app.clock.now();
    let caller = match Caller::identify(&app, &headers, &params).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match start(&app, &caller, &params, now).await {
        Ok(started) => {
            let verification_uri = verification_uri(&app);
            let user_code = started.user_code.display();
            Json(DeviceAuthorization {
                device_code: started.device_code.expose().to_owned(),
                verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
                user_code,
                verification_uri,
                expires_in: started.expires_in(now),
                interval: started.grant.interval_secs,
            })
            .into_response()
        }
        Err(failure) => caller.error(failure).into_response(),
    }
}

/// The caller of one of Zoho's endpoints, answered in the Zoho dialect whatever its setting.
async fn zoho_caller(app: &App, headers: &HeaderMap, params: &Params) -> Result<Caller, ApiError> {
    match Caller::identify(app, headers, params).await {
        Ok(mut caller) => {
            caller.dialect = Dialect::Zoho;
            Ok(caller)
        }
        Err(mut e) => {
            e.dialect = Dialect::Zoho;
            Err(e)
        }
    }
}

fn zoho_poll_request(params: &Params) -> Result<DeviceCode, OAuthError> {
    match params.require("grant_type")? {
        "device_token" => Ok(DeviceCode::from_wire(params.require("code")?.to_owned())),
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

/// `{accounts}/oauth/v3/device`.
fn verification_uri(app: &App) -> String {
    format!("{}{VERIFICATION_PATH}", app.settings.public_url)
}

/// A device authorization just stored, with the two codes only its response shows.
struct Started {
    device_code: DeviceCode,
    user_code: UserCode,
    grant: DeviceGrant,
}

impl Started {
    fn expires_in(&self, now: Timestamp) -> i64 {
        self.grant.expires_at.0 - now.0
    }
}

/// RFC 8628 §3.1–3.2: the client (only a `non-browser` one), then its scopes and access type,
/// then a new pending authorization with fresh codes.
async fn start(
    app: &App,
    caller: &Caller,
    params: &Params,
    now: Timestamp,
) -> Result<Started, Failure> {
    let client = caller.identified()?;
    allowed(client)?;
    let scopes = registered_scopes(app, params.require("scope")?).await?;
    let access_type = AccessType::parse(params.get("access_type")?).ok_or(
        OAuthError::InvalidRequest("access_type must be online or offline"),
    )?;
    // Zoho's `prompt=consent`: the verification page always asks, so it changes nothing.
    params.get("prompt")?;
    let limits = &app.settings.limits;
    let grant = DeviceGrant::new(client.id.clone(), scopes, access_type, now, limits);
    let device_code = DeviceCode::generate(app.tag);
    for _ in 0..USER_CODE_DRAWS {
        let user_code = UserCode::generate();
        let new = NewDeviceCode {
            device_code_hash: device_code.hash(),
            user_code_hash: user_code_hash(&user_code),
            grant: grant.clone(),
        };
        match app.store.add_device_code(&new, now).await {
            Ok(()) => {
                return Ok(Started {
                    device_code,
                    user_code,
                    grant,
                })
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict("no free user code").into())
}

/// How the store finds a user code: by the hash of its normal form.
pub fn user_code_hash(code: &UserCode) -> grantd_core::secret::SecretHash {
    grantd_core::secret::SecretHash::of(code.as_str())
}

fn allowed(client: &Client) -> Result<(), OAuthError> {
    if device::may_use_device_flow(client.kind) {
        Ok(())
    } else {
        Err(OAuthError::UnauthorizedClient(
            "only a non-browser client may use the device flow",
        ))
    }
}

/// RFC 8628 §3.4–3.5: one poll by an authenticated client; the tokens once the user approved,
/// else why not yet (or never).
pub(super) async fn poll(
    app: &App,
    client: &Client,
    device_code: DeviceCode,
    now: Timestamp,
) -> Result<Issued, Failure> {
    allowed(client)?;
    let limits = &app.settings.limits;
    let access = AccessToken::generate(app.tag);
    let refresh = RefreshToken::generate(app.tag);
    let tokens = NewTokens {
        access: NewAccess {
            hash: access.hash(),
            expires_at: now.plus(limits.access_token_lifetime_secs),
        },
        refresh_hash: refresh.hash(),
    };
    let polled = app
        .store
        .poll_device_code(&device_code.hash(), &client.id, &tokens, now, limits)
        .await?;
    let answer = match polled {
        DevicePoll::Issued {
            scopes,
            refresh: with_refresh,
            user_id,
            auth_time,
        } => {
            // OIDC Core §3.1.3.3 as for a code: no nonce (the device flow has none).
            let sign_in = SignIn {
                auth_time,
                nonce: None,
            };
            let id_token = id_token(app, client, user_id, &scopes, &sign_in, &access, now).await?;
            return Ok(Issued {
                access,
                refresh: with_refresh.then_some(refresh),
                scopes,
                id_token,
            });
        }
        DevicePoll::Unknown => {
            return Err(unknown_here(
                device_code.expose(),
                "device code",
                &app.settings.datacenters,
                OAuthError::InvalidGrant("the device code is invalid"),
            )
            .into())
        }
        DevicePoll::Answered(answer) => answer,
    };
    Err(match answer {
        PollAnswer::Pending => OAuthError::AuthorizationPending,
        PollAnswer::SlowDown => OAuthError::SlowDown,
        PollAnswer::Denied => OAuthError::AccessDenied("the user denied the request"),
        PollAnswer::Expired => OAuthError::ExpiredToken,
        PollAnswer::OtherDc { location } => OAuthError::OtherDc {
            accounts: app
                .settings
                .datacenters
                .get(&location)
                .map(|peer| peer.accounts.clone())
                .unwrap_or_default(),
            location,
        },
        PollAnswer::Used => OAuthError::InvalidGrant("the device code was already used"),
        PollAnswer::OtherClient => {
            OAuthError::InvalidGrant("the device code was issued to another client")
        }
        // The store answers an issue with the tokens, never as an answer.
        PollAnswer::Issue { .. } => OAuthError::InvalidGrant("the device code is invalid"),
    }
    .into())
}
