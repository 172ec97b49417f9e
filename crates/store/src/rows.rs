//! Rows as the tables hold them, one named struct per shape a verb reads, and their conversion
//! into domain types. Both backends read into these (PostgreSQL through `sqlx::FromRow`, SQLite
//! through `sqlite::rows::ReadRow`), so a column's meaning is decoded in one place. Each
//! struct's fields are in the order of the `SELECT` that reads it (`statements.rs`).

use std::collections::HashSet;
use std::str::FromStr;

use grantd_core::consent::Consent;
use grantd_core::device::{DeviceGrant, DeviceStatus};
use grantd_core::enhance::EnhanceGrant;
use grantd_core::grant::{AccessGrant, AccessType, CodeGrant, RefreshGrant, SignIn};
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::SecretHash;
use grantd_core::signin::Tally;
use grantd_core::throttle::Minted;
use grantd_core::{Client, ClientId, ClientType, Dialect, RedirectUri, Scopes, Timestamp};

use crate::model::{
    CodeSummary, ConnectedApp, DeviceDecision, EnabledDc, SessionSummary, SigningKeyRecord,
    TokenInfo, User,
};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            email: row.email,
            name: row.name,
            password_hash: row.password_hash,
            is_admin: row.is_admin,
        }
    }
}

/// A sign-in tally (`signin::Tally`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TallyRow {
    pub failures: i64,
    pub since: i64,
    pub last_at: i64,
}

