//! Row shapes shared by both backends, and their conversion into domain types.

use std::str::FromStr;

use grantd_core::grant::{AccessGrant, CodeGrant, RefreshGrant};
use grantd_core::secret::SecretHash;
use grantd_core::{Client, ClientId, ClientType, Dialect, Limits, RedirectUri, Scopes, Timestamp};

use crate::{TokenInfo, User};

pub(crate) type ClientRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<Vec<u8>>,
    Option<i64>,
    String,
    Option<String>,
    i64,
);
pub(crate) const CLIENT_COLUMNS: &str =
    "id, kind, name, homepage, redirect_uris, secret_hash, owner_id, dialect, js_domain, created_at";
pub(crate) const CLIENT_BY_ID: &str = "SELECT id, kind, name, homepage, redirect_uris, \
     secret_hash, owner_id, dialect, js_domain, created_at FROM clients WHERE id = $1";

// The hot reads, shared by both backends' verbs and SQLite's per-thread lookups.
pub(crate) type AccessRow = (String, i64, String, i64);
pub(crate) const LIVE_ACCESS_TOKEN: &str = "SELECT client_id, user_id, scopes, expires_at \
     FROM access_tokens WHERE token_hash = $1 AND expires_at > $2";
pub(crate) const LIVE_ACCESS_TOKEN_AND_OWNER: &str =
    "SELECT a.client_id, a.scopes, a.expires_at, u.id, u.email, u.name, u.password_hash, \
            u.is_admin, u.failed_logins, u.locked_until \
       FROM access_tokens a JOIN users u ON u.id = a.user_id \
      WHERE a.token_hash = $1 AND a.expires_at > $2";
pub(crate) const SESSION_USER: &str =
    "SELECT u.id, u.email, u.name, u.password_hash, u.is_admin, u.failed_logins, u.locked_until \
       FROM sessions s JOIN users u ON u.id = s.user_id \
      WHERE s.token_hash = $1 AND s.expires_at > $2";
pub(crate) const SCOPE_BY_KEY: &str = "SELECT name, description FROM scopes WHERE key = $1";
pub(crate) type RefreshRow = (String, i64, String);
pub(crate) const REFRESH_TOKEN: &str =
    "SELECT client_id, user_id, scopes FROM refresh_tokens WHERE token_hash = $1";

pub(crate) type UserRow = (i64, String, String, String, bool, i64, i64);
pub(crate) const USER_COLUMNS: &str =
    "id, email, name, password_hash, is_admin, failed_logins, locked_until";

pub(crate) type CodeRow = (
    Vec<u8>,
    String,
    i64,
    Option<String>,
    String,
    bool,
    Option<String>,
    i64,
    Option<i64>,
);
pub(crate) const CODE_COLUMNS: &str =
    "code_hash, client_id, user_id, redirect_uri, scopes, issue_refresh, \
     code_challenge, expires_at, redeemed_at";

pub(crate) fn user_from_row(
    (id, email, name, password_hash, is_admin, failed_logins, locked_until): UserRow,
) -> User {
    User {
        id,
        email,
        name,
        password_hash,
        is_admin,
        failed_logins,
        locked_until: Timestamp(locked_until),
    }
}

/// `None` for a row this version cannot read (an unknown kind), which then behaves as absent.
pub(crate) fn client_from_row(
    (id, kind, name, homepage, uris, secret_hash, owner_id, dialect, js_domain, created_at): ClientRow,
) -> Option<Client> {
    let uris: Vec<String> = serde_json::from_str(&uris).ok()?;
    Some(Client {
        id: ClientId::new(id),
        kind: ClientType::from_str(&kind).ok()?,
        name,
        homepage,
        redirect_uris: uris.into_iter().map(RedirectUri::from_stored).collect(),
        secret_hash: match secret_hash {
            Some(bytes) => Some(SecretHash::from_bytes(&bytes)?),
            None => None,
        },
        owner_id,
        dialect: Dialect::from_str(&dialect).ok()?,
        js_domain,
        created_at: Timestamp(created_at),
    })
}

pub(crate) fn code_from_row(
    (
        hash,
        client_id,
        user_id,
        redirect_uri,
        scopes,
        issue_refresh,
        challenge,
        expires_at,
        redeemed_at,
    ): CodeRow,
) -> Option<CodeGrant> {
    Some(CodeGrant {
        code_hash: SecretHash::from_bytes(&hash)?,
        client_id: ClientId::new(client_id),
        user_id,
        redirect_uri,
        scopes: Scopes::from_stored(&scopes),
        issue_refresh_token: issue_refresh,
        code_challenge: challenge,
        expires_at: Timestamp(expires_at),
        redeemed_at: redeemed_at.map(Timestamp),
    })
}

pub(crate) type CodeSummaryRow = (i64, i64, Option<i64>, String, Option<String>);
/// id, name, homepage, consented scopes, first granted, last used, active tokens, token scopes
pub(crate) type AppRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
);

/// An access token's client, scopes and expiry, then its user's columns (`USER_COLUMNS`).
pub(crate) type AccessOwnerRow = (
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    bool,
    i64,
    i64,
);

pub(crate) fn access_from_row((client_id, user_id, scopes, expires_at): AccessRow) -> AccessGrant {
    AccessGrant {
        client_id: ClientId::new(client_id),
        user_id,
        scopes: Scopes::from_stored(&scopes),
        expires_at: Timestamp(expires_at),
    }
}

