//! Administration flows shared by the CLI and the tests: users, clients, scopes and Self
//! Client codes. Each validates its input fully before it writes anything.

use std::fmt;

use grantd_core::grant::CodeGrant;
use grantd_core::limits::SELF_CLIENT_CODE_MINUTES;
use grantd_core::secret::{generate_client_id, ClientSecret, GrantCode, Password};
use grantd_core::{ClientId, ClientType, Dialect, Limits, RedirectUri, Scope, Scopes, Timestamp};
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

/// What a client registration asks for.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub kind: ClientType,
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<String>,
    pub owner_email: Option<String>,
    pub dialect: Dialect,
}

/// Registers a client; confidential types get a secret, shown this once.
pub async fn add_client(
    store: &Store,
    spec: &ClientSpec,
    now: Timestamp,
) -> Result<(ClientId, Option<ClientSecret>), AdminError> {
    let name = spec.name.trim();
    let name_ok = !name.is_empty()
        && name.chars().count() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '&');
    if !name_ok {
        return Err(invalid(
            "the client name must have 1 to 100 letters, digits, spaces, '_' or '&'",
        ));
    }
    if let Some(homepage) = &spec.homepage {
        if !grantd_core::redirect::is_web_url(homepage) {
            return Err(invalid(format!(
                "the homepage {homepage:?} is not an http(s) URL"
            )));
        }
    }
    let mut redirect_uris = Vec::with_capacity(spec.redirect_uris.len());
    for raw in &spec.redirect_uris {
        let uri = RedirectUri::register(raw, spec.kind)
            .map_err(|why| invalid(format!("the redirect URI {raw:?} {why}")))?;
        if !redirect_uris.contains(&uri) {
            redirect_uris.push(uri);
        }
    }
    if spec.kind.uses_redirects() && redirect_uris.is_empty() {
        return Err(invalid(format!(
            "a {} client needs at least one --redirect-uri",
            spec.kind.as_str()
        )));
    }
    if !spec.kind.uses_redirects() && !redirect_uris.is_empty() {
        return Err(invalid(format!(
            "a {} client has no redirect URIs",
            spec.kind.as_str()
        )));
    }
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
        return Err(invalid("a Self Client needs an --owner"));
    }
    let secret = (!spec.kind.is_public()).then(ClientSecret::generate);
    let id = ClientId::new(generate_client_id());
    let client = NewClient {
        id: id.clone(),
        kind: spec.kind,
        name: name.to_owned(),
        homepage: spec.homepage.clone(),
        redirect_uris,
        secret_hash: secret.as_ref().map(ClientSecret::hash),
        owner_id,
        dialect: spec.dialect,
    };
    store.add_client(&client, now).await?;
    Ok((id, secret))
}

/// Issues a new secret; the old one stops working at once.
pub async fn rotate_secret(store: &Store, client_id: &str) -> Result<ClientSecret, AdminError> {
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
    match store.registered(&parsed).await? {
        Ok(rows) => Ok(Scopes::from_vec(
            rows.into_iter()
                .map(|(name, _)| Scope::from_stored(name))
                .collect(),
        )),
        Err(unknown) => Err(invalid(format!("unknown scope {unknown:?}"))),
    }
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
    let code = GrantCode::generate();
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
        },
        description: spec.description.clone(),
        record_consent: None,
    };
    match store.add_code(&new, now, limits).await? {
        CodeIssue::Issued => Ok(code),
        CodeIssue::Throttled { retry_after } => Err(AdminError::Conflict(format!(
            "too many codes for this client: at most {} per {} minutes; try again in {retry_after} s",
            limits.codes_per_window,
            limits.code_window_secs / 60
        ))),
    }
}
