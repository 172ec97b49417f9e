//! The administration commands: `user`, `client`, `scope`, `code` and `keys`. Each calls one flow of
//! `grantd_server::admin` (which validates everything before it writes) and prints the
//! result, for people or, with `--json`, as exactly one JSON object. Secrets are printed once,
//! when created; listings never show a secret or its hash.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

use grantd_core::datacenter::DcTag;
use grantd_core::oidc::SigningAlg;
use grantd_core::secret::{ClientSecret, Password};
use grantd_core::{Client, Clock, Limits, SystemClock};
use grantd_server::admin::{self, AdminError, ClientSpec, Here, SelfCodeSpec};
use grantd_server::peers::PeerClient;
use grantd_server::{signing, Passwords};
use grantd_store::Store;
use grantd_store::{AccountVerbs, ConsoleVerbs};

use crate::cli::{ClientAddArgs, ClientCommand, CodeArgs, KeysCommand, ScopeCommand, UserCommand};
use crate::config::{self, FileConfig, ServeConfig};
use crate::{emit, Failure};

pub async fn user(store: &Store, command: UserCommand, file: &FileConfig) -> Result<(), Failure> {
    match command {
        UserCommand::Add {
            email,
            name,
            password_stdin,
            admin,
        } => {
            // A user has one home: an email another data center has is refused here.
            if let Some(peers) = config::peer_client(file)? {
                not_at_a_peer(&peers, &email).await?;
            }
            add_user(store, &email, &name, password_stdin, admin).await
        }
        UserCommand::Unlock { email } => {
            let cleared = admin::unlock_user(store, &email).await?;
            emit(format_args!(
                "cleared the sign-in back-off of {email} ({cleared} record{})",
                if cleared == 1 { "" } else { "s" }
            ))
        }
    }
}

async fn add_user(
    store: &Store,
    email: &str,
    name: &str,
    password_stdin: bool,
    admin: bool,
) -> Result<(), Failure> {
    let (password, generated) = if password_stdin {
        (read_password()?, false)
    } else {
        // 168 random bits, in a shape any keyboard can type.
        let password = ClientSecret::generate().expose().to_owned();
        (Password::from_wire(password), true)
    };
    let id = admin::add_user(
        store,
        &Passwords::new(),
        email,
        name,
        &password,
        admin,
        SystemClock.now(),
    )
    .await?;
    let is_admin = store.user(id).await?.is_some_and(|u| u.is_admin);
    emit(format_args!(
        "added user {email} (id {id}{})",
        if is_admin { ", administrator" } else { "" }
    ))?;
    if generated {
        emit(format_args!(
            "password: {}\n(shown once; grantd keeps only an Argon2id hash)",
            password.expose()
        ))?;
    }
    Ok(())
}

/// Asks every peer about `email` (CONTRACT.md: `user add` refuses an email that a reachable
/// peer already has); a peer that does not answer is a warning on stderr, not a refusal, so a
/// DC can add users while another is down.
async fn not_at_a_peer(peers: &PeerClient, email: &str) -> Result<(), Failure> {
    let survey = peers.survey(email).await;
    if let Some(home) = survey.home {
        let accounts = peers.peer(&home).map_or("", |p| p.accounts.as_str());
        return Err(Failure(format!(
            "{email:?} is already a user of data center {home} ({accounts}); a user has one home \
             data center, so add it there or choose another email"
        )));
    }
    for (location, e) in &survey.unreachable {
        let _ = writeln!(
            std::io::stderr(),
            "warning: data center {location} did not answer ({e}); it may already have a user \
             {email:?}"
        );
    }
    Ok(())
}

/// The first line of stdin, without its line ending; nothing else is trimmed.
fn read_password() -> Result<Password, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure(format!("cannot read the password from standard input: {e}")))?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err(Failure("no password on standard input".into()));
    }
    Ok(Password::from_wire(password.to_owned()))
}

