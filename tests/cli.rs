//! The `grantd` binary as operators and scripts use it: administration commands and their
//! `--json` output and exit codes, `serve` announcing its address, answering, and stopping
//! cleanly on SIGTERM, and the configuration precedence (flags > environment > file).
//! Every test gets its own temporary directory and SQLite database; nothing sleeps: the
//! server's address is read from its "listening" line, and every wait has a bound.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use support::http::{send, Http, Reply};
use support::node::{self, succeeded, Node};

/// A temporary directory with its own database, and `grantd` commands that run against it.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}")),
        }
    }

    fn database(&self) -> String {
        format!("sqlite://{}/g.db", self.dir.path().display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `grantd ARGS` in the sandbox, with no `GRANTD_*` setting inherited from the caller.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = node::command(&self.database());
        command.args(args).current_dir(self.dir.path());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        node::run(self.command(args), args, None)
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        node::run(self.command(args), args, Some(input))
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, &self.run(args))
    }

    /// `grantd serve ARGS` in the sandbox with `env` added, once it announced its address.
    fn serve(&self, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut command = self.command(args);
        command.envs(env.iter().copied()).env("RUST_LOG", "info");
        Node::spawn(
            "serve",
            command,
            self.path(&format!("serve-{}.log", args.len())),
        )
    }

    /// Runs a `--json` command that must succeed; its stdout must be exactly one JSON object.
    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        let value: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("grantd {args:?} printed no JSON ({e}): {stdout}"));
        assert!(value.is_object(), "not one JSON object: {stdout}");
        assert_eq!(
            stdout.trim().lines().count(),
            1,
            "more than one line: {stdout}"
        );
        value
    }

    /// Runs a command that must fail; returns its exit code and stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "grantd {args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!stderr.trim().is_empty(), "grantd {args:?} failed silently");
        (output.status.code().unwrap_or(-1), stderr)
    }

    fn add_user(&self, email: &str) {
        node::add_user(&self.database(), None, email);
    }

    /// Adds a Self Client for `owner`; returns its id and secret.
    fn add_self_client(&self, owner: &str) -> (String, String) {
        let added = self.json(&[
            "client", "add", "--type", "self", "--name", "Scripts", "--owner", owner, "--json",
        ]);
        let text = |key: &str| match added[key].as_str() {
            Some(text) => text.to_owned(),
            None => panic!("no {key} in {added}"),
        };
        (text("client_id"), text("client_secret"))
    }

    fn client_ids(&self) -> Vec<String> {
        let list = self.json(&["client", "list", "--json"]);
        let Some(clients) = list["clients"].as_array() else {
            panic!("no clients array: {list}");
        };
        clients
            .iter()
            .map(|c| match c["client_id"].as_str() {
                Some(id) => id.to_owned(),
                None => panic!("a client without client_id: {c}"),
            })
            .collect()
    }
}

