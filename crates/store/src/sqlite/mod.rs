//! The embedded SQLite store, on rusqlite alone. SQLite allows one writer: every write verb
//! runs on the writer thread (`writer`), batched into shared commits, and no write is
//! answered before its WAL frames are synced to disk (`wal_sync`), so an acknowledged token
//! survives a crash. Reads run on read-only connections kept per thread (`readers`). WAL
//! checkpoints run beside the writer (`checkpoint`). Migrations are applied first, by the shared
//! runner (`migrations.rs` says why). One file per group of verbs (`verbs.rs`).

mod accounts;
mod checkpoint;
mod console;
mod device;
mod enhance;
mod keys;
mod query;
mod readers;
mod rows;
mod sessions;
mod tokens;
mod wal_sync;
mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;
use checkpoint::Checkpoints;
use readers::Readers;
use wal_sync::WalSync;
use writer::Writer;

/// Where `grantd serve` keeps its data when no `--database` is given.
pub const DEFAULT_DATABASE: &str = "sqlite://grantd-data/grantd.db";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a plain path),
    /// applies migrations, and checks that the file is in WAL mode.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = database_path(url)?;
        Self::open_with(path, WalSync::start(Path::new(path))).await
    }

    async fn open_with(path: &str, wal_sync: std::io::Result<WalSync>) -> Result<Self, StoreError> {
        let wal_sync = wal_sync
            .map_err(|e| StoreError::Setup(format!("cannot start the WAL sync thread: {e}")))?;
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::migrations::sqlite(path).await?;
        let conn = open_writer(Path::new(path))
            .map_err(|e| StoreError::Setup(format!("cannot open {path}: {e}")))?;
        let writer = Writer::start(conn, wal_sync, Checkpoints::start(Path::new(path)))
            .map_err(|e| StoreError::Setup(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            writer,
            readers: Readers::new(path.into()),
        })
    }
}

fn database_path(url: &str) -> Result<&str, StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.starts_with(":memory:") {
        // Each connection would get its own empty database.
        return Err(StoreError::Setup(
            "an in-memory SQLite database cannot be shared; give a file path".into(),
        ));
    }
    Ok(path)
}

