//! The store's conformance suite: one set of tests, each an `async fn` taking a `Store`, run on
//! both backends (`sqlite::name` on a file in a temp dir, `postgres::name` on a uniquely named
//! database that is dropped afterwards, even when the test fails). The tests speak the verbs'
//! contracts (lib.rs, verbs.rs, CONTRACT.md "Limits"): uniqueness, single use, caps, throttles,
//! revocation, expiry sweeps, sessions and the console's verbs, including under concurrency,
//! where the database, not process memory, must hold the line.
//!
//! PostgreSQL: `GRANTD_TEST_POSTGRES` names a server to create databases on (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`). Unset, the PostgreSQL half says it was
//! skipped and passes; CI sets it, so there it always runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::join_all;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

use grantd_core::datacenter::email_key;
use grantd_core::device::{DeviceGrant, PollAnswer};
use grantd_core::enhance::EnhanceDecision;
use grantd_core::grant::AccessType;
use grantd_core::grant::{refresh_scopes, CodeGrant, Rejection, SignIn};
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::{generate_client_id, random_id, SecretHash};
use grantd_core::signin::{self, Attempt as SignInAttempt, Gate, Tallies, Tally};
use grantd_core::source::Source;
use grantd_core::{
    Client, ClientId, ClientType, Dialect, Limits, OAuthError, RedirectUri, Scopes, Timestamp,
};
use grantd_store::{
    AccessIssue, AccountVerbs, ClientUpdate, CodeIssue, ConsentRecord, ConsoleVerbs,
    DeviceDecision, DeviceLookup, DevicePoll, DeviceVerbs, EnabledDc, EnhanceVerbs, KeyVerbs,
    NewAccess, NewClient, NewCode, NewDeviceCode, NewEnhanceToken, NewTokens, Redemption,
    RefreshOutcome, SessionVerbs, SigningKeyRecord, Store, StoreError, TokenVerbs,
};

// ---- the suite, run once per backend -----------------------------------------------------

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::SqliteDb::open().await;
                    crate::$name(db.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::PgDb::open(stringify!($name)).await else {
                        return;
                    };
                    crate::$name(db.store.clone()).await;
                }
            )*
        }
    };
}

conformance! {
    users_are_unique_by_email,
    email_homes_are_remembered_by_key,
    sign_in_backs_off_per_account_and_source,
    parallel_sign_in_attempts_check_at_most_the_free_failures,
    parallel_spraying_stays_within_the_source_limit,
    sign_in_tallies_are_swept_once_forgotten,
    scopes_are_registered_once,
    clients_round_trip_and_each_user_has_one_self_client,
    a_client_chooses_its_id_token_algorithm,
    removing_a_client_removes_its_tokens,
    clients_are_enabled_at_other_data_centers,
    mirrored_clients_follow_their_home,
    codes_are_throttled_per_user_and_client,
    concurrent_codes_stay_within_the_throttle,
    the_code_throttle_follows_a_changed_limit,
    codes_record_consent,
    a_code_redeems_once_under_concurrency,
    a_replayed_code_revokes_its_family,
    a_code_presented_by_another_client_is_not_burned,
    refused_codes_are_burned_and_unknown_codes_are_unknown,
    twenty_refresh_tokens_then_the_oldest_goes_with_its_access_tokens,
    concurrent_grants_never_exceed_the_cap,
    refresh_is_throttled_per_window,
    concurrent_refreshes_stay_within_the_throttle,
    fifteen_active_access_tokens_per_refresh_token,
    refresh_checks_client_and_decision,
    rotating_refresh_tokens_retire_the_presented_one,
    a_retired_refresh_token_revokes_its_family,
    revoke_contracts,
    client_credentials_tokens_and_introspection,
    client_credentials_are_throttled_and_capped_per_client,
    concurrent_client_credentials_stay_within_the_throttle,
    sweep_deletes_only_what_expired,
    sweep_goes_through_many_chunks,
    sessions_live_until_expiry_or_removal,
    pending_consents_are_taken_once,
    console_clients_of_and_update_client,
    console_codes_of_lists_self_client_codes,
    connected_apps_and_revoke_grant,
    last_use_outlives_the_access_tokens,
    sessions_of_and_remove_user_session,
    set_password_ends_other_sessions,
    a_dropped_write_is_whole_or_absent,
    codes_and_refresh_tokens_keep_what_an_id_token_needs,
    sessions_know_when_their_user_signed_in,
    the_first_signing_key_is_made_once,
    rotation_retires_the_active_key_until_it_expires,
    each_algorithm_has_its_own_active_key,
    device_codes_are_added_found_and_decided_once,
    a_user_code_is_unique_while_live,
    device_polls_follow_the_rules,
    device_tokens_are_issued_once_under_concurrency,
    user_code_guesses_are_throttled_per_source_and_globally,
    parallel_guesses_stay_within_the_throttle,
    sweep_forgets_device_codes_and_guesses,
    enhance_tokens_are_bound_single_use_and_widen_the_grant,
    an_enhance_token_is_used_once_under_concurrency,
}

// ---- incremental authorization -------------------------------------------------------------

fn new_enhance(now: Timestamp) -> NewEnhanceToken {
    NewEnhanceToken {
        hash: hash(),
        expires_at: now.plus(600),
    }
}

fn accept(extra: &str) -> EnhanceDecision {
    EnhanceDecision::Accept {
        extra: scopes(extra),
        redirect_uri: REDIRECT.into(),
    }
}

/// The scopes the grant behind `refresh` holds now (a refresh asking for all of them).
async fn grant_scopes(store: &Store, client: &Client, refresh: &SecretHash) -> Scopes {
    match self::refresh(store, client, refresh, T0.plus(2), &limits())
        .await
        .0
    {
        RefreshOutcome::Issued { scopes, .. } => scopes,
        other => panic!("{other:?}"),
    }
}

async fn enhance_tokens_are_bound_single_use_and_widen_the_grant(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    let e = new_enhance(T0);
    // Only for the client holding the refresh token, and only a known refresh token.
    assert!(!store
        .add_enhance_token(&g.refresh, &b.id, &e, T0)
        .await
        .unwrap());
    assert!(!store
        .add_enhance_token(&hash(), &a.id, &e, T0)
        .await
        .unwrap());
    assert!(store.enhance_grant(&e.hash, T0).await.unwrap().is_none());
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &e, T0)
        .await
        .unwrap());
    let found = store.enhance_grant(&e.hash, T0).await.unwrap().unwrap();
    assert_eq!(
        (found.client_id.clone(), found.user_id, found.scopes.clone()),
        (a.id.clone(), ada, scopes(SCOPE))
    );
    assert!(store
        .enhance_grant(&e.hash, T0.plus(599))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .enhance_grant(&e.hash, T0.plus(600))
        .await
        .unwrap()
        .is_none());
    // Only its client and user use it, and only while it lives.
    let more = accept("Demo.y.READ");
    assert!(!store
        .use_enhance_token(&e.hash, &b.id, ada, &more, T0)
        .await
        .unwrap());
    assert!(!store
        .use_enhance_token(&e.hash, &a.id, bob, &more, T0)
        .await
        .unwrap());
    let late = T0.plus(600);
    assert!(!store
        .use_enhance_token(&e.hash, &a.id, ada, &more, late)
        .await
        .unwrap());
    assert_eq!(grant_scopes(&store, &a, &g.refresh).await, scopes(SCOPE));
    // Once: the grant and the consent widen.
    let now = T0.plus(1);
    assert!(store
        .use_enhance_token(&e.hash, &a.id, ada, &more, now)
        .await
        .unwrap());
    assert!(!store
        .use_enhance_token(&e.hash, &a.id, ada, &more, now)
        .await
        .unwrap());
    assert!(store.enhance_grant(&e.hash, now).await.unwrap().is_none());
    let widened = scopes("Demo.x.READ,Demo.y.READ");
    assert_eq!(grant_scopes(&store, &a, &g.refresh).await, widened);
    let consented = store
        .consent_for(ada, &a.id, REDIRECT)
        .await
        .unwrap()
        .unwrap();
    assert!(
        consented.covers_all(&scopes("Demo.y.READ")),
        "{consented:?}"
    );
    // A reject uses the token up and changes nothing.
    let r = new_enhance(T0);
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &r, T0)
        .await
        .unwrap());
    let reject = EnhanceDecision::Reject;
    assert!(store
        .use_enhance_token(&r.hash, &a.id, ada, &reject, now)
        .await
        .unwrap());
    assert!(store.enhance_grant(&r.hash, now).await.unwrap().is_none());
    assert_eq!(grant_scopes(&store, &a, &g.refresh).await, widened);
    // Revoking the refresh token takes its enhance tokens; the sweep takes expired ones.
    let swept = new_enhance(T0);
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &swept, T0)
        .await
        .unwrap());
    store.sweep(T0.plus(600)).await.unwrap();
    assert!(store
        .enhance_grant(&swept.hash, T0)
        .await
        .unwrap()
        .is_none());
    let revoked = new_enhance(T0);
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &revoked, T0)
        .await
        .unwrap());
    assert!(store.revoke(&g.refresh, None).await.unwrap());
    assert!(store
        .enhance_grant(&revoked.hash, T0)
        .await
        .unwrap()
        .is_none());
}

async fn an_enhance_token_is_used_once_under_concurrency(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    let e = new_enhance(T0);
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &e, T0)
        .await
        .unwrap());
    // Two enhance tokens of one grant, decided at once, both land.
    let other = new_enhance(T0);
    assert!(store
        .add_enhance_token(&g.refresh, &a.id, &other, T0)
        .await
        .unwrap());
    let uses = (0..8).map(|i| {
        let (store, id) = (store.clone(), a.id.clone());
        let token = if i == 0 { other.hash } else { e.hash };
        let extra = if i == 0 { "Demo.y.READ" } else { "Demo.x.ALL" };
        async move {
            store
                .use_enhance_token(&token, &id, ada, &accept(extra), T0.plus(1))
                .await
                .unwrap()
        }
    });
    let used = join_all(uses).await;
    assert!(used[0], "the other token's own use");
    assert_eq!(used[1..].iter().filter(|u| **u).count(), 1, "{used:?}");
    let now = grant_scopes(&store, &a, &g.refresh).await;
    assert_eq!(now, scopes("Demo.x.ALL,Demo.x.READ,Demo.y.READ"));
}

// ---- backends ----------------------------------------------------------------------------

struct SqliteDb {
    store: Store,
    _dir: TempDir,
}

impl SqliteDb {
    async fn open() -> SqliteDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/grantd.db", dir.path().display());
        let store = Store::open(&url, 4).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        SqliteDb { store, _dir: dir }
    }
}

/// A PostgreSQL store on a database of its own; the database goes when this does.
struct PgDb {
    store: Store,
    _database: PgDatabase,
}

/// Connections per store: enough for real concurrency, few enough for parallel tests.
const PG_POOL: u32 = 12;

impl PgDb {
    /// `None` (after saying so) when no PostgreSQL is configured.
    async fn open(test: &str) -> Option<PgDb> {
        let Some(admin_url) = std::env::var("GRANTD_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "skipped postgres::{test}: GRANTD_TEST_POSTGRES is not set (set it to a server \
                 URL such as postgres://postgres@127.0.0.1:5432/postgres to run it)"
            );
            return None;
        };
        let database = PgDatabase::create(admin_url).await;
        let store = Store::open(&database.url(), PG_POOL).await.unwrap();
        assert_eq!(store.backend(), "postgres");
        Some(PgDb {
            store,
            _database: database,
        })
    }
}

/// A uniquely named database on the test server, dropped (`WITH (FORCE)`) when this goes out
/// of scope, whether the test passed or panicked.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: String) -> PgDatabase {
        let name = unique_name();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("GRANTD_TEST_POSTGRES={admin_url} is unreachable: {e}"));
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        PgDatabase { admin_url, name }
    }

    fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // A fresh thread and runtime: Drop cannot await, and may run while panicking.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// `grantd_test_<pid>_<random>_<n>`: parallel runs and parallel tests never collide.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "grantd_test_{}_{}_{}",
        std::process::id(),
        &random_id()[..12],
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// The server URL with its database path replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

// ---- fixtures ----------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z, as `ManualClock::default()`.
const T0: Timestamp = Timestamp(1_767_225_600);
const REDIRECT: &str = "https://app.example/cb";
const SECRET: &str = "a client secret";
const SCOPE: &str = "Demo.x.READ";

/// The defaults, except codes: most tests make more than ten codes per client.
fn limits() -> Limits {
    Limits {
        codes_per_window: 10_000,
        ..Limits::default()
    }
}

fn scopes(raw: &str) -> Scopes {
    Scopes::parse(raw).unwrap()
}

fn hash() -> SecretHash {
    SecretHash::of(&random_id())
}

async fn user(store: &Store, email: &str) -> i64 {
    store
        .add_user(
            email,
            "Ada Lovelace",
            "$argon2id$not-a-real-hash",
            false,
            T0,
        )
        .await
        .unwrap()
}

fn new_client(kind: ClientType, owner: Option<i64>) -> NewClient {
    NewClient {
        id: ClientId::new(generate_client_id()),
        kind,
        name: format!("Test {} app", kind.as_str()),
        homepage: Some("https://app.example".into()),
        redirect_uris: if kind.uses_redirects() {
            vec![RedirectUri::from_stored(REDIRECT.into())]
        } else {
            vec![]
        },
        js_domain: None,
        secret_hash: (!kind.is_public()).then(|| SecretHash::of(SECRET)),
        owner_id: owner,
        dialect: Dialect::Standard,
        introspect_any: false,
        id_token_alg: None,
    }
}

async fn client(store: &Store, kind: ClientType, owner: Option<i64>) -> Client {
    let new = new_client(kind, owner);
    store.add_client(&new, T0).await.unwrap();
    store.client(new.id.as_str()).await.unwrap().unwrap()
}

/// A redirect-flow code for `client`, living 60 s from `now`; `offline` grants a refresh token.
fn new_code(client: &Client, user_id: i64, offline: bool, now: Timestamp) -> NewCode {
    NewCode {
        grant: CodeGrant {
            code_hash: hash(),
            client_id: client.id.clone(),
            user_id,
            redirect_uri: Some(REDIRECT.into()),
            scopes: scopes(SCOPE),
            issue_refresh_token: offline,
            code_challenge: None,
            expires_at: now.plus(60),
            redeemed_at: None,
            oidc: Default::default(),
        },
        description: None,
        record_consent: None,
    }
}

async fn add_code(store: &Store, code: &NewCode, now: Timestamp) {
    let issued = store.add_code(code, now, &limits()).await.unwrap();
    assert!(matches!(issued, CodeIssue::Issued), "{issued:?}");
}

fn new_tokens(now: Timestamp) -> NewTokens {
    NewTokens {
        access: NewAccess {
            hash: hash(),
            expires_at: now.plus(3600),
        },
        refresh_hash: hash(),
    }
}

/// Redeems as the token endpoint does: the core's rules decide, for `presenter` at `uri`.
async fn redeem_as(
    store: &Store,
    presenter: &Client,
    code: &SecretHash,
    uri: Option<&str>,
    tokens: &NewTokens,
    now: Timestamp,
) -> Redemption {
    let (presenter, uri) = (presenter.clone(), uri.map(str::to_owned));
    store
        .redeem_code(
            code,
            move |grant| grant.check_redemption(&presenter, uri.as_deref(), None, now),
            tokens,
            now,
            &limits(),
        )
        .await
        .unwrap()
}

/// The tokens of one successful grant (a code made and redeemed at `now`).
struct Granted {
    access: SecretHash,
    refresh: SecretHash,
}

async fn grant(store: &Store, client: &Client, user_id: i64, now: Timestamp) -> Granted {
    let code = new_code(client, user_id, true, now);
    add_code(store, &code, now).await;
    let tokens = new_tokens(now);
    let redeemed = redeem_as(
        store,
        client,
        &code.grant.code_hash,
        Some(REDIRECT),
        &tokens,
        now,
    )
    .await;
    assert!(
        matches!(&redeemed, Redemption::Issued(g) if g.issue_refresh_token),
        "{redeemed:?}"
    );
    Granted {
        access: tokens.access.hash,
        refresh: tokens.refresh_hash,
    }
}

/// Mints an access token from `refresh` for `client`, asking for the granted scopes.
async fn refresh(
    store: &Store,
    client: &Client,
    refresh: &SecretHash,
    now: Timestamp,
    limits: &Limits,
) -> (RefreshOutcome, SecretHash) {
    let access = NewAccess {
        hash: hash(),
        expires_at: now.plus(3600),
    };
    let outcome = store
        .refresh(
            refresh,
            &client.id,
            |grant| refresh_scopes(&grant.scopes, None),
            &access,
            None,
            now,
            limits,
        )
        .await
        .unwrap();
    (outcome, access.hash)
}

async fn refreshed(
    store: &Store,
    client: &Client,
    token: &SecretHash,
    now: Timestamp,
) -> SecretHash {
    let (outcome, access) = refresh(store, client, token, now, &limits()).await;
    assert!(
        matches!(outcome, RefreshOutcome::Issued { .. }),
        "{outcome:?}"
    );
    access
}

async fn access_alive(store: &Store, access: &SecretHash, now: Timestamp) -> bool {
    store.access_grant(access, now).await.unwrap().is_some()
}

async fn refresh_alive(store: &Store, refresh: &SecretHash) -> bool {
    let info = store.token_info(refresh, T0).await.unwrap();
    assert!(
        info.as_ref().is_none_or(|i| i.expires_at.is_none()),
        "a refresh token with an expiry: {info:?}"
    );
    info.is_some()
}

async fn active_refresh_tokens(store: &Store, user_id: i64, client: &Client) -> i64 {
    store
        .connected_apps(user_id)
        .await
        .unwrap()
        .into_iter()
        .find(|app| app.client_id == client.id)
        .map_or(0, |app| app.active_refresh_tokens)
}

