//! Administration flows shared by the CLI and the tests: users, clients, scopes and Self
//! Client codes. Each validates its input fully before it writes anything.

use std::collections::BTreeMap;
use std::fmt;

use grantd_core::datacenter::{self, DcTag, Peer};
use grantd_core::grant::CodeGrant;
use grantd_core::limits::SELF_CLIENT_CODE_MINUTES;
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::{generate_client_id, ClientSecret, GrantCode, Password};
use grantd_core::signin;
use grantd_core::{
    Client, ClientId, ClientType, Dialect, Limits, RedirectUri, Scope, Scopes, Timestamp,
};
use grantd_store::{AccountVerbs, ConsoleVerbs, TokenVerbs};
use grantd_store::{CodeIssue, NewClient, NewCode, Store, StoreError};

use crate::password::Passwords;

#[derive(Debug)]
pub enum AdminError {
    Invalid(String),
    NotFound(String),
    Conflict(String),
    Store(StoreError),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Invalid(m) | AdminError::NotFound(m) | AdminError::Conflict(m) => {
                f.write_str(m)
            }
            AdminError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(why) => AdminError::Conflict(why.to_owned()),
            other => AdminError::Store(other),
        }
    }
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

/// Adds a user. The first user of a deployment is its administrator.
pub async fn add_user(
    store: &Store,
    passwords: &Passwords,
    email: &str,
    name: &str,
    password: &Password,
    admin: bool,
    now: Timestamp,
) -> Result<i64, AdminError> {
    // Stored exactly as given: no case folding or trimming, so look-alikes never collide (T-076).
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid_email {
        return Err(invalid(format!("{email:?} is not an email address")));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid("the name must have 1 to 100 printable characters"));
    }
    if password.expose().chars().count() < 8 || password.expose().len() > 1024 {
        return Err(invalid("the password must have at least 8 characters"));
    }
    let hash = passwords
        .hash(password)
        .await
        .ok_or_else(|| invalid("the password could not be hashed"))?;
    let admin = admin || store.user_count().await? == 0;
    Ok(store.add_user(email, name, &hash, admin, now).await?)
}

/// Clears a user's sign-in back-off from every source and their account's ceiling (`grantd
/// user unlock`, the console's Users page); how many tallies went. The sources' own limits
/// across accounts stay: unlocking one account must not free a sprayer.
pub async fn unlock_user(store: &Store, email: &str) -> Result<u64, AdminError> {
    let user = store
        .user_by_email(email)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no user with email {email:?}")))?;
    Ok(store
        .unlock_account(&signin::account_key(&user.email))
        .await?)
}

/// What a client registration asks for.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub kind: ClientType,
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<String>,
    /// The JavaScript origin of a client-based app (`client` type only).
    pub js_domain: Option<String>,
    pub owner_email: Option<String>,
    pub dialect: Dialect,
    /// A resource server: it may introspect every client's tokens (`--introspect-any`).
    pub introspect_any: bool,
    /// Its ID tokens' algorithm (`--id-token-alg`); `None`: the server's default.
    pub id_token_alg: Option<SigningAlg>,
}

/// The validated, editable part of a client, shared by registration and the settings form.
#[derive(Debug, Clone)]
pub struct ClientFields {
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub js_domain: Option<String>,
}

/// Problems with a client form, each named by its field so the console can show it there.
pub type FieldErrors = Vec<(&'static str, String)>;

/// Validates the editable fields of a client of type `kind`. Blank values count as absent.
pub fn check_client_fields(
    kind: ClientType,
    name: &str,
    homepage: Option<&str>,
    redirect_uris: &[String],
    js_domain: Option<&str>,
) -> Result<ClientFields, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = name.trim();
    let name_ok = !name.is_empty()
        && name.chars().count() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '&');
    if !name_ok {
        errors.push((
            "name",
            "The client name must have 1 to 100 letters, digits, spaces, '_' or '&'.".into(),
        ));
    }
    let homepage = homepage.map(str::trim).filter(|h| !h.is_empty());
    if let Some(homepage) = homepage {
        if !grantd_core::redirect::is_web_url(homepage) {
            errors.push((
                "homepage",
                format!("The homepage {homepage:?} is not an http(s) URL."),
            ));
        }
    }
    let mut uris = Vec::with_capacity(redirect_uris.len());
    for raw in redirect_uris
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        match RedirectUri::register(raw, kind) {
            Ok(uri) if !uris.contains(&uri) => uris.push(uri),
            Ok(_) => {}
            Err(why) => errors.push(("redirect_uris", format!("The redirect URI {raw:?} {why}."))),
        }
    }
    if uris.len() > 20 {
        errors.push((
            "redirect_uris",
            "At most 20 redirect URIs can be registered.".into(),
        ));
    }
    if kind.uses_redirects()
        && uris.is_empty()
        && !errors.iter().any(|(f, _)| *f == "redirect_uris")
    {
        errors.push((
            "redirect_uris",
            "Add at least one authorized redirect URI.".into(),
        ));
    }
    if !kind.uses_redirects() && !uris.is_empty() {
        errors.push((
            "redirect_uris",
            format!("A {} client has no redirect URIs.", kind.as_str()),
        ));
    }
    let js_domain = js_domain.map(str::trim).filter(|d| !d.is_empty());
    if let Some(domain) = js_domain {
        let origin_only = grantd_core::redirect::is_web_url(domain)
            && domain.matches('/').count() == 2
            && !domain.contains(['?', '#', '@']);
        if kind != ClientType::Client {
            errors.push((
                "js_domain",
                "Only client-based apps have a JavaScript domain.".into(),
            ));
        } else if !origin_only {
            errors.push((
                "js_domain",
                format!("The JavaScript domain {domain:?} must be an origin such as https://app.example."),
            ));
        }
    }
    if errors.is_empty() {
        Ok(ClientFields {
            name: name.to_owned(),
            homepage: homepage.map(str::to_owned),
            redirect_uris: uris,
            js_domain: js_domain.map(str::to_owned),
        })
    } else {
        Err(errors)
    }
}

