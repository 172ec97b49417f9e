//! The console's client pages: list, Add Client, and a client's tabs (Client Secret, Settings,
//! and for a Self Client, Generate Code with the codes made so far).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use grantd_core::limits::SELF_CLIENT_CODE_MINUTES;
use grantd_core::oidc::{self, SigningAlg};
use grantd_core::{Client, ClientType, Dialect, Scopes};
use grantd_store::ClientUpdate;
use grantd_store::ConsoleVerbs;

use super::{datetime, type_help, type_label};
use crate::admin::{self, check_client_fields, AdminError, ClientSpec, FieldErrors, SelfCodeSpec};
use crate::app::App;
use crate::error::ErrorPage;
use crate::pages;
use crate::params::Params;
use crate::session::{see_other, SignedIn};

struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    created: String,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    clients: Vec<ClientRow>,
}

pub async fn list(State(app): State<App>, me: SignedIn) -> Result<Response, ErrorPage> {
    let clients = app.store.clients_of(me.user.id).await?;
    let page = ClientsPage {
        nav: "console",
        location: me.location.clone(),
        is_admin: me.user.is_admin,
        csrf_token: me.csrf_token(),
        clients: clients
            .into_iter()
            .map(|c| ClientRow {
                id: c.id.to_string(),
                name: c.name,
                kind: type_label(c.kind),
                created: datetime(c.created_at),
            })
            .collect(),
    };
    Ok(Html(pages::render(&page)).into_response())
}

struct TypeChoice {
    code: &'static str,
    label: &'static str,
    help: &'static str,
}

#[derive(Template)]
#[template(path = "console/new_client.html")]
struct NewClientPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    types: Vec<TypeChoice>,
    kind: String,
    uses_redirects: bool,
    name: String,
    homepage: String,
    js_domain: String,
    redirect_uris: Vec<String>,
    name_error: Option<String>,
    homepage_error: Option<String>,
    js_domain_error: Option<String>,
    redirect_uris_error: Option<String>,
    form_error: Option<String>,
}

impl NewClientPage {
    fn new(me: &SignedIn, kind: Option<ClientType>) -> Self {
        Self {
            nav: "console",
            location: me.location.clone(),
            is_admin: me.user.is_admin,
            csrf_token: me.csrf_token(),
            types: ClientType::ALL
                .into_iter()
                .map(|t| TypeChoice {
                    code: t.as_str(),
                    label: type_label(t),
                    help: type_help(t),
                })
                .collect(),
            kind: kind.map_or("", ClientType::as_str).to_owned(),
            uses_redirects: kind.is_some_and(ClientType::uses_redirects),
            name: String::new(),
            homepage: String::new(),
            js_domain: String::new(),
            redirect_uris: vec![String::new()],
            name_error: None,
            homepage_error: None,
            js_domain_error: None,
            redirect_uris_error: None,
            form_error: None,
        }
    }

    fn with_errors(mut self, errors: FieldErrors) -> Self {
        for (field, message) in errors {
            let slot = match field {
                "name" => &mut self.name_error,
                "homepage" => &mut self.homepage_error,
                "js_domain" => &mut self.js_domain_error,
                "redirect_uris" => &mut self.redirect_uris_error,
                _ => &mut self.form_error,
            };
            // Several problems with one field are shown together.
            match slot {
                Some(existing) => {
                    existing.push(' ');
                    existing.push_str(&message);
                }
                None => *slot = Some(message),
            }
        }
        self
    }
}

#[derive(Deserialize)]
pub struct TypeQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn new_form(me: SignedIn, Query(query): Query<TypeQuery>) -> Response {
    let kind = query.kind.and_then(|k| k.parse::<ClientType>().ok());
    Html(pages::render(&NewClientPage::new(&me, kind))).into_response()
}