async fn add_session(store: &Store, user_id: i64, now: Timestamp, lifetime: i64) -> SecretHash {
    let session = hash();
    store
        .add_session(&session, user_id, "test agent", now, now.plus(lifetime))
        .await
        .unwrap();
    session
}

// ---- users and scopes --------------------------------------------------------------------

async fn users_are_unique_by_email(store: Store) {
    assert_eq!(store.user_count().await.unwrap(), 0);
    let ada = user(&store, "ada@example.com").await;
    let again = store
        .add_user("ada@example.com", "Another Ada", "x", false, T0)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let bob = store
        .add_user("bob@example.com", "Bob", "hash", true, T0)
        .await
        .unwrap();
    assert_ne!(ada, bob);
    assert_eq!(store.user_count().await.unwrap(), 2);

    let found = store
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.name.as_str(), found.is_admin),
        (ada, "Ada Lovelace", false)
    );
    assert_eq!(found.password_hash, "$argon2id$not-a-real-hash");
    assert!(store
        .user_by_email("eve@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store.user(bob).await.unwrap().unwrap().is_admin);
    assert!(store.user(bob + 1000).await.unwrap().is_none());

    store.set_user_name(ada, "Ada King").await.unwrap();
    let all = store.users().await.unwrap();
    let listed: Vec<(i64, &str)> = all.iter().map(|u| (u.id, u.name.as_str())).collect();
    assert_eq!(listed, [(ada, "Ada King"), (bob, "Bob")]);
}

// ---- data centers (issue 13) ------------------------------------------------------------

async fn email_homes_are_remembered_by_key(store: Store) {
    let ada = email_key("ada@example.com");
    assert_eq!(store.email_home(&ada).await.unwrap(), None);
    store.remember_email_home(&ada, "eu", T0).await.unwrap();
    assert_eq!(store.email_home(&ada).await.unwrap().as_deref(), Some("eu"));
    // Emails match exactly, as users do (T-076): another spelling is another address.
    assert_eq!(
        store
            .email_home(&email_key("Ada@Example.com"))
            .await
            .unwrap(),
        None
    );
    let lower = ada;
    assert_eq!(
        store
            .email_home(&email_key("bob@example.com"))
            .await
            .unwrap(),
        None
    );
    // Found elsewhere later: the newer answer replaces the older.
    store
        .remember_email_home(&lower, "in", T0.plus(60))
        .await
        .unwrap();
    assert_eq!(store.email_home(&ada).await.unwrap().as_deref(), Some("in"));
}

// ---- sign-in throttling (issue 12; grantd-core's signin.rs) ------------------------------

fn attempt(email: &str, source: [u8; 4]) -> SignInAttempt {
    SignInAttempt::new(email, Source::of(source.into()))
}

/// `n` sequential attempts at `now`; how many may check a password.
async fn admitted(store: &Store, attempt: &SignInAttempt, n: usize, now: Timestamp) -> usize {
    let mut checked = 0;
    for _ in 0..n {
        let gate = store.begin_sign_in(attempt, now, &limits()).await.unwrap();
        checked += usize::from(gate == Gate::Check);
    }
    checked
}

async fn sign_in_backs_off_per_account_and_source(store: Store) {
    let limits = limits(); // 5 free failures, then 30 s doubling
    let attacker = attempt("ada@example.com", [127, 0, 0, 2]);
    let owner = attempt("ada@example.com", [127, 0, 0, 1]);
    assert_eq!(
        store.sign_in_tallies(&attacker).await.unwrap(),
        Tallies::ZERO
    );

    assert_eq!(admitted(&store, &attacker, 20, T0).await, 5);
    let tallies = store.sign_in_tallies(&attacker).await.unwrap();
    assert_eq!(
        (
            tallies.pair.failures,
            tallies.source.failures,
            tallies.account.failures
        ),
        (5, 5, 5),
        "refused attempts are not counted"
    );
    assert_eq!(tallies.pair.last, T0);
    // The owner at another source is not held back, and shares only the account's tally.
    assert_eq!(admitted(&store, &owner, 1, T0).await, 1);
    let owners = store.sign_in_tallies(&owner).await.unwrap();
    assert_eq!(
        (
            owners.pair.failures,
            owners.source.failures,
            owners.account.failures
        ),
        (1, 1, 6)
    );
    store.sign_in_succeeded(&owner, T0, &limits).await.unwrap();
    let owners = store.sign_in_tallies(&owner).await.unwrap();
    assert_eq!(owners.pair, Tally::ZERO);
    assert_eq!(owners.source, Tally::ZERO);
    assert_eq!(owners.account.failures, 5);

    // The attacker's back-off passes, and one more check is allowed.
    assert_eq!(admitted(&store, &attacker, 3, T0.plus(29)).await, 0);
    assert_eq!(admitted(&store, &attacker, 3, T0.plus(30)).await, 1);

    // Unlocking clears the account's back-off from every source and its ceiling, but not the
    // attacker's source's tally across accounts.
    assert_eq!(store.unlock_account(&attacker.account).await.unwrap(), 2);
    let after = store.sign_in_tallies(&attacker).await.unwrap();
    assert_eq!(after.pair, Tally::ZERO);
    assert_eq!(after.account, Tally::ZERO);
    assert_eq!(after.source.failures, 6);
    assert_eq!(admitted(&store, &attacker, 1, T0.plus(30)).await, 1);
    assert_eq!(
        store
            .unlock_account(&attempt("eve@example.com", [127, 0, 0, 1]).account)
            .await
            .unwrap(),
        0
    );
}

async fn parallel_sign_in_attempts_check_at_most_the_free_failures(store: Store) {
    let limits = limits();
    let burst = attempt("ada@example.com", [127, 0, 0, 2]);
    let gates = join_all((0..100).map(|_| {
        let (store, burst, limits) = (store.clone(), burst.clone(), limits.clone());
        tokio::spawn(async move { store.begin_sign_in(&burst, T0, &limits).await.unwrap() })
    }))
    .await;
    let checked = gates
        .into_iter()
        .filter(|gate| *gate.as_ref().unwrap() == Gate::Check)
        .count() as i64;
    assert_eq!(checked, limits.signin_failures_before_backoff);
    let tallies = store.sign_in_tallies(&burst).await.unwrap();
    assert_eq!(tallies.pair.failures, limits.signin_failures_before_backoff);
}

async fn parallel_spraying_stays_within_the_source_limit(store: Store) {
    let limits = Limits {
        signin_failures_per_source: 10,
        ..limits()
    };
    // 60 accounts from one source, and a second source on the same accounts: they share the
    // account tallies, so both sources' attempts contend for rows in both orders of arrival.
    let gates = join_all((0..60).flat_map(|i| {
        [[127, 0, 0, 2], [127, 0, 0, 3]].map(|source| {
            let (store, limits) = (store.clone(), limits.clone());
            let attempt = attempt(&format!("user{i}@example.com"), source);
            tokio::spawn(async move { store.begin_sign_in(&attempt, T0, &limits).await.unwrap() })
        })
    }))
    .await;
    let checked = gates
        .into_iter()
        .filter(|gate| *gate.as_ref().unwrap() == Gate::Check)
        .count();
    assert_eq!(checked, 20, "ten per source");
    for source in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        let tallies = store
            .sign_in_tallies(&attempt("anyone@example.com", source))
            .await
            .unwrap();
        assert_eq!(tallies.source.failures, 10);
    }
}

async fn sign_in_tallies_are_swept_once_forgotten(store: Store) {
    let limits = limits(); // forgotten a day after the last attempt
    let early = attempt("ada@example.com", [127, 0, 0, 2]);
    let late = attempt("bob@example.com", [127, 0, 0, 3]);
    assert_eq!(admitted(&store, &early, 1, T0).await, 1);
    assert_eq!(admitted(&store, &late, 1, T0.plus(100)).await, 1);
    assert_eq!(store.sweep(T0.plus(86_399)).await.unwrap(), 0);
    assert_eq!(store.sweep(T0.plus(86_400)).await.unwrap(), 3);
    assert_eq!(store.sign_in_tallies(&early).await.unwrap(), Tallies::ZERO);
    let late_tallies = store.sign_in_tallies(&late).await.unwrap();
    assert_eq!(late_tallies.pair.failures, 1);
    assert_eq!(
        signin::forget_at(&late_tallies.pair, &limits),
        T0.plus(86_500)
    );
}

async fn scopes_are_registered_once(store: Store) {
    store.add_scope("Demo.x.READ", "Read x").await.unwrap();
    // The registry compares case-insensitively.
    let again = store.add_scope("demo.X.read", "Read x again").await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store.add_scope("Demo.x.ALL", "All of x").await.unwrap();

    let names: Vec<String> = store
        .scopes()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    // The built-in scopes come with the schema (Zoho's profile scope and OpenID Connect's);
    // the list is ordered by key.
    assert_eq!(
        names,
        [
            "AaaServer.profile.READ",
            "Demo.x.ALL",
            "Demo.x.READ",
            "email",
            "openid",
            "profile"
        ]
    );

    let found = store
        .registered(&scopes("demo.x.read,AAASERVER.profile.read"))
        .await
        .unwrap()
        .unwrap();
    let mut found: Vec<String> = found.into_iter().map(|(name, _)| name).collect();
    found.sort();
    assert_eq!(found, ["AaaServer.profile.READ", "Demo.x.READ"]);
    let unknown = store
        .registered(&scopes("Demo.x.READ,Demo.z.READ"))
        .await
        .unwrap();
    assert_eq!(unknown, Err("Demo.z.READ".to_owned()));
}

// ---- clients -----------------------------------------------------------------------------

async fn clients_round_trip_and_each_user_has_one_self_client(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;

    let mut server = new_client(ClientType::Server, Some(ada));
    server.dialect = Dialect::Zoho;
    server.introspect_any = true;
    server.id_token_alg = Some(SigningAlg::EdDsa);
    store.add_client(&server, T0).await.unwrap();
    let read = store.client(server.id.as_str()).await.unwrap().unwrap();
    assert_eq!(read.id, server.id);
    assert_eq!(read.kind, ClientType::Server);
    assert_eq!(read.name, server.name);
    assert_eq!(read.homepage.as_deref(), Some("https://app.example"));
    let uris: Vec<&str> = read.redirect_uris.iter().map(RedirectUri::as_str).collect();
    assert_eq!(uris, [REDIRECT]);
    assert!(read.secret_matches(SECRET) && !read.secret_matches("another"));
    assert_eq!((read.owner_id, read.dialect), (Some(ada), Dialect::Zoho));
    assert_eq!(read.created_at, T0);
    assert!(read.introspect_any);
    assert_eq!(read.id_token_alg, Some(SigningAlg::EdDsa));
    assert!(store.client("1000.NOSUCHCLIENT").await.unwrap().is_none());

    let ada_self = client(&store, ClientType::SelfClient, Some(ada)).await;
    let second = store
        .add_client(&new_client(ClientType::SelfClient, Some(ada)), T0)
        .await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    // Other users have their own; other types are not limited.
    client(&store, ClientType::SelfClient, Some(bob)).await;
    client(&store, ClientType::Server, Some(ada)).await;
    let public = client(&store, ClientType::Mobile, None).await;
    assert!(public.secret_hash.is_none());
    assert_eq!(public.id_token_alg, None, "none chosen: the server default");
    assert_eq!(store.clients().await.unwrap().len(), 5);

    // A new secret replaces the old at once; public clients have none to replace.
    assert!(store
        .set_client_secret(ada_self.id.as_str(), &SecretHash::of("new secret"))
        .await
        .unwrap());
    let rotated = store.client(ada_self.id.as_str()).await.unwrap().unwrap();
    assert!(rotated.secret_matches("new secret") && !rotated.secret_matches(SECRET));
    assert!(!store
        .set_client_secret(public.id.as_str(), &SecretHash::of("x"))
        .await
        .unwrap());
    assert!(store
        .client(public.id.as_str())
        .await
        .unwrap()
        .unwrap()
        .secret_hash
        .is_none());

    assert!(store.remove_client(ada_self.id.as_str()).await.unwrap());
    assert!(!store.remove_client(ada_self.id.as_str()).await.unwrap());
    assert!(store.client(ada_self.id.as_str()).await.unwrap().is_none());
    // With the old one gone, the user may have a Self Client again.
    client(&store, ClientType::SelfClient, Some(ada)).await;
}

/// The console's OpenID Connect panel: only the owner sets a client's algorithm, back to the
/// default with `None`; a mirrored client keeps its home's, and what a home serves to another
/// data center carries it.
async fn a_client_chooses_its_id_token_algorithm(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let mine = client(&store, ClientType::Server, Some(ada)).await;
    let alg = |id: ClientId| {
        let store = store.clone();
        async move {
            store
                .client(id.as_str())
                .await
                .unwrap()
                .unwrap()
                .id_token_alg
        }
    };
    for chosen in [Some(SigningAlg::EdDsa), Some(SigningAlg::Rs256), None] {
        assert!(store
            .set_client_id_token_alg(&mine.id, ada, chosen)
            .await
            .unwrap());
        assert_eq!(alg(mine.id.clone()).await, chosen);
    }
    // Not bob's: nothing changes.
    assert!(!store
        .set_client_id_token_alg(&mine.id, bob, Some(SigningAlg::EdDsa))
        .await
        .unwrap());
    assert_eq!(alg(mine.id.clone()).await, None);
    let nobody = ClientId::new("1000.NOPE".into());
    assert!(!store
        .set_client_id_token_alg(&nobody, ada, Some(SigningAlg::EdDsa))
        .await
        .unwrap());

    // A home serves the choice to the data centers the client is enabled at.
    assert!(store
        .set_client_id_token_alg(&mine.id, ada, Some(SigningAlg::EdDsa))
        .await
        .unwrap());
    assert!(store
        .enable_client_dc(&mine.id, "eu", None, T0)
        .await
        .unwrap());
    let served = store.clients_enabled_for("eu").await.unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].id_token_alg, Some(SigningAlg::EdDsa));

    // A mirrored client is its home's to change, even for someone owning the same id here
    // (mirrored clients have no owner).
    let remote = Client {
        id: ClientId::new(generate_client_id()),
        owner_id: None,
        id_token_alg: Some(SigningAlg::EdDsa),
        ..mine.clone()
    };
    store
        .mirror_clients("us", std::slice::from_ref(&remote), T0)
        .await
        .unwrap();
    assert_eq!(alg(remote.id.clone()).await, Some(SigningAlg::EdDsa));
    for owner in [ada, bob] {
        assert!(!store
            .set_client_id_token_alg(&remote.id, owner, None)
            .await
            .unwrap());
    }
    assert_eq!(alg(remote.id.clone()).await, Some(SigningAlg::EdDsa));
}

async fn removing_a_client_removes_its_tokens(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let of_a = grant(&store, &a, ada, T0).await;
    let minted = refreshed(&store, &a, &of_a.refresh, T0).await;
    let of_b = grant(&store, &b, ada, T0).await;
    let pending = new_code(&a, ada, true, T0);
    add_code(&store, &pending, T0).await;

    assert!(store.remove_client(a.id.as_str()).await.unwrap());

    assert!(!refresh_alive(&store, &of_a.refresh).await);
    assert!(!access_alive(&store, &of_a.access, T0).await);
    assert!(!access_alive(&store, &minted, T0).await);
    let late = redeem_as(
        &store,
        &a,
        &pending.grant.code_hash,
        Some(REDIRECT),
        &new_tokens(T0),
        T0,
    )
    .await;
    assert!(matches!(late, Redemption::Unknown), "{late:?}");
    assert!(refresh_alive(&store, &of_b.refresh).await);
    assert!(access_alive(&store, &of_b.access, T0).await);
}

// ---- clients across data centers ---------------------------------------------------------

fn enabled(location: &str, own_secret: bool) -> EnabledDc {
    EnabledDc {
        location: location.into(),
        own_secret,
    }
}

/// CONTRACT.md "Data centers": a client registered here and enabled at other DCs, with the home
/// secret or one of its own, is what those DCs read; a Self Client never leaves home.
async fn clients_are_enabled_at_other_data_centers(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let server = client(&store, ClientType::Server, None).await;
    let mobile = client(&store, ClientType::Mobile, None).await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let india_secret = SecretHash::of("india's own secret");
    assert!(store
        .enable_client_dc(&server.id, "eu", None, T0)
        .await
        .unwrap());
    let enable_in = store.enable_client_dc(&server.id, "in", Some(&india_secret), T0);
    assert!(enable_in.await.unwrap());
    assert!(store
        .enable_client_dc(&mobile.id, "eu", None, T0)
        .await
        .unwrap());
    assert!(store
        .enable_client_dc(&own.id, "eu", None, T0)
        .await
        .unwrap());
    let nobody = ClientId::new("1000.NOPE".into());
    assert!(!store
        .enable_client_dc(&nobody, "eu", None, T0)
        .await
        .unwrap());

    assert_eq!(
        store.client_dcs(&server.id).await.unwrap(),
        [enabled("eu", false), enabled("in", true)]
    );
    let mut expected = vec![
        (server.id.clone(), Some(SecretHash::of(SECRET))),
        (mobile.id.clone(), None),
    ];
    expected.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let at_eu: Vec<_> = store
        .clients_enabled_for("eu")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.secret_hash))
        .collect();
    assert_eq!(at_eu, expected, "the Self Client stays home");
    let at_in = store.clients_enabled_for("in").await.unwrap();
    assert_eq!(at_in.len(), 1);
    assert_eq!(at_in[0].secret_hash, Some(india_secret));
    assert_eq!(at_in[0].redirect_uris.len(), 1);

    // Enabling again replaces the secret there: back to the home secret.
    assert!(store
        .enable_client_dc(&server.id, "in", None, T0)
        .await
        .unwrap());
    let at_in = store.clients_enabled_for("in").await.unwrap();
    assert_eq!(at_in[0].secret_hash, Some(SecretHash::of(SECRET)));
    assert!(store.disable_client_dc(&server.id, "in").await.unwrap());
    assert!(!store.disable_client_dc(&server.id, "in").await.unwrap());
    assert!(store.clients_enabled_for("in").await.unwrap().is_empty());
    assert_eq!(
        store.client_dcs(&server.id).await.unwrap(),
        [enabled("eu", false)]
    );

    // Removing the client at home removes where it is enabled.
    assert!(store.remove_client(server.id.as_str()).await.unwrap());
    assert!(store.client_dcs(&server.id).await.unwrap().is_empty());
    assert_eq!(store.clients_enabled_for("eu").await.unwrap().len(), 1);
}

