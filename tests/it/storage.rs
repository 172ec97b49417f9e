//! What the database holds (CONTRACT.md "Identifiers and secrets"): after a full flow, no
//! issued token, code, client secret, session id or password appears in any column of any
//! table, as text or as bytes, nor anywhere in the database files (SQLite's; PostgreSQL's
//! belong to its server).

use grantd_core::Dialect;
use grantd_server::admin;

use crate::{start, Decision, CRM_AND_PROFILE, PASSWORD};

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The byte strings a secret must not be stored as: itself, and the raw bytes its hex parts
/// encode (a store that kept `hex::decode(token)` would leak just the same).
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut forms = vec![
        secret.as_bytes().to_vec(),
        secret.to_ascii_uppercase().into_bytes(),
    ];
    for part in secret.split('.') {
        if part.len() >= 16 {
            if let Some(bytes) = hex_decode(part) {
                forms.push(bytes);
            }
        }
    }
    forms
}

#[tokio::test]
async fn no_secret_is_stored_in_any_column_or_file() {
    skip_without_postgres!();
    let server = start().await;
    let user = server.user("ada@example.com").await;
    let a = server.server_client("https://a.example/cb").await;
    let b = server.server_client("https://b.example/cb").await;
    let s = server.self_client(&user, Dialect::Zoho).await;
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", PASSWORD.to_owned()),
        ("client A secret", a.secret().to_owned()),
        ("client B old secret", b.secret().to_owned()),
        ("self client secret", s.secret().to_owned()),
    ];
    let rotated = admin::rotate_secret(&server.store, &b.id).await.unwrap();
    secrets.push(("client B new secret", rotated.expose().to_owned()));

    // The redirect flow, through the browser: session, CSRF token, consent id, code, tokens.
    let browser = server.browser();
    let url = server.auth_url(
        &a,
        CRM_AND_PROFILE,
        &[("access_type", "offline"), ("state", "st")],
    );
    let login = browser.get(&url).await;
    secrets.push((
        "login csrf token",
        login.form_with("email").csrf_token().to_owned(),
    ));
    if let Some(pre) = browser.cookie("grantd_pre_us") {
        secrets.push(("pre-session cookie", pre));
    }
    browser
        .sign_in_on(&login, &user.email, &user.password)
        .await;
    secrets.push(("session cookie", browser.session().unwrap()));
    let flow = browser.authorize(&url, &user, Decision::Accept).await;
    let consent = flow.consent_page.unwrap().form_with("decision");
    secrets.push(("consent csrf token", consent.csrf_token().to_owned()));
    secrets.push(("consent id", consent.get("consent_id").unwrap().to_owned()));
    let code = flow.redirect.code();
    secrets.push(("code", code.clone()));
    let tokens = server.exchange(&a, &code).await.tokens();
    secrets.push(("access token", tokens.access.clone()));
    secrets.push(("refresh token", tokens.refresh().to_owned()));
    let refreshed = server.refresh(&a, tokens.refresh()).await.tokens();
    secrets.push(("refreshed access token", refreshed.access.clone()));
    // A pending consent left undecided, so that table has a row too.
    let pending = browser
        .get(&server.auth_url(&a, "Demo.y.READ", &[("prompt", "consent")]))
        .await;
    secrets.push((
        "pending consent id",
        pending
            .form_with("decision")
            .get("consent_id")
            .unwrap()
            .to_owned(),
    ));

    // The Self Client: console code, exchange, client_credentials; one token revoked.
    let self_code = server.self_code(&s, &user, CRM_AND_PROFILE, 5).await;
    secrets.push(("self client code", self_code.clone()));
    let self_tokens = server.exchange(&s, &self_code).await.tokens();
    secrets.push(("self access token", self_tokens.access.clone()));
    secrets.push(("self refresh token", self_tokens.refresh().to_owned()));
    let mut fields = s.body_auth();
    fields.push(("grant_type", "client_credentials".into()));
    fields.push(("scope", "ZohoCRM.modules.READ".into()));
    let cc = server.post_form("/oauth/v2/token", &fields).await.tokens();
    secrets.push(("client_credentials token", cc.access.clone()));
    server.revoke(&self_tokens.access).await;

    // Every row of every table, every column as bytes.
    let db = server.db().await;
    let mut rows_seen = std::collections::BTreeMap::new();
    for table in db.tables().await {
        for (column, values) in db.columns(&table).await {
            rows_seen.insert(table.clone(), values.len());
            for value in values.iter().flatten() {
                for (what, secret) in &secrets {
                    for form in forms(secret) {
                        assert!(
                            !contains(value, &form),
                            "the {what} is stored in {table}.{column}"
                        );
                    }
                }
            }
        }
    }
    db.close().await;
    // The scan saw the rows it was meant to see.
    for table in [
        "users",
        "clients",
        "grant_codes",
        "refresh_tokens",
        "access_tokens",
        "consents",
        "sessions",
        "pending_consents",
    ] {
        assert!(
            rows_seen.get(table).is_some_and(|n| *n > 0),
            "no rows in {table}: {rows_seen:?}"
        );
    }

    // The SQLite files themselves, free pages and the write-ahead log included. (PostgreSQL's
    // files belong to its server, which may be on another machine.)
    let Some(db_path) = server.db_path() else {
        return;
    };
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db_path.display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for (what, secret) in &secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "the {what} is in {path}"
            );
        }
    }
}
