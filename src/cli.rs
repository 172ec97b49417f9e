//! The command line: every subcommand, flag and environment variable, as clap derive types.
//! Values that can also come from the configuration file are `Option`s here, so `config.rs`
//! can tell "not given" from "given" when it merges (flags > environment > file > defaults).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use grantd_core::limits::SELF_CLIENT_CODE_MINUTES;
use grantd_core::oidc::SigningAlg;
use grantd_core::{ClientType, Dialect};

#[derive(Debug, Parser)]
#[command(
    name = "grantd",
    version,
    about = "A self-hostable OAuth 2.0 accounts server that speaks the Zoho Accounts dialect",
    long_about = "A self-hostable OAuth 2.0 accounts server that speaks the Zoho Accounts \
                  dialect as well as standard OAuth 2.0.\n\n\
                  `grantd serve` runs the server; the other commands administer its database \
                  (users, clients, scopes, Self Client codes) and work while it runs.",
    after_help = "Settings are read from flags, then GRANTD_* environment variables, then the \
                  TOML file given with --config, then defaults.\n\
                  Quick start: grantd serve   (then see `grantd client add --help`)"
)]
pub struct Cli {
    /// Database URL: `sqlite://PATH` (created on first use) or `postgres://USER@HOST/DB`
    /// [default: sqlite://grantd-data/grantd.db]
    #[arg(
        long,
        global = true,
        env = "GRANTD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,