/// A data center mirrors the clients another one enables here: added, changed and removed (with
/// their tokens) as the home's list says, never touching a client registered here or one of
/// another home.
async fn mirrored_clients_follow_their_home(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let local = client(&store, ClientType::Server, None).await;
    let remote = |name: &str| Client {
        id: ClientId::new(generate_client_id()),
        name: name.into(),
        ..local.clone()
    };
    let a = Client {
        id_token_alg: Some(SigningAlg::EdDsa),
        ..remote("A")
    };
    let b = remote("B");
    store
        .mirror_clients("us", &[a.clone(), b.clone()], T0)
        .await
        .unwrap();
    let read = store.client(a.id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        (read.home.as_deref(), read.name.as_str(), read.owner_id),
        (Some("us"), "A", None)
    );
    assert_eq!(read.id_token_alg, Some(SigningAlg::EdDsa));
    let read_b = store.client(b.id.as_str()).await.unwrap().unwrap();
    assert_eq!(read_b.id_token_alg, None);
    assert_eq!(read.secret_hash, a.secret_hash);
    assert_eq!(read.redirect_uris.len(), 1);
    let listed: Vec<ClientId> = store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed.len(), 1, "mirrored clients are not this DC's own");
    assert_eq!(listed[0], local.id);
    let of_a = grant(&store, &read, ada, T0).await;

    // Home rotated A's secret, removed its redirect URI and set it back to the server default
    // algorithm, and stopped enabling B here.
    let changed = Client {
        secret_hash: Some(SecretHash::of("rotated")),
        redirect_uris: vec![],
        id_token_alg: None,
        ..a.clone()
    };
    store.mirror_clients("us", &[changed], T0).await.unwrap();
    let read = store.client(a.id.as_str()).await.unwrap().unwrap();
    assert_eq!(read.secret_hash, Some(SecretHash::of("rotated")));
    assert!(read.redirect_uris.is_empty());
    assert_eq!(read.id_token_alg, None);
    assert!(store.client(b.id.as_str()).await.unwrap().is_none());
    assert!(refresh_alive(&store, &of_a.refresh).await);

    // Disabled here: gone, with its tokens.
    store.mirror_clients("us", &[], T0).await.unwrap();
    assert!(store.client(a.id.as_str()).await.unwrap().is_none());
    assert!(!refresh_alive(&store, &of_a.refresh).await);

    // Another home's clients, and a client registered here, are not the list's to change.
    let c = remote("C");
    let hijack = Client {
        name: "Hijacked".into(),
        id_token_alg: Some(SigningAlg::EdDsa),
        ..local.clone()
    };
    store
        .mirror_clients("eu", &[c.clone(), hijack], T0)
        .await
        .unwrap();
    store.mirror_clients("us", &[], T0).await.unwrap();
    let only_c = std::slice::from_ref(&c);
    store.mirror_clients("eu", only_c, T0).await.unwrap();
    let mine = store.client(local.id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        (mine.name.as_str(), mine.home.as_deref(), mine.id_token_alg),
        (local.name.as_str(), None, None)
    );
    let theirs = store.client(c.id.as_str()).await.unwrap().unwrap();
    assert_eq!(theirs.home.as_deref(), Some("eu"));
}

// ---- codes -------------------------------------------------------------------------------

/// CONTRACT.md "Limits": codes per (user, client). One user's ten codes throttle that user for
/// that client only: another user of the client, and the user at another client, go on.
async fn codes_are_throttled_per_user_and_client(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let limits = Limits::default();
    assert_eq!(
        (limits.codes_per_window, limits.code_window_secs),
        (10, 600)
    );
    for n in 0..10 {
        let now = T0.plus(n);
        let issued = store
            .add_code(&new_code(&a, ada, false, now), now, &limits)
            .await
            .unwrap();
        assert!(matches!(issued, CodeIssue::Issued), "code {n}: {issued:?}");
    }
    let now = T0.plus(10);
    let refused = new_code(&a, ada, false, now);
    let throttled = store.add_code(&refused, now, &limits).await.unwrap();
    // The oldest code (made at T0) leaves the window at T0 + 600.
    assert!(
        matches!(throttled, CodeIssue::Throttled { retry_after: 590 }),
        "{throttled:?}"
    );
    // Nothing was stored for the refused code.
    let nothing = redeem_as(
        &store,
        &a,
        &refused.grant.code_hash,
        Some(REDIRECT),
        &new_tokens(now),
        now,
    )
    .await;
    assert!(matches!(nothing, Redemption::Unknown), "{nothing:?}");
    // Another client has its own count.
    let other = store
        .add_code(&new_code(&b, ada, false, now), now, &limits)
        .await
        .unwrap();
    assert!(matches!(other, CodeIssue::Issued), "{other:?}");
    // So has another user of the same client: ten codes of its own, then the throttle.
    for n in 0..10 {
        let issued = store
            .add_code(&new_code(&a, bob, false, now), now, &limits)
            .await
            .unwrap();
        assert!(
            matches!(issued, CodeIssue::Issued),
            "bob's code {n}: {issued:?}"
        );
    }
    let bobs_eleventh = store
        .add_code(&new_code(&a, bob, false, now), now, &limits)
        .await
        .unwrap();
    assert!(
        matches!(bobs_eleventh, CodeIssue::Throttled { retry_after: 600 }),
        "{bobs_eleventh:?}"
    );

    let still = T0.plus(599);
    let throttled = store
        .add_code(&new_code(&a, ada, false, still), still, &limits)
        .await
        .unwrap();
    assert!(
        matches!(throttled, CodeIssue::Throttled { retry_after: 1 }),
        "{throttled:?}"
    );
    let later = T0.plus(600);
    let issued = store
        .add_code(&new_code(&a, ada, false, later), later, &limits)
        .await
        .unwrap();
    assert!(matches!(issued, CodeIssue::Issued), "{issued:?}");
}

/// An operator may lower or raise the limit: it applies to the codes already made.
async fn the_code_throttle_follows_a_changed_limit(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let with_limit = |codes_per_window| Limits {
        codes_per_window,
        ..Limits::default()
    };
    let issue = |now: Timestamp, limit: i64| {
        let store = store.clone();
        let code = new_code(&a, ada, false, now);
        async move {
            store
                .add_code(&code, now, &with_limit(limit))
                .await
                .unwrap()
        }
    };
    for n in 0..5 {
        assert!(matches!(issue(T0.plus(n), 10).await, CodeIssue::Issued));
    }
    let now = T0.plus(5);
    // The third newest, made at T0 + 2, leaves the window at T0 + 602.
    let lowered = issue(now, 3).await;
    assert!(
        matches!(lowered, CodeIssue::Throttled { retry_after: 597 }),
        "{lowered:?}"
    );
    assert!(matches!(issue(now, 1_000_000_000).await, CodeIssue::Issued));
    assert!(matches!(issue(now, 7).await, CodeIssue::Issued));
    let full = issue(now, 7).await;
    assert!(
        matches!(full, CodeIssue::Throttled { retry_after: 595 }),
        "{full:?}"
    );
}

/// Two users racing for codes of one client: each gets exactly ten.
async fn concurrent_codes_stay_within_the_throttle(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let limits = Limits::default();
    let codes: Vec<NewCode> = (0..60)
        .map(|n| new_code(&a, if n % 2 == 0 { ada } else { bob }, false, T0))
        .collect();
    let outcomes = join_all(codes.iter().map(|code| {
        let store = store.clone();
        let limits = limits.clone();
        async move { store.add_code(code, T0, &limits).await.unwrap() }
    }))
    .await;
    for who in [ada, bob] {
        let theirs: Vec<&CodeIssue> = codes
            .iter()
            .zip(&outcomes)
            .filter(|(code, _)| code.grant.user_id == who)
            .map(|(_, outcome)| outcome)
            .collect();
        let issued = theirs
            .iter()
            .filter(|o| matches!(o, CodeIssue::Issued))
            .count();
        let throttled = theirs
            .iter()
            .filter(|o| matches!(o, CodeIssue::Throttled { retry_after: 600 }))
            .count();
        assert_eq!((issued, throttled), (10, 20), "user {who}: {theirs:?}");
    }
}

fn consent_record(raw: &str, redirect_uri: &str) -> Option<ConsentRecord> {
    Some(ConsentRecord {
        scopes: scopes(raw),
        redirect_uri: redirect_uri.into(),
    })
}

async fn codes_record_consent(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let other_uri = "https://app.example/other";
    assert!(store.consent(ada, &a.id).await.unwrap().is_none());
    assert!(store
        .consent_for(ada, &a.id, REDIRECT)
        .await
        .unwrap()
        .is_none());

    let mut first = new_code(&a, ada, true, T0);
    first.record_consent = consent_record("Demo.x.READ", REDIRECT);
    add_code(&store, &first, T0).await;
    assert_eq!(
        store.consent(ada, &a.id).await.unwrap(),
        Some(scopes("Demo.x.READ"))
    );
    assert_eq!(
        store.consent_for(ada, &a.id, REDIRECT).await.unwrap(),
        Some(scopes("Demo.x.READ"))
    );
    // Consent is remembered per redirect URI (T-028).
    assert!(store
        .consent_for(ada, &a.id, other_uri)
        .await
        .unwrap()
        .is_none());
    // Consent accumulates: a later grant of other scopes, at another URI, adds to it.
    let mut second = new_code(&a, ada, false, T0.plus(5));
    second.record_consent = consent_record("Demo.y.READ", other_uri);
    add_code(&store, &second, T0.plus(5)).await;
    for uri in [REDIRECT, other_uri] {
        assert_eq!(
            store.consent_for(ada, &a.id, uri).await.unwrap(),
            Some(scopes("Demo.x.READ,Demo.y.READ")),
            "{uri}"
        );
    }
    // A code without consent to record leaves it alone.
    add_code(&store, &new_code(&a, ada, false, T0.plus(6)), T0.plus(6)).await;
    assert_eq!(
        store.consent(ada, &a.id).await.unwrap(),
        Some(scopes("Demo.x.READ,Demo.y.READ"))
    );
    // Consent is per user.
    let bob = user(&store, "bob@example.com").await;
    assert!(store.consent(bob, &a.id).await.unwrap().is_none());
}

async fn a_code_redeems_once_under_concurrency(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    for round in 0..5 {
        let now = T0.plus(round);
        let code = new_code(&a, ada, round % 2 == 0, now);
        add_code(&store, &code, now).await;
        let outcomes = join_all((0..12).map(|_| {
            let store = store.clone();
            let a = a.clone();
            let code_hash = code.grant.code_hash;
            async move {
                let tokens = new_tokens(now);
                redeem_as(&store, &a, &code_hash, Some(REDIRECT), &tokens, now).await
            }
        }))
        .await;
        let issued = outcomes
            .iter()
            .filter(|o| matches!(o, Redemption::Issued(_)))
            .count();
        let replayed = outcomes
            .iter()
            .filter(|o| matches!(o, Redemption::Rejected(Rejection::Replayed)))
            .count();
        assert_eq!((issued, replayed), (1, 11), "round {round}: {outcomes:?}");
    }
}

async fn a_replayed_code_revokes_its_family(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let code = new_code(&a, ada, true, T0);
    add_code(&store, &code, T0).await;
    let tokens = new_tokens(T0);
    let first = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &tokens,
        T0,
    )
    .await;
    let Redemption::Issued(granted) = first else {
        panic!("{first:?}")
    };
    assert_eq!(granted.client_id, a.id);
    assert_eq!(
        (granted.user_id, granted.scopes.clone()),
        (ada, scopes(SCOPE))
    );
    let minted = refreshed(&store, &a, &tokens.refresh_hash, T0.plus(1)).await;
    let unrelated = grant(&store, &a, ada, T0.plus(2)).await;
    assert!(refresh_alive(&store, &tokens.refresh_hash).await);

    let replay = new_tokens(T0.plus(3));
    let second = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &replay,
        T0.plus(3),
    )
    .await;
    assert!(
        matches!(second, Redemption::Rejected(Rejection::Replayed)),
        "{second:?}"
    );
    // Everything the code issued is gone, and the replay stored nothing.
    assert!(!refresh_alive(&store, &tokens.refresh_hash).await);
    assert!(!access_alive(&store, &tokens.access.hash, T0.plus(3)).await);
    assert!(!access_alive(&store, &minted, T0.plus(3)).await);
    assert!(!access_alive(&store, &replay.access.hash, T0.plus(3)).await);
    assert!(!refresh_alive(&store, &replay.refresh_hash).await);
    // Other grants of the same user and client are not the code's family.
    assert!(refresh_alive(&store, &unrelated.refresh).await);
    assert!(access_alive(&store, &unrelated.access, T0.plus(3)).await);
}

async fn a_code_presented_by_another_client_is_not_burned(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let thief = client(&store, ClientType::Server, None).await;
    let code = new_code(&a, ada, true, T0);
    add_code(&store, &code, T0).await;

    let stolen = new_tokens(T0);
    let refused = redeem_as(
        &store,
        &thief,
        &code.grant.code_hash,
        Some(REDIRECT),
        &stolen,
        T0,
    )
    .await;
    assert!(
        matches!(
            refused,
            Redemption::Rejected(Rejection::Refuse { burn: false, .. })
        ),
        "{refused:?}"
    );
    assert!(!access_alive(&store, &stolen.access.hash, T0).await);
    // The rightful client still redeems it.
    let tokens = new_tokens(T0.plus(1));
    let redeemed = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &tokens,
        T0.plus(1),
    )
    .await;
    assert!(matches!(redeemed, Redemption::Issued(_)), "{redeemed:?}");
    assert!(access_alive(&store, &tokens.access.hash, T0.plus(1)).await);
    assert!(refresh_alive(&store, &tokens.refresh_hash).await);
}

async fn refused_codes_are_burned_and_unknown_codes_are_unknown(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;

    // A redirect_uri mismatch burns the code: the right URI afterwards finds it used.
    let code = new_code(&a, ada, false, T0);
    add_code(&store, &code, T0).await;
    let wrong = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some("https://evil.example/cb"),
        &new_tokens(T0),
        T0,
    )
    .await;
    assert!(
        matches!(
            &wrong,
            Redemption::Rejected(Rejection::Refuse {
                error: OAuthError::RedirectUriMismatch,
                burn: true
            })
        ),
        "{wrong:?}"
    );
    let after = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &new_tokens(T0),
        T0,
    )
    .await;
    assert!(
        matches!(after, Redemption::Rejected(Rejection::Replayed)),
        "{after:?}"
    );

    // A code lives 60 seconds.
    let code = new_code(&a, ada, false, T0);
    add_code(&store, &code, T0).await;
    let expired = new_tokens(T0.plus(60));
    let late = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &expired,
        T0.plus(60),
    )
    .await;
    assert!(
        matches!(
            late,
            Redemption::Rejected(Rejection::Refuse {
                error: OAuthError::InvalidGrant(_),
                burn: true
            })
        ),
        "{late:?}"
    );
    assert!(!access_alive(&store, &expired.access.hash, T0.plus(60)).await);

    let unknown = redeem_as(&store, &a, &hash(), Some(REDIRECT), &new_tokens(T0), T0).await;
    assert!(matches!(unknown, Redemption::Unknown), "{unknown:?}");
}

// ---- refresh tokens: the cap -------------------------------------------------------------

async fn twenty_refresh_tokens_then_the_oldest_goes_with_its_access_tokens(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let cap = Limits::default().refresh_tokens_per_grant;
    assert_eq!(cap, 20);

    let mut grants = Vec::new();
    for n in 0..cap {
        grants.push(grant(&store, &a, ada, T0.plus(n)).await);
    }
    let minted_from_oldest = refreshed(&store, &a, &grants[0].refresh, T0.plus(30)).await;
    let bobs = grant(&store, &a, bob, T0.plus(31)).await;
    let other_client = grant(&store, &b, ada, T0.plus(32)).await;
    assert_eq!(active_refresh_tokens(&store, ada, &a).await, cap);
    let now = T0.plus(40);
    for g in &grants {
        assert!(refresh_alive(&store, &g.refresh).await);
        assert!(access_alive(&store, &g.access, now).await);
    }

    let newest = grant(&store, &a, ada, now).await;

    assert_eq!(active_refresh_tokens(&store, ada, &a).await, cap);
    assert!(refresh_alive(&store, &newest.refresh).await);
    assert!(
        !refresh_alive(&store, &grants[0].refresh).await,
        "the oldest survived the 21st grant"
    );
    assert!(!access_alive(&store, &grants[0].access, now).await);
    assert!(!access_alive(&store, &minted_from_oldest, now).await);
    for g in &grants[1..] {
        assert!(refresh_alive(&store, &g.refresh).await);
        assert!(access_alive(&store, &g.access, now).await);
    }
    // The cap is per (user, client).
    assert!(refresh_alive(&store, &bobs.refresh).await);
    assert!(refresh_alive(&store, &other_client.refresh).await);
}