/// The writer's connection. Its `COMMIT` does not sync (`synchronous = NORMAL`): `WalSync`
/// does, before any verb of the batch is answered, which is only sound in WAL mode, so that is
/// checked. With `temp_store = MEMORY` a savepoint's journal grows in 1 KiB pieces instead of
/// 64 KiB ones, whose release made glibc hand memory back to the kernel (`madvise`, and a TLB
/// flush on every core) at every verb: 6 % of the writer's time. Its page cache is 32 MiB
/// instead of 2: the token indexes are keyed by random hashes, so a small cache reads most
/// pages back from the OS. Checkpoints run beside the writer (`checkpoint`), not inside its
/// commits.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Setup(format!(
            "SQLite is not in WAL mode (journal_mode={mode}); grantd needs WAL"
        )));
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use grantd_core::device::DeviceGrant;
    use grantd_core::enhance::EnhanceDecision;
    use grantd_core::grant::{AccessType, CodeGrant, Rejection};
    use grantd_core::oidc::SigningAlg;
    use grantd_core::secret::{random_id, SecretHash};
    use grantd_core::signin::Attempt;
    use grantd_core::source::Source;
    use grantd_core::{ClientId, ClientType, Dialect, Limits, OAuthError, Scopes, Timestamp};

    use super::*;
    use crate::model::NewEnhanceToken;
    use crate::model::{
        ClientUpdate, ConsentRecord, DeviceDecision, NewAccess, NewClient, NewCode, NewDeviceCode,
        NewTokens,
    };
    use crate::verbs::{
        AccountVerbs, ConsoleVerbs, DeviceVerbs, EnhanceVerbs, SessionVerbs, TokenVerbs,
    };

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn hash() -> SecretHash {
        SecretHash::of(&random_id())
    }

    fn access() -> NewAccess {
        NewAccess {
            hash: hash(),
            expires_at: NOW.plus(3600),
        }
    }

    fn code(client: &ClientId, user_id: i64) -> NewCode {
        NewCode {
            grant: CodeGrant {
                code_hash: hash(),
                client_id: client.clone(),
                user_id,
                redirect_uri: None,
                scopes: Scopes::from_stored("AaaServer.profile.READ"),
                issue_refresh_token: true,
                code_challenge: None,
                expires_at: NOW.plus(60),
                redeemed_at: None,
                oidc: Default::default(),
            },
            description: None,
            record_consent: Some(ConsentRecord {
                scopes: Scopes::from_stored("AaaServer.profile.READ"),
                redirect_uri: "https://app.example/cb".into(),
            }),
        }
    }

    fn device_code(client: &ClientId) -> NewDeviceCode {
        NewDeviceCode {
            device_code_hash: hash(),
            user_code_hash: hash(),
            grant: DeviceGrant::new(
                client.clone(),
                Scopes::from_stored("AaaServer.profile.READ"),
                AccessType::Offline,
                NOW,
                &Limits::default(),
            ),
        }
    }

    /// After one failed `fdatasync` no write is acknowledged again, whichever verb it is,
    /// even once the disk would sync again: the kernel may have dropped the pages that failed,
    /// so nothing written after them can be known to be durable until a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_sync_every_write_verb_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grantd.db");
        let path = path.to_str().unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let sync = {
            let failing = failing.clone();
            move || match failing.load(Ordering::SeqCst) {
                true => Err(io::Error::other("EIO")),
                false => Ok(()),
            }
        };
        let store = SqliteStore::open_with(path, WalSync::start_with(sync))
            .await
            .unwrap();
        let limits = Limits::default();

        // What the verbs below act on, written while the disk works.
        let user = store
            .add_user("ada@example.com", "Ada", "x", true, NOW)
            .await
            .unwrap();
        let client = ClientId::new("1000.A".into());
        let new_client = NewClient {
            id: client.clone(),
            kind: ClientType::Server,
            name: "A".into(),
            homepage: None,
            redirect_uris: vec![],
            js_domain: None,
            secret_hash: Some(hash()),
            owner_id: Some(user),
            dialect: Dialect::Standard,
            introspect_any: false,
            id_token_alg: None,
        };
        store.add_client(&new_client, NOW).await.unwrap();
        let issued = code(&client, user);
        store.add_code(&issued, NOW, &limits).await.unwrap();
        let refresh = hash();
        let tokens = NewTokens {
            access: access(),
            refresh_hash: refresh,
        };
        store
            .redeem_code(&issued.grant.code_hash, |_| Ok(()), &tokens, NOW, &limits)
            .await
            .unwrap();
        let session = hash();
        store
            .add_session(&session, user, "test", NOW, NOW.plus(600))
            .await
            .unwrap();
        let pending = hash();
        store
            .add_pending_consent(&pending, &session, "{}", NOW.plus(600))
            .await
            .unwrap();
        let tv = ClientId::new("1000.TV".into());
        store
            .add_client(
                &NewClient {
                    id: tv.clone(),
                    kind: ClientType::NonBrowser,
                    ..new_client.clone()
                },
                NOW,
            )
            .await
            .unwrap();
        let device = device_code(&tv);
        store.add_device_code(&device, NOW).await.unwrap();
        let enhance = NewEnhanceToken {
            hash: hash(),
            expires_at: NOW.plus(600),
        };
        assert!(store
            .add_enhance_token(&refresh, &client, &enhance, NOW)
            .await
            .unwrap());

        failing.store(true, Ordering::SeqCst);
        let first = store.add_scope("A.b.READ", "first after the failure").await;
        assert!(matches!(first, Err(StoreError::Unavailable)), "{first:?}");
        // The disk recovers; grantd must not believe it.
        failing.store(false, Ordering::SeqCst);

        let refused = |what: &str, result: Result<(), StoreError>| {
            assert!(
                matches!(result, Err(StoreError::Unavailable)),
                "{what} was acknowledged: {result:?}"
            );
        };
        refused(
            "add_user",
            store
                .add_user("bob@example.com", "Bob", "x", false, NOW)
                .await
                .map(drop),
        );
        let attempt = Attempt::new("ada@example.com", Source::of([127, 0, 0, 1].into()));
        refused(
            "begin_sign_in",
            store.begin_sign_in(&attempt, NOW, &limits).await.map(drop),
        );
        refused(
            "sign_in_succeeded",
            store.sign_in_succeeded(&attempt, NOW, &limits).await,
        );
        refused(
            "unlock_account",
            store.unlock_account(&attempt.account).await.map(drop),
        );
        refused(
            "set_password",
            store.set_password(user, "y", &session).await,
        );
        refused("set_user_name", store.set_user_name(user, "Ada L").await);
        refused(
            "remove_user_session",
            store
                .remove_user_session(user, &session.to_hex())
                .await
                .map(drop),
        );
        refused("revoke_grant", store.revoke_grant(user, &client).await);
        refused("add_scope", store.add_scope("C.d.READ", "x").await);
        let other = NewClient {
            id: ClientId::new("1000.B".into()),
            ..new_client.clone()
        };
        refused("add_client", store.add_client(&other, NOW).await);
        refused(
            "set_client_secret",
            store
                .set_client_secret(client.as_str(), &hash())
                .await
                .map(drop),
        );
        refused(
            "enable_client_dc",
            store
                .enable_client_dc(&client, "eu", None, NOW)
                .await
                .map(drop),
        );
        refused(
            "disable_client_dc",
            store.disable_client_dc(&client, "eu").await.map(drop),
        );
        refused("mirror_clients", store.mirror_clients("eu", &[], NOW).await);
        let update = ClientUpdate {
            name: "A2".into(),
            homepage: None,
            redirect_uris: vec![],
            js_domain: None,
            dialect: Dialect::Zoho,
            introspect_any: Some(true),
        };
        refused(
            "update_client",
            store.update_client(&client, user, &update).await.map(drop),
        );
        refused(
            "set_client_id_token_alg",
            store
                .set_client_id_token_alg(&client, user, Some(SigningAlg::EdDsa))
                .await
                .map(drop),
        );
        refused(
            "add_code",
            store
                .add_code(&code(&client, user), NOW, &limits)
                .await
                .map(drop),
        );
        let tokens = NewTokens {
            access: access(),
            refresh_hash: hash(),
        };
        let replayed = issued.grant.code_hash;
        let redeem = store.redeem_code(
            &replayed,
            |_| Err(Rejection::Replayed),
            &tokens,
            NOW,
            &limits,
        );
        refused("redeem_code", redeem.await.map(drop));
        let minted = access();
        let refreshed = store.refresh(
            &refresh,
            &client,
            |grant| -> Result<Scopes, OAuthError> { Ok(grant.scopes.clone()) },
            &minted,
            None,
            NOW,
            &limits,
        );
        refused("refresh", refreshed.await.map(drop));
        refused(
            "add_access_token",
            store
                .add_access_token(
                    &access(),
                    &client,
                    user,
                    &Scopes::from_stored("x"),
                    NOW,
                    &limits,
                )
                .await
                .map(drop),
        );
        refused("revoke", store.revoke(&refresh, None).await.map(drop));
        refused("sweep", store.sweep(NOW.plus(86_400 * 2)).await.map(drop));
        refused(
            "add_session",
            store
                .add_session(&hash(), user, "t", NOW, NOW.plus(1))
                .await,
        );
        refused("remove_session", store.remove_session(&session).await);
        refused(
            "add_pending_consent",
            store
                .add_pending_consent(&hash(), &session, "{}", NOW.plus(1))
                .await,
        );
        refused(
            "take_pending_consent",
            store
                .take_pending_consent(&pending, &session, NOW)
                .await
                .map(drop),
        );
        refused(
            "add_device_code",
            store.add_device_code(&device_code(&tv), NOW).await,
        );
        let here = Source::of([127, 0, 0, 1].into());
        refused(
            "find_device_code",
            store
                .find_device_code(&device.user_code_hash, &here, NOW, &limits)
                .await
                .map(drop),
        );
        refused(
            "decide_device_code",
            store
                .decide_device_code(&device.user_code_hash, &DeviceDecision::Deny, NOW)
                .await
                .map(drop),
        );
        let tokens = NewTokens {
            access: access(),
            refresh_hash: hash(),
        };
        refused(
            "poll_device_code",
            store
                .poll_device_code(&device.device_code_hash, &tv, &tokens, NOW, &limits)
                .await
                .map(drop),
        );
        let another = NewEnhanceToken {
            hash: hash(),
            expires_at: NOW.plus(600),
        };
        refused(
            "add_enhance_token",
            store
                .add_enhance_token(&refresh, &client, &another, NOW)
                .await
                .map(drop),
        );
        refused(
            "use_enhance_token",
            store
                .use_enhance_token(&enhance.hash, &client, user, &EnhanceDecision::Reject, NOW)
                .await
                .map(drop),
        );
        refused(
            "remove_client",
            store.remove_client(client.as_str()).await.map(drop),
        );
        // Refused writes did not happen either: readers see none of them.
        assert!(store.session_user(&session, NOW).await.unwrap().is_some());
        assert!(store.client(client.as_str()).await.unwrap().is_some());
        assert_eq!(store.user_count().await.unwrap(), 1);
    }
}