/// Registers a client; confidential types get a secret, shown this once.
pub async fn add_client(
    store: &Store,
    spec: &ClientSpec,
    now: Timestamp,
) -> Result<(ClientId, Option<ClientSecret>), AdminError> {
    let fields = check_client_fields(
        spec.kind,
        &spec.name,
        spec.homepage.as_deref(),
        &spec.redirect_uris,
        spec.js_domain.as_deref(),
    )
    .map_err(|errors| {
        let messages: Vec<String> = errors.into_iter().map(|(_, m)| m).collect();
        invalid(messages.join(" "))
    })?;
    let owner_id = match &spec.owner_email {
        Some(email) => Some(
            store
                .user_by_email(email)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("no user with email {email:?}")))?
                .id,
        ),
        None => None,
    };
    if spec.kind == ClientType::SelfClient && owner_id.is_none() {
        return Err(invalid("a Self Client needs an owner (--owner)"));
    }
    if spec.introspect_any && spec.kind.is_public() {
        return Err(invalid(
            "a public client cannot authenticate, so it cannot introspect (--introspect-any)",
        ));
    }
    let secret = (!spec.kind.is_public()).then(ClientSecret::generate);
    let id = ClientId::new(generate_client_id());
    let client = NewClient {
        id: id.clone(),
        kind: spec.kind,
        name: fields.name,
        homepage: fields.homepage,
        redirect_uris: fields.redirect_uris,
        js_domain: fields.js_domain,
        secret_hash: secret.as_ref().map(ClientSecret::hash),
        owner_id,
        dialect: spec.dialect,
        introspect_any: spec.introspect_any,
        id_token_alg: spec.id_token_alg,
    };
    store.add_client(&client, now).await?;
    Ok((id, secret))
}

/// A client registered here, to be changed; one mirrored from its home is refused.
async fn own_client(store: &Store, client_id: &str) -> Result<Client, AdminError> {
    let client = store
        .client(client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no client with id {client_id:?}")))?;
    datacenter::managed_here(&client).map_err(AdminError::Invalid)?;
    Ok(client)
}

/// Deletes a client registered here with its codes, tokens and consents, here and (by the
/// next sync) at every data center it is enabled at.
pub async fn remove_client(store: &Store, client_id: &str) -> Result<(), AdminError> {
    own_client(store, client_id).await?;
    if store.remove_client(client_id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no client with id {client_id:?}"
        )))
    }
}

/// Where this data center is, for the flows that span data centers.
pub struct Here<'a> {
    pub location: &'a str,
    pub peers: &'a BTreeMap<String, Peer>,
}

/// `grantd client enable-dc`: the client is served at `location` from its next sync, with the
/// home secret, or with a new secret of its own there (returned, to be shown once).
pub async fn enable_dc(
    store: &Store,
    here: &Here<'_>,
    client_id: &str,
    location: &str,
    own_secret: bool,
    now: Timestamp,
) -> Result<Option<ClientSecret>, AdminError> {
    let client = own_client(store, client_id).await?;
    datacenter::may_enable(&client, location, here.location, here.peers, own_secret)
        .map_err(AdminError::Invalid)?;
    let secret = own_secret.then(ClientSecret::generate);
    let hash = secret.as_ref().map(ClientSecret::hash);
    if !store
        .enable_client_dc(&client.id, location, hash.as_ref(), now)
        .await?
    {
        return Err(AdminError::NotFound(format!(
            "no client with id {client_id:?}"
        )));
    }
    Ok(secret)
}