async fn concurrent_grants_never_exceed_the_cap(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let codes: Vec<NewCode> = (0..40).map(|_| new_code(&a, ada, true, T0)).collect();
    for code in &codes {
        add_code(&store, code, T0).await;
    }
    let tokens: Vec<NewTokens> = codes.iter().map(|_| new_tokens(T0)).collect();
    let outcomes = join_all(codes.iter().zip(&tokens).map(|(code, tokens)| {
        let store = store.clone();
        let a = a.clone();
        async move {
            redeem_as(
                &store,
                &a,
                &code.grant.code_hash,
                Some(REDIRECT),
                tokens,
                T0,
            )
            .await
        }
    }))
    .await;
    for outcome in &outcomes {
        assert!(matches!(outcome, Redemption::Issued(_)), "{outcome:?}");
    }
    let mut alive = 0;
    let mut access = 0;
    for t in &tokens {
        alive += i64::from(refresh_alive(&store, &t.refresh_hash).await);
        access += i64::from(access_alive(&store, &t.access.hash, T0).await);
    }
    assert_eq!(alive, 20, "refresh tokens alive after 40 concurrent grants");
    assert_eq!(
        access, 20,
        "each evicted refresh token takes its access token"
    );
    assert_eq!(active_refresh_tokens(&store, ada, &a).await, 20);
}

// ---- refresh tokens: minting access tokens ------------------------------------------------

async fn refresh_is_throttled_per_window(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    let limits = limits();
    assert_eq!(
        (limits.refreshes_per_window, limits.refresh_window_secs),
        (10, 600)
    );
    // The exchange's own access token counts; start past its window.
    let now = T0.plus(601);
    for n in 1..=10 {
        let (outcome, _) = refresh(&store, &a, &g.refresh, now, &limits).await;
        assert!(
            matches!(outcome, RefreshOutcome::Issued { user_id, .. } if user_id == ada),
            "refresh {n}: {outcome:?}"
        );
    }
    let (throttled, refused) = refresh(&store, &a, &g.refresh, now, &limits).await;
    assert!(
        matches!(throttled, RefreshOutcome::Throttled { retry_after: 600 }),
        "{throttled:?}"
    );
    assert!(!access_alive(&store, &refused, now).await);
    let (still, _) = refresh(&store, &a, &g.refresh, now.plus(599), &limits).await;
    assert!(
        matches!(still, RefreshOutcome::Throttled { retry_after: 1 }),
        "{still:?}"
    );
    let (again, _) = refresh(&store, &a, &g.refresh, now.plus(600), &limits).await;
    assert!(matches!(again, RefreshOutcome::Issued { .. }), "{again:?}");
}

async fn concurrent_refreshes_stay_within_the_throttle(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    let now = T0.plus(601);
    let outcomes = join_all((0..25).map(|_| {
        let store = store.clone();
        let a = a.clone();
        let token = g.refresh;
        async move { refresh(&store, &a, &token, now, &limits()).await }
    }))
    .await;
    let issued: Vec<&SecretHash> = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, RefreshOutcome::Issued { .. }))
        .map(|(_, access)| access)
        .collect();
    let throttled = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, RefreshOutcome::Throttled { .. }))
        .count();
    assert_eq!((issued.len(), throttled), (10, 15));
    for access in issued {
        assert!(access_alive(&store, access, now).await);
    }
}

async fn fifteen_active_access_tokens_per_refresh_token(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    assert_eq!(Limits::default().active_access_tokens_per_refresh, 15);
    // The exchange's access token is the first of the fifteen.
    let mut active = vec![g.access];
    for (at, batch) in [(T0.plus(601), 10), (T0.plus(1202), 4)] {
        for _ in 0..batch {
            active.push(refreshed(&store, &a, &g.refresh, at).await);
        }
    }
    let now = T0.plus(1202);
    for (i, access) in active.iter().enumerate() {
        assert!(access_alive(&store, access, now).await, "token {i} is dead");
    }
    let sixteenth = refreshed(&store, &a, &g.refresh, now).await;
    assert!(access_alive(&store, &sixteenth, now).await);
    assert!(
        !access_alive(&store, &active[0], now).await,
        "the oldest survived the sixteenth"
    );
    for access in &active[1..] {
        assert!(access_alive(&store, access, now).await);
    }
}

async fn refresh_checks_client_and_decision(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;

    let (other, minted) = refresh(&store, &b, &g.refresh, T0, &limits()).await;
    assert!(matches!(other, RefreshOutcome::Unknown), "{other:?}");
    assert!(!access_alive(&store, &minted, T0).await);
    let (unknown, _) = refresh(&store, &a, &hash(), T0, &limits()).await;
    assert!(matches!(unknown, RefreshOutcome::Unknown), "{unknown:?}");

    // The decision sees the stored grant; a refusal mints nothing.
    let access = NewAccess {
        hash: hash(),
        expires_at: T0.plus(3600),
    };
    let client = a.id.clone();
    let wider = store
        .refresh(
            &g.refresh,
            &a.id,
            move |grant| {
                assert_eq!((grant.user_id, &grant.client_id), (ada, &client));
                refresh_scopes(&grant.scopes, Some(scopes("Demo.x.ALL")))
            },
            &access,
            None,
            T0,
            &limits(),
        )
        .await
        .unwrap();
    assert!(
        matches!(wider, RefreshOutcome::Rejected(OAuthError::InvalidScope(_))),
        "{wider:?}"
    );
    assert!(!access_alive(&store, &access.hash, T0).await);

    let narrower = store
        .refresh(
            &g.refresh,
            &a.id,
            |grant| refresh_scopes(&grant.scopes, Some(scopes("demo.x.read"))),
            &access,
            None,
            T0,
            &limits(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&narrower, RefreshOutcome::Issued { user_id, .. } if *user_id == ada),
        "{narrower:?}"
    );
    let info = store.access_grant(&access.hash, T0).await.unwrap().unwrap();
    assert_eq!((info.user_id, info.client_id), (ada, a.id.clone()));
    assert_eq!(info.expires_at, T0.plus(3600));
}

// ---- refresh tokens: rotation (public clients) --------------------------------------------

/// Refreshes `token` for `client`, rotating it to a fresh hash: the outcome, the access token
/// and the successor.
async fn rotate(
    store: &Store,
    client: &Client,
    token: &SecretHash,
    now: Timestamp,
) -> (RefreshOutcome, SecretHash, SecretHash) {
    let access = NewAccess {
        hash: hash(),
        expires_at: now.plus(3600),
    };
    let successor = hash();
    let outcome = store
        .refresh(
            token,
            &client.id,
            |grant| refresh_scopes(&grant.scopes, None),
            &access,
            Some(&successor),
            now,
            &limits(),
        )
        .await
        .unwrap();
    (outcome, access.hash, successor)
}

/// CONTRACT.md (token endpoint): a public client's refresh returns a new refresh token and
/// retires the one presented; the family's access tokens, throttle and cap carry on.
async fn rotating_refresh_tokens_retire_the_presented_one(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let m = client(&store, ClientType::Mobile, None).await;
    let g = grant(&store, &m, ada, T0).await;

    let (first, a1, r2) = rotate(&store, &m, &g.refresh, T0.plus(1)).await;
    assert!(
        matches!(first, RefreshOutcome::Issued { user_id, .. } if user_id == ada),
        "{first:?}"
    );
    assert!(refresh_alive(&store, &r2).await);
    assert!(
        !refresh_alive(&store, &g.refresh).await,
        "the presented one is retired"
    );
    let (second, a2, r3) = rotate(&store, &m, &r2, T0.plus(2)).await;
    assert!(
        matches!(second, RefreshOutcome::Issued { .. }),
        "{second:?}"
    );
    assert!(refresh_alive(&store, &r3).await && !refresh_alive(&store, &r2).await);
    for access in [&g.access, &a1, &a2] {
        assert!(access_alive(&store, access, T0.plus(2)).await);
    }
    // Still one grant: one active refresh token, the throttle counting the family's mints.
    assert_eq!(active_refresh_tokens(&store, ada, &m).await, 1);
    let limits = Limits {
        refreshes_per_window: 3,
        ..limits()
    };
    let (throttled, _) = refresh(&store, &m, &r3, T0.plus(3), &limits).await;
    assert!(
        matches!(throttled, RefreshOutcome::Throttled { .. }),
        "{throttled:?}"
    );
    // A refused refresh retires nothing.
    assert!(refresh_alive(&store, &r3).await);
    let (wider, _, r4) = {
        let access = NewAccess {
            hash: hash(),
            expires_at: T0.plus(3600),
        };
        let successor = hash();
        let outcome = store
            .refresh(
                &r3,
                &m.id,
                |grant| refresh_scopes(&grant.scopes, Some(scopes("Demo.x.ALL"))),
                &access,
                Some(&successor),
                T0.plus(4),
                &Limits::default(),
            )
            .await
            .unwrap();
        (outcome, access.hash, successor)
    };
    assert!(matches!(wider, RefreshOutcome::Rejected(_)), "{wider:?}");
    assert!(refresh_alive(&store, &r3).await && !refresh_alive(&store, &r4).await);
    // Without rotation (confidential clients) the token stays as it is.
    let (kept, _) = refresh(&store, &m, &r3, T0.plus(5), &Limits::default()).await;
    assert!(matches!(kept, RefreshOutcome::Issued { .. }), "{kept:?}");
    assert!(refresh_alive(&store, &r3).await);
}

/// RFC 9700 §4.14.2: a retired refresh token presented again revokes the whole family: its
/// current refresh token and every access token minted in it. Nothing else goes.
async fn a_retired_refresh_token_revokes_its_family(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let m = client(&store, ClientType::Mobile, None).await;
    let other = client(&store, ClientType::Mobile, None).await;
    let g = grant(&store, &m, ada, T0).await;
    let neighbour = grant(&store, &m, ada, T0).await;
    let (_, a1, r2) = rotate(&store, &m, &g.refresh, T0.plus(1)).await;
    let (_, a2, r3) = rotate(&store, &m, &r2, T0.plus(2)).await;

    // Another client presenting the retired token learns nothing and changes nothing.
    let (foreign, _, _) = rotate(&store, &other, &g.refresh, T0.plus(3)).await;
    assert!(matches!(foreign, RefreshOutcome::Unknown), "{foreign:?}");
    assert!(refresh_alive(&store, &r3).await);

    let (replayed, minted, r4) = rotate(&store, &m, &g.refresh, T0.plus(4)).await;
    assert!(matches!(replayed, RefreshOutcome::Replayed), "{replayed:?}");
    let now = T0.plus(4);
    for refresh in [&g.refresh, &r2, &r3, &r4] {
        assert!(!refresh_alive(&store, refresh).await);
    }
    for access in [&g.access, &a1, &a2, &minted] {
        assert!(!access_alive(&store, access, now).await);
    }
    // The current one, presented after the family went, is simply unknown.
    let (after, _, _) = rotate(&store, &m, &r3, T0.plus(5)).await;
    assert!(matches!(after, RefreshOutcome::Unknown), "{after:?}");
    // Another grant of the same user and client is another family.
    assert!(refresh_alive(&store, &neighbour.refresh).await);
    assert!(access_alive(&store, &neighbour.access, now).await);
    assert_eq!(active_refresh_tokens(&store, ada, &m).await, 1);
}

// ---- revocation, introspection, expiry ---------------------------------------------------

async fn revoke_contracts(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;

    // A refresh token goes with every access token minted from it.
    let first = grant(&store, &a, ada, T0).await;
    let minted = refreshed(&store, &a, &first.refresh, T0).await;
    let second = grant(&store, &a, ada, T0).await;
    assert!(store.revoke(&first.refresh, None).await.unwrap());
    assert!(!refresh_alive(&store, &first.refresh).await);
    assert!(!access_alive(&store, &first.access, T0).await);
    assert!(!access_alive(&store, &minted, T0).await);
    assert!(refresh_alive(&store, &second.refresh).await);
    assert!(access_alive(&store, &second.access, T0).await);
    assert!(!store.revoke(&first.refresh, None).await.unwrap());

    // With a client named, another client's token is not found and stays.
    assert!(!store.revoke(&second.access, Some(&b.id)).await.unwrap());
    assert!(!store.revoke(&second.refresh, Some(&b.id)).await.unwrap());
    assert!(access_alive(&store, &second.access, T0).await);
    assert!(refresh_alive(&store, &second.refresh).await);
    // An access token alone goes alone.
    assert!(store.revoke(&second.access, Some(&a.id)).await.unwrap());
    assert!(!access_alive(&store, &second.access, T0).await);
    assert!(refresh_alive(&store, &second.refresh).await);
    assert!(store.revoke(&second.refresh, Some(&a.id)).await.unwrap());
    assert!(!refresh_alive(&store, &second.refresh).await);

    assert!(!store.revoke(&hash(), None).await.unwrap());
}

async fn client_credentials_tokens_and_introspection(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let access = NewAccess {
        hash: hash(),
        expires_at: T0.plus(3600),
    };
    store
        .add_access_token(&access, &own.id, ada, &scopes(SCOPE), T0, &limits())
        .await
        .unwrap();
    let found = store.access_grant(&access.hash, T0).await.unwrap().unwrap();
    assert_eq!(
        (
            found.client_id,
            found.user_id,
            found.scopes,
            found.expires_at
        ),
        (own.id.clone(), ada, scopes(SCOPE), T0.plus(3600))
    );
    // Access tokens die at their expiry; introspection says so too.
    assert!(access_alive(&store, &access.hash, T0.plus(3599)).await);
    assert!(!access_alive(&store, &access.hash, T0.plus(3600)).await);
    assert!(store
        .token_info(&access.hash, T0.plus(3600))
        .await
        .unwrap()
        .is_none());
    let info = store.token_info(&access.hash, T0).await.unwrap().unwrap();
    assert_eq!(info.expires_at, Some(T0.plus(3600)));

    let a = client(&store, ClientType::Server, None).await;
    let g = grant(&store, &a, ada, T0).await;
    let info = store
        .token_info(&g.refresh, T0.plus(86_400))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.client_id, info.user_id, info.scopes, info.expires_at),
        (a.id.clone(), ada, scopes(SCOPE), None)
    );
    assert!(store.token_info(&hash(), T0).await.unwrap().is_none());
}

/// Mints a client_credentials access token for `client`'s owner at `now` (default limits).
async fn mint_cc(store: &Store, client: &Client, now: Timestamp) -> (AccessIssue, SecretHash) {
    let access = NewAccess {
        hash: hash(),
        expires_at: now.plus(3600),
    };
    let owner = client.owner_id.unwrap();
    let issued = store
        .add_access_token(&access, &client.id, owner, &scopes(SCOPE), now, &limits())
        .await
        .unwrap();
    (issued, access.hash)
}

/// CONTRACT.md "Limits": client_credentials access tokens per client, 10 per 10 minutes
/// minted, 15 active, the oldest invalidated.
async fn client_credentials_are_throttled_and_capped_per_client(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let bobs = client(&store, ClientType::SelfClient, Some(bob)).await;
    let defaults = Limits::default();
    assert_eq!(
        (
            defaults.client_credentials_per_window,
            defaults.client_credentials_window_secs,
            defaults.active_client_credentials_tokens
        ),
        (10, 600, 15)
    );
    let mut active = Vec::new();
    for n in 0..10 {
        let (issued, access) = mint_cc(&store, &own, T0.plus(n)).await;
        assert!(matches!(issued, AccessIssue::Issued), "{n}: {issued:?}");
        active.push(access);
    }
    // The oldest of the ten, made at T0, leaves the window at T0 + 600.
    let (throttled, refused) = mint_cc(&store, &own, T0.plus(10)).await;
    assert!(
        matches!(throttled, AccessIssue::Throttled { retry_after: 590 }),
        "{throttled:?}"
    );
    assert!(!access_alive(&store, &refused, T0.plus(10)).await);
    // Another client has its own quota.
    let (other, others) = mint_cc(&store, &bobs, T0.plus(10)).await;
    assert!(matches!(other, AccessIssue::Issued), "{other:?}");

    // The next window: five more make fifteen live, all alive.
    let later = T0.plus(600);
    for n in 0..5 {
        let (issued, access) = mint_cc(&store, &own, later.plus(n)).await;
        assert!(matches!(issued, AccessIssue::Issued), "{n}: {issued:?}");
        active.push(access);
    }
    let now = later.plus(5);
    for (i, access) in active.iter().enumerate() {
        assert!(access_alive(&store, access, now).await, "token {i} is dead");
    }
    // The sixteenth invalidates the oldest, and only it.
    let (issued, sixteenth) = mint_cc(&store, &own, now).await;
    assert!(matches!(issued, AccessIssue::Issued), "{issued:?}");
    assert!(access_alive(&store, &sixteenth, now).await);
    assert!(
        !access_alive(&store, &active[0], now).await,
        "the oldest lives"
    );
    for access in &active[1..] {
        assert!(access_alive(&store, access, now).await);
    }
    assert!(access_alive(&store, &others, now).await);

    // Tokens of a code exchange or a refresh are not the client's client_credentials tokens.
    let g = grant(&store, &own, ada, now).await;
    assert!(access_alive(&store, &g.access, now).await);
    let (throttled, _) = mint_cc(&store, &own, now).await;
    assert!(
        matches!(throttled, AccessIssue::Throttled { .. }),
        "{throttled:?}"
    );
    assert!(access_alive(&store, &g.access, now).await);
}

async fn concurrent_client_credentials_stay_within_the_throttle(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let outcomes = join_all((0..25).map(|_| {
        let (store, own) = (store.clone(), own.clone());
        async move { mint_cc(&store, &own, T0).await }
    }))
    .await;
    let issued: Vec<&SecretHash> = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, AccessIssue::Issued))
        .map(|(_, access)| access)
        .collect();
    let throttled = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, AccessIssue::Throttled { retry_after: 600 }))
        .count();
    assert_eq!((issued.len(), throttled), (10, 15));
    for access in issued {
        assert!(access_alive(&store, access, T0).await);
    }
}