pub async fn create(
    State(app): State<App>,
    me: SignedIn,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let kind = params
        .get("type")
        .ok()
        .flatten()
        .and_then(|k| k.parse::<ClientType>().ok())
        .ok_or(ErrorPage::bad_request("Choose a client type."))?;
    let field = |name: &'static str| params.text(name).to_owned();
    let spec = ClientSpec {
        kind,
        name: field("name"),
        homepage: Some(field("homepage")).filter(|h| !h.trim().is_empty()),
        redirect_uris: params.all("redirect_uri").map(str::to_owned).collect(),
        js_domain: Some(field("js_domain")).filter(|d| !d.trim().is_empty()),
        owner_email: Some(me.user.email.clone()),
        dialect: Dialect::Standard,
        introspect_any: false,
        id_token_alg: None,
    };
    let rerender = |errors: FieldErrors| {
        let mut page = NewClientPage::new(&me, Some(kind)).with_errors(errors);
        page.name = spec.name.clone();
        page.homepage = spec.homepage.clone().unwrap_or_default();
        page.js_domain = spec.js_domain.clone().unwrap_or_default();
        if !spec.redirect_uris.is_empty() {
            page.redirect_uris = spec.redirect_uris.clone();
        }
        (StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response()
    };
    // Field by field first, so each error can stand next to its input; nothing is saved.
    if let Err(errors) = check_client_fields(
        kind,
        &spec.name,
        spec.homepage.as_deref(),
        &spec.redirect_uris,
        spec.js_domain.as_deref(),
    ) {
        return Ok(rerender(errors));
    }
    match admin::add_client(&app.store, &spec, me.now).await {
        Ok((id, secret)) => {
            let client = me.own_client(&app, id.as_str()).await?;
            let mut page = ClientPage::new(&app, &me, &client, "secret").await?;
            page.new_secret = secret.map(|s| s.expose().to_owned());
            page.notice = Some("Client created.".into());
            Ok(Html(pages::render(&page)).into_response())
        }
        Err(AdminError::Conflict(_)) => Ok(rerender(vec![(
            "form",
            "You already have a Self Client; each account has at most one.".into(),
        )])),
        Err(AdminError::Invalid(message)) => Ok(rerender(vec![("form", message)])),
        Err(AdminError::NotFound(_)) => Err(ErrorPage::bad_request("Your account was not found.")),
        Err(AdminError::Store(e)) => Err(e.into()),
    }
}

struct SettingsForm {
    name: String,
    homepage: String,
    js_domain: String,
    redirect_uris: Vec<String>,
    dialect: &'static str,
    /// May introspect every token; shown and changed by administrators only.
    introspect_any: bool,
    name_error: Option<String>,
    homepage_error: Option<String>,
    js_domain_error: Option<String>,
    redirect_uris_error: Option<String>,
}

struct NewCode {
    value: String,
    minutes: i64,
    expires_in: i64,
}

struct CodeForm {
    scope: String,
    minutes: i64,
    description: String,
    scope_error: Option<String>,
    description_error: Option<String>,
}

struct CodeRow {
    created: String,
    scopes: String,
    description: String,
    status: &'static str,
}

struct ClientView {
    id: String,
    name: String,
    kind: &'static str,
}

/// A peer data center in the Multi-DC panel, and whether the client is served there.
struct DcRow {
    location: String,
    accounts: String,
    status: &'static str,
    enabled: bool,
    own_secret: bool,
}

#[derive(Template)]
#[template(path = "console/client.html")]
struct ClientPage {
    nav: &'static str,
    /// This data center, in the header.
    location: String,
    is_admin: bool,
    csrf_token: String,
    client: ClientView,
    tab: &'static str,
    is_self: bool,
    has_secret: bool,
    uses_redirects: bool,
    notice: Option<String>,
    form_error: Option<String>,
    new_secret: Option<String>,
    form: SettingsForm,
    new_code: Option<NewCode>,
    code_form: CodeForm,
    codes: Vec<CodeRow>,
    scope_names: Vec<String>,
    durations: [i64; 4],
    /// Empty for a Self Client or a single data center: no Multi-DC panel.
    datacenters: Vec<DcRow>,
    /// A secret of its own just given to the client at a data center, shown once.
    dc_secret: Option<(String, String)>,
    /// What OpenID Connect looks like to this client (the code and the device flow alike).
    oidc: OidcView,
}

/// The Settings tab's OpenID Connect panel: the server's settings, read-only, and the client's
/// ID-token algorithm, which its owner chooses.
struct OidcView {
    discovery: String,
    /// The built-in scopes the client may request, with what the consent page says.
    scopes: Vec<(String, String)>,
    /// What this client's ID tokens are signed with now (`oidc::id_token_alg`).
    alg: &'static str,
    /// The server's `id_token_signing_alg`: what "Server default" means.
    default_alg: &'static str,
    /// The client's own choice; empty for the server default.
    chosen: &'static str,
    /// Every algorithm it may choose.
    algs: [&'static str; 2],
}

impl ClientPage {
    async fn new(
        app: &App,
        me: &SignedIn,
        client: &Client,
        tab: &'static str,
    ) -> Result<Self, ErrorPage> {
        let is_self = client.kind == ClientType::SelfClient;
        let tab = match tab {
            "code" if is_self => "code",
            "settings" => "settings",
            _ if is_self && tab.is_empty() => "code",
            _ => "secret",
        };
        let (codes, scope_names) = if is_self {
            let codes = app.store.codes_of(&client.id).await?;
            let scopes = app.store.scopes().await?;
            (
                codes
                    .into_iter()
                    .map(|c| CodeRow {
                        created: datetime(c.created_at),
                        scopes: c.scopes.to_stored(),
                        description: c.description.unwrap_or_default(),
                        status: if c.redeemed_at.is_some() {
                            "Used"
                        } else if me.now >= c.expires_at {
                            "Expired"
                        } else {
                            "Not used yet"
                        },
                    })
                    .collect(),
                scopes.into_iter().map(|(name, _)| name).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let datacenters = if is_self {
            Vec::new()
        } else {
            dc_rows(app, client).await?
        };
        let mut uris: Vec<String> = client
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect();
        if uris.is_empty() {
            uris.push(String::new());
        }
        Ok(Self {
            nav: "console",
            location: me.location.clone(),
            is_admin: me.user.is_admin,
            csrf_token: me.csrf_token(),
            client: ClientView {
                id: client.id.to_string(),
                name: client.name.clone(),
                kind: type_label(client.kind),
            },
            tab,
            is_self,
            has_secret: client.secret_hash.is_some(),
            uses_redirects: client.kind.uses_redirects(),
            notice: None,
            form_error: None,
            new_secret: None,
            form: SettingsForm {
                name: client.name.clone(),
                homepage: client.homepage.clone().unwrap_or_default(),
                js_domain: client.js_domain.clone().unwrap_or_default(),
                redirect_uris: uris,
                dialect: client.dialect.as_str(),
                introspect_any: client.introspect_any,
                name_error: None,
                homepage_error: None,
                js_domain_error: None,
                redirect_uris_error: None,
            },
            new_code: None,
            code_form: CodeForm {
                scope: String::new(),
                minutes: 3,
                description: String::new(),
                scope_error: None,
                description_error: None,
            },
            codes,
            scope_names,
            durations: SELF_CLIENT_CODE_MINUTES,
            datacenters,
            dc_secret: None,
            oidc: oidc_view(app, client).await?,
        })
    }
}

async fn oidc_view(app: &App, client: &Client) -> Result<OidcView, ErrorPage> {
    let builtin = Scopes::from_stored(&oidc::SCOPES.join(" "));
    let scopes = app.store.registered(&builtin).await?.unwrap_or_default();
    let default = app.settings.id_token_signing_alg;
    Ok(OidcView {
        discovery: format!(
            "{}/.well-known/openid-configuration",
            app.settings.public_url
        ),
        scopes,
        alg: oidc::id_token_alg(client, default).as_str(),
        default_alg: default.as_str(),
        chosen: client.id_token_alg.map_or("", SigningAlg::as_str),
        algs: SigningAlg::ALL.map(SigningAlg::as_str),
    })
}

async fn dc_rows(app: &App, client: &Client) -> Result<Vec<DcRow>, ErrorPage> {
    if app.settings.datacenters.is_empty() {
        return Ok(Vec::new());
    }
    let enabled = app.store.client_dcs(&client.id).await?;
    Ok(app
        .settings
        .datacenters
        .iter()
        .map(|(location, peer)| {
            let at = enabled.iter().find(|dc| &dc.location == location);
            DcRow {
                location: location.clone(),
                accounts: peer.accounts.clone(),
                status: match at {
                    None => "Not enabled",
                    Some(dc) if dc.own_secret => "Enabled, own secret",
                    Some(_) => "Enabled, home secret",
                },
                enabled: at.is_some(),
                own_secret: at.is_some_and(|dc| dc.own_secret),
            }
        })
        .collect())
}

/// The Multi-DC panel's buttons: enable (home secret), own secret (a new one, shown once), or
/// disable, at one configured data center.
pub async fn datacenter(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    let location = params.text("location").to_owned();
    let here = admin::Here {
        location: &app.settings.location,
        peers: &app.settings.datacenters,
    };
    let outcome = match params.text("action") {
        "enable" | "own_secret" => {
            let own = params.text("action") == "own_secret";
            admin::enable_dc(
                &app.store,
                &here,
                client.id.as_str(),
                &location,
                own,
                me.now,
            )
            .await
            .map(|secret| match secret {
                Some(secret) => (
                    format!("Enabled at {location} with a secret of its own."),
                    Some(secret.expose().to_owned()),
                ),
                None => (format!("Enabled at {location} with the home secret."), None),
            })
        }
        "disable" => admin::disable_dc(&app.store, client.id.as_str(), &location)
            .await
            .map(|()| {
                (
                    format!("Disabled at {location}; its tokens there go with it."),
                    None,
                )
            }),
        _ => return Err(ErrorPage::bad_request("Unknown Multi-DC action.")),
    };
    let mut page = ClientPage::new(&app, &me, &client, "settings").await?;
    match outcome {
        Ok((notice, secret)) => {
            page.notice = Some(notice);
            page.dc_secret = secret.map(|secret| (location, secret));
            Ok(Html(pages::render(&page)).into_response())
        }
        Err(AdminError::Store(e)) => Err(e.into()),
        Err(e) => {
            page.form_error = Some(e.to_string());
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct TabQuery {
    tab: Option<String>,
    saved: Option<String>,
}

pub async fn show(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<TabQuery>,
) -> Result<Response, ErrorPage> {
    let client = me.own_client(&app, &id).await?;
    let tab = match query.tab.as_deref() {
        Some("settings") => "settings",
        Some("code") => "code",
        Some("secret") => "secret",
        _ => "",
    };
    let mut page = ClientPage::new(&app, &me, &client, tab).await?;
    if query.saved.is_some() {
        page.notice = Some("Saved.".into());
    }
    Ok(Html(pages::render(&page)).into_response())
}

pub async fn regenerate_secret(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    let secret = admin::rotate_secret(&app.store, client.id.as_str())
        .await
        .map_err(|_| ErrorPage::bad_request("This client has no secret to regenerate."))?;
    let mut page = ClientPage::new(&app, &me, &client, "secret").await?;
    page.new_secret = Some(secret.expose().to_owned());
    page.notice = Some("A new secret was generated; the old one no longer works.".into());
    Ok(Html(pages::render(&page)).into_response())
}

pub async fn update_settings(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    let field = |name: &'static str| params.text(name).to_owned();
    let redirect_uris: Vec<String> = params.all("redirect_uri").map(str::to_owned).collect();
    let dialect = match params.get("dialect").ok().flatten() {
        Some("zoho") => Dialect::Zoho,
        _ => Dialect::Standard,
    };
    // Only an administrator may make a client a resource server (it then introspects every
    // client's tokens); anyone else's form leaves the flag as it is. Public clients cannot
    // authenticate at the introspection endpoint, so they are never flagged.
    let introspect_any = (me.user.is_admin && client.secret_hash.is_some())
        .then(|| params.get("introspect_any").ok().flatten().is_some());
    let homepage = if client.kind == ClientType::SelfClient {
        String::new()
    } else {
        field("homepage")
    };
    let checked = check_client_fields(
        client.kind,
        &field("name"),
        Some(homepage.as_str()),
        &redirect_uris,
        Some(field("js_domain").as_str()),
    );
    match checked {
        Ok(fields) => {
            let update = ClientUpdate {
                name: fields.name,
                homepage: fields.homepage,
                redirect_uris: fields.redirect_uris,
                js_domain: fields.js_domain,
                dialect,
                introspect_any,
            };
            app.store
                .update_client(&client.id, me.user.id, &update)
                .await?;
            Ok(see_other(&format!(
                "/console/clients/{}?tab=settings&saved=1",
                client.id
            )))
        }
        Err(errors) => {
            let mut page = ClientPage::new(&app, &me, &client, "settings").await?;
            page.form.name = field("name");
            page.form.homepage = homepage;
            page.form.js_domain = field("js_domain");
            page.form.dialect = dialect.as_str();
            if let Some(flag) = introspect_any {
                page.form.introspect_any = flag;
            }
            if !redirect_uris.is_empty() {
                page.form.redirect_uris = redirect_uris;
            }
            for (f, message) in errors {
                let slot = match f {
                    "name" => &mut page.form.name_error,
                    "homepage" => &mut page.form.homepage_error,
                    "js_domain" => &mut page.form.js_domain_error,
                    _ => &mut page.form.redirect_uris_error,
                };
                *slot = Some(message);
            }
            page.form_error = Some("Nothing was saved. Correct the fields below.".into());
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}

/// The OpenID Connect panel's algorithm: the client's own choice, or (empty) the server
/// default. Only its owner's, as every setting; it applies from the next ID token.
pub async fn id_token_alg(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    let alg = match params.text("id_token_alg") {
        "" => None,
        raw => Some(SigningAlg::parse(raw).ok_or(ErrorPage::bad_request(
            "Choose the server default, RS256 or EdDSA.",
        ))?),
    };
    app.store
        .set_client_id_token_alg(&client.id, me.user.id, alg)
        .await?;
    Ok(see_other(&format!(
        "/console/clients/{}?tab=settings&saved=1",
        client.id
    )))
}

pub async fn delete(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    app.store.remove_client(client.id.as_str()).await?;
    Ok(see_other("/console"))
}

pub async fn generate_code(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ErrorPage> {
    me.check_form(&app, &headers, &params)?;
    let client = me.own_client(&app, &id).await?;
    if client.kind != ClientType::SelfClient {
        return Err(ErrorPage::bad_request(
            "Codes are generated only for a Self Client.",
        ));
    }
    let field = |name: &'static str| params.text(name).to_owned();
    let minutes = field("duration").parse::<i64>().unwrap_or(0);
    let spec = SelfCodeSpec {
        client_id: client.id.to_string(),
        user_email: me.user.email.clone(),
        scopes: field("scope"),
        minutes,
        description: Some(field("description")).filter(|d| !d.trim().is_empty()),
    };
    let result =
        admin::self_client_code(&app.store, &spec, me.now, &app.settings.limits, app.tag).await;
    let mut page = ClientPage::new(&app, &me, &client, "code").await?;
    match result {
        Ok(code) => {
            page.code_form.minutes = minutes;
            page.new_code = Some(NewCode {
                value: code.expose().to_owned(),
                minutes,
                expires_in: minutes * 60,
            });
            Ok(Html(pages::render(&page)).into_response())
        }
        Err(AdminError::Store(e)) => Err(e.into()),
        Err(error) => {
            page.code_form.scope = spec.scopes.clone();
            page.code_form.description = spec.description.clone().unwrap_or_default();
            page.code_form.minutes = minutes;
            let message = error.to_string();
            if message.contains("description") {
                page.code_form.description_error = Some(message);
            } else if message.contains("scope") {
                page.code_form.scope_error = Some(message);
            } else {
                page.form_error = Some(message);
            }
            Ok((StatusCode::BAD_REQUEST, Html(pages::render(&page))).into_response())
        }
    }
}