/// `grantd client disable-dc`: `location` stops serving the client from its next sync, and
/// drops the tokens it issued for it.
pub async fn disable_dc(store: &Store, client_id: &str, location: &str) -> Result<(), AdminError> {
    let client = own_client(store, client_id).await?;
    if store.disable_client_dc(&client.id, location).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "client {client_id} is not enabled at data center {location:?}"
        )))
    }
}

/// Issues a new secret; the old one stops working at once.
pub async fn rotate_secret(store: &Store, client_id: &str) -> Result<ClientSecret, AdminError> {
    own_client(store, client_id).await?;
    let secret = ClientSecret::generate();
    if store.set_client_secret(client_id, &secret.hash()).await? {
        Ok(secret)
    } else {
        Err(AdminError::NotFound(format!(
            "no confidential client with id {client_id:?}"
        )))
    }
}

pub async fn add_scope(store: &Store, name: &str, description: &str) -> Result<(), AdminError> {
    Scope::parse(name).map_err(|_| {
        invalid(format!(
            "{name:?} is not a scope (Service.scope.OPERATION, operation ALL, READ, CREATE, UPDATE or DELETE)"
        ))
    })?;
    let description = description.trim();
    if description.is_empty() || description.chars().count() > 200 {
        return Err(invalid("the description must have 1 to 200 characters"));
    }
    Ok(store.add_scope(name, description).await?)
}

/// Checks a scope list against the registry and returns it in canonical spelling.
pub async fn registered_scopes(store: &Store, raw: &str) -> Result<Scopes, AdminError> {
    let parsed = Scopes::parse(raw).map_err(|_| invalid(format!("{raw:?} is not a scope list")))?;
    in_registry_spelling(store, &parsed)
        .await?
        .map_err(|unknown| invalid(format!("unknown scope {unknown:?}")))
}

/// `scopes` in the registry's spelling, or the first one it does not know. The one lookup
/// behind every scope parameter: the console, the CLI and the OAuth endpoints.
pub async fn in_registry_spelling(
    store: &Store,
    scopes: &Scopes,
) -> Result<Result<Scopes, String>, StoreError> {
    Ok(store.registered(scopes).await?.map(|rows| {
        Scopes::from_vec(
            rows.into_iter()
                .map(|(name, _)| Scope::from_stored(name))
                .collect(),
        )
    }))
}

/// What a Self Client code request asks for.
#[derive(Debug, Clone)]
pub struct SelfCodeSpec {
    pub client_id: String,
    pub user_email: String,
    pub scopes: String,
    pub minutes: i64,
    pub description: Option<String>,
}

/// Generates a Self Client code (always yields a refresh token on exchange).
pub async fn self_client_code(
    store: &Store,
    spec: &SelfCodeSpec,
    now: Timestamp,
    limits: &Limits,
    issuer: DcTag,
) -> Result<GrantCode, AdminError> {
    if !SELF_CLIENT_CODE_MINUTES.contains(&spec.minutes) {
        return Err(invalid("the duration must be 3, 5, 7 or 10 minutes"));
    }
    let client = store
        .client(&spec.client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no client with id {:?}", spec.client_id)))?;
    if client.kind != ClientType::SelfClient {
        return Err(invalid("codes can be generated only for a Self Client"));
    }
    let user = store
        .user_by_email(&spec.user_email)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no user with email {:?}", spec.user_email)))?;
    if client.owner_id != Some(user.id) {
        return Err(invalid("this Self Client belongs to another user"));
    }
    let scopes = registered_scopes(store, &spec.scopes).await?;
    if let Some(d) = &spec.description {
        if d.chars().count() > 200 {
            return Err(invalid("the description must have at most 200 characters"));
        }
    }
    let code = GrantCode::generate(issuer);
    let new = NewCode {
        grant: CodeGrant {
            code_hash: code.hash(),
            client_id: client.id,
            user_id: user.id,
            redirect_uri: None,
            scopes,
            issue_refresh_token: true,
            code_challenge: None,
            expires_at: now.plus(spec.minutes * 60),
            redeemed_at: None,
            // The user signed in to the console to make it.
            oidc: grantd_core::grant::SignIn {
                auth_time: Some(now),
                nonce: None,
            },
        },
        description: spec.description.clone(),
        record_consent: None,
    };
    match store.add_code(&new, now, limits).await? {
        CodeIssue::Issued => Ok(code),
        CodeIssue::Throttled { retry_after } => Err(AdminError::Conflict(format!(
            "too many codes for this user and client: at most {} per {} minutes; try again in {retry_after} s",
            limits.codes_per_window,
            limits.code_window_secs / 60
        ))),
    }
}