async fn sweep_deletes_only_what_expired(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let a = client(&store, ClientType::Server, None).await;
    let short = NewAccess {
        hash: hash(),
        expires_at: T0.plus(10),
    };
    let long = NewAccess {
        hash: hash(),
        expires_at: T0.plus(3600),
    };
    for access in [&short, &long] {
        store
            .add_access_token(access, &own.id, ada, &scopes(SCOPE), T0, &limits())
            .await
            .unwrap();
    }
    let brief = add_session(&store, ada, T0, 10).await;
    let lasting = add_session(&store, ada, T0, 1_000_000).await;
    let stale = hash();
    let fresh = hash();
    store
        .add_pending_consent(&stale, &lasting, "{\"stale\":1}", T0.plus(10))
        .await
        .unwrap();
    store
        .add_pending_consent(&fresh, &lasting, "{\"fresh\":1}", T0.plus(1000))
        .await
        .unwrap();
    let code = new_code(&a, ada, false, T0);
    add_code(&store, &code, T0).await;
    let g = grant(&store, &a, ada, T0).await;

    let removed = store.sweep(T0.plus(100)).await.unwrap();
    assert_eq!(
        removed, 3,
        "the expired access token, session and pending consent"
    );
    // Looked up as of T0, only rows that still exist are found.
    assert!(!access_alive(&store, &short.hash, T0).await);
    assert!(access_alive(&store, &long.hash, T0).await);
    assert!(store.session_user(&brief, T0).await.unwrap().is_none());
    assert!(store.session_user(&lasting, T0).await.unwrap().is_some());
    assert!(store
        .take_pending_consent(&stale, &lasting, T0)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .take_pending_consent(&fresh, &lasting, T0)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"fresh\":1}")
    );
    assert!(
        refresh_alive(&store, &g.refresh).await,
        "refresh tokens live until revoked"
    );
    // Codes are kept a day past expiry, so a late replay is still recognised.
    assert_eq!(store.codes_of(&a.id).await.unwrap().len(), 2);
    store.sweep(T0.plus(60 + 86_399)).await.unwrap();
    assert_eq!(store.codes_of(&a.id).await.unwrap().len(), 2);
    store.sweep(T0.plus(60 + 86_400)).await.unwrap();
    assert_eq!(store.codes_of(&a.id).await.unwrap().len(), 0);
    let gone = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &new_tokens(T0),
        T0,
    )
    .await;
    assert!(matches!(gone, Redemption::Unknown), "{gone:?}");
    assert!(refresh_alive(&store, &g.refresh).await);
    assert_eq!(store.sweep(T0.plus(60 + 86_400)).await.unwrap(), 0);
}

/// The sweep deletes access tokens a chunk (500) at a time; it goes on while chunks hold expired
/// ones.
async fn sweep_goes_through_many_chunks(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let tokens: Vec<NewAccess> = (0..1_201)
        .map(|n| NewAccess {
            hash: hash(),
            // Every third one lives on; the expired ones expire at different times.
            // (None expired when minted: a mint deletes the client's expired tokens.)
            expires_at: if n % 3 == 0 {
                T0.plus(3600)
            } else {
                T0.plus(1 + n % 50)
            },
        })
        .collect();
    // Far more client_credentials tokens than the quota lets one client mint.
    let unthrottled = Limits {
        client_credentials_per_window: 1_000_000,
        active_client_credentials_tokens: 1_000_000,
        ..limits()
    };
    // Mints of one client serialise on it; a few at a time keep each within the verb timeout
    // on a loaded machine.
    for batch in tokens.chunks(10) {
        join_all(batch.iter().map(|access| {
            let store = store.clone();
            let own = own.id.clone();
            let unthrottled = unthrottled.clone();
            async move {
                store
                    .add_access_token(access, &own, ada, &scopes(SCOPE), T0, &unthrottled)
                    .await
                    .unwrap()
            }
        }))
        .await;
    }
    let removed = store.sweep(T0.plus(100)).await.unwrap();
    assert_eq!(removed, 800);
    for (n, access) in tokens.iter().enumerate() {
        assert_eq!(
            access_alive(&store, &access.hash, T0).await,
            n % 3 == 0,
            "{n}"
        );
    }
}

// ---- browser sessions and pending consents -----------------------------------------------

async fn sessions_live_until_expiry_or_removal(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let session = add_session(&store, ada, T0, 3600).await;
    let found = store.session_user(&session, T0).await.unwrap().unwrap();
    assert_eq!((found.id, found.email.as_str()), (ada, "ada@example.com"));
    assert!(store
        .session_user(&session, T0.plus(3599))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .session_user(&session, T0.plus(3600))
        .await
        .unwrap()
        .is_none());
    assert!(store.session_user(&hash(), T0).await.unwrap().is_none());
    store.remove_session(&session).await.unwrap();
    assert!(store.session_user(&session, T0).await.unwrap().is_none());
    // Removing what is not there is not an error.
    store.remove_session(&session).await.unwrap();
}

async fn pending_consents_are_taken_once(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let mine = add_session(&store, ada, T0, 3600).await;
    let other = add_session(&store, ada, T0, 3600).await;
    let id = hash();
    store
        .add_pending_consent(&id, &mine, "{\"request\":1}", T0.plus(600))
        .await
        .unwrap();
    // Another session cannot take it, and trying leaves it in place.
    assert!(store
        .take_pending_consent(&id, &other, T0)
        .await
        .unwrap()
        .is_none());
    // Taken concurrently, it is taken once.
    let takes = join_all((0..8).map(|_| {
        let store = store.clone();
        async move { store.take_pending_consent(&id, &mine, T0).await.unwrap() }
    }))
    .await;
    let taken: Vec<&String> = takes.iter().flatten().collect();
    assert_eq!(taken, ["{\"request\":1}"]);
    assert!(store
        .take_pending_consent(&id, &mine, T0)
        .await
        .unwrap()
        .is_none());

    // An expired one is not handed out.
    let old = hash();
    store
        .add_pending_consent(&old, &mine, "{}", T0.plus(600))
        .await
        .unwrap();
    assert!(store
        .take_pending_consent(&old, &mine, T0.plus(600))
        .await
        .unwrap()
        .is_none());
    // Ending the session ends its pending consents.
    let orphan = hash();
    store
        .add_pending_consent(&orphan, &mine, "{}", T0.plus(600))
        .await
        .unwrap();
    store.remove_session(&mine).await.unwrap();
    assert!(store
        .take_pending_consent(&orphan, &mine, T0)
        .await
        .unwrap()
        .is_none());
}

// ---- the console and account pages -------------------------------------------------------

async fn console_clients_of_and_update_client(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let mine = client(&store, ClientType::Server, Some(ada)).await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let bobs = client(&store, ClientType::Server, Some(bob)).await;
    client(&store, ClientType::Server, None).await;

    let ids: Vec<ClientId> = store
        .clients_of(ada)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&mine.id) && ids.contains(&own.id));

    let update = ClientUpdate {
        name: "Renamed".into(),
        homepage: None,
        redirect_uris: vec![
            RedirectUri::from_stored("https://app.example/a".into()),
            RedirectUri::from_stored("https://app.example/b".into()),
        ],
        js_domain: Some("https://app.example".into()),
        dialect: Dialect::Zoho,
        introspect_any: None,
    };
    // Only the owner may change a client.
    assert!(!store.update_client(&bobs.id, ada, &update).await.unwrap());
    let untouched = store.client(bobs.id.as_str()).await.unwrap().unwrap();
    assert_eq!(untouched.name, bobs.name);
    assert!(!store
        .update_client(&ClientId::new("1000.NONE".into()), ada, &update)
        .await
        .unwrap());

    assert!(store.update_client(&mine.id, ada, &update).await.unwrap());
    let changed = store.client(mine.id.as_str()).await.unwrap().unwrap();
    assert_eq!(changed.name, "Renamed");
    assert_eq!(changed.homepage, None);
    let uris: Vec<&str> = changed
        .redirect_uris
        .iter()
        .map(RedirectUri::as_str)
        .collect();
    assert_eq!(uris, ["https://app.example/a", "https://app.example/b"]);
    assert_eq!(changed.js_domain.as_deref(), Some("https://app.example"));
    assert_eq!(changed.dialect, Dialect::Zoho);
    // What the form does not touch stays.
    assert!(changed.secret_matches(SECRET));
    assert_eq!(
        (changed.kind, changed.owner_id),
        (ClientType::Server, Some(ada))
    );
    assert!(!changed.introspect_any, "None keeps the flag");
    // The resource-server flag: set, kept by an update that leaves it alone, cleared.
    for (flag, expected) in [(Some(true), true), (None, true), (Some(false), false)] {
        let update = ClientUpdate {
            introspect_any: flag,
            ..update.clone()
        };
        assert!(store.update_client(&mine.id, ada, &update).await.unwrap());
        let read = store.client(mine.id.as_str()).await.unwrap().unwrap();
        assert_eq!(read.introspect_any, expected, "{flag:?}");
    }
}

async fn console_codes_of_lists_self_client_codes(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    let mut codes = Vec::new();
    for (n, description) in [(0, Some("first")), (5, None)] {
        let now = T0.plus(n);
        let code = NewCode {
            grant: CodeGrant {
                code_hash: hash(),
                client_id: own.id.clone(),
                user_id: ada,
                redirect_uri: None,
                scopes: scopes("Demo.x.READ,AaaServer.profile.READ"),
                issue_refresh_token: true,
                code_challenge: None,
                expires_at: now.plus(600),
                redeemed_at: None,
                oidc: Default::default(),
            },
            description: description.map(str::to_owned),
            record_consent: None,
        };
        add_code(&store, &code, now).await;
        codes.push(code);
    }
    let tokens = new_tokens(T0.plus(6));
    let redeemed = redeem_as(
        &store,
        &own,
        &codes[0].grant.code_hash,
        None,
        &tokens,
        T0.plus(6),
    )
    .await;
    assert!(matches!(redeemed, Redemption::Issued(_)), "{redeemed:?}");

    let listed = store.codes_of(&own.id).await.unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|c| {
            (
                c.created_at,
                c.expires_at,
                c.redeemed_at,
                c.description.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (T0.plus(5), T0.plus(605), None, None),
            (T0, T0.plus(600), Some(T0.plus(6)), Some("first")),
        ]
    );
    assert_eq!(
        listed[0].scopes,
        scopes("Demo.x.READ,AaaServer.profile.READ")
    );
}

/// "Last used" is the newest mint from the grant's refresh tokens, kept when the access tokens
/// that recorded it are revoked or swept.
async fn last_use_outlives_the_access_tokens(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let last_used = |store: Store| async move {
        let apps = store.connected_apps(ada).await.unwrap();
        assert_eq!(apps.len(), 1, "{apps:?}");
        apps[0].last_used_at
    };
    let tokens = grant(&store, &a, ada, T0).await;
    assert_eq!(last_used(store.clone()).await, Some(T0));
    let first = refreshed(&store, &a, &tokens.refresh, T0.plus(7)).await;
    let newest = refreshed(&store, &a, &tokens.refresh, T0.plus(9)).await;
    assert_eq!(last_used(store.clone()).await, Some(T0.plus(9)));

    store.sweep(T0.plus(9 + 3600)).await.unwrap();
    for access in [&tokens.access, &first, &newest] {
        assert!(!access_alive(&store, access, T0.plus(10)).await);
    }
    assert!(refresh_alive(&store, &tokens.refresh).await);
    assert_eq!(last_used(store.clone()).await, Some(T0.plus(9)));

    let later = T0.plus(4000);
    refreshed(&store, &a, &tokens.refresh, later).await;
    let newest = refreshed(&store, &a, &tokens.refresh, later.plus(1)).await;
    assert_eq!(last_used(store.clone()).await, Some(later.plus(1)));
    assert!(store.revoke(&newest, None).await.unwrap());
    assert!(!access_alive(&store, &newest, later.plus(2)).await);
    assert_eq!(last_used(store.clone()).await, Some(later.plus(1)));
}

async fn connected_apps_and_revoke_grant(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let b = client(&store, ClientType::Server, None).await;
    let own = client(&store, ClientType::SelfClient, Some(ada)).await;
    assert!(store.connected_apps(ada).await.unwrap().is_empty());

    // By consent (with tokens), and by a Self Client code (tokens, no consent).
    let mut consented = new_code(&a, ada, true, T0);
    consented.record_consent = consent_record("Demo.x.READ", REDIRECT);
    add_code(&store, &consented, T0).await;
    let tokens = new_tokens(T0);
    let issued = redeem_as(
        &store,
        &a,
        &consented.grant.code_hash,
        Some(REDIRECT),
        &tokens,
        T0,
    )
    .await;
    assert!(matches!(issued, Redemption::Issued(_)), "{issued:?}");
    let second = grant(&store, &a, ada, T0.plus(5)).await;
    let minted = refreshed(&store, &a, &second.refresh, T0.plus(7)).await;
    let pending = new_code(&a, ada, true, T0.plus(8));
    add_code(&store, &pending, T0.plus(8)).await;
    let mut self_code = new_code(&own, ada, true, T0.plus(9));
    self_code.grant.redirect_uri = None;
    self_code.grant.scopes = scopes("Demo.y.READ");
    add_code(&store, &self_code, T0.plus(9)).await;
    let self_tokens = new_tokens(T0.plus(9));
    let issued = redeem_as(
        &store,
        &own,
        &self_code.grant.code_hash,
        None,
        &self_tokens,
        T0.plus(9),
    )
    .await;
    assert!(matches!(issued, Redemption::Issued(_)), "{issued:?}");
    let of_b = grant(&store, &b, user(&store, "bob@example.com").await, T0).await;

    let apps = store.connected_apps(ada).await.unwrap();
    let mut seen: Vec<(ClientId, i64)> = apps
        .iter()
        .map(|app| (app.client_id.clone(), app.active_refresh_tokens))
        .collect();
    seen.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    let mut expected = vec![(a.id.clone(), 2), (own.id.clone(), 1)];
    expected.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    assert_eq!(seen, expected);
    let app_a = apps.iter().find(|app| app.client_id == a.id).unwrap();
    assert_eq!(app_a.client_name, a.name);
    assert_eq!(app_a.homepage.as_deref(), Some("https://app.example"));
    assert_eq!(app_a.scopes, scopes(SCOPE));
    assert_eq!(app_a.first_granted_at, T0);
    assert_eq!(app_a.last_used_at, Some(T0.plus(7)));
    let app_own = apps.iter().find(|app| app.client_id == own.id).unwrap();
    assert_eq!(app_own.scopes, scopes("Demo.y.READ"));

    store.revoke_grant(ada, &a.id).await.unwrap();

    for refresh in [&tokens.refresh_hash, &second.refresh] {
        assert!(!refresh_alive(&store, refresh).await);
    }
    for access in [&tokens.access.hash, &second.access, &minted] {
        assert!(!access_alive(&store, access, T0.plus(10)).await);
    }
    assert!(store.consent(ada, &a.id).await.unwrap().is_none());
    let late = redeem_as(
        &store,
        &a,
        &pending.grant.code_hash,
        Some(REDIRECT),
        &new_tokens(T0.plus(10)),
        T0.plus(10),
    )
    .await;
    assert!(matches!(late, Redemption::Unknown), "{late:?}");
    let left: Vec<ClientId> = store
        .connected_apps(ada)
        .await
        .unwrap()
        .into_iter()
        .map(|app| app.client_id)
        .collect();
    assert_eq!(left.as_slice(), std::slice::from_ref(&own.id));
    assert!(refresh_alive(&store, &self_tokens.refresh_hash).await);
    assert!(refresh_alive(&store, &of_b.refresh).await);
}

async fn sessions_of_and_remove_user_session(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let older = add_session(&store, ada, T0, 3600).await;
    let newer = add_session(&store, ada, T0.plus(10), 3600).await;
    add_session(&store, ada, T0, 5).await; // expired by T0 + 20
    let bobs = add_session(&store, bob, T0, 3600).await;

    let listed = store.sessions_of(ada, T0.plus(20)).await.unwrap();
    let handles: Vec<&str> = listed.iter().map(|s| s.handle.as_str()).collect();
    let hex =
        |h: &SecretHash| -> String { h.as_bytes().iter().map(|b| format!("{b:02x}")).collect() };
    assert_eq!(handles, [hex(&newer), hex(&older)]);
    assert_eq!(listed[0].created_at, T0.plus(10));
    assert_eq!(listed[0].user_agent, "test agent");

    // A user ends only their own sessions; a malformed handle finds nothing.
    assert!(!store.remove_user_session(ada, &hex(&bobs)).await.unwrap());
    assert!(store.session_user(&bobs, T0).await.unwrap().is_some());
    assert!(!store
        .remove_user_session(ada, "not-a-handle")
        .await
        .unwrap());
    assert!(!store
        .remove_user_session(ada, &"zz".repeat(32))
        .await
        .unwrap());
    assert!(store.remove_user_session(ada, &hex(&older)).await.unwrap());
    assert!(store.session_user(&older, T0).await.unwrap().is_none());
    assert!(!store.remove_user_session(ada, &hex(&older)).await.unwrap());
    assert_eq!(store.sessions_of(ada, T0.plus(20)).await.unwrap().len(), 1);
}