pub async fn client(store: &Store, command: ClientCommand, here: &Here<'_>) -> Result<(), Failure> {
    match command {
        ClientCommand::Add(args) => add_client(store, args).await,
        ClientCommand::List { json } => {
            let clients = store.clients().await?;
            if json {
                let mut all = Vec::with_capacity(clients.len());
                for client in &clients {
                    all.push(describe(store, client).await?);
                }
                return emit(json!({ "clients": all }));
            }
            if clients.is_empty() {
                return emit("no clients; add one with `grantd client add`");
            }
            emit(format_args!("{:<36} {:<12} NAME", "CLIENT ID", "TYPE"))?;
            for client in &clients {
                emit(format_args!(
                    "{:<36} {:<12} {}",
                    client.id,
                    client.kind.as_str(),
                    client.name
                ))?;
            }
            Ok(())
        }
        ClientCommand::Show { id, json } => {
            let client = store.client(&id).await?.ok_or_else(|| no_client(&id))?;
            let described = describe(store, &client).await?;
            if json {
                return emit(described);
            }
            show(&described)
        }
        ClientCommand::Remove { id } => {
            admin::remove_client(store, &id).await?;
            emit(format_args!(
                "removed client {id} with its codes, tokens and consents"
            ))
        }
        ClientCommand::EnableDc {
            id,
            location,
            own_secret,
            json,
        } => enable_dc(store, here, &id, &location, own_secret, json).await,
        ClientCommand::DisableDc { id, location } => {
            admin::disable_dc(store, &id, &location).await?;
            emit(format_args!(
                "disabled client {id} at data center {location} (within seconds; its tokens there go)"
            ))
        }
        ClientCommand::RotateSecret { id, json } => {
            let secret = admin::rotate_secret(store, &id).await?;
            if json {
                return emit(json!({ "client_id": id, "client_secret": secret.expose() }));
            }
            emit(format_args!(
                "client_secret: {}\n(shown once; the old secret no longer works)",
                secret.expose()
            ))
        }
    }
}

async fn enable_dc(
    store: &Store,
    here: &Here<'_>,
    id: &str,
    location: &str,
    own_secret: bool,
    json: bool,
) -> Result<(), Failure> {
    let secret = admin::enable_dc(store, here, id, location, own_secret, SystemClock.now()).await?;
    if json {
        return emit(json!({
            "client_id": id,
            "location": location,
            "client_secret": secret.as_ref().map(ClientSecret::expose),
        }));
    }
    emit(format_args!(
        "enabled client {id} at data center {location} (it serves the client within seconds)"
    ))?;
    match &secret {
        Some(secret) => emit(format_args!(
            "client_secret at {location}: {}\n(shown once; only this secret works there)",
            secret.expose()
        )),
        None => emit(format_args!("the home secret works at {location}")),
    }
}

async fn add_client(store: &Store, args: ClientAddArgs) -> Result<(), Failure> {
    let spec = ClientSpec {
        kind: args.kind.into(),
        name: args.name,
        homepage: args.homepage,
        redirect_uris: args.redirect_uris,
        js_domain: None,
        owner_email: args.owner,
        dialect: args.dialect.into(),
        introspect_any: args.introspect_any,
        id_token_alg: args.id_token_alg,
    };
    let (id, secret) = admin::add_client(store, &spec, SystemClock.now()).await?;
    if args.json {
        return emit(json!({
            "client_id": id.as_str(),
            "client_secret": secret.as_ref().map(ClientSecret::expose),
        }));
    }
    emit(format_args!(
        "added {} client {:?}",
        spec.kind.as_str(),
        spec.name.trim()
    ))?;
    emit(format_args!("client_id:     {id}"))?;
    match &secret {
        Some(secret) => emit(format_args!(
            "client_secret: {}\n(shown once; grantd keeps only a hash)",
            secret.expose()
        )),
        None => emit("no client secret: a public client proves itself with PKCE (S256)"),
    }
}

/// A client's metadata as JSON: everything but its secret.
async fn describe(store: &Store, client: &Client) -> Result<Value, Failure> {
    let owner = match client.owner_id {
        Some(id) => store.user(id).await?.map(|user| user.email),
        None => None,
    };
    let redirect_uris: Vec<&str> = client.redirect_uris.iter().map(|u| u.as_str()).collect();
    let datacenters: Vec<String> = store
        .client_dcs(&client.id)
        .await?
        .into_iter()
        .map(|dc| match dc.own_secret {
            true => format!("{} (own secret)", dc.location),
            false => dc.location,
        })
        .collect();
    Ok(json!({
        "client_id": client.id.as_str(),
        "type": client.kind.as_str(),
        "name": client.name,
        "homepage": client.homepage,
        "redirect_uris": redirect_uris,
        "owner": owner,
        "dialect": client.dialect.as_str(),
        "confidential": client.secret_hash.is_some(),
        "introspect_any": client.introspect_any,
        // null: the server's id_token_signing_alg.
        "id_token_alg": client.id_token_alg.map(SigningAlg::as_str),
        "home": client.home,
        "datacenters": datacenters,
    }))
}

