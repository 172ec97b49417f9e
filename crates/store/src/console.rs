//! What the API console and the account pages read and change: a user's own clients and Self
//! Client codes, the apps they authorized, their browser sessions, their password.

use grantd_core::secret::SecretHash;
use grantd_core::{Client, ClientId, Dialect, RedirectUri, Scopes, Timestamp};

use crate::sqlite::{
    client_from_row, user_from_row, ClientRow, UserRow, CLIENT_COLUMNS, USER_COLUMNS,
};
use crate::{SqliteStore, StoreError, User};

/// A Self Client code as the console lists it: never the code itself.
#[derive(Debug, Clone)]
pub struct CodeSummary {
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub redeemed_at: Option<Timestamp>,
    pub scopes: Scopes,
    pub description: Option<String>,
}

/// A client the user has authorized, for the Connected Apps page.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: ClientId,
    pub client_name: String,
    pub homepage: Option<String>,
    pub scopes: Scopes,
    pub first_granted_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub active_refresh_tokens: i64,
}

/// A signed-in browser. `handle` names it without revealing the cookie (it is the hex of the
/// stored hash, which is useless without the cookie).
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub handle: String,
    pub created_at: Timestamp,
    pub user_agent: String,
}

/// What the client settings form may change.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    pub name: String,
    pub homepage: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub js_domain: Option<String>,
    pub dialect: Dialect,
}

impl SqliteStore {
    pub async fn clients_of(&self, owner_id: i64) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> = sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE owner_id = ? ORDER BY created_at, id"
        ))
        .bind(owner_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(client_from_row).collect())
    }

    /// Changes a client's settings, only if `owner_id` owns it.
    pub async fn update_client(
        &self,
        id: &ClientId,
        owner_id: i64,
        update: &ClientUpdate,
    ) -> Result<bool, StoreError> {
        let uris: Vec<&str> = update
            .redirect_uris
            .iter()
            .map(RedirectUri::as_str)
            .collect();
        let done = sqlx::query(
            "UPDATE clients SET name = ?, homepage = ?, redirect_uris = ?, js_domain = ?, dialect = ?
              WHERE id = ? AND owner_id = ?",
        )
        .bind(&update.name)
        .bind(&update.homepage)
        .bind(serde_json::to_string(&uris).unwrap_or_else(|_| "[]".into()))
        .bind(&update.js_domain)
        .bind(update.dialect.as_str())
        .bind(id.as_str())
        .bind(owner_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The Self Client's codes, newest first.
    pub async fn codes_of(&self, client: &ClientId) -> Result<Vec<CodeSummary>, StoreError> {
        let rows: Vec<CodeRow> = sqlx::query_as(
            "SELECT created_at, expires_at, redeemed_at, scopes, description FROM grant_codes
              WHERE client_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 100",
        )
        .bind(client.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(created, expires, redeemed, scopes, description)| CodeSummary {
                    created_at: Timestamp(created),
                    expires_at: Timestamp(expires),
                    redeemed_at: redeemed.map(Timestamp),
                    scopes: Scopes::from_stored(&scopes),
                    description,
                },
            )
            .collect())
    }

    /// Every client the user authorized (by consent, or by a Self Client code), with its
    /// active refresh tokens.
    pub async fn connected_apps(&self, user_id: i64) -> Result<Vec<ConnectedApp>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(
            "WITH apps AS (
                     SELECT client_id FROM consents WHERE user_id = ?1
                     UNION SELECT client_id FROM refresh_tokens WHERE user_id = ?1)
                 SELECT c.id, c.name, c.homepage, k.scopes, k.granted_at,
                        (SELECT max(last_used_at) FROM refresh_tokens r
                          WHERE r.user_id = ?1 AND r.client_id = c.id),
                        (SELECT count(*) FROM refresh_tokens r
                          WHERE r.user_id = ?1 AND r.client_id = c.id),
                        (SELECT group_concat(scopes, ' ') FROM refresh_tokens r
                          WHERE r.user_id = ?1 AND r.client_id = c.id)
                   FROM apps JOIN clients c ON c.id = apps.client_id
                   LEFT JOIN consents k ON k.user_id = ?1 AND k.client_id = c.id
                  ORDER BY c.name, c.id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, homepage, consented, granted_at, last_used, active, token_scopes)| {
                    let mut scopes = Scopes::from_stored(consented.as_deref().unwrap_or(""));
                    if let Some(token_scopes) = token_scopes {
                        scopes = scopes.union(&Scopes::from_stored(&token_scopes));
                    }
                    ConnectedApp {
                        client_id: ClientId::new(id),
                        client_name: name,
                        homepage,
                        scopes,
                        first_granted_at: Timestamp(granted_at.or(last_used).unwrap_or(0)),
                        last_used_at: last_used.map(Timestamp),
                        active_refresh_tokens: active,
                    }
                },
            )
            .collect())
    }

    /// Revokes everything the user granted the client: refresh tokens (and with them their
    /// access tokens), other access tokens, unredeemed codes and the consent itself.
    pub async fn revoke_grant(&self, user_id: i64, client: &ClientId) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for sql in [
            "DELETE FROM refresh_tokens WHERE user_id = ? AND client_id = ?",
            "DELETE FROM access_tokens WHERE user_id = ? AND client_id = ?",
            "DELETE FROM grant_codes WHERE user_id = ? AND client_id = ? AND redeemed_at IS NULL",
            "DELETE FROM consents WHERE user_id = ? AND client_id = ?",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .bind(client.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn sessions_of(
        &self,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT token_hash, created_at, user_agent FROM sessions
              WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC",
        )
        .bind(user_id)
        .bind(now.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(hash, created_at, user_agent)| SessionSummary {
                handle: hex_lower(&hash),
                created_at: Timestamp(created_at),
                user_agent,
            })
            .collect())
    }

    /// Ends one of the user's sessions, named by its handle.
    pub async fn remove_user_session(
        &self,
        user_id: i64,
        handle: &str,
    ) -> Result<bool, StoreError> {
        let Some(hash) = parse_hex(handle).and_then(|b| SecretHash::from_bytes(&b)) else {
            return Ok(false);
        };
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = ? AND user_id = ?")
            .bind(hash.as_bytes())
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a new password hash and ends every other session of the user.
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: &SecretHash,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?")
            .bind(user_id)
            .bind(keep_session.as_bytes())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_user_name(&self, user_id: i64, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET name = ? WHERE id = ?")
            .bind(name)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(user_from_row).collect())
    }
}

type CodeRow = (i64, i64, Option<i64>, String, Option<String>);
/// id, name, homepage, consented scopes, first granted, last used, active tokens, token scopes
type AppRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
);

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