fn is_client_id(id: &str) -> bool {
    id.len() == 35
        && id.starts_with("1000.")
        && id[5..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_client_secret(secret: &str) -> bool {
    secret.len() == 42
        && secret
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn clients_of_every_type_are_added_with_the_contract_shapes() {
    let sandbox = Sandbox::new();
    sandbox.add_user("owner@example.com");
    let cases: [(&str, &[&str], bool); 5] = [
        (
            "server",
            &["--redirect-uri", "https://app.example.com/cb"],
            true,
        ),
        (
            "client",
            &["--redirect-uri", "https://spa.example.com/cb"],
            false,
        ),
        (
            "mobile",
            &["--redirect-uri", "com.example.app:/oauth"],
            false,
        ),
        ("non-browser", &[], true),
        ("self", &["--owner", "owner@example.com"], true),
    ];
    for (kind, extra, confidential) in cases {
        let mut args = vec!["client", "add", "--type", kind, "--name", "App", "--json"];
        args.extend_from_slice(extra);
        let added = sandbox.json(&args);
        let fields: Vec<&String> = added.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["client_id", "client_secret"], "{kind}: {added}");
        assert!(
            is_client_id(added["client_id"].as_str().unwrap()),
            "{kind}: {added}"
        );
        if confidential {
            assert!(
                is_client_secret(added["client_secret"].as_str().unwrap()),
                "{kind}: {added}"
            );
        } else {
            assert!(added["client_secret"].is_null(), "{kind}: {added}");
        }
    }

    let listed = sandbox.json(&["client", "list", "--json"]);
    let clients = listed["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 5);
    let text = listed.to_string();
    assert!(
        !text.contains("secret\":\""),
        "a listing shows a secret: {text}"
    );
    let own = clients.iter().find(|c| c["type"] == "self").unwrap();
    assert_eq!(own["owner"], "owner@example.com");
    let id = own["client_id"].as_str().unwrap();
    let shown = sandbox.json(&["client", "show", id, "--json"]);
    assert_eq!(shown["client_id"], id);
    assert_eq!(shown["type"], "self");
    assert!(shown.get("client_secret").is_none());
    assert!(sandbox.ok(&["client", "show", id]).contains(id));
    assert!(sandbox.ok(&["client", "list"]).contains(id));
}

#[test]
fn a_user_has_at_most_one_self_client() {
    let sandbox = Sandbox::new();
    sandbox.add_user("me@example.com");
    sandbox.add_self_client("me@example.com");
    let (code, stderr) = sandbox.fails(&[
        "client",
        "add",
        "--type",
        "self",
        "--name",
        "Again",
        "--owner",
        "me@example.com",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already has a Self Client"), "{stderr}");
    assert_eq!(sandbox.client_ids().len(), 1);

    let (code, stderr) = sandbox.fails(&["client", "add", "--type", "self", "--name", "Nobody's"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, stderr) = sandbox.fails(&[
        "client",
        "add",
        "--type",
        "self",
        "--name",
        "Ghost",
        "--owner",
        "ghost@example.com",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("ghost@example.com"), "{stderr}");
}

#[test]
fn bad_client_registrations_are_refused_and_store_nothing() {
    let sandbox = Sandbox::new();
    let (code, stderr) = sandbox.fails(&["client", "add", "--type", "web", "--name", "App"]);
    assert_eq!(code, 2, "a usage error: {stderr}");
    assert!(
        stderr.contains("server, client, mobile, non-browser, self"),
        "{stderr}"
    );

    for uri in ["javascript:alert(1)", "http://a.example/cb"] {
        let (code, stderr) = sandbox.fails(&[
            "client",
            "add",
            "--type",
            "server",
            "--name",
            "App",
            "--redirect-uri",
            uri,
        ]);
        assert_eq!(code, 1, "{uri}: {stderr}");
        assert!(stderr.contains(uri), "the message names the URI: {stderr}");
    }
    let (code, stderr) = sandbox.fails(&["client", "add", "--type", "server", "--name", "App"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("redirect"), "{stderr}");
    let (code, _) = sandbox.fails(&[
        "client",
        "add",
        "--type",
        "server",
        "--name",
        "App",
        "--redirect-uri",
        "https://ok.example/cb",
        "--homepage",
        "ftp://files.example",
    ]);
    assert_eq!(code, 1);
    assert!(sandbox.client_ids().is_empty());
}

#[test]
fn scopes_are_registered_and_listed() {
    let sandbox = Sandbox::new();
    let builtin = sandbox.json(&["scope", "list", "--json"]);
    assert!(
        builtin.to_string().contains("AaaServer.profile.READ"),
        "{builtin}"
    );
    sandbox.ok(&[
        "scope",
        "add",
        "ZohoCRM.modules.ALL",
        "--description",
        "Your CRM data",
    ]);
    let listed = sandbox.json(&["scope", "list", "--json"]);
    let names: Vec<&str> = listed["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ZohoCRM.modules.ALL"), "{listed}");
    assert!(sandbox.ok(&["scope", "list"]).contains("Your CRM data"));

    let (code, stderr) = sandbox.fails(&["scope", "add", "not a scope", "--description", "x"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, _) = sandbox.fails(&["scope", "add", "ZohoCRM.modules.ALL", "--description", "x"]);
    assert_eq!(code, 1);
}

#[test]
fn self_client_codes_secrets_and_removal() {
    let sandbox = Sandbox::new();
    sandbox.add_user("me@example.com");
    let (id, secret) = sandbox.add_self_client("me@example.com");
    let code_args = |minutes: &'static str| {
        vec![
            "code",
            "--client-id",
            &id,
            "--user",
            "me@example.com",
            "--scope",
            "AaaServer.profile.READ",
            "--duration",
            minutes,
            "--json",
        ]
    };

    let issued = sandbox.json(&code_args("5"));
    assert_eq!(issued["expires_in"], 300);
    let code = issued["code"].as_str().unwrap();
    let parts: Vec<&str> = code.split('.').collect();
    assert_eq!(parts.len(), 3, "{code}");
    assert_eq!(parts[0], "1000");
    assert_eq!(sandbox.json(&code_args("10"))["expires_in"], 600);

    let (code, stderr) = sandbox.fails(&code_args("4"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("3, 5, 7 or 10"), "{stderr}");
    let (code, stderr) = sandbox.fails(&[
        "code",
        "--client-id",
        &id,
        "--user",
        "me@example.com",
        "--scope",
        "Nope.things.READ",
        "--duration",
        "3",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown scope"), "{stderr}");

    let rotated = sandbox.json(&["client", "rotate-secret", &id, "--json"]);
    assert_eq!(rotated["client_id"], id.as_str());
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert!(is_client_secret(new_secret));
    assert_ne!(new_secret, secret);

    let public = sandbox.json(&[
        "client",
        "add",
        "--type",
        "client",
        "--name",
        "SPA",
        "--redirect-uri",
        "https://spa.example.com/cb",
        "--json",
    ]);
    let public_id = public["client_id"].as_str().unwrap();
    let (code, _) = sandbox.fails(&["client", "rotate-secret", public_id]);
    assert_eq!(code, 1, "a public client has no secret to rotate");

    sandbox.ok(&["client", "remove", &id]);
    assert_eq!(sandbox.client_ids(), [public_id]);
    let (code, stderr) = sandbox.fails(&["client", "remove", &id]);
    assert_eq!(code, 1);
    assert!(stderr.contains(id.as_str()), "{stderr}");
    let (code, _) = sandbox.fails(&["client", "show", &id]);
    assert_eq!(code, 1);
}

/// Issue 12: `--introspect-any` flags a resource server, `client show` reports the flag, and a
/// public client (which cannot authenticate) cannot have it.
#[test]
fn introspect_any_flags_a_resource_server() {
    let sandbox = Sandbox::new();
    let uri = ["--redirect-uri", "https://rs.example.com/cb"];
    let mut args = vec![
        "client", "add", "--type", "server", "--name", "RS", "--json",
    ];
    args.extend_from_slice(&uri);
    let plain = sandbox.json(&args);
    args.push("--introspect-any");
    let flagged = sandbox.json(&args);
    for (added, expected) in [(&plain, false), (&flagged, true)] {
        let id = added["client_id"].as_str().unwrap();
        let shown = sandbox.json(&["client", "show", id, "--json"]);
        assert_eq!(shown["introspect_any"], expected, "{shown}");
    }
    let id = flagged["client_id"].as_str().unwrap();
    assert!(sandbox
        .ok(&["client", "show", id])
        .contains("introspect_any: true"));
    let (code, stderr) = sandbox.fails(&[
        "client",
        "add",
        "--type",
        "mobile",
        "--name",
        "App",
        "--redirect-uri",
        "com.example.app:/oauth",
        "--introspect-any",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("introspect"), "{stderr}");
}

/// Issue 14: `--id-token-alg` chooses a client's ID-token algorithm, `client show` reports it
/// (null: the server's `id_token_signing_alg`), and only JOSE names are taken.
#[test]
fn id_token_alg_is_chosen_at_registration_and_shown() {
    let sandbox = Sandbox::new();
    let add = [
        "client", "add", "--type", "server", "--name", "RP", "--json",
    ];
    let uri = ["--redirect-uri", "https://rp.example.com/cb"];
    let mut args = [&add[..], &uri[..]].concat();
    let plain = sandbox.json(&args);
    args.extend_from_slice(&["--id-token-alg", "EdDSA"]);
    let chosen = sandbox.json(&args);
    for (added, expected) in [(&plain, Value::Null), (&chosen, Value::from("EdDSA"))] {
        let id = added["client_id"].as_str().unwrap();
        let shown = sandbox.json(&["client", "show", id, "--json"]);
        assert_eq!(shown["id_token_alg"], expected, "{shown}");
    }
    let id = chosen["client_id"].as_str().unwrap();
    assert!(sandbox
        .ok(&["client", "show", id])
        .contains("id_token_alg:  EdDSA"));
    let mut wrong = [&add[..], &uri[..]].concat();
    wrong.extend_from_slice(&["--id-token-alg", "HS256"]);
    let (code, stderr) = sandbox.fails(&wrong);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RS256 or EdDSA"), "{stderr}");
}

#[test]
fn users_get_a_generated_password_unless_one_is_piped() {
    let sandbox = Sandbox::new();
    let first = sandbox.ok(&["user", "add", "--email", "a@example.com", "--name", "A"]);
    assert!(
        first.contains("administrator"),
        "the first user administers: {first}"
    );
    let password = first
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("the generated password is printed once");
    assert!(password.len() >= 16);

    let args = [
        "user",
        "add",
        "--email",
        "b@example.com",
        "--name",
        "B",
        "--password-stdin",
    ];
    let (status, stderr) = {
        let output = sandbox.run_with_stdin(&args, "short\n");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("at least 8"), "{stderr}");
    let output = sandbox.run_with_stdin(&args, "");
    assert_eq!(
        output.status.code(),
        Some(1),
        "an empty stdin is no password"
    );

    sandbox.add_user("b@example.com");
    let output = sandbox.run_with_stdin(&args, "another long password\n");
    assert_eq!(output.status.code(), Some(1), "the email is taken");
}

/// `grantd user unlock` clears an account's back-off while the server runs: the owner, held
/// back after failures from this address, signs in at once, without waiting it out.
#[tokio::test]
async fn user_unlock_clears_the_sign_in_back_off() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["serve", "--listen", "127.0.0.1:0"], &[]);
    sandbox.add_user(node::EMAIL);
    let browser = Http::browser(&server.url);
    let home = format!("{}/", server.url);
    let attempt = |password: &'static str| {
        let (browser, home) = (browser.clone(), home.clone());
        async move {
            let page = browser.get(&home).await;
            browser.sign_in_on(&page, node::EMAIL, password).await
        }
    };
    for _ in 0..5 {
        let reply = attempt("wrong password").await;
        assert!(reply.is_login_page(), "{} {}", reply.status, reply.body);
    }
    let held = attempt(support::oauth::PASSWORD).await;
    assert!(held.is_login_page(), "not held back: {}", held.status);

    let out = sandbox.ok(&["user", "unlock", node::EMAIL]);
    assert!(out.contains("cleared the sign-in back-off"), "{out}");
    let signed_in = attempt(support::oauth::PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", server.log_text());

    let (code, stderr) = sandbox.fails(&["user", "unlock", "nobody@example.com"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no user"), "{stderr}");
}

#[test]
fn unsupported_databases_and_bad_configuration_are_reported() {
    let sandbox = Sandbox::new();
    let (code, stderr) =
        sandbox.fails(&["--database", "mysql://grantd@localhost/grantd", "migrate"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("unsupported database URL scheme"),
        "{stderr}"
    );

    assert!(sandbox.ok(&["migrate"]).contains("up to date"));
    assert!(sandbox.path("g.db").exists());

    let config = sandbox.path("typo.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let (code, stderr) = sandbox.fails(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("lisen"),
        "the unknown key is named: {stderr}"
    );

    let (code, stderr) = sandbox.fails(&["serve", "--public-url", "javascript:alert(1)"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("public_url"), "{stderr}");
}

#[test]
fn help_describes_every_command() {
    let sandbox = Sandbox::new();
    let help = sandbox.ok(&["--help"]);
    for command in ["serve", "migrate", "user", "client", "scope", "code"] {
        assert!(help.contains(command), "{help}");
    }
    let serve = sandbox.ok(&["serve", "--help"]);
    for flag in [
        "--listen",
        "--public-url",
        "--database",
        "--config",
        "GRANTD_LISTEN",
    ] {
        assert!(serve.contains(flag), "{serve}");
    }
}

// ---- the server ---------------------------------------------------------------------------

/// A reply's status and JSON body (its text as a JSON string if it is not JSON).
fn json_of(reply: &Reply) -> (u16, Value) {
    let body = reply
        .try_json()
        .unwrap_or_else(|| Value::String(reply.body.clone()));
    (reply.status, body)
}

#[tokio::test]
async fn serve_answers_on_an_ephemeral_port_and_stops_on_sigterm() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert!(
        !server.url.ends_with(":0"),
        "the real port is announced: {}",
        server.url
    );
    let health = Http::new().get(format!("{}/healthz", server.url)).await;
    assert_eq!(health.status, 200, "{}", server.log_text());
    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// The README's quick start, end to end: everything is administered with the CLI while the
/// server runs on the same database.
#[tokio::test]
async fn a_self_client_code_made_with_the_cli_is_exchanged_while_serving() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["serve", "--listen", "127.0.0.1:0"], &[]);
    sandbox.add_user("me@example.com");
    let (client_id, client_secret) = sandbox.add_self_client("me@example.com");
    let issued = sandbox.json(&[
        "code",
        "--client-id",
        &client_id,
        "--user",
        "me@example.com",
        "--scope",
        "AaaServer.profile.READ",
        "--duration",
        "3",
        "--json",
    ]);
    let code = issued["code"].as_str().unwrap();
    let http = Http::new();
    let token_url = format!("{}/oauth/v2/token", server.url);

    let (status, tokens) = json_of(
        &send(http.client.post(&token_url).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("code", code),
        ]))
        .await,
    );
    assert_eq!(status, 200, "{tokens}\n{}", server.log_text());
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert_eq!(tokens["expires_in"], 3600, "{tokens}");
    assert_eq!(tokens["api_domain"], server.url.as_str(), "{tokens}");
    assert_eq!(tokens["scope"], "AaaServer.profile.READ", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("Self Client codes give one");

    let info_url = format!("{}/oauth/user/info", server.url);
    let (status, me) = json_of(
        &send(
            http.client
                .get(&info_url)
                .header("Authorization", format!("Zoho-oauthtoken {access}")),
        )
        .await,
    );
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["Email"], "me@example.com", "{me}");

    let (status, refreshed) = json_of(
        &send(http.client.post(&token_url).form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("refresh_token", refresh),
        ]))
        .await,
    );
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["access_token"].is_string(), "{refreshed}");
    assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");

    let (status, revoked) = json_of(
        &send(
            http.client
                .post(format!("{token_url}/revoke"))
                .form(&[("token", refresh)]),
        )
        .await,
    );
    assert_eq!(
        (status, revoked),
        (200, serde_json::json!({"status": "success"}))
    );
    let (status, _) = json_of(
        &send(
            http.client
                .get(&info_url)
                .header("Authorization", format!("Zoho-oauthtoken {access}")),
        )
        .await,
    );
    assert_eq!(
        status, 401,
        "revoking the refresh token revokes its access tokens"
    );

    // `client remove` takes the client's remaining tokens with it.
    let second = sandbox.json(&[
        "code",
        "--client-id",
        &client_id,
        "--user",
        "me@example.com",
        "--scope",
        "AaaServer.profile.READ",
        "--duration",
        "3",
        "--json",
    ]);
    let (status, tokens) = json_of(
        &send(http.client.post(&token_url).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("code", second["code"].as_str().unwrap()),
        ]))
        .await,
    );
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    sandbox.ok(&["client", "remove", &client_id]);
    let (status, _) = json_of(
        &send(
            http.client
                .get(&info_url)
                .header("Authorization", format!("Zoho-oauthtoken {access}")),
        )
        .await,
    );
    assert_eq!(status, 401);

    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn flags_beat_environment_beats_the_config_file() {
    let sandbox = Sandbox::new();
    let config = sandbox.path("grantd.toml");
    // If the file's listen address won (TEST-NET-1, not a local address), serve could not bind.
    std::fs::write(
        &config,
        "listen = \"192.0.2.1:9\"\n\
         public_url = \"https://from-file.example\"\n\
         location = \"eu\"\n\
         [limits]\n\
         access_token_lifetime_secs = 1800\n",
    )
    .unwrap();
    let server = sandbox.serve(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("GRANTD_CONFIG", config.to_str().unwrap()),
            ("GRANTD_PUBLIC_URL", "https://from-env.example"),
        ],
    );
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let http = Http::new();

    let (status, metadata) = json_of(
        &send(http.client.get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.url
        )))
        .await,
    );
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["issuer"], "https://from-env.example", "{metadata}");

    let (status, info) =
        json_of(&send(http.client.get(format!("{}/oauth/serverinfo", server.url))).await);
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["locations"]["eu"], "https://from-env.example",
        "{info}"
    );

    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// The key ids `/oauth/v2/keys` publishes, in order.
async fn published(http: &Http, url: String) -> Vec<String> {
    let reply = http.get(format!("{url}/oauth/v2/keys")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let keys = body["keys"].as_array().cloned().unwrap_or_default();
    let kids: Vec<String> = keys
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kids.len(), keys.len(), "every key has a kid: {body}");
    kids
}

/// `grantd serve` on SQLite makes its key-encryption key beside the database (0600) and its
/// first signing key; `grantd keys rotate` beside it is served within seconds; a restart opens
/// the same keys; another key-encryption key refuses to start; PostgreSQL needs the setting.
#[tokio::test]
async fn signing_keys_are_sealed_listed_and_rotated_while_serving() {
    let sandbox = Sandbox::new();
    // The default key file, not the tests' shared one.
    let own = |args: &[&str]| {
        let mut command = sandbox.command(args);
        command.env_remove("GRANTD_KEY_ENCRYPTION_KEY_FILE");
        command
    };
    let serve = |log: &str| {
        let mut command = own(&["serve", "--listen", "127.0.0.1:0"]);
        command.env("RUST_LOG", "info");
        Node::spawn("serve", command, sandbox.path(log))
    };
    let keys_json = |args: &[&str]| -> Value {
        let stdout = succeeded(args, &node::run(own(args), args, None));
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    let server = serve("serve-1.log");
    let kek = sandbox.path("kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is the owner's only");
    }
    let http = Http::new();

    // One active key per algorithm, RS256 first.
    let first = published(&http, server.url.clone()).await;
    assert_eq!(first.len(), 2);
    let listed = keys_json(&["keys", "list", "--json"]);
    for (i, alg) in ["RS256", "EdDSA"].into_iter().enumerate() {
        assert_eq!(listed["keys"][i]["kid"], first[i].as_str());
        assert_eq!(listed["keys"][i]["alg"], alg);
        assert_eq!(listed["keys"][i]["active"], true);
    }

    // Every algorithm's key at once.
    let rotated = keys_json(&["keys", "rotate", "--json"]);
    let new_kids: Vec<String> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rotated["keys"][0]["alg"], "RS256", "{rotated}");
    assert_eq!(rotated["keys"][1]["alg"], "EdDSA", "{rotated}");
    assert_eq!(new_kids.len(), 2);
    assert!(new_kids.iter().all(|kid| !first.contains(kid)));
    let wait_for = |active: Vec<String>, url: String| {
        let http = &http;
        support::http::until(
            std::time::Duration::from_secs(15),
            "the running server to publish the new keys",
            move || {
                let (url, active) = (url.clone(), active.clone());
                async move {
                    let kids = published(http, url).await;
                    (kids[..2] == active[..]).then_some(kids)
                }
            },
        )
    };
    wait_for(new_kids.clone(), server.url.clone()).await;
    let listed = keys_json(&["keys", "list", "--json"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 4, "{listed}");
    for retired in 2..4 {
        assert_eq!(listed["keys"][retired]["active"], false);
        assert!(listed["keys"][retired]["expires_at"].is_i64(), "{listed}");
    }

    // One algorithm's only.
    let rotated = keys_json(&["keys", "rotate", "--alg", "EdDSA", "--json"]);
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 1, "{rotated}");
    assert_eq!(rotated["keys"][0]["alg"], "EdDSA", "{rotated}");
    let newer_ed = rotated["keys"][0]["kid"].as_str().unwrap().to_owned();
    let active = vec![new_kids[0].clone(), newer_ed.clone()];
    let kids = wait_for(active.clone(), server.url.clone()).await;
    assert_eq!(kids.len(), 5);
    assert!(server.stop().success());

    // A restart opens the same keys with the same key file.
    let again = serve("serve-2.log");
    let kids = published(&http, again.url.clone()).await;
    assert_eq!(kids[..2], active[..]);
    assert!(first.iter().all(|kid| kids.contains(kid)), "{kids:?}");
    assert!(kids.contains(&new_kids[1]), "{kids:?}");
    assert!(again.stop().success());

    // Another key-encryption key cannot open them: refused, with a message that says why.
    std::fs::write(&kek, format!("{}\n", "ab".repeat(32))).unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0"];
    let output = node::run(own(&args), &args, None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("key-encryption key"), "{stderr}");

    // PostgreSQL has no default: its nodes must share one key.
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        "postgres://nobody@127.0.0.1:9/none",
    ];
    let output = node::run(own(&args), &args, None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("key_encryption_key_file is required"),
        "{stderr}"
    );
}