pub(crate) fn access_owner_from_row(
    (client_id, scopes, expires_at, id, email, name, hash, admin, failed, locked): AccessOwnerRow,
) -> (AccessGrant, User) {
    let user = user_from_row((id, email, name, hash, admin, failed, locked));
    let grant = access_from_row((client_id, user.id, scopes, expires_at));
    (grant, user)
}

pub(crate) fn access_info(grant: AccessGrant) -> TokenInfo {
    TokenInfo {
        client_id: grant.client_id,
        user_id: grant.user_id,
        scopes: grant.scopes,
        expires_at: Some(grant.expires_at),
    }
}

pub(crate) fn refresh_info_from_row((client_id, user_id, scopes): RefreshRow) -> TokenInfo {
    TokenInfo {
        client_id: ClientId::new(client_id),
        user_id,
        scopes: Scopes::from_stored(&scopes),
        expires_at: None,
    }
}

/// A consent's stored scopes and redirect URIs after the user approved `consent` too.
pub(crate) fn merge_consent(
    prior: Option<(String, String)>,
    consent: &crate::ConsentRecord,
) -> (String, String) {
    let (scopes, mut uris) = match prior {
        Some((scopes, uris)) => (
            Scopes::from_stored(&scopes).union(&consent.scopes),
            uris.split(' ')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        None => (consent.scopes.clone(), Vec::new()),
    };
    if !uris.contains(&consent.redirect_uri) {
        uris.push(consent.redirect_uri.clone());
    }
    (scopes.to_stored(), uris.join(" "))
}

/// The code throttle: at most `codes_per_window` codes per client in the window. A client's
/// codes are numbered 1, 2, ... (`seq`), so the window holds that many exactly when the code
/// numbered that many back from the newest (`newest`) was made in it: one lookup, whatever the
/// limit. Returns the `seq` to look up, `None` if the client never had that many.
pub(crate) fn code_to_check(newest: i64, limits: &Limits) -> Option<i64> {
    let seq = newest - limits.codes_per_window + 1;
    (limits.codes_per_window > 0 && seq >= 1).then_some(seq)
}

/// Whether a new code is refused, and for how many seconds: `made` is when the code
/// `code_to_check` named was made (`None`: no such code, or none to check).
pub(crate) fn code_throttle(made: Option<i64>, limits: &Limits, now: Timestamp) -> Option<i64> {
    let window = limits.code_window_secs;
    if limits.codes_per_window <= 0 {
        return Some(window.max(1));
    }
    let made = made.filter(|&made| made > now.minus(window).0)?;
    Some(retry_after(Some(made), window, now))
}

/// Seconds until the oldest event of a throttle window leaves it (at least one).
pub(crate) fn retry_after(oldest: Option<i64>, window_secs: i64, now: Timestamp) -> i64 {
    (oldest.unwrap_or(now.0) + window_secs - now.0).max(1)
}

/// `REFRESH_GRANT`: id, client_id, user_id, scopes.
pub(crate) type RefreshGrantRow = (i64, String, i64, String);

/// The refresh token's grant, if `client` is the one holding it.
pub(crate) fn refresh_grant_held_by(
    row: Option<RefreshGrantRow>,
    client: &ClientId,
) -> Option<RefreshGrant> {
    let (id, client_id, user_id, scopes) = row?;
    (client_id == client.as_str()).then(|| RefreshGrant {
        id,
        client_id: ClientId::new(client_id),
        user_id,
        scopes: Scopes::from_stored(&scopes),
    })
}

/// `ACCESS_TOKENS_OF_REFRESH`: id, created_at, expires_at.
pub(crate) type MintedRow = (i64, i64, i64);

/// What a refresh does to its refresh token's access tokens: `Err(retry_after)` if the throttle
/// window is full, else the ids to delete: the expired ones, and the oldest live ones beyond
/// the cap (the token about to be minted counts toward it).
pub(crate) fn refresh_bookkeeping(
    minted: &[MintedRow],
    now: Timestamp,
    limits: &Limits,
) -> Result<Vec<i64>, i64> {
    let window_start = now.minus(limits.refresh_window_secs).0;
    let in_window = minted
        .iter()
        .filter(|&&(_, created, _)| created > window_start);
    if in_window.clone().count() as i64 >= limits.refreshes_per_window {
        let oldest = in_window.map(|&(_, created, _)| created).min();
        return Err(retry_after(oldest, limits.refresh_window_secs, now));
    }
    let (mut doomed, mut live): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for &(id, _, expires) in minted {
        if expires <= now.0 {
            doomed.push(id);
        } else {
            live.push(id);
        }
    }
    live.sort_unstable();
    let excess = (live.len() as i64 + 1 - limits.active_access_tokens_per_refresh).max(0);
    doomed.extend(live.iter().take(excess as usize));
    Ok(doomed)
}

/// A stored consent's scopes, if it covered `redirect_uri` too.
pub(crate) fn consent_covering(
    row: Option<(String, String)>,
    redirect_uri: &str,
) -> Option<Scopes> {
    row.filter(|(_, uris)| uris.split(' ').any(|u| u == redirect_uri))
        .map(|(scopes, _)| Scopes::from_stored(&scopes))
}