async fn set_password_ends_other_sessions(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let here = add_session(&store, ada, T0, 3600).await;
    let elsewhere = add_session(&store, ada, T0, 3600).await;
    let also = add_session(&store, ada, T0, 3600).await;
    let bobs = add_session(&store, bob, T0, 3600).await;

    store
        .set_password(ada, "$argon2id$new", &here)
        .await
        .unwrap();

    assert_eq!(
        store.user(ada).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    assert!(store.session_user(&here, T0).await.unwrap().is_some());
    assert!(store.session_user(&elsewhere, T0).await.unwrap().is_none());
    assert!(store.session_user(&also, T0).await.unwrap().is_none());
    assert!(store.session_user(&bobs, T0).await.unwrap().is_some());
    assert_eq!(
        store.user(bob).await.unwrap().unwrap().password_hash,
        "$argon2id$not-a-real-hash"
    );
}

// ---- the device flow ----------------------------------------------------------------------

/// A pending device authorization for `client`, made at `now` with the default lifetime
/// (300 s) and interval (30 s); `offline` grants a refresh token.
fn new_device_code(client: &Client, offline: bool, now: Timestamp) -> NewDeviceCode {
    let access = if offline {
        AccessType::Offline
    } else {
        AccessType::Online
    };
    NewDeviceCode {
        device_code_hash: hash(),
        user_code_hash: hash(),
        grant: DeviceGrant::new(client.id.clone(), scopes(SCOPE), access, now, &limits()),
    }
}

async fn add_device_code(store: &Store, code: &NewDeviceCode, now: Timestamp) {
    store.add_device_code(code, now).await.unwrap();
}

/// Guess limits high enough that a test reading through `find_device_code` is never throttled.
fn unthrottled() -> Limits {
    Limits {
        device_guesses_per_source: 1_000_000,
        device_guesses_global: 1_000_000,
        ..limits()
    }
}

fn source(last: u8) -> Source {
    Source::of([192, 0, 2, last].into())
}

async fn find(store: &Store, user_code: &SecretHash, from: u8, now: Timestamp) -> DeviceLookup {
    store
        .find_device_code(user_code, &source(from), now, &unthrottled())
        .await
        .unwrap()
}

async fn poll(
    store: &Store,
    code: &NewDeviceCode,
    client: &Client,
    tokens: &NewTokens,
    now: Timestamp,
) -> DevicePoll {
    store
        .poll_device_code(&code.device_code_hash, &client.id, tokens, now, &limits())
        .await
        .unwrap()
}

async fn device_codes_are_added_found_and_decided_once(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let code = new_device_code(&tv, true, T0);
    add_device_code(&store, &code, T0).await;
    let user_code = code.user_code_hash;
    assert_eq!(
        find(&store, &user_code, 1, T0.plus(10)).await,
        DeviceLookup::Found {
            device_code_hash: code.device_code_hash,
            grant: code.grant.clone()
        }
    );
    assert_eq!(
        find(&store, &hash(), 1, T0.plus(10)).await,
        DeviceLookup::Unknown
    );
    let approve = DeviceDecision::Approve {
        user_id: ada,
        auth_time: None,
    };
    assert!(store
        .decide_device_code(&user_code, &approve, T0.plus(20))
        .await
        .unwrap());
    // Single use: neither a second approval nor a denial changes it.
    assert!(!store
        .decide_device_code(&user_code, &approve, T0.plus(21))
        .await
        .unwrap());
    assert!(!store
        .decide_device_code(&user_code, &DeviceDecision::Deny, T0.plus(21))
        .await
        .unwrap());
    assert_eq!(
        find(&store, &user_code, 1, T0.plus(22)).await,
        DeviceLookup::Unknown
    );

    // An expired code can be neither found nor decided.
    let late = new_device_code(&tv, false, T0);
    add_device_code(&store, &late, T0).await;
    let end = late.grant.expires_at;
    assert!(matches!(
        find(&store, &late.user_code_hash, 1, end.minus(1)).await,
        DeviceLookup::Found { .. }
    ));
    assert_eq!(
        find(&store, &late.user_code_hash, 1, end).await,
        DeviceLookup::Unknown
    );
    assert!(!store
        .decide_device_code(&late.user_code_hash, &DeviceDecision::Deny, end)
        .await
        .unwrap());

    // A removed client takes its device codes with it.
    let other = new_device_code(&tv, false, T0);
    add_device_code(&store, &other, T0).await;
    assert!(store.remove_client(tv.id.as_str()).await.unwrap());
    assert_eq!(
        find(&store, &other.user_code_hash, 1, T0).await,
        DeviceLookup::Unknown
    );
}

async fn a_user_code_is_unique_while_live(store: Store) {
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let first = new_device_code(&tv, false, T0);
    add_device_code(&store, &first, T0).await;
    let same_user_code = NewDeviceCode {
        device_code_hash: hash(),
        ..new_device_code(&tv, false, T0.plus(10))
    };
    let same_user_code = NewDeviceCode {
        user_code_hash: first.user_code_hash,
        ..same_user_code
    };
    let clash = store.add_device_code(&same_user_code, T0.plus(10)).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    // Once the first has expired, its user code may be drawn again.
    let later = first.grant.expires_at;
    let mut again = new_device_code(&tv, false, later);
    again.user_code_hash = first.user_code_hash;
    add_device_code(&store, &again, later).await;
    assert_eq!(
        find(&store, &first.user_code_hash, 1, later).await,
        DeviceLookup::Found {
            device_code_hash: again.device_code_hash,
            grant: again.grant.clone()
        }
    );
    let tokens = new_tokens(later);
    assert_eq!(
        poll(&store, &first, &tv, &tokens, later).await,
        DevicePoll::Unknown
    );
}

async fn device_polls_follow_the_rules(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let other = client(&store, ClientType::NonBrowser, None).await;
    let code = new_device_code(&tv, true, T0);
    add_device_code(&store, &code, T0).await;
    let tokens = new_tokens(T0);
    let answered = |answer| DevicePoll::Answered(answer);

    assert_eq!(
        poll(&store, &code, &tv, &tokens, T0).await,
        answered(PollAnswer::Pending)
    );
    // Sooner than 30 s: slow down, and the interval is 35 s from then on.
    assert_eq!(
        poll(&store, &code, &tv, &tokens, T0.plus(29)).await,
        answered(PollAnswer::SlowDown)
    );
    assert_eq!(
        poll(&store, &code, &tv, &tokens, T0.plus(29 + 34)).await,
        answered(PollAnswer::SlowDown)
    );
    let t = T0.plus(29 + 34 + 40);
    assert_eq!(
        poll(&store, &code, &tv, &tokens, t).await,
        answered(PollAnswer::Pending)
    );
    // Another client's poll is refused and changes nothing.
    assert_eq!(
        poll(&store, &code, &other, &tokens, t.plus(1)).await,
        answered(PollAnswer::OtherClient)
    );
    assert!(store
        .decide_device_code(
            &code.user_code_hash,
            &DeviceDecision::Approve {
                user_id: ada,
                auth_time: Some(t)
            },
            t.plus(2)
        )
        .await
        .unwrap());
    let issued_at = t.plus(40);
    assert_eq!(
        poll(&store, &code, &tv, &tokens, issued_at).await,
        DevicePoll::Issued {
            scopes: scopes(SCOPE),
            refresh: true,
            user_id: ada,
            auth_time: Some(t)
        }
    );
    assert!(access_alive(&store, &tokens.access.hash, issued_at).await);
    assert!(refresh_alive(&store, &tokens.refresh_hash).await);
    assert_eq!(active_refresh_tokens(&store, ada, &tv).await, 1);
    let again = new_tokens(issued_at);
    assert_eq!(
        poll(&store, &code, &tv, &again, issued_at.plus(100)).await,
        answered(PollAnswer::Used)
    );
    assert!(!access_alive(&store, &again.access.hash, issued_at).await);

    // Online: an access token only.
    let online = new_device_code(&tv, false, T0);
    add_device_code(&store, &online, T0).await;
    let approve = DeviceDecision::Approve {
        user_id: ada,
        auth_time: None,
    };
    assert!(store
        .decide_device_code(&online.user_code_hash, &approve, T0)
        .await
        .unwrap());
    let online_tokens = new_tokens(T0);
    assert_eq!(
        poll(&store, &online, &tv, &online_tokens, T0.plus(1)).await,
        DevicePoll::Issued {
            scopes: scopes(SCOPE),
            refresh: false,
            user_id: ada,
            auth_time: None
        }
    );
    assert!(access_alive(&store, &online_tokens.access.hash, T0.plus(1)).await);
    assert!(!refresh_alive(&store, &online_tokens.refresh_hash).await);

    // Denied, sent to another data center, expired.
    let denied = new_device_code(&tv, false, T0);
    add_device_code(&store, &denied, T0).await;
    assert!(store
        .decide_device_code(&denied.user_code_hash, &DeviceDecision::Deny, T0)
        .await
        .unwrap());
    assert_eq!(
        poll(&store, &denied, &tv, &tokens, T0).await,
        answered(PollAnswer::Denied)
    );
    let elsewhere = new_device_code(&tv, false, T0);
    add_device_code(&store, &elsewhere, T0).await;
    let eu = DeviceDecision::OtherDc {
        location: "eu".into(),
    };
    assert!(store
        .decide_device_code(&elsewhere.user_code_hash, &eu, T0)
        .await
        .unwrap());
    assert_eq!(
        poll(&store, &elsewhere, &tv, &tokens, T0).await,
        answered(PollAnswer::OtherDc {
            location: "eu".into()
        })
    );
    let expired = new_device_code(&tv, false, T0);
    add_device_code(&store, &expired, T0).await;
    assert!(store
        .decide_device_code(&expired.user_code_hash, &approve, T0)
        .await
        .unwrap());
    let end = expired.grant.expires_at;
    let late = new_tokens(end);
    assert_eq!(
        poll(&store, &expired, &tv, &late, end).await,
        answered(PollAnswer::Expired)
    );
    assert!(!access_alive(&store, &late.access.hash, end).await);
    let unknown = NewDeviceCode {
        device_code_hash: hash(),
        ..new_device_code(&tv, false, T0)
    };
    assert_eq!(
        poll(&store, &unknown, &tv, &tokens, T0).await,
        DevicePoll::Unknown
    );
}

async fn device_tokens_are_issued_once_under_concurrency(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let code = new_device_code(&tv, true, T0);
    add_device_code(&store, &code, T0).await;
    let approve = DeviceDecision::Approve {
        user_id: ada,
        auth_time: None,
    };
    assert!(store
        .decide_device_code(&code.user_code_hash, &approve, T0)
        .await
        .unwrap());
    let polls = (0..8).map(|_| {
        let (store, tv, hash) = (store.clone(), tv.id.clone(), code.device_code_hash);
        async move {
            store
                .poll_device_code(&hash, &tv, &new_tokens(T0), T0.plus(1), &limits())
                .await
                .unwrap()
        }
    });
    let answers = join_all(polls).await;
    let issued = answers
        .iter()
        .filter(|a| matches!(a, DevicePoll::Issued { .. }))
        .count();
    assert_eq!(issued, 1, "{answers:?}");
    assert_eq!(active_refresh_tokens(&store, ada, &tv).await, 1);
}

fn guess_limits(per_source: i64, global: i64) -> Limits {
    Limits {
        device_guesses_per_source: per_source,
        device_guesses_global: global,
        device_guess_window_secs: 600,
        ..limits()
    }
}

async fn guess(
    store: &Store,
    user_code: &SecretHash,
    from: u8,
    now: Timestamp,
    limits: &Limits,
) -> DeviceLookup {
    store
        .find_device_code(user_code, &source(from), now, limits)
        .await
        .unwrap()
}

async fn user_code_guesses_are_throttled_per_source_and_globally(store: Store) {
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let code = new_device_code(&tv, false, T0);
    add_device_code(&store, &code, T0).await;
    let right = code.user_code_hash;
    let limits = guess_limits(3, 5);
    // A right code never counts.
    for _ in 0..10 {
        assert!(matches!(
            guess(&store, &right, 1, T0, &limits).await,
            DeviceLookup::Found { .. }
        ));
    }
    for _ in 0..3 {
        assert_eq!(
            guess(&store, &hash(), 1, T0, &limits).await,
            DeviceLookup::Unknown
        );
    }
    // The source is done for the window, even with the right code.
    assert_eq!(
        guess(&store, &right, 1, T0.plus(10), &limits).await,
        DeviceLookup::Throttled { retry_after: 590 }
    );
    // Another source has two wrong guesses left before the global tally is full ...
    for _ in 0..2 {
        assert_eq!(
            guess(&store, &hash(), 2, T0, &limits).await,
            DeviceLookup::Unknown
        );
    }
    // ... and then every source is refused.
    for from in [2, 3] {
        assert!(matches!(
            guess(&store, &right, from, T0.plus(1), &limits).await,
            DeviceLookup::Throttled { .. }
        ));
    }
    // A new window: looked up again.
    let fresh = new_device_code(&tv, false, T0.plus(600));
    add_device_code(&store, &fresh, T0.plus(600)).await;
    let later = guess(&store, &fresh.user_code_hash, 1, T0.plus(600), &limits).await;
    assert!(matches!(later, DeviceLookup::Found { .. }), "{later:?}");
}

async fn parallel_guesses_stay_within_the_throttle(store: Store) {
    let tv = client(&store, ClientType::NonBrowser, None).await;
    add_device_code(&store, &new_device_code(&tv, false, T0), T0).await;
    let limits = guess_limits(4, 1_000);
    let guesses = (0..20).map(|_| {
        let (store, limits) = (store.clone(), limits.clone());
        async move { guess(&store, &hash(), 7, T0, &limits).await }
    });
    let answers = join_all(guesses).await;
    let looked_up = answers
        .iter()
        .filter(|a| **a == DeviceLookup::Unknown)
        .count();
    assert_eq!(looked_up, 4, "{answers:?}");
}

async fn sweep_forgets_device_codes_and_guesses(store: Store) {
    let tv = client(&store, ClientType::NonBrowser, None).await;
    let code = new_device_code(&tv, false, T0);
    add_device_code(&store, &code, T0).await;
    let limits = guess_limits(1, 1_000);
    assert_eq!(
        guess(&store, &hash(), 1, T0, &limits).await,
        DeviceLookup::Unknown
    );
    // Within the window nothing goes: the tally and the live code stay.
    assert_eq!(store.sweep(T0.plus(599)).await.unwrap(), 0);
    // The window over: the source's and the global tally go; the expired code stays a day,
    // so a late poll still hears that it expired.
    assert_eq!(store.sweep(T0.plus(600)).await.unwrap(), 2);
    let tokens = new_tokens(T0);
    let end = code.grant.expires_at;
    assert_eq!(
        poll(&store, &code, &tv, &tokens, end.plus(86_399)).await,
        DevicePoll::Answered(PollAnswer::Expired)
    );
    assert_eq!(store.sweep(end.plus(86_400)).await.unwrap(), 1);
    assert_eq!(
        poll(&store, &code, &tv, &tokens, end.plus(86_400)).await,
        DevicePoll::Unknown
    );
}

// ---- a dropped write is whole or absent --------------------------------------------------
//
// Appended for issue 11 (the PostgreSQL half of the cancellation contract in verbs.rs: "whether
// its caller still waits never changes its outcome"). Each write verb's future is polled k
// times with the test task's own waker (k = 0, 1, 2, ... until it completes within k polls)
// and then dropped, as a server drops a request whose client went away. After each drop, and
// once the tasks it left (a PostgreSQL write's own) have finished: (b) on PostgreSQL, no
// session on the test database is left in a transaction (idle in one, or open at all), within
// a bounded wait; (a) the store still takes a write and answers it durably; (c) what the write
// does is all there or not there at all. A write never polled did nothing; a write that
// completed did everything. At the end of each verb every dropped attempt's facts are read
// again and must still be whole.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::{poll_fn, BoxFuture, FutureExt};

/// Every write verb of the five traits.
#[derive(Debug, Clone, Copy)]
enum Verb {
    AddUser,
    BeginSignIn,
    SignInSucceeded,
    UnlockAccount,
    AddScope,
    AddClient,
    RemoveClient,
    SetClientSecret,
    AddCode,
    RedeemCode,
    Refresh,
    AddAccessToken,
    Revoke,
    Sweep,
    AddSession,
    RemoveSession,
    AddPendingConsent,
    TakePendingConsent,
    UpdateClient,
    SetClientIdTokenAlg,
    RevokeGrant,
    RemoveUserSession,
    SetPassword,
    SetUserName,
    EnableClientDc,
    DisableClientDc,
    MirrorClients,
    AddDeviceCode,
    FindDeviceCode,
    DecideDeviceCode,
    PollDeviceCode,
    AddEnhanceToken,
    UseEnhanceToken,
}

const WRITES: [Verb; 33] = [
    Verb::AddUser,
    Verb::BeginSignIn,
    Verb::SignInSucceeded,
    Verb::UnlockAccount,
    Verb::AddScope,
    Verb::AddClient,
    Verb::RemoveClient,
    Verb::SetClientSecret,
    Verb::AddCode,
    Verb::RedeemCode,
    Verb::Refresh,
    Verb::AddAccessToken,
    Verb::Revoke,
    Verb::Sweep,
    Verb::AddSession,
    Verb::RemoveSession,
    Verb::AddPendingConsent,
    Verb::TakePendingConsent,
    Verb::UpdateClient,
    Verb::SetClientIdTokenAlg,
    Verb::RevokeGrant,
    Verb::RemoveUserSession,
    Verb::SetPassword,
    Verb::SetUserName,
    Verb::EnableClientDc,
    Verb::DisableClientDc,
    Verb::MirrorClients,
    Verb::AddDeviceCode,
    Verb::FindDeviceCode,
    Verb::DecideDeviceCode,
    Verb::PollDeviceCode,
    Verb::AddEnhanceToken,
    Verb::UseEnhanceToken,
];

/// What a write does, as facts read through the verbs, each true once the write happened. (The
/// sweep's span its two transactions: it too runs whole once started, however its caller fares.)
type Facts = Arc<dyn Fn(Store) -> BoxFuture<'static, Vec<bool>> + Send + Sync>;

/// One write about to be made on fixtures of its own, so that a dropped write finishing late
/// cannot touch another attempt's rows.
struct Attempt {
    write: BoxFuture<'static, Result<(), StoreError>>,
    facts: Facts,
    /// The facts can only be read by taking what they read (a pending consent): they are read
    /// once, after the write, and not before nor again at the end.
    consuming: bool,
}

fn run<T>(
    write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> BoxFuture<'static, Result<(), StoreError>> {
    write.map(|result| result.map(drop)).boxed()
}

fn facts<F, Fut>(read: F) -> Facts
where
    F: Fn(Store) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<bool>> + Send + 'static,
{
    Arc::new(move |store| read(store).boxed())
}

async fn fresh_user(store: &Store) -> i64 {
    user(store, &format!("{}@example.com", random_id())).await
}

/// A source of its own for attempt `k` of a sign-in verb, so that attempts never share a
/// tally.
fn own_source(verb: u8, k: i64) -> [u8; 4] {
    [10, verb, (k / 256) as u8, (k % 256) as u8]
}

async fn the_user(store: &Store, id: i64) -> grantd_store::User {
    store.user(id).await.unwrap().unwrap()
}

async fn session_alive(store: &Store, session: &SecretHash, now: Timestamp) -> bool {
    store.session_user(session, now).await.unwrap().is_some()
}

/// Sets up `write`'s fixtures (attempt `k`) and returns the write, not yet polled.
async fn prepare(store: &Store, write: Verb, k: i64) -> Attempt {
    let s = store.clone();
    let (write, facts, consuming) = match write {
        Verb::AddUser => {
            let email = format!("{}@example.com", random_id());
            let e = email.clone();
            (
                run(async move { s.add_user(&e, "New", "hash", false, T0).await }),
                facts(move |store| {
                    let email = email.clone();
                    async move { vec![store.user_by_email(&email).await.unwrap().is_some()] }
                }),
                false,
            )
        }
        Verb::BeginSignIn => {
            let attempt = attempt(&format!("{}@example.com", random_id()), own_source(2, k));
            for _ in 1..limits().signin_failures_before_backoff {
                store.begin_sign_in(&attempt, T0, &limits()).await.unwrap();
            }
            let a = attempt.clone();
            (
                run(async move { s.begin_sign_in(&a, T0, &limits()).await }),
                facts(move |store| {
                    let attempt = attempt.clone();
                    async move {
                        let t = store.sign_in_tallies(&attempt).await.unwrap();
                        let counted = limits().signin_failures_before_backoff;
                        vec![
                            t.pair.failures == counted,
                            t.source.failures == counted,
                            t.account.failures == counted,
                        ]
                    }
                }),
                false,
            )
        }
        Verb::SignInSucceeded => {
            let attempt = attempt(&format!("{}@example.com", random_id()), own_source(3, k));
            for _ in 0..3 {
                store.begin_sign_in(&attempt, T0, &limits()).await.unwrap();
            }
            let a = attempt.clone();
            (
                run(async move { s.sign_in_succeeded(&a, T0, &limits()).await }),
                facts(move |store| {
                    let attempt = attempt.clone();
                    async move {
                        let t = store.sign_in_tallies(&attempt).await.unwrap();
                        vec![
                            t.pair == Tally::ZERO,
                            t.source.failures == 2,
                            t.account.failures == 2,
                        ]
                    }
                }),
                false,
            )
        }
        Verb::UnlockAccount => {
            let attempt = attempt(&format!("{}@example.com", random_id()), own_source(4, k));
            for _ in 0..5 {
                store.begin_sign_in(&attempt, T0, &limits()).await.unwrap();
            }
            let account = attempt.account;
            (
                run(async move { s.unlock_account(&account).await }),
                facts(move |store| {
                    let attempt = attempt.clone();
                    async move {
                        let t = store.sign_in_tallies(&attempt).await.unwrap();
                        vec![t.pair == Tally::ZERO, t.account == Tally::ZERO]
                    }
                }),
                false,
            )
        }
        Verb::AddScope => {
            let name = format!("Dropped{}.x.READ", &random_id()[..8]);
            let n = name.clone();
            (
                run(async move { s.add_scope(&n, "Dropped or not").await }),
                facts(move |store| {
                    let name = name.clone();
                    async move {
                        let scopes = store.scopes().await.unwrap();
                        vec![scopes.iter().any(|(n, _)| *n == name)]
                    }
                }),
                false,
            )
        }
        Verb::AddClient => {
            let new = new_client(ClientType::Server, None);
            let id = new.id.clone();
            (
                run(async move { s.add_client(&new, T0).await }),
                facts(move |store| {
                    let id = id.clone();
                    async move { vec![store.client(id.as_str()).await.unwrap().is_some()] }
                }),
                false,
            )
        }
        Verb::RemoveClient => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let mut code = new_code(&a, ada, true, T0);
            code.record_consent = consent_record(SCOPE, REDIRECT);
            add_code(store, &code, T0).await;
            let tokens = new_tokens(T0);
            let redeemed = redeem_as(
                store,
                &a,
                &code.grant.code_hash,
                Some(REDIRECT),
                &tokens,
                T0,
            )
            .await;
            assert!(matches!(redeemed, Redemption::Issued(_)), "{redeemed:?}");
            let id = a.id.clone();
            (
                run(async move { s.remove_client(id.as_str()).await }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        vec![
                            store.client(id.as_str()).await.unwrap().is_none(),
                            !refresh_alive(&store, &tokens.refresh_hash).await,
                            !access_alive(&store, &tokens.access.hash, T0).await,
                            store.consent(ada, &id).await.unwrap().is_none(),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::EnableClientDc => {
            let a = client(store, ClientType::Server, None).await;
            let id = a.id.clone();
            let own = SecretHash::of("eu secret");
            (
                run(async move { s.enable_client_dc(&id, "eu", Some(&own), T0).await }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        let at_eu = store.clients_enabled_for("eu").await.unwrap();
                        vec![
                            store.client_dcs(&id).await.unwrap() == [enabled("eu", true)],
                            at_eu
                                .iter()
                                .any(|c| c.id == id && c.secret_matches("eu secret")),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::DisableClientDc => {
            let a = client(store, ClientType::Server, None).await;
            let enable = store.enable_client_dc(&a.id, "eu", None, T0);
            assert!(enable.await.unwrap());
            let id = a.id.clone();
            (
                run(async move { s.disable_client_dc(&id, "eu").await }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        let at_eu = store.clients_enabled_for("eu").await.unwrap();
                        vec![
                            store.client_dcs(&id).await.unwrap().is_empty(),
                            !at_eu.iter().any(|c| c.id == id),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::MirrorClients => {
            // One home's list replaces another: one client added, one removed with its tokens.
            let ada = fresh_user(store).await;
            let template = client(store, ClientType::Server, None).await;
            let mirrored = |name: &str| Client {
                id: ClientId::new(generate_client_id()),
                name: name.into(),
                ..template.clone()
            };
            let (old, new) = (mirrored("old"), mirrored("new"));
            let home = format!("h{}", random_id());
            store
                .mirror_clients(&home, std::slice::from_ref(&old), T0)
                .await
                .unwrap();
            let old = store.client(old.id.as_str()).await.unwrap().unwrap();
            let of_old = grant(store, &old, ada, T0).await;
            let list = vec![new.clone()];
            (
                run(async move { s.mirror_clients(&home, &list, T0).await }),
                facts(move |store| {
                    let (old, new) = (old.id.clone(), new.id.clone());
                    async move {
                        vec![
                            store.client(new.as_str()).await.unwrap().is_some(),
                            store.client(old.as_str()).await.unwrap().is_none(),
                            !refresh_alive(&store, &of_old.refresh).await,
                        ]
                    }
                }),
                false,
            )
        }
        Verb::SetClientSecret => {
            let a = client(store, ClientType::Server, None).await;
            let id = a.id.clone();
            (
                run(async move {
                    s.set_client_secret(id.as_str(), &SecretHash::of("new secret"))
                        .await
                }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        let c = store.client(id.as_str()).await.unwrap().unwrap();
                        vec![c.secret_matches("new secret"), !c.secret_matches(SECRET)]
                    }
                }),
                false,
            )
        }
        Verb::AddCode => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let mut code = new_code(&a, ada, true, T0);
            code.record_consent = consent_record(SCOPE, REDIRECT);
            (
                run(async move { s.add_code(&code, T0, &limits()).await }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        vec![
                            store.codes_of(&id).await.unwrap().len() == 1,
                            store.consent(ada, &id).await.unwrap().is_some(),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::RedeemCode => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let code = new_code(&a, ada, true, T0);
            add_code(store, &code, T0).await;
            let tokens = new_tokens(T0);
            let (presenter, code_hash, t) = (a.clone(), code.grant.code_hash, tokens.clone());
            (
                run(async move {
                    s.redeem_code(
                        &code_hash,
                        move |grant| grant.check_redemption(&presenter, Some(REDIRECT), None, T0),
                        &t,
                        T0,
                        &limits(),
                    )
                    .await
                }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        let codes = store.codes_of(&id).await.unwrap();
                        vec![
                            access_alive(&store, &tokens.access.hash, T0).await,
                            refresh_alive(&store, &tokens.refresh_hash).await,
                            codes.len() == 1 && codes[0].redeemed_at.is_some(),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::Refresh => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let g = grant(store, &a, ada, T0).await;
            // One active access token per refresh token: the new one replaces the exchange's.
            let one = Limits {
                active_access_tokens_per_refresh: 1,
                ..limits()
            };
            let access = NewAccess {
                hash: hash(),
                expires_at: T0.plus(3600),
            };
            let (refresh, id, minted) = (g.refresh, a.id.clone(), access.hash);
            // And the refresh token rotates, as a public client's does.
            let successor = hash();
            let now = T0.plus(1);
            (
                run(async move {
                    s.refresh(
                        &refresh,
                        &id,
                        |grant| refresh_scopes(&grant.scopes, None),
                        &access,
                        Some(&successor),
                        now,
                        &one,
                    )
                    .await
                }),
                facts(move |store| async move {
                    vec![
                        access_alive(&store, &minted, now).await,
                        !access_alive(&store, &g.access, now).await,
                        refresh_alive(&store, &successor).await,
                        !refresh_alive(&store, &g.refresh).await,
                    ]
                }),
                false,
            )
        }
        Verb::AddAccessToken => {
            let ada = fresh_user(store).await;
            let own = client(store, ClientType::SelfClient, Some(ada)).await;
            let access = NewAccess {
                hash: hash(),
                expires_at: T0.plus(3600),
            };
            let minted = access.hash;
            (
                run(async move {
                    s.add_access_token(&access, &own.id, ada, &scopes(SCOPE), T0, &limits())
                        .await
                }),
                facts(move |store| async move { vec![access_alive(&store, &minted, T0).await] }),
                false,
            )
        }
        Verb::Revoke => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let g = grant(store, &a, ada, T0).await;
            let minted = refreshed(store, &a, &g.refresh, T0.plus(1)).await;
            let refresh = g.refresh;
            (
                run(async move { s.revoke(&refresh, Some(&a.id)).await }),
                facts(move |store| async move {
                    vec![
                        !refresh_alive(&store, &g.refresh).await,
                        !access_alive(&store, &g.access, T0).await,
                        !access_alive(&store, &minted, T0).await,
                    ]
                }),
                false,
            )
        }
        Verb::Sweep => {
            // Each attempt's rows expire after every earlier attempt's sweep ran, so a sweep
            // that finishes late cannot reach them.
            let base = T0.plus(100_000 * (k + 1));
            let ada = fresh_user(store).await;
            let own = client(store, ClientType::SelfClient, Some(ada)).await;
            let a = client(store, ClientType::Server, None).await;
            let mut expiring = Vec::new();
            for _ in 0..3 {
                let access = NewAccess {
                    hash: hash(),
                    expires_at: base.plus(10),
                };
                store
                    .add_access_token(&access, &own.id, ada, &scopes(SCOPE), base, &limits())
                    .await
                    .unwrap();
                expiring.push(access.hash);
            }
            let session = add_session(store, ada, base, 10).await;
            // A code kept a day past its expiry, and then some.
            let made = base.minus(90_060);
            let mut code = new_code(&a, ada, false, made);
            code.grant.expires_at = base.minus(90_000);
            add_code(store, &code, made).await;
            let now = base.plus(100);
            (
                run(async move { s.sweep(now).await }),
                facts(move |store| {
                    let (expiring, id) = (expiring.clone(), a.id.clone());
                    async move {
                        let mut tokens = Vec::new();
                        for access in &expiring {
                            tokens.push(!access_alive(&store, access, base).await);
                        }
                        tokens.push(!session_alive(&store, &session, base).await);
                        tokens.push(store.codes_of(&id).await.unwrap().is_empty());
                        tokens
                    }
                }),
                false,
            )
        }
        Verb::AddSession => {
            let ada = fresh_user(store).await;
            let session = hash();
            (
                run(async move {
                    s.add_session(&session, ada, "agent", T0, T0.plus(3600))
                        .await
                }),
                facts(move |store| async move { vec![session_alive(&store, &session, T0).await] }),
                false,
            )
        }
        Verb::RemoveSession => {
            let ada = fresh_user(store).await;
            let session = add_session(store, ada, T0, 3600).await;
            (
                run(async move { s.remove_session(&session).await }),
                facts(move |store| async move { vec![!session_alive(&store, &session, T0).await] }),
                false,
            )
        }
        Verb::AddPendingConsent => {
            let ada = fresh_user(store).await;
            let session = add_session(store, ada, T0, 3600).await;
            let id = hash();
            (
                run(async move {
                    s.add_pending_consent(&id, &session, "{\"dropped\":1}", T0.plus(600))
                        .await
                }),
                facts(move |store| async move {
                    let taken = store.take_pending_consent(&id, &session, T0).await;
                    vec![taken.unwrap().is_some()]
                }),
                true,
            )
        }
        Verb::TakePendingConsent => {
            let ada = fresh_user(store).await;
            let session = add_session(store, ada, T0, 3600).await;
            let id = hash();
            store
                .add_pending_consent(&id, &session, "{\"dropped\":1}", T0.plus(600))
                .await
                .unwrap();
            (
                run(async move { s.take_pending_consent(&id, &session, T0).await }),
                facts(move |store| async move {
                    let left = store.take_pending_consent(&id, &session, T0).await;
                    vec![left.unwrap().is_none()]
                }),
                true,
            )
        }
        Verb::UpdateClient => {
            let ada = fresh_user(store).await;
            let mine = client(store, ClientType::Server, Some(ada)).await;
            let update = ClientUpdate {
                name: "Renamed".into(),
                homepage: None,
                redirect_uris: vec![RedirectUri::from_stored("https://app.example/b".into())],
                js_domain: Some("https://app.example".into()),
                dialect: Dialect::Zoho,
                introspect_any: Some(true),
            };
            let id = mine.id.clone();
            (
                run(async move { s.update_client(&id, ada, &update).await }),
                facts(move |store| {
                    let id = mine.id.clone();
                    async move {
                        let c = store.client(id.as_str()).await.unwrap().unwrap();
                        vec![
                            c.name == "Renamed",
                            c.homepage.is_none(),
                            c.redirect_uris.len() == 1
                                && c.redirect_uris[0].as_str() == "https://app.example/b",
                            c.js_domain.is_some(),
                            c.dialect == Dialect::Zoho,
                            c.introspect_any,
                        ]
                    }
                }),
                false,
            )
        }
        Verb::SetClientIdTokenAlg => {
            let ada = fresh_user(store).await;
            let mine = client(store, ClientType::Server, Some(ada)).await;
            let id = mine.id.clone();
            (
                run(async move {
                    s.set_client_id_token_alg(&id, ada, Some(SigningAlg::EdDsa))
                        .await
                }),
                facts(move |store| {
                    let id = mine.id.clone();
                    async move {
                        let c = store.client(id.as_str()).await.unwrap().unwrap();
                        vec![c.id_token_alg == Some(SigningAlg::EdDsa)]
                    }
                }),
                false,
            )
        }
        Verb::RevokeGrant => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let mut code = new_code(&a, ada, true, T0);
            code.record_consent = consent_record(SCOPE, REDIRECT);
            add_code(store, &code, T0).await;
            let tokens = new_tokens(T0);
            let redeemed = redeem_as(
                store,
                &a,
                &code.grant.code_hash,
                Some(REDIRECT),
                &tokens,
                T0,
            )
            .await;
            assert!(matches!(redeemed, Redemption::Issued(_)), "{redeemed:?}");
            add_code(store, &new_code(&a, ada, true, T0.plus(1)), T0.plus(1)).await;
            let id = a.id.clone();
            (
                run(async move { s.revoke_grant(ada, &id).await }),
                facts(move |store| {
                    let id = a.id.clone();
                    async move {
                        vec![
                            !refresh_alive(&store, &tokens.refresh_hash).await,
                            !access_alive(&store, &tokens.access.hash, T0).await,
                            store.consent(ada, &id).await.unwrap().is_none(),
                            // The redeemed code stays; the unredeemed one goes.
                            store.codes_of(&id).await.unwrap().len() == 1,
                        ]
                    }
                }),
                false,
            )
        }
        Verb::RemoveUserSession => {
            let ada = fresh_user(store).await;
            let session = add_session(store, ada, T0, 3600).await;
            let handle = session.to_hex();
            (
                run(async move { s.remove_user_session(ada, &handle).await }),
                facts(move |store| async move { vec![!session_alive(&store, &session, T0).await] }),
                false,
            )
        }
        Verb::SetPassword => {
            let ada = fresh_user(store).await;
            let here = add_session(store, ada, T0, 3600).await;
            let elsewhere = add_session(store, ada, T0, 3600).await;
            (
                run(async move { s.set_password(ada, "$argon2id$dropped", &here).await }),
                facts(move |store| async move {
                    vec![
                        the_user(&store, ada).await.password_hash == "$argon2id$dropped",
                        !session_alive(&store, &elsewhere, T0).await,
                    ]
                }),
                false,
            )
        }
        Verb::AddDeviceCode => {
            let tv = client(store, ClientType::NonBrowser, None).await;
            let code = new_device_code(&tv, false, T0);
            let c = code.clone();
            (
                run(async move { s.add_device_code(&c, T0).await }),
                facts(move |store| {
                    let (code, tv) = (code.clone(), tv.clone());
                    async move {
                        let tokens = new_tokens(T0);
                        vec![poll(&store, &code, &tv, &tokens, T0).await != DevicePoll::Unknown]
                    }
                }),
                false,
            )
        }
        Verb::FindDeviceCode => {
            // One wrong guess allowed per source: the write's makes the source throttled.
            let from = [10, 30, (k / 256) as u8, (k % 256) as u8];
            let one = Limits {
                device_guesses_per_source: 1,
                ..unthrottled()
            };
            let l = one.clone();
            (
                run(async move {
                    s.find_device_code(&hash(), &Source::of(from.into()), T0, &l)
                        .await
                }),
                // Reading counts a wrong guess of its own if the write did not happen.
                facts(move |store| {
                    let one = one.clone();
                    async move {
                        let again = store
                            .find_device_code(&hash(), &Source::of(from.into()), T0, &one)
                            .await
                            .unwrap();
                        vec![matches!(again, DeviceLookup::Throttled { .. })]
                    }
                }),
                true,
            )
        }
        Verb::DecideDeviceCode => {
            let ada = fresh_user(store).await;
            let tv = client(store, ClientType::NonBrowser, None).await;
            let code = new_device_code(&tv, false, T0);
            add_device_code(store, &code, T0).await;
            let user_code = code.user_code_hash;
            (
                run(async move {
                    let approve = DeviceDecision::Approve {
                        user_id: ada,
                        auth_time: None,
                    };
                    s.decide_device_code(&user_code, &approve, T0).await
                }),
                facts(move |store| async move {
                    vec![find(&store, &user_code, 9, T0).await == DeviceLookup::Unknown]
                }),
                false,
            )
        }
        Verb::PollDeviceCode => {
            let ada = fresh_user(store).await;
            let tv = client(store, ClientType::NonBrowser, None).await;
            let code = new_device_code(&tv, true, T0);
            add_device_code(store, &code, T0).await;
            let approve = DeviceDecision::Approve {
                user_id: ada,
                auth_time: None,
            };
            assert!(store
                .decide_device_code(&code.user_code_hash, &approve, T0)
                .await
                .unwrap());
            let tokens = new_tokens(T0);
            let (hash, id, t) = (code.device_code_hash, tv.id.clone(), tokens.clone());
            (
                run(async move { s.poll_device_code(&hash, &id, &t, T0, &limits()).await }),
                facts(move |store| async move {
                    vec![
                        access_alive(&store, &tokens.access.hash, T0).await,
                        refresh_alive(&store, &tokens.refresh_hash).await,
                    ]
                }),
                false,
            )
        }
        Verb::AddEnhanceToken => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let g = grant(store, &a, ada, T0).await;
            let e = new_enhance(T0);
            let (refresh, id, token) = (g.refresh, a.id.clone(), e.clone());
            (
                run(async move { s.add_enhance_token(&refresh, &id, &token, T0).await }),
                facts(move |store| async move {
                    vec![store.enhance_grant(&e.hash, T0).await.unwrap().is_some()]
                }),
                false,
            )
        }
        Verb::UseEnhanceToken => {
            let ada = fresh_user(store).await;
            let a = client(store, ClientType::Server, None).await;
            let g = grant(store, &a, ada, T0).await;
            let e = new_enhance(T0);
            assert!(store
                .add_enhance_token(&g.refresh, &a.id, &e, T0)
                .await
                .unwrap());
            let (token, id) = (e.hash, a.id.clone());
            (
                run(async move {
                    s.use_enhance_token(&token, &id, ada, &accept("Demo.y.READ"), T0)
                        .await
                }),
                facts(move |store| {
                    let a = a.clone();
                    async move {
                        vec![
                            store.enhance_grant(&e.hash, T0).await.unwrap().is_none(),
                            grant_scopes(&store, &a, &g.refresh)
                                .await
                                .covers_all(&scopes("Demo.y.READ")),
                            store
                                .consent(ada, &a.id)
                                .await
                                .unwrap()
                                .is_some_and(|c| c.covers_all(&scopes("Demo.y.READ"))),
                        ]
                    }
                }),
                false,
            )
        }
        Verb::SetUserName => {
            let ada = fresh_user(store).await;
            (
                run(async move { s.set_user_name(ada, "Renamed Ada").await }),
                facts(move |store| async move {
                    vec![the_user(&store, ada).await.name == "Renamed Ada"]
                }),
                false,
            )
        }
    };
    Attempt {
        write,
        facts,
        consuming,
    }
}

/// Polls `write` at most `polls` times, each time with the test task's waker and only once
/// that waker was woken, then drops it. Its output if it completed.
async fn poll_then_drop<T>(mut write: BoxFuture<'static, T>, polls: usize) -> Option<T> {
    let mut polled = 0;
    let out = poll_fn(|cx| {
        if polled == polls {
            return Poll::Ready(None);
        }
        polled += 1;
        match write.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if polled == polls => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    drop(write);
    out
}

/// The test database, found by a user only this store has (the suite hands a test its store,
/// not its database): a connection to it, for `pg_stat_activity`. `None` on SQLite.
async fn database_of(store: &Store) -> Option<PgConnection> {
    if store.backend() != "postgres" {
        return None;
    }
    let admin_url = std::env::var("GRANTD_TEST_POSTGRES").unwrap();
    let marker = format!("marker-{}@example.com", random_id());
    user(store, &marker).await;
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let candidates: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("grantd_test_{}_", std::process::id()))
            .fetch_all(&mut admin)
            .await
            .unwrap();
    admin.close().await.unwrap();
    let mut found = Vec::new();
    for name in candidates {
        // Another test's database may be half made or going: it is not ours.
        let Ok(mut conn) = PgConnection::connect(&with_database(&admin_url, &name)).await else {
            continue;
        };
        let ours: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
                .bind(&marker)
                .fetch_optional(&mut conn)
                .await;
        if matches!(ours, Ok(Some(_))) {
            found.push(conn);
        } else {
            let _ = conn.close().await;
        }
    }
    assert_eq!(found.len(), 1, "the test database, by its marker user");
    found.pop()
}

/// (b): waits, polling, until no other session on the test database has a transaction open,
/// and fails if one is still idle in one (or still open) after the bound.
async fn no_transaction_left(probe: &mut PgConnection, what: &str) {
    const SESSIONS_IN_TRANSACTION: &str = "SELECT coalesce(state, '') || ': ' || query
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
          AND (state LIKE 'idle in transaction%' OR xact_start IS NOT NULL)";
    let mut left = Vec::new();
    for _ in 0..500 {
        left = sqlx::query_scalar::<_, String>(SESSIONS_IN_TRANSACTION)
            .fetch_all(&mut *probe)
            .await
            .unwrap();
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let idle: Vec<&String> = left
        .iter()
        .filter(|s| s.starts_with("idle in transaction"))
        .collect();
    assert!(idle.is_empty(), "{what}: idle in transaction: {idle:?}");
    panic!("{what}: transactions still open: {left:?}");
}

/// The runtime's live tasks: a PostgreSQL write's own, a connection going back to its pool, and
/// the pool's long-lived ones.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// The tasks that live on while the store is quiet: the fewest seen over a short while.
async fn quiet_tasks() -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..20 {
        fewest = fewest.min(alive_tasks());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fewest
}

/// Waits, polling, until every task a dropped write left behind has finished, so that what is
/// read next is what the write did, not what it is doing.
async fn tasks_finished(quiet: usize, what: &str) {
    for _ in 0..500 {
        if alive_tasks() <= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: {} tasks still running", alive_tasks() - quiet);
}

/// (a): the store takes a new write and reads it back.
async fn still_writes(store: &Store, what: &str) {
    let email = format!("{}@example.com", random_id());
    let id = store
        .add_user(&email, "After", "hash", false, T0)
        .await
        .unwrap_or_else(|e| panic!("{what}: the store refused a write: {e}"));
    let read = store.user_by_email(&email).await.unwrap();
    assert_eq!(read.map(|u| u.id), Some(id), "{what}");
}

/// (c): the facts all true (the write happened: `true`) or all false (`false`).
fn whole(facts: &[bool], what: &str) -> bool {
    let happened = facts.iter().all(|f| *f);
    assert!(
        happened || facts.iter().all(|f| !*f),
        "{what}: half a write: {facts:?}"
    );
    happened
}

async fn a_dropped_write_is_whole_or_absent(store: Store) {
    let mut probe = database_of(&store).await;
    let quiet = quiet_tasks().await;
    for write in WRITES {
        let mut dropped = Vec::new();
        let mut polls = 0;
        loop {
            let what = format!("{write:?} dropped after {polls} polls");
            let attempt = prepare(&store, write, polls as i64).await;
            if !attempt.consuming {
                let before = (attempt.facts)(store.clone()).await;
                assert!(
                    before.iter().all(|f| !*f),
                    "{what}: the facts hold before the write: {before:?}"
                );
            }
            let outcome = poll_then_drop(attempt.write, polls).await;
            tasks_finished(quiet, &what).await;
            if let Some(probe) = probe.as_mut() {
                no_transaction_left(probe, &what).await;
            }
            still_writes(&store, &what).await;
            let facts = (attempt.facts)(store.clone()).await;
            let happened = whole(&facts, &what);
            if polls == 0 {
                assert!(!happened, "{what}: a write never polled did something");
            } else if probe.is_some() {
                // A PostgreSQL write runs on a task of its own from its first poll: its caller
                // leaving does not stop it.
                assert!(
                    happened,
                    "{what}: the write was lost with its caller: {facts:?}"
                );
            }
            if let Some(result) = outcome {
                result.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(happened, "{what}: completed, but {facts:?}");
                break;
            }
            if !attempt.consuming {
                dropped.push((what, attempt.facts));
            }
            polls += 1;
            assert!(polls < 10_000, "{write:?} never completed");
        }
        // Every dropped write has finished by now (or never started): still whole.
        tasks_finished(quiet, &format!("{write:?} at the end")).await;
        if let Some(probe) = probe.as_mut() {
            no_transaction_left(probe, &format!("{write:?} at the end")).await;
        }
        for (what, facts) in dropped {
            whole(&facts(store.clone()).await, &format!("{what}, at the end"));
        }
    }
}

// ---- OpenID Connect ----------------------------------------------------------------------

async fn codes_and_refresh_tokens_keep_what_an_id_token_needs(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let a = client(&store, ClientType::Server, None).await;
    let mut code = new_code(&a, ada, true, T0);
    code.grant.oidc = SignIn {
        auth_time: Some(T0.minus(30)),
        nonce: Some("n-0S6_WzA2Mj".into()),
    };
    add_code(&store, &code, T0).await;
    let tokens = new_tokens(T0);
    let redeemed = redeem_as(
        &store,
        &a,
        &code.grant.code_hash,
        Some(REDIRECT),
        &tokens,
        T0,
    )
    .await;
    let Redemption::Issued(grant) = redeemed else {
        panic!("{redeemed:?}");
    };
    assert_eq!(grant.oidc, code.grant.oidc);

    // The refresh token remembers the sign-in; a refresh tells it, never the nonce.
    let outcome = store
        .refresh(
            &tokens.refresh_hash,
            &a.id,
            |grant| refresh_scopes(&grant.scopes, None),
            &new_tokens(T0.plus(1)).access,
            None,
            T0.plus(1),
            &limits(),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, RefreshOutcome::Issued { auth_time, .. } if auth_time == Some(T0.minus(30))),
        "{outcome:?}"
    );

    // A grant from before OpenID Connect has no sign-in time.
    let old = grant_without_oidc(&store, &a, ada).await;
    let outcome = store
        .refresh(
            &old,
            &a.id,
            |grant| refresh_scopes(&grant.scopes, None),
            &new_tokens(T0.plus(2)).access,
            None,
            T0.plus(2),
            &limits(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            RefreshOutcome::Issued {
                auth_time: None,
                ..
            }
        ),
        "{outcome:?}"
    );
}

async fn grant_without_oidc(store: &Store, client: &Client, user_id: i64) -> SecretHash {
    grant(store, client, user_id, T0.plus(2)).await.refresh
}

async fn sessions_know_when_their_user_signed_in(store: Store) {
    let ada = user(&store, "ada@example.com").await;
    let session = add_session(&store, ada, T0, 3600).await;
    assert_eq!(
        store.session_started(&session, T0.plus(10)).await.unwrap(),
        Some(T0)
    );
    assert_eq!(
        store
            .session_started(&session, T0.plus(3600))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.session_started(&hash(), T0).await.unwrap(), None);
}

fn signing_key(kid: &str, alg: &str, at: Timestamp) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: alg.into(),
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        encrypted_private_key: vec![1, 2, 3],
        created_at: at,
        retired_at: None,
        expires_at: None,
    }
}

async fn the_first_signing_key_is_made_once(store: Store) {
    assert!(store.signing_keys(T0).await.unwrap().is_empty());
    // Nodes starting together each try; exactly one key becomes the active one.
    let tries = join_all((0..6).map(|i| {
        let store = store.clone();
        async move {
            store
                .add_first_signing_key(&signing_key(&format!("k{i}"), "RS256", T0))
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(tries.iter().filter(|made| **made).count(), 1, "{tries:?}");
    let keys = store.signing_keys(T0).await.unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (key.alg.as_str(), key.retired_at, key.expires_at),
        ("RS256", None, None)
    );
    assert_eq!(key.encrypted_private_key, vec![1, 2, 3]);
    assert_eq!(key.public_jwk, format!("{{\"kid\":\"{}\"}}", key.kid));
    assert!(!store
        .add_first_signing_key(&signing_key("later", "RS256", T0.plus(1)))
        .await
        .unwrap());
}

async fn rotation_retires_the_active_key_until_it_expires(store: Store) {
    assert!(store
        .add_first_signing_key(&signing_key("one", "RS256", T0))
        .await
        .unwrap());
    let retired_until = T0.plus(100 + 3600);
    store
        .rotate_signing_key(&signing_key("two", "RS256", T0.plus(100)), retired_until)
        .await
        .unwrap();
    let keys = store.signing_keys(T0.plus(100)).await.unwrap();
    let summary: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.alg.as_str(), k.retired_at, k.expires_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("two", "RS256", None, None),
            ("one", "RS256", Some(T0.plus(100)), Some(retired_until)),
        ]
    );
    // Once the last token it signed has expired, the old key is no longer published, and the
    // sweep forgets it.
    let later = store.signing_keys(retired_until).await.unwrap();
    assert_eq!(
        later.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["two"]
    );
    store.sweep(retired_until).await.unwrap();
    let all = store.signing_keys(T0).await.unwrap();
    assert_eq!(
        all.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["two"]
    );
    // Rotating twice keeps one active key.
    store
        .rotate_signing_key(&signing_key("three", "RS256", T0.plus(200)), T0.plus(9000))
        .await
        .unwrap();
    let active: Vec<_> = store
        .signing_keys(T0.plus(200))
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.kid)
        .collect();
    assert_eq!(active, ["three"]);
    // A key id is unique.
    let again = store
        .rotate_signing_key(&signing_key("three", "RS256", T0.plus(300)), T0.plus(9000))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// One active key per algorithm (migration 0015): nodes starting together make exactly one of
/// each, and rotating one algorithm's key leaves the other's alone.
async fn each_algorithm_has_its_own_active_key(store: Store) {
    let tries = join_all((0..8).map(|i| {
        let store = store.clone();
        let alg = if i % 2 == 0 { "RS256" } else { "EdDSA" };
        async move {
            let made = store
                .add_first_signing_key(&signing_key(&format!("k{i}"), alg, T0))
                .await
                .unwrap();
            (alg, made)
        }
    }))
    .await;
    for alg in ["RS256", "EdDSA"] {
        let made = tries.iter().filter(|(a, made)| *a == alg && *made).count();
        assert_eq!(made, 1, "{alg}: {tries:?}");
    }
    let active = |keys: Vec<SigningKeyRecord>| -> Vec<(String, String)> {
        keys.into_iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| (k.alg, k.kid))
            .collect()
    };
    let first = active(store.signing_keys(T0).await.unwrap());
    // RS256 first: what every relying party supports.
    let algs: Vec<&str> = first.iter().map(|(alg, _)| alg.as_str()).collect();
    assert_eq!(algs, ["RS256", "EdDSA"]);
    let eddsa_kid = first[1].1.clone();

    store
        .rotate_signing_key(&signing_key("rs-2", "RS256", T0.plus(10)), T0.plus(9000))
        .await
        .unwrap();
    let keys = store.signing_keys(T0.plus(10)).await.unwrap();
    let retired: Vec<(&str, &str)> = keys
        .iter()
        .filter(|k| k.retired_at.is_some())
        .map(|k| (k.alg.as_str(), k.kid.as_str()))
        .collect();
    assert_eq!(retired, [("RS256", first[0].1.as_str())]);
    assert_eq!(
        active(keys),
        [
            ("RS256".to_owned(), "rs-2".to_owned()),
            ("EdDSA".to_owned(), eddsa_kid.clone())
        ]
    );

    store
        .rotate_signing_key(&signing_key("ed-2", "EdDSA", T0.plus(20)), T0.plus(9000))
        .await
        .unwrap();
    let keys = store.signing_keys(T0.plus(20)).await.unwrap();
    assert_eq!(
        active(keys.clone()),
        [
            ("RS256".to_owned(), "rs-2".to_owned()),
            ("EdDSA".to_owned(), "ed-2".to_owned())
        ]
    );
    assert_eq!(keys.len(), 4, "both retired keys stay published");
    // A first key for an algorithm that has one is refused, whichever algorithm.
    for alg in ["RS256", "EdDSA"] {
        assert!(!store
            .add_first_signing_key(&signing_key(&format!("late-{alg}"), alg, T0.plus(30)))
            .await
            .unwrap());
    }
}