fn show(described: &Value) -> Result<(), Failure> {
    let Some(fields) = described.as_object() else {
        return Ok(());
    };
    for (key, value) in fields {
        let text = match value {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            Value::Array(items) if items.is_empty() => "-".to_owned(),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n               "),
            other => other.to_string(),
        };
        emit(format_args!("{:<14} {text}", format!("{key}:")))?;
    }
    Ok(())
}

fn no_client(id: &str) -> Failure {
    AdminError::NotFound(format!("no client with id {id:?}")).into()
}

pub async fn scope(store: &Store, command: ScopeCommand) -> Result<(), Failure> {
    match command {
        ScopeCommand::Add { name, description } => {
            admin::add_scope(store, &name, &description).await?;
            emit(format_args!("added scope {name}"))
        }
        ScopeCommand::List { json } => {
            let scopes = store.scopes().await?;
            if json {
                let all: Vec<Value> = scopes
                    .iter()
                    .map(|(name, description)| json!({ "name": name, "description": description }))
                    .collect();
                return emit(json!({ "scopes": all }));
            }
            let width = scopes.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
            for (name, description) in &scopes {
                emit(format_args!("{name:<width$}  {description}"))?;
            }
            Ok(())
        }
    }
}

pub async fn code(
    store: &Store,
    args: CodeArgs,
    limits: &Limits,
    issuer: DcTag,
) -> Result<(), Failure> {
    let spec = SelfCodeSpec {
        client_id: args.client_id,
        user_email: args.user,
        scopes: args.scope,
        minutes: args.duration,
        description: args.description,
    };
    let code = admin::self_client_code(store, &spec, SystemClock.now(), limits, issuer).await?;
    if args.json {
        return emit(json!({ "code": code.expose(), "expires_in": spec.minutes * 60 }));
    }
    emit(format_args!("code: {}", code.expose()))?;
    emit(format_args!(
        "(single use; expires in {} minutes; exchange it at /oauth/v2/token with the client's secret)",
        spec.minutes
    ))
}

/// `grantd keys list|rotate`: the ID-token signing keys (never their material).
pub async fn keys(
    store: &Store,
    command: KeysCommand,
    config: &ServeConfig,
    database: &str,
) -> Result<(), Failure> {
    let now = SystemClock.now();
    match command {
        KeysCommand::List { json } => {
            let keys = signing::list(store, now).await?;
            if json {
                let all: Vec<Value> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "kid": k.kid,
                            "alg": k.alg,
                            "created_at": k.created_at.0,
                            "retired_at": k.retired_at.map(|t| t.0),
                            "expires_at": k.expires_at.map(|t| t.0),
                            "active": k.retired_at.is_none(),
                        })
                    })
                    .collect();
                return emit(json!({ "keys": all }));
            }
            if keys.is_empty() {
                return emit("no signing keys yet; `grantd serve` makes the first one");
            }
            emit(format_args!(
                "{:<34} {:<6} {:<11} {:<11} PUBLISHED UNTIL",
                "KID", "ALG", "CREATED", "RETIRED"
            ))?;
            for key in &keys {
                let time = |t: Option<grantd_core::Timestamp>| {
                    t.map_or_else(|| "-".to_owned(), |t| t.0.to_string())
                };
                emit(format_args!(
                    "{:<34} {:<6} {:<11} {:<11} {}",
                    key.kid,
                    key.alg,
                    key.created_at.0,
                    time(key.retired_at),
                    key.expires_at
                        .map_or_else(|| "active".to_owned(), |t| t.0.to_string())
                ))?;
            }
            Ok(())
        }
        KeysCommand::Rotate { alg, json } => {
            let kek = config.key_encryption_key(database)?;
            let lifetime = config.limits.access_token_lifetime_secs;
            let rotated = match alg {
                Some(alg) => signing::rotate(store, &kek, alg, now, lifetime)
                    .await
                    .map(|kid| vec![(alg, kid)]),
                None => signing::rotate_all(store, &kek, now, lifetime).await,
            }
            .map_err(|e| Failure(format!("cannot rotate the signing keys: {e}")))?;
            if json {
                let keys: Vec<Value> = rotated
                    .iter()
                    .map(|(alg, kid)| json!({ "kid": kid, "alg": alg.as_str() }))
                    .collect();
                return emit(json!({ "keys": keys }));
            }
            for (alg, kid) in &rotated {
                emit(format_args!("new {alg} signing key {kid}"))?;
            }
            emit(
                "running servers sign with the new keys within seconds; the old ones stay \
                 published until the ID tokens they signed have expired",
            )
        }
    }
}