impl From<TallyRow> for Tally {
    fn from(row: TallyRow) -> Tally {
        Tally {
            failures: row.failures,
            since: Timestamp(row.since),
            last: Timestamp(row.last_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ClientRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub homepage: Option<String>,
    /// A JSON array of strings.
    pub redirect_uris: String,
    pub secret_hash: Option<Vec<u8>>,
    pub owner_id: Option<i64>,
    pub dialect: String,
    pub js_domain: Option<String>,
    pub created_at: i64,
    pub introspect_any: bool,
    pub home: Option<String>,
    /// `RS256`, `EdDSA`, or NULL for the server's default.
    pub id_token_alg: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EnabledDcRow {
    pub location: String,
    pub own_secret: bool,
}

impl From<EnabledDcRow> for EnabledDc {
    fn from(row: EnabledDcRow) -> Self {
        EnabledDc {
            location: row.location,
            own_secret: row.own_secret,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IdRow {
    pub id: String,
}

/// The mirrored clients (`present`) that a home no longer enables here.
pub(crate) fn mirrored_away(present: Vec<IdRow>, enabled: &[Client]) -> Vec<String> {
    let enabled: HashSet<&str> = enabled.iter().map(|c| c.id.as_str()).collect();
    present
        .into_iter()
        .map(|row| row.id)
        .filter(|id| !enabled.contains(id.as_str()))
        .collect()
}

impl ClientRow {
    /// `None` for a row this version cannot read (an unknown kind or algorithm), which then
    /// behaves as absent.
    pub fn into_client(self) -> Option<Client> {
        let uris: Vec<String> = serde_json::from_str(&self.redirect_uris).ok()?;
        Some(Client {
            id: ClientId::new(self.id),
            kind: ClientType::from_str(&self.kind).ok()?,
            name: self.name,
            homepage: self.homepage,
            redirect_uris: uris.into_iter().map(RedirectUri::from_stored).collect(),
            secret_hash: match self.secret_hash {
                Some(bytes) => Some(SecretHash::from_bytes(&bytes)?),
                None => None,
            },
            owner_id: self.owner_id,
            dialect: Dialect::from_str(&self.dialect).ok()?,
            js_domain: self.js_domain,
            created_at: Timestamp(self.created_at),
            introspect_any: self.introspect_any,
            home: self.home,
            id_token_alg: match self.id_token_alg {
                Some(alg) => Some(SigningAlg::parse(&alg)?),
                None => None,
            },
        })
    }
}

/// How a client's redirect URIs are stored: a JSON array.
pub(crate) fn stored_uris(uris: &[RedirectUri]) -> String {
    let uris: Vec<&str> = uris.iter().map(RedirectUri::as_str).collect();
    serde_json::to_string(&uris).unwrap_or_else(|_| "[]".into())
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CodeRow {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: i64,
    pub redirect_uri: Option<String>,
    pub scopes: String,
    pub issue_refresh: bool,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
}

impl CodeRow {
    pub fn into_grant(self) -> Option<CodeGrant> {
        Some(CodeGrant {
            code_hash: SecretHash::from_bytes(&self.code_hash)?,
            client_id: ClientId::new(self.client_id),
            user_id: self.user_id,
            redirect_uri: self.redirect_uri,
            scopes: Scopes::from_stored(&self.scopes),
            issue_refresh_token: self.issue_refresh,
            code_challenge: self.code_challenge,
            expires_at: Timestamp(self.expires_at),
            redeemed_at: self.redeemed_at.map(Timestamp),
            oidc: SignIn {
                auth_time: self.auth_time.map(Timestamp),
                nonce: self.nonce,
            },
        })
    }
}

/// A device authorization (`device_codes`), as `DEVICE_CODE_BY_*` read it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub device_code_hash: Vec<u8>,
    pub client_id: String,
    pub scopes: String,
    pub offline: bool,
    pub status: String,
    pub user_id: Option<i64>,
    pub user_location: Option<String>,
    pub interval_secs: i64,
    pub last_poll_at: Option<i64>,
    pub expires_at: i64,
    pub auth_time: Option<i64>,
}

impl DeviceRow {
    /// `None` for a row no grantd writes (an unknown status, or one missing its user or
    /// location), which is then treated as unknown.
    pub fn into_grant(self) -> Option<DeviceGrant> {
        self.into_found().map(|(_, grant)| grant)
    }

    /// The grant with its device code's hash.
    pub fn into_found(self) -> Option<(SecretHash, DeviceGrant)> {
        let status = match (self.status.as_str(), self.user_id, self.user_location) {
            ("pending", _, _) => DeviceStatus::Pending,
            ("approved", Some(user_id), _) => DeviceStatus::Approved {
                user_id,
                auth_time: self.auth_time.map(Timestamp),
            },
            ("denied", _, _) => DeviceStatus::Denied,
            ("other_dc", _, Some(location)) => DeviceStatus::OtherDc { location },
            ("used", _, _) => DeviceStatus::Used,
            _ => return None,
        };
        let hash = SecretHash::from_bytes(&self.device_code_hash)?;
        let grant = DeviceGrant {
            client_id: ClientId::new(self.client_id),
            scopes: Scopes::from_stored(&self.scopes),
            access_type: if self.offline {
                AccessType::Offline
            } else {
                AccessType::Online
            },
            status,
            interval_secs: self.interval_secs,
            last_poll_at: self.last_poll_at.map(Timestamp),
            expires_at: Timestamp(self.expires_at),
        };
        Some((hash, grant))
    }
}

/// The `status` column a poll writes back.
pub(crate) fn device_status_column(status: &DeviceStatus) -> &'static str {
    match status {
        DeviceStatus::Pending => "pending",
        DeviceStatus::Approved { .. } => "approved",
        DeviceStatus::Denied => "denied",
        DeviceStatus::OtherDc { .. } => "other_dc",
        DeviceStatus::Used => "used",
    }
}

/// The columns a verification-page decision writes: `status`, `user_id`, `user_location`,
/// `auth_time`.
pub(crate) fn device_decision_columns(
    decision: &DeviceDecision,
) -> (&'static str, Option<i64>, Option<&str>, Option<i64>) {
    match decision {
        DeviceDecision::Approve { user_id, auth_time } => {
            ("approved", Some(*user_id), None, auth_time.map(|t| t.0))
        }
        DeviceDecision::Deny => ("denied", None, None, None),
        DeviceDecision::OtherDc { location } => ("other_dc", None, Some(location.as_str()), None),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccessRow {
    pub client_id: String,
    pub user_id: i64,
    pub scopes: String,
    pub expires_at: i64,
}

impl From<AccessRow> for AccessGrant {
    fn from(row: AccessRow) -> AccessGrant {
        AccessGrant {
            client_id: ClientId::new(row.client_id),
            user_id: row.user_id,
            scopes: Scopes::from_stored(&row.scopes),
            expires_at: Timestamp(row.expires_at),
        }
    }
}

impl From<AccessGrant> for TokenInfo {
    fn from(grant: AccessGrant) -> TokenInfo {
        TokenInfo {
            client_id: grant.client_id,
            user_id: grant.user_id,
            scopes: grant.scopes,
            expires_at: Some(grant.expires_at),
        }
    }
}

/// An access token's client, scopes and expiry, then its user.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccessOwnerRow {
    pub client_id: String,
    pub scopes: String,
    pub expires_at: i64,
    #[sqlx(flatten)]
    pub user: UserRow,
}

impl From<AccessOwnerRow> for (AccessGrant, User) {
    fn from(row: AccessOwnerRow) -> (AccessGrant, User) {
        let user = User::from(row.user);
        let grant = AccessGrant {
            client_id: ClientId::new(row.client_id),
            user_id: user.id,
            scopes: Scopes::from_stored(&row.scopes),
            expires_at: Timestamp(row.expires_at),
        };
        (grant, user)
    }
}

/// A refresh token as introspection sees it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefreshRow {
    pub client_id: String,
    pub user_id: i64,
    pub scopes: String,
}

impl From<RefreshRow> for TokenInfo {
    fn from(row: RefreshRow) -> TokenInfo {
        TokenInfo {
            client_id: ClientId::new(row.client_id),
            user_id: row.user_id,
            scopes: Scopes::from_stored(&row.scopes),
            expires_at: None,
        }
    }
}

/// A refresh token as a refresh sees it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefreshGrantRow {
    pub id: i64,
    pub client_id: String,
    pub user_id: i64,
    pub scopes: String,
    pub auth_time: Option<i64>,
}

impl RefreshGrantRow {
    /// The grant, if `client` is the one holding the refresh token.
    pub fn held_by(self, client: &ClientId) -> Option<RefreshGrant> {
        (self.client_id == client.as_str()).then(|| RefreshGrant {
            id: self.id,
            client_id: ClientId::new(self.client_id),
            user_id: self.user_id,
            scopes: Scopes::from_stored(&self.scopes),
            auth_time: self.auth_time.map(Timestamp),
        })
    }
}

/// A live enhance token with its grant's current scopes (`LIVE_ENHANCE_TOKEN`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EnhanceRow {
    pub refresh_id: i64,
    pub client_id: String,
    pub user_id: i64,
    pub scopes: String,
    pub expires_at: i64,
}

impl From<EnhanceRow> for EnhanceGrant {
    fn from(row: EnhanceRow) -> EnhanceGrant {
        EnhanceGrant {
            refresh_id: row.refresh_id,
            client_id: ClientId::new(row.client_id),
            user_id: row.user_id,
            scopes: Scopes::from_stored(&row.scopes),
            expires_at: Timestamp(row.expires_at),
        }
    }
}

/// A retired refresh token's family and the client it belongs to.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RetiredRow {
    pub id: i64,
    pub client_id: String,
}

impl RetiredRow {
    /// The family's id, if `client` is the one holding it.
    pub fn held_by(self, client: &ClientId) -> Option<i64> {
        (self.client_id == client.as_str()).then_some(self.id)
    }
}

/// One access token of a refresh token, from the index alone.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MintedRow {
    pub id: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl From<MintedRow> for Minted {
    fn from(row: MintedRow) -> Minted {
        Minted {
            id: row.id,
            created_at: Timestamp(row.created_at),
            expires_at: Timestamp(row.expires_at),
        }
    }
}

/// A consent: scopes, and the registered redirect URIs it was given for, space-separated.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConsentRow {
    pub scopes: String,
    pub redirect_uris: String,
}

impl From<ConsentRow> for Consent {
    fn from(row: ConsentRow) -> Consent {
        Consent {
            scopes: Scopes::from_stored(&row.scopes),
            redirect_uris: row
                .redirect_uris
                .split(' ')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl ConsentRow {
    pub fn of(consent: &Consent) -> ConsentRow {
        ConsentRow {
            scopes: consent.scopes.to_stored(),
            redirect_uris: consent.redirect_uris.join(" "),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ScopeRow {
    pub name: String,
    pub description: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CodeSummaryRow {
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub scopes: String,
    pub description: Option<String>,
}

impl From<CodeSummaryRow> for CodeSummary {
    fn from(row: CodeSummaryRow) -> CodeSummary {
        CodeSummary {
            created_at: Timestamp(row.created_at),
            expires_at: Timestamp(row.expires_at),
            redeemed_at: row.redeemed_at.map(Timestamp),
            scopes: Scopes::from_stored(&row.scopes),
            description: row.description,
        }
    }
}

/// A connected app: the client, the consent (if any), the tokens' last use, count and scopes.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AppRow {
    pub id: String,
    pub name: String,
    pub homepage: Option<String>,
    pub consented: Option<String>,
    pub granted_at: Option<i64>,
    pub last_used: Option<i64>,
    pub active: i64,
    pub token_scopes: Option<String>,
}

impl From<AppRow> for ConnectedApp {
    fn from(row: AppRow) -> ConnectedApp {
        let mut scopes = Scopes::from_stored(row.consented.as_deref().unwrap_or(""));
        if let Some(token_scopes) = row.token_scopes {
            scopes = scopes.union(&Scopes::from_stored(&token_scopes));
        }
        ConnectedApp {
            client_id: ClientId::new(row.id),
            client_name: row.name,
            homepage: row.homepage,
            scopes,
            first_granted_at: Timestamp(row.granted_at.or(row.last_used).unwrap_or(0)),
            last_used_at: row.last_used.map(Timestamp),
            active_refresh_tokens: row.active,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub user_agent: String,
}

impl From<SessionRow> for SessionSummary {
    fn from(row: SessionRow) -> SessionSummary {
        SessionSummary {
            handle: SecretHash::from_bytes(&row.token_hash)
                .map(|h| h.to_hex())
                .unwrap_or_default(),
            created_at: Timestamp(row.created_at),
            user_agent: row.user_agent,
        }
    }
}

/// A pending consent as it is taken: the request, and until when it could be decided.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PendingConsentRow {
    pub request: String,
    pub expires_at: i64,
}

impl PendingConsentRow {
    /// The request, unless it expired (taken all the same: an expired one is of no use).
    pub fn request_if_live(self, now: Timestamp) -> Option<String> {
        (now.0 < self.expires_at).then_some(self.request)
    }
}

/// An access token's id and expiry, as the sweep walks them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExpiryRow {
    pub id: i64,
    pub expires_at: i64,
}

/// How far the sweep deletes in a chunk of access tokens: through its last id if any of them
/// has expired, else nowhere, and the sweep stops (tokens are made in id order, so the ones
/// after an unexpired chunk are newer still).
pub(crate) fn sweep_through(chunk: &[ExpiryRow], now: Timestamp) -> Option<i64> {
    let last = chunk.last()?.id;
    chunk
        .iter()
        .any(|row| row.expires_at <= now.0)
        .then_some(last)
}

/// A signing key as stored: public JWK, encrypted private key, and its life.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl From<SigningKeyRow> for SigningKeyRecord {
    fn from(row: SigningKeyRow) -> Self {
        SigningKeyRecord {
            kid: row.kid,
            alg: row.alg,
            public_jwk: row.public_jwk,
            encrypted_private_key: row.private_key,
            created_at: Timestamp(row.created_at),
            retired_at: row.retired_at.map(Timestamp),
            expires_at: row.expires_at.map(Timestamp),
        }
    }
}