    /// TOML configuration file (keys: listen, public_url, database, location, api_domain,
    /// default_dialect, [limits])
    #[arg(long, global = true, env = "GRANTD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the accounts server until Ctrl-C or SIGTERM (requests in flight are finished)
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit (`serve` does this too)
    Migrate,
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Register and manage OAuth clients
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the scope registry (scopes a client may request)
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Generate a Self Client grant code (what Zoho's API console does), for a user's own scripts
    #[command(
        after_help = "Example:\n  grantd code --client-id 1000.ABC... --user me@example.com \
                            --scope AaaServer.profile.READ --duration 10 --json\n\n\
                            Exchange the code at {public_url}/oauth/v2/token with \
                            grant_type=authorization_code, client_id, client_secret and code."
    )]
    Code(CodeArgs),
    /// Manage the OpenID Connect ID-token signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys still published at /oauth/v2/keys (never key material)
    List {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key for every algorithm (or only --alg's); the current ones sign no
    /// more, and stay published until every ID token they signed has expired. Running servers
    /// switch within seconds.
    Rotate {
        /// Rotate only this algorithm's key: RS256 or EdDSA
        #[arg(long, value_name = "ALG", value_parser = parse_alg)]
        alg: Option<SigningAlg>,
        /// Print one JSON object: {"keys":[{"kid","alg"}]}, the new keys
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port
    #[arg(long, env = "GRANTD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Public base URL of this server, as clients reach it (the OAuth issuer)
    /// [default: http://{bound address}]
    #[arg(long, env = "GRANTD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Data center code reported to clients (us, eu, in, au, jp, ca, ...) [default: us]
    #[arg(long, env = "GRANTD_LOCATION", value_name = "CODE")]
    pub location: Option<String>,

    /// API domain returned as `api_domain` in token responses [default: the public URL]
    #[arg(long, env = "GRANTD_API_DOMAIN", value_name = "URL")]
    pub api_domain: Option<String>,

    /// Error dialect where the client is unknown [default: standard]
    #[arg(long, env = "GRANTD_DEFAULT_DIALECT", value_name = "DIALECT")]
    pub default_dialect: Option<DialectArg>,

    /// Reverse proxies whose X-Forwarded-For names the client, for sign-in throttling:
    /// comma-separated addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) [default: none]
    #[arg(long, env = "GRANTD_TRUSTED_PROXIES", value_name = "ADDRS")]
    pub trusted_proxies: Option<String>,

    /// File holding the secret all data centers share (at least 32 bytes; surrounding
    /// whitespace is trimmed); required when [datacenters] lists other data centers
    #[arg(long, env = "GRANTD_DC_SECRET_FILE", value_name = "FILE")]
    pub dc_secret_file: Option<PathBuf>,

    /// How often to fetch the client records other data centers enabled for this one, in
    /// milliseconds [default: 3000]
    #[arg(long, env = "GRANTD_DC_SYNC_INTERVAL_MS", value_name = "MS")]
    pub dc_sync_interval_ms: Option<u64>,

    /// File holding the key-encryption key that seals the ID-token signing keys at rest (64
    /// hexadecimal characters, e.g. from `openssl rand -hex 32`) [default with SQLite: `kek`
    /// beside the database file, created on first start; required with PostgreSQL]
    #[arg(long, env = "GRANTD_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub key_encryption_key_file: Option<PathBuf>,

    /// ID-token signing algorithm of clients that choose none (`client add --id-token-alg`,
    /// the console): RS256 or EdDSA [default: RS256]. Both always have a key.
    #[arg(long, env = "GRANTD_ID_TOKEN_SIGNING_ALG", value_name = "ALG")]
    pub id_token_signing_alg: Option<String>,
}

/// `serve`'s settings as the environment gives them, for the admin commands that need to know
/// the data centers (`user add`): they take no `serve` flags, only `GRANTD_*` and the file.
#[derive(Debug, Parser)]
#[command(name = "grantd")]
struct EnvironmentOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

impl ServeArgs {
    pub fn from_environment() -> Result<ServeArgs, String> {
        EnvironmentOnly::try_parse_from(["grantd"])
            .map(|only| only.serve)
            .map_err(|e| format!("the GRANTD_* environment: {e}"))
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user account (the first user becomes the administrator)
    #[command(
        after_help = "Without --password-stdin a random password is generated and \
                            printed once.\nExample:\n  printf '%s\\n' \"$PASSWORD\" | grantd user \
                            add --email me@example.com --name 'Me' --password-stdin"
    )]
    Add {
        /// Sign-in email address (stored exactly as given)
        #[arg(long)]
        email: String,
        /// Display name
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input (at least 8 characters)
        #[arg(long)]
        password_stdin: bool,
        /// Make this user an administrator
        #[arg(long)]
        admin: bool,
    },
    /// Clear a user's sign-in back-off from every address, so the owner can sign in at once
    #[command(
        after_help = "Failed sign-ins slow down further attempts per account and client address                       (exponential back-off), and too many per account in an hour stop all of                       them for the rest of the hour; this clears both for the account.                       Addresses that tried many accounts stay limited.
Example:
  grantd user                       unlock me@example.com"
    )]
    Unlock {
        /// The user's sign-in email address (exactly as stored)
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; confidential types get a secret, printed once
    #[command(after_help = "Types:\n  \
        server       Server-based app: code flow, secret, redirect URIs (https or loopback)\n  \
        client       JavaScript app: code flow with PKCE, no secret, redirect URIs\n  \
        mobile       Mobile/desktop app: code flow with PKCE, no secret, redirect URIs \
                     (custom schemes and loopback allowed)\n  \
        non-browser  Device flow: secret, no redirect URIs\n  \
        self         Self Client: codes from `grantd code`, secret, no redirect URIs, one per \
                     user (needs --owner)\n\n\
        Example:\n  grantd client add --type self --name 'My scripts' --owner me@example.com --json")]
    Add(ClientAddArgs),
    /// List registered clients (never their secrets)
    List {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Show one client (never its secret)
    Show {
        /// Client id (1000.XXXX...)
        id: String,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its codes, tokens and consents
    Remove {
        /// Client id (1000.XXXX...)
        id: String,
    },
    /// Issue a new client secret; the old one stops working at once
    RotateSecret {
        /// Client id (1000.XXXX...)
        id: String,
        /// Print one JSON object: {"client_id","client_secret"}
        #[arg(long)]
        json: bool,
    },
    /// Serve a client registered here at another data center too (within seconds); again,
    /// changes the secret it uses there
    #[command(name = "enable-dc")]
    EnableDc {
        /// Client id (1000.XXXX...)
        id: String,
        /// The data center, as configured in [datacenters.<location>]
        #[arg(long)]
        location: String,
        /// Give the client a secret of its own there (printed once); otherwise the home
        /// secret works there
        #[arg(long)]
        own_secret: bool,
        /// Print one JSON object: {"client_id","location","client_secret"}
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a client at another data center (within seconds; its tokens there go)
    #[command(name = "disable-dc")]
    DisableDc {
        /// Client id (1000.XXXX...)
        id: String,
        /// The data center
        #[arg(long)]
        location: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientAddArgs {
    /// Client type
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: ClientTypeArg,
    /// Client name (letters, digits, spaces, '_' and '&'; up to 100)
    #[arg(long)]
    pub name: String,
    /// Homepage URL (http or https)
    #[arg(long, value_name = "URL")]
    pub homepage: Option<String>,
    /// Authorized redirect URI; repeat for several (server, client and mobile types)
    #[arg(long = "redirect-uri", value_name = "URL")]
    pub redirect_uris: Vec<String>,
    /// Email of the owning user (required for a Self Client)
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,
    /// How token-endpoint errors are written for this client
    #[arg(long, value_name = "DIALECT", default_value = "standard")]
    pub dialect: DialectArg,
    /// A resource server: may introspect every client's tokens at /oauth/v2/introspect
    /// (otherwise a client sees only its own); confidential clients only
    #[arg(long)]
    pub introspect_any: bool,
    /// Sign this client's ID tokens with RS256 or EdDSA [default: the server's
    /// id_token_signing_alg]
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    pub id_token_alg: Option<SigningAlg>,
    /// Print one JSON object: {"client_id","client_secret"} (secret null for public clients)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScopeCommand {
    /// Register a scope (Service.scope.OPERATION; operation ALL, READ, CREATE, UPDATE or DELETE)
    Add {
        /// Scope name, e.g. ZohoCRM.modules.READ
        name: String,
        /// What the scope allows, shown on the consent page
        #[arg(long)]
        description: String,
    },
    /// List registered scopes
    List {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CodeArgs {
    /// The Self Client's id
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// Email of the user who owns the Self Client
    #[arg(long, value_name = "EMAIL")]
    pub user: String,
    /// Scopes, comma-separated (e.g. AaaServer.profile.READ,ZohoCRM.modules.ALL)
    #[arg(long, value_name = "S[,S]")]
    pub scope: String,
    /// Minutes until the code expires: 3, 5, 7 or 10
    #[arg(long, value_name = "MINUTES", value_parser = parse_minutes)]
    pub duration: i64,
    /// A note to remember what the code was for
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Print one JSON object: {"code","expires_in"} (seconds)
    #[arg(long)]
    pub json: bool,
}

/// A JOSE algorithm name, exactly (`RS256`, `EdDSA`).
fn parse_alg(raw: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(raw).ok_or_else(|| "the algorithm must be RS256 or EdDSA".to_owned())
}

fn parse_minutes(raw: &str) -> Result<i64, String> {
    raw.parse::<i64>()
        .ok()
        .filter(|m| SELF_CLIENT_CODE_MINUTES.contains(m))
        .ok_or_else(|| "the duration must be 3, 5, 7 or 10 (minutes)".to_owned())
}

/// The client types of CONTRACT.md, spelled as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientTypeArg {
    /// Server-based application
    Server,
    /// Client-based (JavaScript) application
    Client,
    /// Mobile or desktop application
    Mobile,
    /// Device flow (no browser)
    NonBrowser,
    /// Self Client
    #[value(name = "self")]
    SelfClient,
}

impl From<ClientTypeArg> for ClientType {
    fn from(arg: ClientTypeArg) -> Self {
        match arg {
            ClientTypeArg::Server => ClientType::Server,
            ClientTypeArg::Client => ClientType::Client,
            ClientTypeArg::Mobile => ClientType::Mobile,
            ClientTypeArg::NonBrowser => ClientType::NonBrowser,
            ClientTypeArg::SelfClient => ClientType::SelfClient,
        }
    }
}

/// An error dialect, from a flag, an environment variable or the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectArg {
    /// RFC 6749 status codes and error names
    Standard,
    /// Zoho's: HTTP 200 with Zoho's error names
    Zoho,
}

impl From<DialectArg> for Dialect {
    fn from(arg: DialectArg) -> Self {
        match arg {
            DialectArg::Standard => Dialect::Standard,
            DialectArg::Zoho => Dialect::Zoho,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn only_contract_durations_are_accepted() {
        assert_eq!(parse_minutes("5"), Ok(5));
        assert!(parse_minutes("4").is_err());
        assert!(parse_minutes("five").is_err());
    }

    #[test]
    fn algorithms_are_named_exactly() {
        assert_eq!(parse_alg("EdDSA"), Ok(SigningAlg::EdDsa));
        assert_eq!(parse_alg("RS256"), Ok(SigningAlg::Rs256));
        assert!(parse_alg("eddsa").is_err());
    }
}
